import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { LIMITS, SigningKeys, decodeFrame, decodeRecord, encodeRecord, parseSigningKey, type SigningKey, type WireRecord } from '@log/protocol';
import { FrameQueue, type Frame } from './frame-queue';

const origin = { producer: 'abcdef0123456789', app: 'shop', host: 'h1', pid: 9 };
const secret = randomBytes(32).toString('base64');
const signingKey = parseSigningKey(`a-rather-long-key-id.2026-12:${secret}`) as SigningKey;
const keys = SigningKeys.parse(`shop=a-rather-long-key-id.2026-12:${secret}`).keys!;

const wireRecord: fc.Arbitrary<WireRecord> = fc.record(
  {
    time: fc.integer({ min: LIMITS.minTime, max: Date.now() }),
    level: fc.constantFrom('debug' as const, 'info' as const, 'warn' as const, 'error' as const),
    message: fc.string({ unit: 'binary', maxLength: 200 }),
    fields: fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      fc
        .jsonValue({ maxDepth: 2 })
        // the protocol refuses __proto__ keys by design (the publisher renames them)
        .filter((v) => !JSON.stringify(v).includes('"__proto__"')),
      { maxKeys: 4 },
    ),
  },
  { requiredKeys: ['time', 'level', 'message'] },
);

// One step of a publisher's life: log a record, end the event-loop turn (seal), or Redis accepts the oldest frame.
const step = fc.oneof(
  { weight: 8, arbitrary: wireRecord.map((record) => ({ kind: 'log' as const, record })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'seal' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'accept' as const }) },
);

describe('FrameQueue, property tests', () => {
  it.each([
    ['unsigned', undefined],
    ['signed (every frame verified against the key ring)', signingKey],
  ])(
    'any records and cut points decode back to the same records, numbered without gaps, drops all reported: %s',
    (_name, key) => {
      fc.assert(
        fc.property(
          fc.array(step, { maxLength: 150 }),
          fc.integer({ min: 1, max: 20 }),
          fc.integer({ min: 200, max: 5000 }),
          fc.integer({ min: 5000, max: 40_000 }),
          (steps, maxFrameRecords, maxFrameBytes, maxBufferBytes) => {
            const queue = new FrameQueue({ maxFrameRecords, maxFrameBytes, maxBufferBytes }, origin, key);
            const accepted: string[] = [];
            const delivered: ReturnType<typeof decodeRecord>[] = [];
            let dropped = 0;
            let reported = 0;
            const deliverOldest = () => {
              const frame = queue.frames[0];
              if (!frame) return;
              const decoded = decodeFrame(Buffer.from(queue.encode(frame)), key === undefined ? {} : { keys });
              reported += decoded.header.dropped;
              for (let i = 0; i < decoded.lines.length; i++) delivered.push(decodeRecord(decoded, i));
              queue.remove(frame);
            };
            for (const s of steps) {
              if (s.kind === 'log') {
                const line = encodeRecord(s.record);
                if (queue.append(line)) accepted.push(line);
                else dropped++;
                expect(queue.bufferedBytes).toBeLessThanOrEqual(maxBufferBytes);
              } else if (s.kind === 'seal') queue.seal();
              else deliverOldest();
            }
            queue.seal();
            while (queue.frames.length > 0) deliverOldest();
            expect(delivered.map((r) => r.seq)).toEqual(accepted.map((_, i) => i + 1));
            delivered.forEach((record, i) => {
              expect(encodeRecord(record)).toBe(accepted[i]);
              expect(record).toMatchObject({ producer: origin.producer, app: 'shop', host: 'h1', pid: 9 });
            });
            expect(reported).toBe(dropped);
            expect(queue.bufferedRecords).toBe(0);
            expect(queue.firstPendingSeq()).toBe(Number.POSITIVE_INFINITY);
          },
        ),
        { numRuns: 400 },
      );
    },
    30_000,
  );

  it('keeps a frame within maxFrameRecords and maxFrameBytes (a single larger record travels alone)', () => {
    const queue = new FrameQueue({ maxFrameRecords: 3, maxFrameBytes: 100, maxBufferBytes: 10_000 }, origin);
    for (let i = 0; i < 10; i++) queue.append('x'.repeat(30));
    queue.append('y'.repeat(150));
    queue.seal();
    for (const frame of queue.frames) {
      expect(frame.count).toBeLessThanOrEqual(3);
      if (frame.count > 1) expect(frame.bytes).toBeLessThanOrEqual(100);
    }
    const last = queue.frames.at(-1)!;
    expect(last.count).toBe(1);
    expect(decodeFrame(queue.encode(last)).lines).toEqual(['y'.repeat(150)]);
  });

  it('reuses the buffers of accepted frames for later ones, each sent frame exactly its own header and lines', () => {
    const queue = new FrameQueue({ maxFrameRecords: 100_000, maxFrameBytes: 1024 * 1024, maxBufferBytes: 16 * 1024 * 1024 }, origin);
    let seq = 1;
    // frames of 700 to 100 records of ~200 bytes (140 KiB down to 20 KiB): later ones fit in earlier, longer buffers
    for (const records of [700, 650, 600, 400, 380, 360, 100]) {
      const lines: string[] = [];
      for (let i = 0; i < records; i++) lines.push(encodeRecord({ time: 1_700_000_000_000, level: 'info', message: `${seq + i} `.padEnd(150, 'm') }));
      for (const line of lines) queue.append(line);
      queue.seal();
      const frame = queue.frames[0]!;
      const decoded = decodeFrame(queue.encode(frame));
      expect(decoded.header).toMatchObject({ seq, count: records });
      expect(decoded.lines).toEqual(lines);
      queue.remove(frame);
      seq += records;
    }
    expect(queue.bufferedBytes).toBe(0);
  });

  it('frames of any size, several in flight, keep their own bytes while the buffers of accepted ones are written again', () => {
    // Frames of 64 KiB and more keep the buffer they were filled in and accepted ones come back
    // as spares: a frame still waiting must never see a later frame's lines. Non-ASCII lines
    // (3 bytes a unit) outgrow the buffer and take the copying path.
    const line = fc.record({ length: fc.integer({ min: 50, max: 6000 }), wide: fc.boolean() });
    const action = fc.oneof(
      { weight: 20, arbitrary: line.map((l) => ({ kind: 'log' as const, ...l })) },
      { weight: 1, arbitrary: fc.constant({ kind: 'seal' as const }) },
      { weight: 2, arbitrary: fc.constant({ kind: 'accept' as const }) },
    );
    fc.assert(
      fc.property(fc.array(action, { minLength: 100, maxLength: 400 }), (actions) => {
        const queue = new FrameQueue({ maxFrameRecords: 10_000, maxFrameBytes: 128 * 1024, maxBufferBytes: 4 * 1024 * 1024 }, origin);
        const accepted: string[] = [];
        const delivered: string[] = [];
        const deliverOldest = () => {
          const frame = queue.frames[0];
          if (!frame) return;
          const decoded = decodeFrame(Buffer.from(queue.encode(frame)));
          for (let i = 0; i < decoded.lines.length; i++) delivered.push(encodeRecord(decodeRecord(decoded, i)));
          queue.remove(frame);
        };
        let n = 0;
        for (const a of actions) {
          if (a.kind === 'log') {
            const text = `${n++} `.padEnd(a.length, a.wide ? '\u4e16' : 'm');
            const record = encodeRecord({ time: 1_700_000_000_000, level: 'info', message: text });
            if (queue.append(record)) accepted.push(record);
          } else if (a.kind === 'seal') queue.seal();
          else deliverOldest();
        }
        queue.seal();
        while (queue.frames.length > 0) deliverOldest();
        expect(delivered).toEqual(accepted);
      }),
      { numRuns: 60 },
    );
  }, 60_000);

  it('keeps the buffers of accepted frames for the next burst, within maxBufferBytes, and lets go of those a period left unused', () => {
    const limits = { maxFrameRecords: 10_000, maxFrameBytes: 128 * 1024, maxBufferBytes: 2 * 1024 * 1024 };
    const line = 'x'.repeat(1000);
    /** Logs until `frames` more frames are sealed by size (each keeps the buffer it was filled in); returns them. */
    const burst = (queue: FrameQueue, frames: number): Frame[] => {
      const before = queue.frames.length;
      while (queue.frames.length < before + frames) expect(queue.append(line)).toBe(true);
      return queue.frames.slice(before);
    };
    const accept = (queue: FrameQueue, frames: Frame[]) => {
      for (const frame of frames) {
        queue.encode(frame);
        queue.remove(frame);
      }
    };
    const queue = new FrameQueue(limits, origin);
    const first = burst(queue, 8);
    const firstBuffers = new Set(first.map((f) => f.buffer));
    expect(firstBuffers.size).toBe(8);
    accept(queue, first);
    expect(queue.spareBuffers).toBe(8);
    // the next burst is written into them: no fresh memory (but for its first frame, in the buffer being filled already)
    const second = burst(queue, 6);
    expect(second.slice(1).every((f) => firstBuffers.has(f.buffer))).toBe(true);
    accept(queue, second);
    expect(queue.spareBuffers).toBe(8);
    // a period in which only 3 were taken (5 never): the next trim lets go of those 5
    expect(queue.trimSpares()).toBe(true); // the period of the bursts above: all were in use
    accept(queue, burst(queue, 3));
    expect(queue.trimSpares()).toBe(true);
    expect(queue.spareBuffers).toBe(3);
    // a quiet period: every spare goes, and the next frames are written into new memory
    expect(queue.trimSpares()).toBe(false);
    expect(queue.spareBuffers).toBe(0);
    expect(queue.spareBufferBytes).toBe(0);
    expect(
      burst(queue, 3)
        .slice(1)
        .some((f) => firstBuffers.has(f.buffer)),
    ).toBe(false);

    // within maxBufferBytes: 4 frames of 131,000 units fit in 530,000, their buffers (~141 KiB each) 3 times only
    const bounded = new FrameQueue({ ...limits, maxBufferBytes: 530_000 }, origin);
    const four = burst(bounded, 4);
    accept(bounded, four);
    expect(bounded.spareBuffers).toBe(3);
    expect(bounded.spareBufferBytes).toBe(3 * four[0]!.buffer.length);
    expect(bounded.spareBufferBytes).toBeLessThanOrEqual(530_000);
  });

  it('reports more drops than one header may carry over several frames, each one decodable', () => {
    const queue = new FrameQueue({ maxFrameRecords: 10, maxFrameBytes: 1000, maxBufferBytes: 10_000 }, origin);
    // a long outage of a busy app: more than 2^32 records dropped before any frame could be sent
    queue.countDrop(LIMITS.maxDropped + 5);
    queue.seal();
    let reported = 0;
    while (queue.frames.length > 0 || queue.dropsUnreported) {
      queue.seal();
      const frame = queue.frames[0]!;
      reported += decodeFrame(queue.encode(frame)).header.dropped;
      queue.remove(frame);
    }
    expect(reported).toBe(LIMITS.maxDropped + 5);
  });
});
