import fc from 'fast-check';
import { DEFAULT_LIMITS, LEVELS, decodeRecord, encodeFrame, encodeRecord, reservedKeyMap, type DecodedFrame, type FrameHeader, type LogRecord, type WireRecord } from './index';

const header: FrameHeader = { producer: 'p0a1b2c3d4e5f6a7', seq: 7, count: 1, app: 'shop', host: 'app1', pid: 1, dropped: 0 };
const reserved = reservedKeyMap(['time', 'level', 'app', 'host', 'pid', 'producer', 'seq', 'message', 'err']);

function frameOf(line: string): DecodedFrame {
  return { header, lines: [line] };
}

const receivedAt = Date.UTC(2026, 10, 25);

type Outcome = { ok: true; record: LogRecord } | { ok: false; code: string };

function decode(line: string, spliced: boolean): Outcome {
  try {
    // one receive time for both paths: a time outside the window is replaced by it
    return { ok: true, record: decodeRecord(frameOf(line), 0, spliced ? { spliceFields: reserved, receivedAt } : { receivedAt }) };
  } catch (error) {
    return { ok: false, code: (error as { code: string }).code };
  }
}

/** The fast path must agree with the full decoder: the same error, or the same record (fields compared as JSON). */
function expectSameAsFullPath(line: string): void {
  const full = decode(line, false);
  const fast = decode(line, true);
  if (!full.ok || !fast.ok) {
    expect(fast).toEqual(full);
    return;
  }
  const { fieldsJson, ...rest } = fast.record;
  expect(rest.fields === undefined || fieldsJson === undefined).toBe(true);
  const fastFields = fieldsJson === undefined ? rest.fields : JSON.parse(fieldsJson);
  expect({ ...rest, fields: fastFields }).toEqual({ ...full.record, fields: full.record.fields });
}

describe('decodeRecord with spliceFields (the scanner fast path)', () => {
  it('hands back canonical fields as text, unparsed', () => {
    const line = encodeRecord({ time: 1764000000000, level: 'warn', message: 'hi "there"', fields: { a: [1, -2.5e-3, true, null], b: { c: 'é\u001b' } } });
    const record = decodeRecord(frameOf(line), 0, { spliceFields: reserved });
    expect(record).toMatchObject({ time: 1764000000000, level: 'warn', message: 'hi "there"', seq: 7, app: 'shop' });
    expect(record.fields).toBeUndefined();
    expect(record.fieldsJson).toBe('{"a":[1,-0.0025,true,null],"b":{"c":"é\\u001b"}}');
  });

  it.each([
    ['a reserved top-level key', '{"t":1,"l":"info","m":"x","f":{"time":"mine"}}'],
    ['an error object', '{"t":1,"l":"info","m":"x","e":{"name":"Error","message":"boom"}}'],
    ['a level name', '{"t":1,"l":"debug","n":"verbose","m":"x","f":{"a":1}}'],
    ['whitespace', '{"t":1, "l":"info","m":"x"}'],
    ['an escaped key', '{"t":1,"l":"info","m":"x","f":{"\\u0061":1}}'],
    ['a time past safe integers', '{"t":99999999999999999,"l":"info","m":"x"}'],
  ])('leaves %s to the full decoder, with the same result', (_, line) => {
    expectSameAsFullPath(line);
    expect(decode(line, true)).toMatchObject({ ok: true });
    if (line.includes('"time"')) expect((decode(line, true) as { record: LogRecord }).record.fields).toEqual({ time: 'mine' });
  });

  it.each([
    ['__proto__ deep down', '{"t":1,"l":"info","m":"x","f":{"a":{"__proto__":{"polluted":1}}}}'],
    ['an escaped __proto__', '{"t":1,"l":"info","m":"x","f":{"a":{"__pro\\u0074o__":1}}}'],
    ['a raw control character', '{"t":1,"l":"info","m":"x","f":{"a":"\u001b[31m"}}'],
    ['nesting past the limit', `{"t":1,"l":"info","m":"x","f":${'{"a":'.repeat(DEFAULT_LIMITS.maxDepth + 1)}1${'}'.repeat(DEFAULT_LIMITS.maxDepth + 1)}}`],
    [
      'too many keys',
      `{"t":1,"l":"info","m":"x","f":{"a":[${Array(DEFAULT_LIMITS.maxKeys + 1)
        .fill(0)
        .join(',')}]}}`,
    ],
    ['a bad number', '{"t":1,"l":"info","m":"x","f":{"a":01}}'],
    ['a bad escape', '{"t":1,"l":"info","m":"x\\q"}'],
    ['trailing garbage', '{"t":1,"l":"info","m":"x"}x'],
    ['an unknown level', '{"t":1,"l":"loud","m":"x"}'],
  ])('refuses %s exactly like the full decoder', (_, line) => {
    expect(decode(line, false)).toMatchObject({ ok: false });
    expectSameAsFullPath(line);
  });

  const jsonValue = fc.jsonValue({ maxDepth: 5 });
  const wireRecord: fc.Arbitrary<WireRecord> = fc.record(
    {
      time: fc.integer({ min: 0, max: 4102444800000 }),
      level: fc.constantFrom(...LEVELS),
      message: fc.string({ unit: 'binary' }),
      // arbitrary keys (quotes and backslashes make the fast path step aside), identifier-like ones, and the special ones
      fields: fc.dictionary(fc.oneof(fc.string(), fc.stringMatching(/^[a-zA-Z_][\w.-]{0,15}$/), fc.constantFrom('time', 'seq', '__proto__', 'a')), jsonValue, { maxKeys: 6 }),
    },
    { requiredKeys: ['time', 'level', 'message'] },
  ) as fc.Arbitrary<WireRecord>;

  it('agrees with the full decoder on any encoded record, and takes the fast path for most', () => {
    let fast = 0;
    let withFields = 0;
    fc.assert(
      fc.property(wireRecord, (record) => {
        const line = encodeRecord(record);
        expectSameAsFullPath(line);
        if (record.fields !== undefined) {
          withFields++;
          const outcome = decode(line, true);
          if (outcome.ok && outcome.record.fieldsJson !== undefined) fast++;
        }
      }),
      { numRuns: 3000 },
    );
    // a record takes the full path when any of its keys is escaped, reserved or __proto__
    expect(fast).toBeGreaterThan(withFields / 4);
  }, 60_000);

  it('agrees with the full decoder on mutated records (inserted, deleted and replaced characters)', () => {
    const edit = fc.tuple(fc.constantFrom('insert', 'delete', 'replace'), fc.nat(), fc.constantFrom(...'{}[]":,\\ -+.0123456789eEtrufalsn_\u0000\u001b\u00e9\ud83d'.split('')));
    fc.assert(
      fc.property(wireRecord, fc.array(edit, { minLength: 1, maxLength: 4 }), (record, edits) => {
        let line = encodeRecord(record);
        for (const [kind, at, char] of edits) {
          const i = at % (line.length + 1);
          line = kind === 'insert' ? line.slice(0, i) + char + line.slice(i) : kind === 'delete' ? line.slice(0, i) + line.slice(i + 1) : line.slice(0, i) + char + line.slice(i + 1);
        }
        expectSameAsFullPath(line);
      }),
      { numRuns: 5000 },
    );
  }, 60_000);

  it('a frame decodes the same through both paths', () => {
    const lines = [encodeRecord({ time: 5, level: 'info', message: 'a', fields: { n: 1 } }), '{"t":6,"l":"info","m":"b","f":{"seq":2}}'];
    const frame = { header: { ...header, count: 2 }, lines };
    expect(encodeFrame(frame.header, lines).split('\n')).toHaveLength(3);
    expect(decodeRecord(frame, 0, { spliceFields: reserved })).toMatchObject({ seq: 7, fieldsJson: '{"n":1}' });
    expect(decodeRecord(frame, 1, { spliceFields: reserved })).toMatchObject({ seq: 8, fields: { seq: 2 } });
  });
});
