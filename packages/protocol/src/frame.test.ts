import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import {
  decodeFrameLayout,
  encodeFrameHeader,
  DEFAULT_LIMITS,
  FRAME_MAGIC,
  LEVELS,
  LEVEL_VALUES,
  LIMITS,
  isLevel,
  levelOfValue,
  ProtocolError,
  decodeFrame,
  decodeRecord,
  encodeFrame,
  encodeRecord,
  isFrame,
  type FrameHeader,
  type WireRecord,
} from './index';

const header = (count: number, over: Partial<FrameHeader> = {}): FrameHeader => ({
  producer: 'p0a1b2c3d4e5f6a7',
  seq: 41,
  count,
  app: 'shop',
  host: 'app1',
  pid: 1234,
  dropped: 0,
  ...over,
});

function decodeAll(data: string | Uint8Array) {
  const frame = decodeFrame(data);
  return frame.lines.map((_, i) => decodeRecord(frame, i));
}

describe('frames', () => {
  it('round-trips records and addresses each one by producer and sequence number', () => {
    const records: WireRecord[] = [
      { time: Date.now() - 1, level: 'info', message: 'hello' },
      { time: Date.now(), level: 'error', message: 'bad\nline', fields: { user: 7 }, error: { name: 'Error', message: 'x' } },
    ];
    const text = encodeFrame(header(2), records.map(encodeRecord));
    const decoded = decodeAll(text);
    expect(decoded.map((r) => r.seq)).toEqual([41, 42]);
    expect(decoded[1]).toEqual({ ...records[1], app: 'shop', host: 'app1', pid: 1234, producer: 'p0a1b2c3d4e5f6a7', seq: 42 });
    // the same frame as bytes decodes the same
    expect(decodeAll(Buffer.from(text))).toEqual(decoded);
  });

  it('splits a frame of several 64 KiB decode chunks into the same lines as its text, with multi-byte characters and lines across chunk edges', () => {
    // lines of varied lengths (some longer than a chunk, some empty) so that chunk edges fall everywhere
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 3000 }), fc.string({ maxLength: 70_000 }), fc.constant('')), { minLength: 1, maxLength: 60 }), (messages) => {
        const lines = messages.map((message, i) => encodeRecord({ time: 1_700_000_000_000 + i, level: 'info', message }));
        const text = encodeFrame(header(lines.length), lines);
        expect(decodeFrame(Buffer.from(text)).lines).toEqual(decodeFrame(text).lines);
        expect(decodeFrame(Buffer.from(text)).lines).toEqual(lines);
      }),
      { numRuns: 40 },
    );
    // a frame ending in a newline after the last chunk edge announces one line more than it holds
    const ascii = Array.from({ length: 3000 }, (_, i) => encodeRecord({ time: 1_700_000_000_000, level: 'info', message: 'x'.repeat(i % 90) }));
    const exact = encodeFrame(header(ascii.length), ascii) + '\n';
    expect(() => decodeFrame(Buffer.from(exact))).toThrow(/frame holds 3001/);
  });

  it('carries an empty frame that only reports drops', () => {
    const frame = decodeFrame(encodeFrame(header(0, { dropped: 17 }), []));
    expect(frame.header.dropped).toBe(17);
    expect(frame.lines).toEqual([]);
  });

  it('tells frames from legacy payloads', () => {
    expect(isFrame(encodeFrame(header(0), []))).toBe(true);
    expect(isFrame(Buffer.from(FRAME_MAGIC + '{}'))).toBe(true);
    expect(isFrame('hello world')).toBe(false);
    expect(isFrame(Buffer.from('{"message":"x"}'))).toBe(false);
  });

  it.each([
    ['no magic', 'hello', 'FRAME_FORMAT'],
    ['future version', '@log2 {}', 'FRAME_VERSION'],
    ['header not JSON', FRAME_MAGIC + '{', 'FRAME_FORMAT'],
    ['header array', FRAME_MAGIC + '[]', 'FRAME_FORMAT'],
    ['unknown header key', encodeFrame(header(0), []).replace('{"p"', '{"zz":1,"p"'), 'FRAME_FORMAT'],
    ['count mismatch', encodeFrame(header(1), ['{}']).replace('"n":1', '"n":2'), 'FRAME_FORMAT'],
    ['negative seq', encodeFrame(header(0), []).replace('"s":41', '"s":-1'), 'FRAME_FORMAT'],
    ['path in app', encodeFrame(header(0), []).replace('"a":"shop"', '"a":"../../etc"'), 'INVALID_NAME'],
    ['dot app', encodeFrame(header(0), []).replace('"a":"shop"', '"a":".."'), 'INVALID_NAME'],
    ['slash host', encodeFrame(header(0), []).replace('"h":"app1"', '"h":"a/b"'), 'INVALID_NAME'],
    ['NUL app', encodeFrame(header(0), []).replace('"a":"shop"', '"a":"sh\\u0000op"'), 'INVALID_NAME'],
  ])('refuses a frame with %s', (_name, text, code) => {
    expect(() => decodeFrame(text, { entryId: '1-1' })).toThrow(expect.objectContaining({ code, entryId: '1-1' }));
  });

  it('refuses invalid UTF-8 instead of replacing it', () => {
    const bytes = Buffer.concat([Buffer.from(encodeFrame(header(1), ['{"t":1,"l":"info","m":"'])), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    expect(() => decodeAll(bytes)).toThrow(expect.objectContaining({ code: 'INVALID_UTF8' }));
  });

  it('refuses frames over the size limit', () => {
    const text = encodeFrame(header(1), [encodeRecord({ time: 1, level: 'info', message: 'x'.repeat(2000) })]);
    expect(() => decodeFrame(text, { limits: { maxFrameBytes: 1000 } })).toThrow(expect.objectContaining({ code: 'FRAME_TOO_LARGE' }));
  });

  it.each([
    ['broken JSON', '{"t":1,', 'RECORD_INVALID'],
    ['unknown key', '{"t":1,"l":"info","m":"x","zz":1}', 'RECORD_INVALID'],
    ['bad level', '{"t":1,"l":"loud","m":"x"}', 'RECORD_INVALID'],
    ['level as a number', '{"t":1,"l":30,"m":"x"}', 'RECORD_INVALID'],
    ['a level name that is no name', '{"t":1,"l":"info","n":"../x","m":"x"}', 'RECORD_INVALID'],
    ['a level name that is no string', '{"t":1,"l":"info","n":4,"m":"x"}', 'RECORD_INVALID'],
    ['string time', '{"t":"now","l":"info","m":"x"}', 'RECORD_INVALID'],
    ['array fields', '{"t":1,"l":"info","m":"x","f":[]}', 'RECORD_INVALID'],
    ['__proto__ key', '{"t":1,"l":"info","m":"x","f":{"a":{"__proto__":{"polluted":1}}}}', 'RECORD_INVALID'],
    ['too deep', '{"t":1,"l":"info","m":"x","f":' + '{"a":'.repeat(30) + '1' + '}'.repeat(30) + '}', 'RECORD_INVALID'],
    ['too many keys', '{"t":1,"l":"info","m":"x","f":{"a":[' + Array(1500).fill(0).join(',') + ']}}', 'RECORD_INVALID'],
    ['oversized', '{"t":1,"l":"info","m":"' + 'x'.repeat(DEFAULT_LIMITS.maxRecordBytes) + '"}', 'RECORD_TOO_LARGE'],
  ])('refuses one record with %s and keeps its neighbours', (_name, bad, code) => {
    const good = encodeRecord({ time: 5, level: 'info', message: 'good' });
    const frame = decodeFrame(encodeFrame(header(3), [good, bad, good]), { entryId: '9-0' });
    expect(decodeRecord(frame, 0).seq).toBe(41);
    expect(() => decodeRecord(frame, 1, { entryId: '9-0' })).toThrow(expect.objectContaining({ code, recordIndex: 1, entryId: '9-0' }));
    expect(decodeRecord(frame, 2).seq).toBe(43);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('levels', () => {
  it("takes pino's six levels and keeps a producer's own level name", () => {
    const lines = LEVELS.map((level, i) => encodeRecord({ time: 5 + i, level, message: level }));
    lines.push(encodeRecord({ time: 11, level: 'debug', levelName: 'verbose', message: 'v' }));
    const decoded = decodeAll(encodeFrame(header(lines.length), lines));
    expect(decoded.map((r) => r.level)).toEqual(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'debug']);
    expect(decoded[6]).toMatchObject({ level: 'debug', levelName: 'verbose', message: 'v' });
    expect(decoded[0]).not.toHaveProperty('levelName');
  });

  it('maps any numeric level onto the highest of ours at or below it', () => {
    expect([0, 10, 15, 20, 30, 35, 40, 50, 60, 100, Number.NaN].map(levelOfValue)).toEqual(['trace', 'trace', 'trace', 'debug', 'info', 'info', 'warn', 'error', 'fatal', 'fatal', 'info']);
    expect(LEVELS.map((l) => LEVEL_VALUES[l])).toEqual([10, 20, 30, 40, 50, 60]);
    expect([...LEVELS, 'verbose', 'constructor', 'toString', 30].map(isLevel)).toEqual([true, true, true, true, true, true, false, false, false, false]);
  });
});

describe('frames, property tests', () => {
  const jsonValue = fc
    .jsonValue({ maxDepth: 4 })
    // the protocol refuses __proto__ keys by design (the publisher renames them)
    .filter((v) => !JSON.stringify(v).includes('"__proto__"'));
  const wireRecord: fc.Arbitrary<WireRecord> = fc.record(
    {
      time: fc.integer({ min: LIMITS.minTime, max: Date.now() }),
      level: fc.constantFrom(...LEVELS),
      levelName: fc.constantFrom('verbose', 'http', 'silly', 'audit-1'),
      message: fc.string({ unit: 'binary' }),
      fields: fc.dictionary(
        fc.string().filter((k) => k !== '__proto__'),
        jsonValue,
        { maxKeys: 5 },
      ),
    },
    { requiredKeys: ['time', 'level', 'message'] },
  ) as fc.Arbitrary<WireRecord>;

  it('decodes any encoded sequence of records back to the same records', () => {
    fc.assert(
      fc.property(fc.array(wireRecord, { maxLength: 20 }), fc.integer({ min: 1, max: 2 ** 40 }), (records, seq) => {
        const text = encodeFrame(header(records.length, { seq }), records.map(encodeRecord));
        const decoded = decodeAll(Buffer.from(text));
        expect(decoded).toHaveLength(records.length);
        decoded.forEach((r, i) => {
          // JSON drops -0 and undefined; compare through JSON as the disk will.
          expect(JSON.parse(JSON.stringify({ ...r }))).toEqual(JSON.parse(JSON.stringify({ ...records[i], app: 'shop', host: 'app1', pid: 1234, producer: 'p0a1b2c3d4e5f6a7', seq: seq + i })));
        });
      }),
      { numRuns: 300 },
    );
  }, 30_000);

  const onlyProtocolErrors = (data: string | Uint8Array) => {
    try {
      decodeAll(data);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
    }
  };

  it('throws nothing but ProtocolError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => onlyProtocolErrors(bytes)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => onlyProtocolErrors(FRAME_MAGIC + text)),
      { numRuns: 2000 },
    );
  }, 30_000);

  it('throws nothing but ProtocolError on mutated valid frames', () => {
    fc.assert(
      fc.property(fc.array(wireRecord, { minLength: 1, maxLength: 5 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (records, mutations) => {
        const bytes = Buffer.from(encodeFrame(header(records.length), records.map(encodeRecord)));
        for (const [at, value] of mutations) bytes[at % bytes.length] = value;
        onlyProtocolErrors(bytes);
      }),
      { numRuns: 1000 },
    );
  }, 30_000);

  /** decodeFrame's outcome and decodeFrameLayout's, in one shape: the error code, or the lines as bytes. */
  const outcomes = (bytes: Buffer) => {
    const run = (f: () => Array<string | Uint8Array> | undefined) => {
      try {
        return { lines: f()?.map((line) => Buffer.from(typeof line === 'string' ? Buffer.from(line, 'utf8') : line)) };
      } catch (error) {
        return { code: (error as ProtocolError).code };
      }
    };
    const full = run(() => decodeFrame(bytes).lines);
    const layout = run(() => {
      const found = decodeFrameLayout(bytes);
      return found?.starts.map((start, i) => bytes.subarray(start, found.ends[i]));
    });
    return { full, layout, utf8: isUtf8(bytes) };
  };

  it('lays out the same lines as decodeFrame, or fails with the same error, on valid and mutated frames (undefined only for invalid UTF-8)', () => {
    fc.assert(
      fc.property(
        fc.array(wireRecord, { maxLength: 6 }),
        fc.integer({ min: -1, max: 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        (records, countOff, mutations) => {
          const lines = records.map(encodeRecord);
          const text = encodeFrameHeader(header(Math.max(0, records.length + countOff))) + (lines.length > 0 ? '\n' + lines.join('\n') : '');
          const bytes = Buffer.from(text);
          for (const [at, value] of mutations) bytes[at % bytes.length] = value;
          const { full, layout, utf8 } = outcomes(bytes);
          if (!utf8 && full.code !== 'FRAME_TOO_LARGE') expect(layout).toEqual({ lines: undefined });
          else expect(layout).toEqual(full);
        },
      ),
      { numRuns: 1500 },
    );
  }, 30_000);
});
