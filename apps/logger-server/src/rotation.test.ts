import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';
import type { ClosedFile } from './closed-file';
import type { DiskError } from './errors';
import type { ServerLog } from './log';
import { createMetrics, type Metrics } from './metrics';
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
  let metrics: Metrics;
  let logged: Array<{ level: string; message: string; fields?: Record<string, unknown> }>;
  const log: ServerLog = (level, message, fields) => logged.push({ level, message, fields });
  const policy = { maxBytes: 10, maxAgeMs: 60_000 };
  const rotation = () =>
    new FileRotation(
      sink,
      policy,
      local,
      { add: (file) => archived.push(file) },
      () => uncommitted,
      (error) => failures.push(error),
      { log, metrics },
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
    metrics = createMetrics();
    logged = [];
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
    // A real failure with the file at its path: LOG_DIR so deep that the open file's path fits in
    // PATH_MAX (4096) and its manifest's (longer) does not: ENAMETOOLONG.
    let deep = join(dir, 'deep');
    while (deep.length < 4060 - 200) deep = join(deep, 'd'.repeat(199));
    deep = join(deep, 'd'.repeat(4060 - deep.length - 1));
    mkdirSync(deep, { recursive: true });
    sink = new FileSink(deep);
    await write('shop', 'a line longer than ten bytes\n', 1);
    expect(rotation().run()).toBe(false);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ code: 'DISK_WRITE_FAILED', errno: 'ENAMETOOLONG' });
    expect(archived).toEqual([]);
    expect(readdirSync(join(deep, 'shop'))).toEqual(['shop.log']);
    expect((await metrics.registry.getSingleMetricAsString('logger_files_moved_away_total')).split('\n')).toContain('logger_files_moved_away_total 0');
  });

  it('an open file moved away (logrotate before its SIGHUP) is no failure: left where it was put, not archived, its checkpoint forgotten, warned of and counted once', async () => {
    await write('shop', 'a line longer than ten bytes\n', 1);
    await write('api', 'another line longer than ten\n', 2);
    await write('web', 'short\n', 3);
    renameSync(join(dir, 'log/shop/shop.log'), join(dir, 'log/shop/shop.log.1'));
    expect(rotation().run()).toBe(true);
    expect(failures).toEqual([]);
    expect(archived.map((file) => file.app)).toEqual(['api']);
    expect(readdirSync(join(dir, 'log/shop'))).toEqual(['shop.log.1']);
    expect(readFileSync(join(dir, 'log/shop/shop.log.1'), 'utf8')).toBe('a line longer than ten bytes\n');
    expect([...local.read().keys()]).toEqual(['web']);
    const warnings = logged.filter((line) => line.level === 'warn');
    expect(warnings).toEqual([{ level: 'warn', message: expect.stringMatching(/^an open file was moved away/), fields: { app: 'shop', path: join(dir, 'log/shop/shop.log'), foundBy: 'rotation' } }]);
    expect((await metrics.registry.getSingleMetricAsString('logger_files_moved_away_total')).split('\n')).toContain('logger_files_moved_away_total 1');
    // the next rotation has nothing of it left to meet again
    expect(rotation().run(true)).toBe(true);
    expect(logged.filter((line) => line.level === 'warn')).toHaveLength(1);
    expect(archived.map((file) => file.app).sort()).toEqual(['api', 'web']);
  });
});
