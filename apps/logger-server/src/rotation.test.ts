import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';
import type { ClosedFile } from './closed-file';
import type { DiskError } from './errors';
import { LocalCheckpoints } from './recovery';
import { FileRotation } from './rotation';
import { FileSink } from './sink';

describe('FileRotation', () => {
  let dir: string;
  let sink: FileSink;
  let local: LocalCheckpoints;
  let archived: ClosedFile[];
  let failures: DiskError[];
  let uncommitted: boolean;
  const policy = { maxBytes: 10, maxAgeMs: 60_000 };
  const rotation = () =>
    new FileRotation(
      sink,
      policy,
      local,
      { add: (file) => archived.push(file) },
      () => uncommitted,
      (error) => failures.push(error),
    );
  const write = async (app: string, line: string, seq: number) => {
    sink.append(app, line, Date.now(), 'p1/app/host', seq);
    await sink.commit();
    local.update(new Map([[app, sink.checkpointOf(app)!]]));
  };

  beforeEach(() => {
    dir = tempDir('rotation');
    sink = new FileSink(join(dir, 'log'));
    local = new LocalCheckpoints(sink.statePath('acknowledged-test.json'));
    archived = [];
    failures = [];
    uncommitted = false;
  });
  afterEach(() => {
    sink.close();
    removeDir(dir);
  });

  it('closes the files that are due, hands them on and forgets their checkpoints', async () => {
    await write('shop', 'a line longer than ten bytes\n', 1);
    await write('api', 'short\n', 2);
    expect(rotation().run()).toBe(true);
    expect(archived.map((file) => file.app)).toEqual(['shop']);
    expect(existsSync(archived[0]!.path)).toBe(true);
    expect([...local.read().keys()]).toEqual(['api']);
    expect(failures).toEqual([]);
  });

  it('closes every non-empty file when told to close all (shutdown)', async () => {
    await write('shop', 'x\n', 1);
    await write('api', 'y\n', 2);
    expect(rotation().run(true)).toBe(true);
    expect(archived.map((file) => file.app).sort()).toEqual(['api', 'shop']);
    expect(local.read().size).toBe(0);
  });

  it('waits while a batch is written but not committed', async () => {
    await write('shop', 'a line longer than ten bytes\n', 1);
    uncommitted = true;
    expect(rotation().run(true)).toBe(true);
    expect(archived).toEqual([]);
    expect(readdirSync(join(dir, 'log/shop'))).toEqual(['shop.log']);
    uncommitted = false;
    expect(rotation().run()).toBe(true);
    expect(archived).toHaveLength(1);
  });

  it('closes no file after its stop time: the rest stay open files, whole', async () => {
    await write('shop', 'x\n', 1);
    await write('api', 'y\n', 2);
    expect(rotation().run(true, Date.now(), Date.now() - 1)).toBe(true);
    expect(archived).toEqual([]);
    expect(sink.nonEmptyFiles).toBe(2);
    expect(local.read().size).toBe(2);
  });

  it('reports a disk failure and returns false so the caller stops', async () => {
    await write('shop', 'a line longer than ten bytes\n', 1);
    rmSync(join(dir, 'log/shop'), { recursive: true });
    expect(rotation().run()).toBe(false);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.code).toMatch(/^DISK_/);
    expect(archived).toEqual([]);
  });
});
