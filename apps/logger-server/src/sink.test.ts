import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';
import { FileSink, recoverTail } from './sink';

describe('FileSink', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('sink');
  });
  afterEach(() => removeDir(dir));

  it('writes lines per app under LOG_DIR/<app>/ with restrictive modes, only at commit', () => {
    const sink = new FileSink(join(dir, 'log'));
    sink.append('shop', 'a\n');
    sink.append('api', 'b\n');
    sink.append('shop', 'c\n');
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
    expect(() => sink.append('shop', 'x\n')).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(() => sink.append('evil', 'x\n')).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    expect(readFileSync(outside, 'utf8')).toBe('');
    sink.close();
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
