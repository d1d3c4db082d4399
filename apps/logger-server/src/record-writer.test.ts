import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { LEVELS, encodeFrame, encodeRecord, escapeUnsafeJson, type FrameHeader, type WireRecord } from '@log/protocol';
import { removeDir, tempDir } from '@log/test-kit';
import { DedupCache } from './dedup';
import { createMetrics } from './metrics';
import { RecordWriter, normalize, subtractRanges } from './record-writer';
import { decodeFramePayload } from './records';
import { FileSink } from './sink';

const header = (over: Partial<FrameHeader>): FrameHeader => ({ producer: 'p1', seq: 1, count: 1, app: 'shop', host: 'h', pid: 1, dropped: 0, ...over });
const frame = (over: Partial<FrameHeader>, messages: string[]) =>
  decodeFramePayload(
    Buffer.from(
      encodeFrame(
        header({ count: messages.length, ...over }),
        messages.map((m) => (m === 'BAD' ? '{broken' : encodeRecord({ time: 1, level: 'info', message: m }))),
      ),
    ),
    'id',
  );

describe('RecordWriter', () => {
  let dir: string;
  let sink: FileSink;
  let writer: RecordWriter;
  let dedup: DedupCache;
  const lines = () =>
    readFileSync(join(dir, 'shop', 'shop.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).message as string);
  beforeEach(() => {
    dir = tempDir('writer');
    sink = new FileSink(dir);
    dedup = new DedupCache();
    writer = new RecordWriter(sink, dedup, createMetrics());
  });
  afterEach(() => {
    sink.close();
    removeDir(dir);
  });

  it('tells the ledger per producer what it wrote, dropped as already written and dead-lettered, ranges merged', async () => {
    expect(writer.write(frame({ seq: 1, dropped: 2 }, ['a', 'b', 'BAD', 'd']), 'e1')).toBe(3);
    expect(writer.write(frame({ seq: 3 }, ['c-again', 'd-again', 'e']), 'e2')).toBe(2); // 4 is a duplicate; 3 was dead, now written
    expect(writer.write(frame({ producer: 'p2', seq: 7 }, ['x']), 'e3')).toBe(1);
    expect(await writer.commit()).toEqual(['shop']);
    expect(lines()).toEqual(['a', 'b', 'd', 'c-again', 'e', 'x']);
    expect(writer.producerCommits()).toEqual([
      { origin: 'p1/shop/h', producer: 'p1', app: 'shop', host: 'h', takenOut: 0, reportedDrops: 2, written: [1, 5], seen: [4, 4], dead: [3, 3], reasserted: [] },
      { origin: 'p2/shop/h', producer: 'p2', app: 'shop', host: 'h', takenOut: 0, reportedDrops: 0, written: [7, 7], seen: [], dead: [], reasserted: [] },
    ]);
    expect(writer.entryIds).toEqual(['e1', 'e2', 'e3']);
  });

  it('takes records the group already committed back out of the file, counted as taken out', async () => {
    writer.write(frame({ seq: 1 }, ['a', 'b', 'c', 'd']), 'e1');
    await writer.commit();
    expect(await writer.takeBackCommitted([{ origin: 'p1/shop/h', start: 2, end: 3 }])).toBe(2);
    expect(lines()).toEqual(['a', 'd']);
    expect(writer.producerCommits()[0]).toMatchObject({ written: [1, 1, 4, 4], takenOut: 2 });
  });

  it('takes the records of entries another server claimed back out, and forgets them so a later delivery writes them', async () => {
    writer.write(frame({ seq: 1 }, ['a', 'b']), 'e1');
    writer.write(frame({ seq: 3 }, ['c', 'd']), 'e2');
    await writer.commit();
    expect(await writer.takeBackEntries(new Set(['e2']))).toBe(2);
    expect(lines()).toEqual(['a', 'b']);
    expect(writer.producerCommits()).toEqual([expect.objectContaining({ written: [1, 2] })]);
    expect(dedup.accept('p1/shop/h', 3)).toBe(true);
    expect(dedup.accept('p1/shop/h', 2)).toBe(false);
  });

  it("keeps the batch queued while one is committed apart: the ledger, take-backs and reset are the committed batch's, and what is on disk leaves the queued numbers out", async () => {
    writer.write(frame({ seq: 1 }, ['a', 'b', 'c']), 'e1');
    const committing = writer.commit();
    writer.write(frame({ seq: 4 }, ['d', 'e']), 'e2'); // the next batch, queued while the first is written
    expect(await committing).toEqual(['shop']);
    expect(lines()).toEqual(['a', 'b', 'c']);
    expect(writer.entryIds).toEqual(['e1']);
    expect(writer.producerCommits()).toEqual([expect.objectContaining({ written: [1, 3] })]);
    // a STALE commit re-asserts what is on disk: 4 and 5 are only in memory
    expect(writer.onDisk('p1/shop/h')).toEqual([1, 3]);
    expect(dedup.rangesOf('p1/shop/h')).toEqual([1, 5]);
    expect(await writer.takeBackEntries(new Set(['e2']))).toBe(0); // not in the committed batch
    expect(await writer.takeBackCommitted([{ origin: 'p1/shop/h', start: 2, end: 4 }])).toBe(2);
    expect(lines()).toEqual(['a']);
    expect(writer.producerCommits()).toEqual([expect.objectContaining({ written: [1, 1], takenOut: 2 })]);
    await expect(writer.commit()).rejects.toThrow(/not committed yet/);
    writer.reset();
    await writer.commit();
    expect(lines()).toEqual(['a', 'd', 'e']);
    expect(writer.entryIds).toEqual(['e2']);
    expect(writer.producerCommits()).toEqual([expect.objectContaining({ written: [4, 5], takenOut: 0 })]);
    expect(writer.onDisk('p1/shop/h')).toEqual([1, 5]);
  });

  it('keys dedup by origin: a frame under the same producer id from another app or host is not a duplicate of it', async () => {
    expect(writer.write(frame({ seq: 1 }, ['a', 'b']), 'e1')).toBe(2);
    expect(writer.write(frame({ seq: 1, app: 'evil' }, ['forged']), 'e2')).toBe(1);
    expect(writer.write(frame({ seq: 2, host: 'other' }, ['forged']), 'e3')).toBe(1);
    expect(writer.write(frame({ seq: 2 }, ['b-again']), 'e4')).toBe(0);
    await writer.commit();
    expect(lines()).toEqual(['a', 'b', 'forged']);
    expect(writer.producerCommits().map((c) => [c.origin, c.written, c.seen])).toEqual([
      ['p1/shop/h', [1, 2], [2, 2]],
      ['p1/evil/h', [1, 1], []],
      ['p1/shop/other', [2, 2], []],
    ]);
  });
});

describe('RecordWriter.writeFrame (frames written as bytes)', () => {
  const now = Date.now();
  const jsonValue = fc.jsonValue({ maxDepth: 3 });
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    // the characters a line must never hold raw, and escapes of them
    fc.constantFrom('a\u2028b', 'c\u2029', '\u0085nel', 'del\u007f', 'csi\u009b', 'tab\t', 'é€😀', ''),
  );
  const record = fc.record(
    {
      time: fc.oneof(fc.integer({ min: now - 1000, max: now }), fc.constantFrom(0, 1e15, 1.5, -3)),
      level: fc.constantFrom(...LEVELS),
      message: text,
      fields: fc.dictionary(fc.oneof(fc.constantFrom('a', 'seq', 'message', '__proto__', 'k"q', 'é'), fc.string({ maxLength: 6 })), fc.oneof(jsonValue, text), { maxKeys: 4 }),
      levelName: fc.constantFrom('verbose', 'http'),
    },
    { requiredKeys: ['time', 'level', 'message'] },
  );
  /** A record line, or one of the shapes the fast path must step aside for or refuse. */
  const line = fc.oneof(
    { weight: 6, arbitrary: record.map((r) => encodeRecord(r as WireRecord)) },
    fc.constantFrom('{broken', '', '{"t":1,"l":"info","m":"x","e":{"message":"boom"}}', '{"t":1764000000000,"l":"info","m":"x","f":{"a":1} }', '{"t":01,"l":"info","m":"x"}'),
  );
  const frameArb = fc.record({
    producer: fc.constantFrom('p1', 'p2'),
    pid: fc.constantFrom(1, 2),
    seq: fc.integer({ min: 1, max: 6 }),
    app: fc.constantFrom('shop', 'cart'),
    dropped: fc.integer({ min: 0, max: 2 }),
    lines: fc.array(line, { maxLength: 5 }),
    // a byte of a record line replaced by one that makes it invalid UTF-8
    badByte: fc.option(fc.nat(), { nil: undefined }),
  });

  const toPayload = (f: { producer: string; pid: number; seq: number; app: string; dropped: number; lines: string[]; badByte: number | undefined }) => {
    const bytes = Buffer.from(encodeFrame(header({ producer: f.producer, pid: f.pid, seq: f.seq, app: f.app, count: f.lines.length, dropped: f.dropped }), f.lines));
    const first = bytes.indexOf(0x0a);
    if (f.badByte !== undefined && first !== -1 && first + 1 < bytes.length) bytes[first + 1 + (f.badByte % (bytes.length - first - 1))] = 0xff;
    return bytes;
  };

  it('never writes an escaped line separator raw: a message sent as \\u2028 keeps an escape on the byte path and on the full path', async () => {
    const dir = tempDir('escaped');
    try {
      const sink = new FileSink(dir);
      const writer = new RecordWriter(sink, new DedupCache(), createMetrics());
      // not what our publisher sends (JSON.stringify leaves U+2028 raw), but valid JSON from anyone
      const lines = [`{"t":${now},"l":"info","m":"a\\u2028b\\u0085","f":{"k":1}}`, `{"t":1,"l":"info","m":"c\\u2029d","f":{"k":2}}`];
      expect(writer.writeFrame(Buffer.from(encodeFrame(header({ count: 2 }), lines)), 'e1')).toEqual([]);
      await writer.commit();
      const written = readFileSync(join(dir, 'shop', 'shop.log'), 'utf8');
      expect(written).not.toMatch(/[\u007f-\u009f\u2028\u2029]/);
      expect(
        written
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).message),
      ).toEqual(['a\u2028b\u0085', 'c\u2029d']);
      sink.close();
    } finally {
      removeDir(dir);
    }
  });

  it('writes the same lines, drops the same duplicates and rejects the same records as the string path, and no line holds a character to escape', async () => {
    // one receive time for both paths: a time outside the window is replaced by it
    jest.spyOn(Date, 'now').mockReturnValue(now);
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 6 }), async (frames) => {
        const dirs = [tempDir('bytes'), tempDir('strings')];
        try {
          const [bytes, strings] = dirs.map((d) => {
            const sink = new FileSink(d);
            return { sink, writer: new RecordWriter(sink, new DedupCache(), createMetrics()) };
          });
          const rejectedBytes: unknown[] = [];
          const rejectedStrings: unknown[] = [];
          frames.forEach((f, i) => {
            const payload = toPayload(f);
            for (const r of bytes!.writer.writeFrame(payload, `e${i}`)) rejectedBytes.push([r.reason, r.seq, r.payload?.toString('hex')]);
            const decoded = decodeFramePayload(payload, `e${i}`);
            strings!.writer.write(decoded, `e${i}`);
            for (const r of decoded.rejected) rejectedStrings.push([r.reason, r.seq, r.payload?.toString('hex')]);
          });
          expect((await bytes!.writer.commit()).sort()).toEqual((await strings!.writer.commit()).sort());
          expect(rejectedBytes).toEqual(rejectedStrings);
          expect(bytes!.writer.producerCommits()).toEqual(strings!.writer.producerCommits());
          for (const app of ['shop', 'cart']) {
            const read = (d: string) => {
              const file = join(d, app, `${app}.log`);
              return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(0, -1) : [];
            };
            const [ours, theirs] = dirs.map(read);
            expect(ours!.map((l) => JSON.parse(l))).toEqual(theirs!.map((l) => JSON.parse(l)));
            for (const l of ours!) expect(escapeUnsafeJson(l)).toBe(l);
          }
          bytes!.sink.close();
          strings!.sink.close();
        } finally {
          dirs.forEach(removeDir);
        }
      }),
      { numRuns: 400 },
    );
    jest.restoreAllMocks();
  }, 60_000);
});

describe('normalize', () => {
  it('sorts and merges [start, end] pairs that overlap or touch', async () => {
    expect(normalize([5, 6, 1, 2, 3, 3, 10, 12, 11, 20])).toEqual([1, 3, 5, 6, 10, 20]);
  });
});

describe('subtractRanges', () => {
  it('leaves out of [start, end] pairs the numbers of other pairs, as a set difference would', () => {
    const pairs = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 })), { maxLength: 8 })
      .map((list) => normalize(list.flatMap(([start, length]) => [start, start + length])));
    fc.assert(
      fc.property(pairs, pairs, (from, less) => {
        const expand = (ranges: number[]) => {
          const set = new Set<number>();
          for (let i = 0; i < ranges.length; i += 2) for (let n = ranges[i]!; n <= ranges[i + 1]!; n++) set.add(n);
          return set;
        };
        const gone = expand(less);
        const expected = [...expand(from)].filter((n) => !gone.has(n)).sort((a, b) => a - b);
        const result = subtractRanges(from, less);
        expect([...expand(result)].sort((a, b) => a - b)).toEqual(expected);
        expect(normalize(result)).toEqual(result); // sorted, disjoint, merged
      }),
      { numRuns: 500 },
    );
  });
});
