import fs, { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';
import { manifestPathOf, parseClosedName } from './closed-file';
import { FileSink } from './sink';

describe('FileSink', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('sink');
  });
  afterEach(() => removeDir(dir));

  it('writes lines per app under LOG_DIR/<app>/ with restrictive modes, only at commit', async () => {
    const sink = new FileSink(join(dir, 'log'));
    sink.append('shop', 'a\n', 1, 'p1', 1);
    sink.append('api', 'b\n', 1, 'p1', 2);
    sink.append('shop', 'c\n', 1, 'p1', 3);
    expect(existsSync(join(dir, 'log/shop/shop.log')) && readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('');
    expect(await sink.commit()).toEqual({ apps: ['shop', 'api'], bytes: 6 });
    expect(sink.checkpointOf('shop')).toEqual({ offset: 4, origin: 'p1', seq: 3 });
    expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('a\nc\n');
    expect(readFileSync(join(dir, 'log/api/api.log'), 'utf8')).toBe('b\n');
    expect(statSync(join(dir, 'log/shop')).mode & 0o777).toBe(0o750);
    expect(statSync(join(dir, 'log/shop/shop.log')).mode & 0o777).toBe(0o640);
    sink.close();
  });

  it('refuses to write through a symlink planted in LOG_DIR', async () => {
    const outside = join(dir, 'outside.txt');
    writeFileSync(outside, '');
    mkdirSync(join(dir, 'log/shop'), { recursive: true });
    symlinkSync(outside, join(dir, 'log/shop/shop.log'));
    symlinkSync(dir, join(dir, 'log/evil'));
    const sink = new FileSink(join(dir, 'log'));
    expect(() => sink.append('shop', 'x\n', 1, 'p1', 4)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(() => sink.append('evil', 'x\n', 1, 'p1', 5)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(readFileSync(outside, 'utf8')).toBe('');
    sink.close();
  });

  it('closes the files (SIGHUP) only once the writes of a commit in flight have settled and the batch is acknowledged: every line lands in its file', async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir);
    const apps = Array.from({ length: 20 }, (_, i) => `app${i}`);
    const line = 'x'.repeat(1000) + '\n';
    for (let round = 1; round <= 5; round++) {
      for (const app of apps) for (let i = 0; i < 200; i++) sink.append(app, line, 1, 'p1', round * 1000 + i);
      const committing = sink.commit();
      sink.close(); // the writes are in flight on libuv's threads
      expect(sink.openDescriptors).toBe(20);
      await committing;
      expect(sink.openDescriptors).toBe(20); // written, not yet acknowledged: it may still be taken back
      sink.acknowledged();
      expect(sink.openDescriptors).toBe(0);
      for (const app of apps) expect(statSync(join(logDir, app, `${app}.log`)).size).toBe(round * 200 * line.length);
    }
  });

  it('closes the files (SIGHUP) while lines are queued only after the commit that takes them, also when the next batch queues during its writes', async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir);
    const line = 'y'.repeat(1000) + '\n';
    sink.append('shop', 'queued\n', 1, 'p1', 1);
    sink.close(); // a SIGHUP between the batch's records and its commit
    expect(sink.closeRequested).toBe(true);
    expect(sink.openDescriptors).toBe(1);
    const committing = sink.commit();
    for (let i = 0; i < 200; i++) sink.append('shop', line, 1, 'p1', 2 + i); // the next batch, queued during the writes
    await committing;
    sink.acknowledged();
    expect(sink.closeRequested).toBe(true); // lines are still queued: closing now would drop them
    expect(sink.openDescriptors).toBe(1);
    await sink.commit();
    expect(sink.closeRequested).toBe(true);
    sink.acknowledged();
    expect(sink.closeRequested).toBe(false);
    expect(sink.openDescriptors).toBe(0);
    expect(readFileSync(join(logDir, 'shop', 'shop.log'), 'utf8')).toBe('queued\n' + line.repeat(200));
    sink.append('shop', 'after\n', 1, 'p1', 300); // reopened
    await sink.commit();
    expect(readFileSync(join(logDir, 'shop', 'shop.log'), 'utf8').endsWith(line + 'after\n')).toBe(true);
    sink.close();
  });

  it('keeps a file logrotate moved open through its SIGHUP until the batch in commit is acknowledged: taking records back still reaches them', async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir);
    const path = join(logDir, 'shop', 'shop.log');
    sink.append('shop', 'before\n', 1, 'p1', 1);
    await sink.commit();
    sink.acknowledged();
    for (let seq = 2; seq <= 5; seq++) sink.append('shop', `line${seq}\n`, 1, 'p1', seq);
    const committing = sink.commit();
    renameSync(path, `${path}.1`); // logrotate's mv, then its SIGHUP, while the batch is written
    sink.close();
    await committing;
    // The group commit then finds entries another server claimed: their records come out of the moved file.
    expect(sink.openDescriptors).toBe(1);
    expect(await sink.takeBack((_app, _index, _origin, seq) => seq === 3 || seq === 5)).toBe(2);
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('before\nline2\nline4\n');
    sink.acknowledged();
    expect(sink.openDescriptors).toBe(0);
    sink.append('shop', 'after\n', 1, 'p1', 6); // a new file at the path
    await sink.commit();
    sink.acknowledged();
    expect(readFileSync(path, 'utf8')).toBe('after\n');
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('before\nline2\nline4\n');
    sink.close();
  });
});

describe('FileSink.takeBack', () => {
  it('takes lines of the last batch back out of the file and keeps the rest', async () => {
    const dir = tempDir('drop');
    try {
      const sink = new FileSink(join(dir, 'log'));
      sink.append('shop', 'old\n', 1, 'p1', 6);
      await sink.commit();
      expect(['a\n', 'b\n', 'c\n', 'd\n'].map((line) => sink.append('shop', line, 1, 'p2', line.charCodeAt(0)))).toEqual([0, 1, 2, 3]);
      await sink.commit();
      expect(await sink.takeBack((app, index) => app === 'shop' && index >= 1 && index < 3)).toBe(2);
      expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('old\na\nd\n');
      expect(sink.checkpointOf('shop')).toEqual({ offset: 8, origin: 'p2', seq: 'd'.charCodeAt(0) });
      // all of a batch taken back: the checkpoint is the line before it again
      expect(await sink.takeBack((_app, _index, producer) => producer === 'p2')).toBe(2);
      expect(sink.checkpointOf('shop')).toEqual({ offset: 4, origin: 'p1', seq: 6 });
      sink.append('shop', 'a\n', 1, 'p2', 97);
      sink.append('shop', 'd\n', 1, 'p2', 100);
      await sink.commit();
      sink.append('shop', 'e\n', 1, 'p1', 7);
      await sink.commit();
      expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('old\na\nd\ne\n');
      // the summary counts what stayed in the file, not what was taken back out
      const [closed] = sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 }).closed;
      const manifest = JSON.parse(readFileSync(manifestPathOf(closed!.path), 'utf8'));
      expect(manifest).toMatchObject({ version: 1, app: 'shop', records: 4 });
      expect(manifest.producers).toEqual([
        { producer: 'p1', minSeq: 6, maxSeq: 7, records: 2 },
        { producer: 'p2', minSeq: 'a'.charCodeAt(0), maxSeq: 'd'.charCodeAt(0), records: 2 },
      ]);
      sink.close();
    } finally {
      removeDir(dir);
    }
  });
});

describe('FileSink rotation', () => {
  it('closes files by size, age and hour, renamed to names that parse back, never while lines are pending', async () => {
    const dir = tempDir('rotate');
    try {
      const sink = new FileSink(join(dir, 'log'));
      const t0 = Date.UTC(2026, 10, 25, 13, 4, 5, 678);
      sink.append('shop', 'a\n', t0, 'p1', 8);
      sink.append('api', 'b\n', t0, 'p1', 9);
      expect(sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 }).closed).toEqual([]); // pending: not yet
      await sink.commit();
      const { closed } = sink.rotate({ maxBytes: 2, maxAgeMs: 1e9 });
      expect(closed.map((c) => c.app).sort()).toEqual(['api', 'shop']);
      const shop = closed.find((c) => c.app === 'shop')!;
      expect(shop.firstTime).toBe(t0);
      expect(shop.path).toMatch(/shop\/20261125T130405678Z-[0-9a-f]{8}\.jsonl$/);
      expect(readFileSync(shop.path, 'utf8')).toBe('a\n');
      expect(JSON.parse(readFileSync(manifestPathOf(shop.path), 'utf8'))).toEqual({
        version: 1,
        app: 'shop',
        file: shop.path.split('/').pop(),
        records: 1,
        firstTime: new Date(t0).toISOString(),
        lastTime: new Date(t0).toISOString(),
        producers: [{ producer: 'p1', minSeq: 8, maxSeq: 8, records: 1 }],
      });
      expect(parseClosedName('shop', join(dir, 'log', 'shop'), shop.path.split('/').pop()!)).toEqual(shop);
      expect(existsSync(join(dir, 'log/shop/shop.log'))).toBe(false);
      sink.append('shop', 'c\n', t0 + 1, 'p1', 10);
      await sink.commit();
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 }).closed).toEqual([]);
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 }, Date.now() + 3_600_000).closed).toHaveLength(1); // next hour
      sink.append('shop', 'd\n', t0 + 2, 'p1', 11);
      await sink.commit();
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 }, Date.now(), true).closed).toHaveLength(1); // shutdown
      expect(parseClosedName('shop', '/x', 'shop.log')).toBeUndefined();
      sink.close();
    } finally {
      removeDir(dir);
    }
  });
});

describe('FileSink descriptors', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('fds');
  });
  afterEach(() => removeDir(dir));

  it('queues the next batch while a commit writes: opening its files never closes a descriptor in flight, and its lines go to the next commit only', async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir, 4);
    const big = 'x'.repeat(4000) + '\n';
    const inFlight = ['app0', 'app1', 'app2'];
    for (let round = 1; round <= 3; round++) {
      for (const app of inFlight) for (let i = 0; i < 1000; i++) sink.append(app, big, 1, 'p1', round * 10_000 + i);
      const committing = sink.commit();
      await writesStarted();
      expect(sink.canOpenWhileWriting).toBe(true); // 3 files in flight, 4 descriptors allowed
      // the next batch: lines for the files being written and for new apps, opened now
      for (const app of [...inFlight, 'new0', 'new1', 'new2', 'new3', 'new4']) sink.append(app, `${app} next ${round}\n`, 1, 'p2', round);
      // In the first round the three are open before the commit, so all three writes are in
      // flight now; later rounds reopen them in turn (the opens below closed them), and one
      // not yet started may be closed and is reopened for its write.
      if (round === 1) for (const app of inFlight) expect(openDescriptorsUnder(join(logDir, app))).toBe(1);
      expect(sink.openDescriptors).toBeLessThanOrEqual(4);
      expect(sink.checkpointOf('app0')).toEqual({ offset: (round - 1) * (1000 * big.length + `app0 next ${round - 1}\n`.length) + 1000 * big.length, origin: 'p1', seq: round * 10_000 + 999 });
      await committing;
      for (const app of inFlight) expect(readFileSync(join(logDir, app, `${app}.log`), 'utf8').endsWith(big)).toBe(true);
      expect(await sink.commit()).toEqual({ apps: expect.arrayContaining([...inFlight, 'new0', 'new4']), bytes: expect.any(Number) });
      for (const app of inFlight) expect(readFileSync(join(logDir, app, `${app}.log`), 'utf8').endsWith(big + `${app} next ${round}\n`)).toBe(true);
      expect(
        readFileSync(join(logDir, 'new3', 'new3.log'), 'utf8')
          .split('\n')
          .filter(Boolean),
      ).toEqual(Array.from({ length: round }, (_, i) => `new3 next ${i + 1}`));
    }
    sink.close();
    // four files in flight with four descriptors allowed: the next batch must wait for the commit
    const full = new FileSink(join(dir, 'full'), 4);
    for (const app of ['a', 'b', 'c', 'd']) full.append(app, big, 1, 'p1', 1);
    const committing = full.commit();
    await writesStarted();
    expect(full.canOpenWhileWriting).toBe(false);
    await committing;
    expect(full.canOpenWhileWriting).toBe(true);
    full.close();
  });

  it("gives a rotated file's line batches to the next file opened: its chunks are written again, none allocated", async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir);
    const line = 'r'.repeat(999) + '\n';
    const fill = async (app: string) => {
      for (let batch = 0; batch < 2; batch++) {
        for (let i = 0; i < 3000; i++) sink.append(app, line, 1, 'p1', batch * 3000 + i + 1);
        await sink.commit();
      }
    };
    const chunks = jest.spyOn(Buffer, 'allocUnsafe');
    const chunkAllocations = () => chunks.mock.calls.filter(([size]) => size >= 1024 * 1024).length;
    try {
      await fill('first'); // both of its batches take ~3 MB of chunks
      const first = chunkAllocations();
      expect(first).toBeGreaterThanOrEqual(6);
      for (const app of ['second', 'third', 'fourth']) {
        expect(sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 }).closed).toHaveLength(1);
        await fill(app);
        expect(readFileSync(join(logDir, app, `${app}.log`), 'utf8')).toBe(line.repeat(6000));
      }
      expect(chunkAllocations()).toBe(first);
    } finally {
      chunks.mockRestore();
      sink.close();
    }
  });

  it('keeps at most maxOpenFiles descriptors: the least recently written are closed and reopened on demand, nothing lost', async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir, 3);
    const apps = Array.from({ length: 40 }, (_, i) => `app${i}`);
    for (let round = 1; round <= 3; round++) {
      for (const app of apps) sink.append(app, `${app} ${round}\n`, 1, 'p1', round);
      await sink.commit();
      expect(sink.openDescriptors).toBeLessThanOrEqual(3);
      expect(openDescriptorsUnder(logDir)).toBeLessThanOrEqual(3);
    }
    // a batch taken back after its file's descriptor was closed: reopened, cut and rewritten
    sink.append('app0', 'app0 4\n', 1, 'p1', 4);
    sink.append('app0', 'app0 5\n', 1, 'p1', 5);
    for (const app of apps.slice(1, 5)) sink.append(app, `${app} 4\n`, 1, 'p1', 4);
    await sink.commit(); // app0 is written first, and its descriptor closed for the four after it
    expect(await sink.takeBack((app, _index, _origin, seq) => app === 'app0' && seq === 4)).toBe(1);
    for (const app of apps) {
      const expected = [1, 2, 3].map((round) => `${app} ${round}\n`).join('') + (app === 'app0' ? 'app0 5\n' : apps.slice(1, 5).includes(app) ? `${app} 4\n` : '');
      expect(readFileSync(join(logDir, app, `${app}.log`), 'utf8')).toBe(expected);
    }
    expect(sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 }).closed).toHaveLength(40);
    expect(sink.openDescriptors).toBe(0);
    sink.close();
  });

  it('a file moved away (mv, create mode, its directory) while its descriptor was closed (logrotate before its SIGHUP): the next batch starts the file at the path, no failure', async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir, 1);
    const open = join(logDir, 'shop', 'shop.log');
    for (const [shape, n] of [
      ['mv', 1],
      ['create', 2],
      ['dir', 3],
    ] as const) {
      sink.append('shop', `shop ${n}\n`, 1, 'p1', n);
      await sink.commit();
      sink.append('api', `api ${n}\n`, 1, 'p1', n);
      await sink.commit(); // shop's descriptor is closed now
      const movedTo = shape === 'dir' ? join(dir, `moved-${n}`, 'shop.log') : `${open}.${n}`;
      if (shape === 'dir') renameSync(join(logDir, 'shop'), join(dir, `moved-${n}`));
      else renameSync(open, movedTo);
      if (shape === 'create') writeFileSync(open, '', { mode: 0o640 });
      const created = shape === 'create' ? statSync(open).ino : undefined;
      sink.append('shop', `shop ${n}b\n`, 1, 'p2', n);
      expect(await sink.commit()).toEqual({ apps: ['shop'], bytes: `shop ${n}b\n`.length });
      expect(readFileSync(movedTo, 'utf8')).toBe(`shop ${n}\n`);
      expect(readFileSync(open, 'utf8')).toBe(`shop ${n}b\n`);
      if (created !== undefined) expect(statSync(open).ino).toBe(created);
      expect(sink.checkpointOf('shop')).toEqual({ offset: `shop ${n}b\n`.length, origin: 'p2', seq: n });
      // reported once, by the next rotation, which closes the new file with its own records only
      const { closed, movedAway } = sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 });
      expect(movedAway).toEqual([{ app: 'shop', path: open, foundBy: 'reopen' }]);
      const shop = closed.find((file) => file.app === 'shop')!;
      expect(readFileSync(shop.path, 'utf8')).toBe(`shop ${n}b\n`);
      expect(JSON.parse(readFileSync(manifestPathOf(shop.path), 'utf8'))).toMatchObject({ records: 1, producers: [{ producer: 'p2', minSeq: n, maxSeq: n, records: 1 }] });
      expect(sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 }).movedAway).toEqual([]);
    }
    sink.close();
  });

  it('fails loudly when a file whose descriptor was closed was replaced meanwhile, instead of writing at wrong offsets', async () => {
    const logDir = join(dir, 'log');
    const sink = new FileSink(logDir, 1);
    sink.append('shop', 'a\n', 1, 'p1', 1);
    await sink.commit();
    sink.append('api', 'b\n', 1, 'p1', 1);
    await sink.commit(); // shop's descriptor is closed now
    renameSync(join(logDir, 'shop', 'shop.log'), join(logDir, 'shop', 'moved.log'));
    writeFileSync(join(logDir, 'shop', 'shop.log'), 'someone else\n');
    sink.append('shop', 'c\n', 1, 'p1', 2);
    await expect(sink.commit()).rejects.toThrow(expect.objectContaining({ code: 'DISK_WRITE_FAILED', message: expect.stringMatching(/removed or replaced/) }));
    expect(readFileSync(join(logDir, 'shop', 'shop.log'), 'utf8')).toBe('someone else\n');
    sink.close();
  });
});

/**
 * Lets a commit started just now start its writes: it awaits between files, in microtasks only,
 * while a write's completion comes back as a macrotask, so none has settled yet.
 */
async function writesStarted(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

/** Descriptors of this process open on files under `dir` (Linux: /proc/self/fd). */
function openDescriptorsUnder(dir: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)) count++;
    } catch {
      // closed meanwhile
    }
  }
  return count;
}

describe('FileSink rotation of a file moved away (logrotate moved it before its SIGHUP)', () => {
  let dir: string;
  let logDir: string;
  let sink: FileSink;
  let open: string;
  let moved: string;
  const policy = { maxBytes: 1, maxAgeMs: 1e9 };
  const t0 = Date.UTC(2026, 0, 1);
  // The real calls, for the spies that land a move just before the sink's own call.
  const realRename = fs.renameSync;
  const realOpen = fs.openSync;
  beforeEach(async () => {
    dir = tempDir('moved');
    logDir = join(dir, 'log');
    open = join(logDir, 'shop', 'shop.log');
    moved = join(logDir, 'shop', 'shop.log.1');
    sink = new FileSink(logDir);
    for (let seq = 1; seq <= 3; seq++) sink.append('shop', `line ${seq}\n`, t0 + seq, 'p1', seq);
    await sink.commit();
  });
  afterEach(() => {
    jest.restoreAllMocks();
    sink.close();
    removeDir(dir);
  });

  /** The file was let go: reported, left where it was put whole, nothing renamed and no manifest at its old place; the app's next line starts a file of its own, whose manifest counts only it. */
  async function expectLetGo(movedTo: string, rotated: ReturnType<FileSink['rotate']>, { pathHolds }: { pathHolds: number | undefined }) {
    expect(rotated).toEqual({ closed: [], movedAway: [{ app: 'shop', path: open, foundBy: 'rotation' }] });
    expect(readFileSync(movedTo, 'utf8')).toBe('line 1\nline 2\nline 3\n');
    const left = existsSync(join(logDir, 'shop')) ? readdirSync(join(logDir, 'shop')).filter((name) => name.endsWith('.json') || name.endsWith('.jsonl')) : [];
    expect(left).toEqual([]);
    expect(sink.checkpointOf('shop')).toBeUndefined();
    expect(sink.openDescriptors).toBe(0);
    // two more apps open with it: the let-go file's line batches are reused once, never shared
    sink.append('shop', 'line 4\n', t0 + 4, 'p1', 4);
    sink.append('api', 'api 1\n', t0 + 4, 'p2', 1);
    sink.append('web', 'web 1\n', t0 + 4, 'p3', 1);
    await sink.commit();
    expect(readFileSync(open, 'utf8')).toBe('line 4\n');
    expect(readFileSync(join(logDir, 'api', 'api.log'), 'utf8')).toBe('api 1\n');
    expect(readFileSync(join(logDir, 'web', 'web.log'), 'utf8')).toBe('web 1\n');
    // logrotate's new file (create mode) is the one written, as after a SIGHUP's reopen
    if (pathHolds !== undefined) expect(statSync(open).ino).toBe(pathHolds);
    expect(sink.checkpointOf('shop')).toEqual({ offset: 7, origin: 'p1', seq: 4 });
    const closed = sink.rotate(policy).closed.find((file) => file.app === 'shop');
    expect(readFileSync(closed!.path, 'utf8')).toBe('line 4\n');
    expect(JSON.parse(readFileSync(manifestPathOf(closed!.path), 'utf8'))).toMatchObject({ records: 1, producers: [{ producer: 'p1', minSeq: 4, maxSeq: 4, records: 1 }] });
    expect(readFileSync(movedTo, 'utf8')).toBe('line 1\nline 2\nline 3\n');
  }

  it('mv before the rotation: the file is let go, not renamed, and no disk failure', async () => {
    renameSync(open, moved);
    await expectLetGo(moved, sink.rotate(policy), { pathHolds: undefined });
  });

  it("logrotate's create mode (a new file at the path) before the rotation: neither file is renamed, the new one is written next", async () => {
    renameSync(open, moved);
    writeFileSync(open, '', { mode: 0o640 });
    await expectLetGo(moved, sink.rotate(policy), { pathHolds: statSync(open).ino });
  });

  it('the directory moved before the rotation: let go, and the next line makes the directory again', async () => {
    renameSync(join(logDir, 'shop'), join(dir, 'moved-shop'));
    await expectLetGo(join(dir, 'moved-shop', 'shop.log'), sink.rotate(policy), { pathHolds: undefined });
  });

  it('mv between the check and the rename (rename ENOENT): let go, and the manifest written for it removed', async () => {
    const rename = jest.spyOn(fs, 'renameSync').mockImplementationOnce((from, to) => {
      realRename(open, moved);
      realRename(from, to);
    });
    const rotated = sink.rotate(policy);
    expect(rename).toHaveBeenCalledTimes(1);
    await expectLetGo(moved, rotated, { pathHolds: undefined });
  });

  it("logrotate's new file made between the check and the rename: the rename took it, and it is put back at the path", async () => {
    let created: number | undefined;
    jest.spyOn(fs, 'renameSync').mockImplementationOnce((from, to) => {
      realRename(open, moved);
      writeFileSync(open, '', { mode: 0o640 });
      created = statSync(open).ino;
      realRename(from, to);
    });
    const rotated = sink.rotate(policy);
    expect(created).toBeDefined();
    await expectLetGo(moved, rotated, { pathHolds: created });
  });

  it('the directory moved between the check and the manifest (its create ENOENT): let go', async () => {
    const openSpy = jest.spyOn(fs, 'openSync').mockImplementationOnce((path, flags, mode) => {
      realRename(join(logDir, 'shop'), join(dir, 'moved-shop'));
      return realOpen(path, flags, mode);
    });
    const rotated = sink.rotate(policy);
    expect(openSpy.mock.calls[0]![0]).toMatch(/\.manifest\.json$/);
    await expectLetGo(join(dir, 'moved-shop', 'shop.log'), rotated, { pathHolds: undefined });
  });

  it('a failure with the file at its path is still a DiskError: the file stays open with its summary', async () => {
    const rename = jest.spyOn(fs, 'renameSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    });
    expect(() => sink.rotate(policy)).toThrow(expect.objectContaining({ code: 'DISK_WRITE_FAILED', errno: 'EIO' }));
    expect(rename).toHaveBeenCalledTimes(1);
    expect(readFileSync(open, 'utf8')).toBe('line 1\nline 2\nline 3\n');
    // the manifest written before the failed rename is a stray, for the archiver's scan
    sink.append('shop', 'line 4\n', t0 + 4, 'p1', 4);
    await sink.commit();
    const [closed] = sink.rotate(policy).closed;
    expect(readFileSync(closed!.path, 'utf8')).toBe('line 1\nline 2\nline 3\nline 4\n');
    expect(JSON.parse(readFileSync(manifestPathOf(closed!.path), 'utf8'))).toMatchObject({ records: 4 });
  });
});
