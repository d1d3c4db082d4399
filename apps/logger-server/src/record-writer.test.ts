import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeFrame, encodeRecord, type FrameHeader } from '@log/protocol';
import { removeDir, tempDir } from '@log/test-kit';
import { DedupCache } from './dedup';
import { createMetrics } from './metrics';
import { RecordWriter, normalize } from './record-writer';
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

  it('tells the ledger per producer what it wrote, dropped as already written and dead-lettered, ranges merged', () => {
    expect(writer.write(frame({ seq: 1, dropped: 2 }, ['a', 'b', 'BAD', 'd']), 'e1')).toBe(3);
    expect(writer.write(frame({ seq: 3 }, ['c-again', 'd-again', 'e']), 'e2')).toBe(2); // 4 is a duplicate; 3 was dead, now written
    expect(writer.write(frame({ producer: 'p2', seq: 7 }, ['x']), 'e3')).toBe(1);
    expect(writer.commit()).toEqual(['shop']);
    expect(lines()).toEqual(['a', 'b', 'd', 'c-again', 'e', 'x']);
    expect(writer.producerCommits()).toEqual([
      { origin: 'p1/shop/h', producer: 'p1', app: 'shop', host: 'h', takenOut: 0, reportedDrops: 2, written: [1, 5], seen: [4, 4], dead: [3, 3], reasserted: [] },
      { origin: 'p2/shop/h', producer: 'p2', app: 'shop', host: 'h', takenOut: 0, reportedDrops: 0, written: [7, 7], seen: [], dead: [], reasserted: [] },
    ]);
    expect(writer.entryIds).toEqual(['e1', 'e2', 'e3']);
  });

  it('takes records the group already committed back out of the file, counted as taken out', () => {
    writer.write(frame({ seq: 1 }, ['a', 'b', 'c', 'd']), 'e1');
    writer.commit();
    expect(writer.takeBackCommitted([{ origin: 'p1/shop/h', start: 2, end: 3 }])).toBe(2);
    expect(lines()).toEqual(['a', 'd']);
    expect(writer.producerCommits()[0]).toMatchObject({ written: [1, 1, 4, 4], takenOut: 2 });
  });

  it('takes the records of entries another server claimed back out, and forgets them so a later delivery writes them', () => {
    writer.write(frame({ seq: 1 }, ['a', 'b']), 'e1');
    writer.write(frame({ seq: 3 }, ['c', 'd']), 'e2');
    writer.commit();
    expect(writer.takeBackEntries(new Set(['e2']))).toBe(2);
    expect(lines()).toEqual(['a', 'b']);
    expect(writer.producerCommits()).toEqual([expect.objectContaining({ written: [1, 2] })]);
    expect(dedup.accept('p1/shop/h', 3)).toBe(true);
    expect(dedup.accept('p1/shop/h', 2)).toBe(false);
  });

  it('keys dedup by origin: a frame under the same producer id from another app or host is not a duplicate of it', () => {
    expect(writer.write(frame({ seq: 1 }, ['a', 'b']), 'e1')).toBe(2);
    expect(writer.write(frame({ seq: 1, app: 'evil' }, ['forged']), 'e2')).toBe(1);
    expect(writer.write(frame({ seq: 2, host: 'other' }, ['forged']), 'e3')).toBe(1);
    expect(writer.write(frame({ seq: 2 }, ['b-again']), 'e4')).toBe(0);
    writer.commit();
    expect(lines()).toEqual(['a', 'b', 'forged']);
    expect(writer.producerCommits().map((c) => [c.origin, c.written, c.seen])).toEqual([
      ['p1/shop/h', [1, 2], [2, 2]],
      ['p1/evil/h', [1, 1], []],
      ['p1/shop/other', [2, 2], []],
    ]);
  });
});

describe('normalize', () => {
  it('sorts and merges [start, end] pairs that overlap or touch', () => {
    expect(normalize([5, 6, 1, 2, 3, 3, 10, 12, 11, 20])).toEqual([1, 3, 5, 6, 10, 20]);
  });
});
