import { readFileSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';
import { DedupCache } from './dedup';
import { formatLine } from './format';
import type { Checkpoint } from './group-state';
import { LocalCheckpoints, ownKeys, recoverAtStart, recoverOpenFiles, type TrustSources } from './recovery';
import { FileSink } from './sink';

const quiet = () => {};

function line(producer: string, seq: number, message = `m${seq}`): string {
  return formatLine({ time: Date.UTC(2026, 11, 1), level: 'info', app: 'shop', host: 'h', pid: 1, producer, seq, message, fields: { seq: 'a field named like an own key', producer: 'x' } });
}

describe('recoverOpenFiles', () => {
  let dir: string;
  let logDir: string;
  beforeEach(() => {
    dir = tempDir('recovery');
    logDir = join(dir, 'log');
    mkdirSync(join(logDir, 'shop'), { recursive: true });
  });
  afterEach(() => removeDir(dir));

  /** Writes lines 1..n of producer p1 and a torn line; returns the byte offset after each line. */
  function openFile(n: number): number[] {
    const ends: number[] = [];
    let text = '';
    for (let seq = 1; seq <= n; seq++) {
      text += line('p1', seq);
      ends.push(Buffer.byteLength(text));
    }
    writeFileSync(join(logDir, 'shop', 'shop.log'), text + '{"time":"2026');
    return ends;
  }

  function recover(trust: Partial<TrustSources>) {
    const sink = new FileSink(logDir);
    const dedup = new DedupCache();
    const [file] = recoverOpenFiles(sink, dedup, { mode: 'acknowledged', checkpoints: new Map(), local: new Map(), ...trust }, quiet);
    return { file: file!, dedup, sink, size: statSync(join(logDir, 'shop', 'shop.log')).size };
  }

  const at = (ends: number[], seq: number): Checkpoint => ({ offset: ends[seq - 1]!, origin: 'p1/shop/h', seq });

  it('at start, trusts the acknowledged prefix in stream mode and every complete line in Pub/Sub mode', async () => {
    const ends = openFile(10);
    const local = new LocalCheckpoints(join(dir, 'local.json'));
    const said: Array<Record<string, unknown> | undefined> = [];
    const log = (_level: string, message: string, fields?: Record<string, unknown>) => message === 'recovered an open file' && said.push(fields);
    await recoverAtStart('stream', new FileSink(logDir), new DedupCache(), { checkpoints: async () => new Map([['shop', [at(ends, 4)]]]) }, local, log);
    expect(statSync(join(logDir, 'shop', 'shop.log')).size).toBe(ends[3]);
    expect(said).toEqual([expect.objectContaining({ app: 'shop', records: 4, trusted: ends[3] })]);
    openFile(10);
    await recoverAtStart('pubsub', new FileSink(logDir), new DedupCache(), { checkpoints: () => Promise.reject(new Error('Pub/Sub mode must not ask Redis')) }, local, log);
    expect(statSync(join(logDir, 'shop', 'shop.log')).size).toBe(ends[9]);
    expect(said[1]).toEqual(expect.objectContaining({ records: 10, trusted: ends[9] }));
  });

  it('keeps the acknowledged prefix and cuts what was written after it', () => {
    const ends = openFile(10);
    const { file, dedup, size, sink } = recover({ checkpoints: new Map([['shop', [at(ends, 6)]]]) });
    expect(size).toBe(ends[5]);
    expect(file).toMatchObject({ records: 6, last: { origin: 'p1/shop/h', seq: 6 } });
    expect(dedup.accept('p1/shop/h', 6)).toBe(false);
    expect(dedup.accept('p1/shop/h', 7)).toBe(true); // cut: redelivered and written again
    // adopted: rotated when due even if the app never writes again
    expect(sink.checkpointOf('shop')).toEqual(at(ends, 6));
    const [closed] = sink.rotate({ maxBytes: 1, maxAgeMs: 1e9 }).closed;
    expect(closed).toMatchObject({ app: 'shop' });
    sink.close();
  });

  it('cuts everything when the checkpoint is of another file (the one closed before this was opened)', () => {
    openFile(10);
    const { file, size } = recover({ checkpoints: new Map([['shop', [{ offset: 100, origin: 'p1/shop/h', seq: 99 }]]]) });
    expect(size).toBe(0);
    expect(file.records).toBe(0);
  });

  it('cuts everything when Redis knows other checkpoints but none of this file', () => {
    openFile(3);
    expect(recover({ checkpoints: new Map([['api', [{ offset: 1, origin: 'x/api/h', seq: 1 }]]]) }).size).toBe(0);
  });

  it('keeps every complete line when Redis knows no checkpoint at all (it lost its data: the file is the only copy)', () => {
    const ends = openFile(10);
    expect(recover({ checkpoints: undefined })).toMatchObject({ size: ends[9], file: { records: 10 } });
  });

  it('keeps what the local checkpoint says was acknowledged when Redis lost that acknowledgement', () => {
    const ends = openFile(10);
    const { size } = recover({ checkpoints: new Map([['shop', [at(ends, 3)]]]), local: new Map([['shop', at(ends, 8)]]) });
    expect(size).toBe(ends[7]);
  });

  it('keeps the whole file when it is shorter than what was acknowledged (the disk lost data: nothing better is left)', () => {
    const ends = openFile(4);
    expect(recover({ checkpoints: new Map([['shop', [{ offset: ends[3]! + 500, origin: 'p1/shop/h', seq: 9 }]]]) }).size).toBe(ends[3]);
  });

  it('a checkpoint of the file closed before this one (a restart after a rotation, before the next commit) acknowledges none of it, and is no disk loss', () => {
    // The closed file: p1's 1..30, its checkpoint taken at its end. The open one: 31..34 written, never acknowledged.
    let closed = '';
    for (let seq = 1; seq <= 30; seq++) closed += line('p1', seq);
    writeFileSync(join(logDir, 'shop', '20261201T000000000Z-0a1b2c3d.jsonl'), closed);
    let open = '';
    for (let seq = 31; seq <= 34; seq++) open += line('p1', seq);
    writeFileSync(join(logDir, 'shop', 'shop.log'), open);
    const stale = { offset: Buffer.byteLength(closed), origin: 'p1/shop/h', seq: 30 };
    const said: string[] = [];
    const sink = new FileSink(logDir);
    const [file] = recoverOpenFiles(sink, new DedupCache(), { mode: 'acknowledged', checkpoints: new Map([['shop', [stale]]]), local: new Map() }, (level, message) =>
      said.push(`${level}: ${message}`),
    );
    expect(file).toMatchObject({ trusted: 0, cut: Buffer.byteLength(open), records: 0 });
    expect(statSync(join(logDir, 'shop', 'shop.log')).size).toBe(0);
    expect(said).toEqual([]);
    // The same offset, but the closed file ends with another record: this file's own checkpoint, bytes lost.
    writeFileSync(join(logDir, 'shop', 'shop.log'), open);
    const other = { ...stale, seq: 29 };
    recoverOpenFiles(new FileSink(logDir), new DedupCache(), { mode: 'acknowledged', checkpoints: new Map([['shop', [other]]]), local: new Map() }, (level, message) =>
      said.push(`${level}: ${message}`),
    );
    expect(statSync(join(logDir, 'shop', 'shop.log')).size).toBe(Buffer.byteLength(open));
    expect(said).toEqual(['error: an open file is shorter than what was acknowledged of it; keeping all of it']);
  });

  it("a sharded channel's checkpoints: keeps up to the largest that is of this file, past one left from a rotated file", () => {
    const ends = openFile(10);
    const stale = { offset: ends[5]!, origin: 'old/shop/h', seq: 999 }; // another file's line ends there
    const { size } = recover({ checkpoints: new Map([['shop', [at(ends, 2), stale, at(ends, 4)]]]) });
    expect(size).toBe(ends[3]);
    openFile(10); // the same file again, whole
    expect(recover({ checkpoints: new Map([['shop', [at(ends, 7), at(ends, 2)]]]) }).size).toBe(ends[6]);
  });

  it('keeps every complete line in Pub/Sub mode', () => {
    const ends = openFile(5);
    expect(recover({ mode: 'complete-lines', checkpoints: new Map() }).size).toBe(ends[4]);
  });

  it('reads a file of 64 MiB line by line across chunk boundaries and split characters', () => {
    let text = '';
    let seq = 0;
    const parts: string[] = [];
    while (text.length < 1 << 20) text += line('p1', ++seq, '€'.repeat(seq % 50));
    parts.push(text);
    const perPart = seq;
    const copies = 64;
    const all: string[] = [];
    for (let c = 0; c < copies; c++) all.push(c === 0 ? text : text.replace(/"producer":"p1"/g, `"producer":"p${c + 1}"`));
    writeFileSync(join(logDir, 'shop', 'shop.log'), all.join(''));
    const { file, dedup } = recover({ checkpoints: undefined });
    expect(file.records).toBe(perPart * copies);
    for (let c = 1; c <= copies; c += 9) expect(dedup.accept(`p${c}/shop/h`, perPart)).toBe(false);
  });
});

describe('ownKeys', () => {
  it('reads time, origin and seq of a line the server wrote, not of a field named like them', () => {
    expect(ownKeys(line('p9', 42).trimEnd())).toEqual({ time: Date.UTC(2026, 11, 1), origin: 'p9/shop/h', seq: 42 });
    expect(ownKeys('not a record')).toBeUndefined();
  });
});

describe('LocalCheckpoints', () => {
  it('keeps what it was told, forgets a rotated app and survives a torn file', () => {
    const dir = tempDir('local');
    try {
      const local = new LocalCheckpoints(join(dir, 'c1.json'));
      local.update(
        new Map([
          ['shop', { offset: 5, origin: 'p/shop/h', seq: 1 }],
          ['api', { offset: 9, origin: 'q/api/h', seq: 2 }],
        ]),
      );
      local.forget(['api']);
      expect([...new LocalCheckpoints(join(dir, 'c1.json')).read()]).toEqual([['shop', { offset: 5, origin: 'p/shop/h', seq: 1 }]]);
      writeFileSync(local.path, '{"shop":{"off');
      expect(new LocalCheckpoints(join(dir, 'c1.json')).read().size).toBe(0);
      expect(readFileSync(local.path, 'utf8')).toBe('{"shop":{"off');
    } finally {
      removeDir(dir);
    }
  });
});
