import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';
import { FileSink, parseClosedName, recoverTail } from './sink';

describe('FileSink', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('sink');
  });
  afterEach(() => removeDir(dir));

  it('writes lines per app under LOG_DIR/<app>/ with restrictive modes, only at commit', () => {
    const sink = new FileSink(join(dir, 'log'));
    sink.append('shop', 'a\n', 1);
    sink.append('api', 'b\n', 1);
    sink.append('shop', 'c\n', 1);
    expect(existsSync(join(dir, 'log/shop/shop.log')) && readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('');
    expect(sink.commit()).toEqual({ files: 2, bytes: 6 });
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
    expect(() => sink.append('shop', 'x\n', 1)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(() => sink.append('evil', 'x\n', 1)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(readFileSync(outside, 'utf8')).toBe('');
    sink.close();
  });
});

describe('FileSink.dropFromLastBatch', () => {
  it('takes ranges of the last batch back out of the file and keeps the rest', () => {
    const dir = tempDir('drop');
    try {
      const sink = new FileSink(join(dir, 'log'));
      sink.append('shop', 'old\n', 1);
      sink.commit();
      expect(['a\n', 'b\n', 'c\n', 'd\n'].map((line) => sink.append('shop', line, 1))).toEqual([0, 1, 2, 3]);
      sink.commit();
      expect(sink.dropFromLastBatch(new Map([['shop', [[1, 3]] as Array<[number, number]>]]))).toBe(2);
      expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('old\na\nd\n');
      sink.append('shop', 'e\n', 1);
      sink.commit();
      expect(readFileSync(join(dir, 'log/shop/shop.log'), 'utf8')).toBe('old\na\nd\ne\n');
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
      sink.append('shop', 'a\n', t0);
      sink.append('api', 'b\n', t0);
      expect(sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 })).toEqual([]); // pending: not yet
      sink.commit();
      const closed = sink.rotate({ maxBytes: 2, maxAgeMs: 1e9 });
      expect(closed.map((c) => c.app).sort()).toEqual(['api', 'shop']);
      const shop = closed.find((c) => c.app === 'shop')!;
      expect(shop.firstTime).toBe(t0);
      expect(shop.path).toMatch(/shop\/20261125T130405678Z-[0-9a-f]{8}\.jsonl$/);
      expect(readFileSync(shop.path, 'utf8')).toBe('a\n');
      expect(parseClosedName('shop', join(dir, 'log', 'shop'), shop.path.split('/').pop()!)).toEqual(shop);
      expect(existsSync(join(dir, 'log/shop/shop.log'))).toBe(false);
      sink.append('shop', 'c\n', t0 + 1);
      sink.commit();
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 })).toEqual([]);
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 }, Date.now() + 3_600_000)).toHaveLength(1); // next hour
      sink.append('shop', 'd\n', t0 + 2);
      sink.commit();
      expect(sink.rotate({ maxBytes: 100, maxAgeMs: 1e9 }, Date.now(), true)).toHaveLength(1); // shutdown
      expect(parseClosedName('shop', '/x', 'shop.log')).toBeUndefined();
      sink.close();
    } finally {
      removeDir(dir);
    }
  });
});

describe('recoverTail', () => {
  it('cuts a torn last line and returns the complete ones', () => {
    const dir = tempDir('tail');
    try {
      const file = join(dir, 'x.log');
      writeFileSync(file, '{"seq":1}\n{"seq":2}\n{"seq":3,"mess');
      expect(recoverTail(file, 1024)).toEqual(['{"seq":1}', '{"seq":2}']);
      expect(readFileSync(file, 'utf8')).toBe('{"seq":1}\n{"seq":2}\n');
      expect(recoverTail(file, 12)).toEqual(['{"seq":2}']);
      expect(recoverTail(join(dir, 'missing.log'), 100)).toEqual([]);
    } finally {
      removeDir(dir);
    }
  });
});
