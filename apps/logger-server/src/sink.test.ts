import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
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

  it('writes lines per app under LOG_DIR/<app>/ with restrictive modes, only at commit', () => {
    const sink = new FileSink(join(dir, 'log'));
    sink.append('shop', 'a\n', 1, 'p1', 1);
    sink.append('api', 'b\n', 1, 'p1', 2);
    sink.append('shop', 'c\n', 1, 'p1', 3);
    expect(existsSync(join(dir, 'log/shop/shop.log')) && readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('');
    expect(sink.commit()).toEqual({ apps: ['shop', 'api'], bytes: 6 });
    expect(sink.checkpointOf('shop')).toEqual({ offset: 4, producer: 'p1', seq: 3 });
    expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('a\nc\n');
    expect(readFileSync(join(dir, 'log/api/api.log'), 'utf8')).toBe('b\n');
    expect(statSync(join(dir, 'log/shop')).mode & 0o777).toBe(0o750);
    expect(statSync(join(dir, 'log/shop/shop.log')).mode & 0o777).toBe(0o640);
    sink.close();
  });

  it('refuses to write through a symlink planted in LOG_DIR', () => {
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
});

describe('FileSink.takeBack', () => {
  it('takes lines of the last batch back out of the file and keeps the rest', () => {
    const dir = tempDir('drop');
    try {
      const sink = new FileSink(join(dir, 'log'));
      sink.append('shop', 'old\n', 1, 'p1', 6);
      sink.commit();
      expect(['a\n', 'b\n', 'c\n', 'd\n'].map((line) => sink.append('shop', line, 1, 'p2', line.charCodeAt(0)))).toEqual([0, 1, 2, 3]);
      sink.commit();
      expect(sink.takeBack((app, index) => app === 'shop' && index >= 1 && index < 3)).toBe(2);
      expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('old\na\nd\n');
      expect(sink.checkpointOf('shop')).toEqual({ offset: 8, producer: 'p2', seq: 'd'.charCodeAt(0) });
      // all of a batch taken back: the checkpoint is the line before it again
      expect(sink.takeBack((_app, _index, producer) => producer === 'p2')).toBe(2);
      expect(sink.checkpointOf('shop')).toEqual({ offset: 4, producer: 'p1', seq: 6 });
      sink.append('shop', 'a\n', 1, 'p2', 97);
      sink.append('shop', 'd\n', 1, 'p2', 100);
      sink.commit();
      sink.append('shop', 'e\n', 1, 'p1', 7);
      sink.commit();
      expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('old\na\nd\ne\n');
      // the summary counts what stayed in the file, not what was taken back out
      const [closed] = sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 });
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
  it('closes files by size, age and hour, renamed to names that parse back, never while lines are pending', () => {
    const dir = tempDir('rotate');
    try {
      const sink = new FileSink(join(dir, 'log'));
      const t0 = Date.UTC(2026, 10, 25, 13, 4, 5, 678);
      sink.append('shop', 'a\n', t0, 'p1', 8);
      sink.append('api', 'b\n', t0, 'p1', 9);
      expect(sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 })).toEqual([]); // pending: not yet
      sink.commit();
      const closed = sink.rotate({ maxBytes: 2, maxAgeMs: 1e9 });
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
      sink.commit();
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 })).toEqual([]);
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 }, Date.now() + 3_600_000)).toHaveLength(1); // next hour
      sink.append('shop', 'd\n', t0 + 2, 'p1', 11);
      sink.commit();
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 }, Date.now(), true)).toHaveLength(1); // shutdown
      expect(parseClosedName('shop', '/x', 'shop.log')).toBeUndefined();
      sink.close();
    } finally {
      removeDir(dir);
    }
  });
});
