import fc from 'fast-check';
import { decodeFrame, decodeRecord, encodeFrame, encodeRecord, type LogRecord, type WireRecord } from '@log/protocol';
import { COLLISION_PREFIX, OWN_KEYS, formatLine } from './format';
import { decodeFramePayload, decodePubSubMessage } from './records';

// Characters that end a line for some reader or drive a terminal: C0 controls, DEL, C1 controls
// (U+0085 NEL, U+009B CSI) and the Unicode line and paragraph separators.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const HOSTILE = ['\u0000', '\n', '\r', '\t', '\u001b', '\u007f', '\u0080', '\u0085', '\u009b', '\u009f', '\u2028', '\u2029', '\ud83d', '\u00a0', 'é', '"', '\\', '/', 'a', ' '];

const hostileText = fc.string({ unit: fc.oneof(fc.constantFrom(...HOSTILE), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 30 });
// plain text too, or hardly any record would be clean enough for the server's fast path
const text = fc.oneof(hostileText, fc.string({ maxLength: 20 }));
// identifier-like keys keep most records on the server's fast path (fields spliced unparsed)
const key = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/), text).filter((k) => k !== '__proto__');
const value = fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 3 }), fc.dictionary(key, text, { maxKeys: 3 }));
const wireRecord: fc.Arbitrary<WireRecord> = fc.record(
  {
    time: fc.constant(Date.UTC(2026, 10, 25)),
    level: fc.constantFrom('debug' as const, 'info' as const, 'warn' as const, 'error' as const),
    message: text,
    fields: fc.dictionary(key, value, { maxKeys: 5 }),
    error: fc.record({ name: text, message: text }),
  },
  { requiredKeys: ['time', 'level', 'message'] },
);

const header = { producer: 'p0a1b2c3d4e5f6a7', seq: 1, count: 1, app: 'shop', host: 'h1', pid: 7, dropped: 0 };

/** The line is one line, has none of the unsafe characters raw, and parses back to what was logged. */
function expectSafeAndFaithful(line: string, record: WireRecord): void {
  expect(line.indexOf('\n')).toBe(line.length - 1);
  expect(line.slice(0, -1)).not.toMatch(UNSAFE);
  const parsed = JSON.parse(line) as Record<string, unknown>;
  expect(parsed.message).toBe(record.message);
  for (const [k, v] of Object.entries(record.fields ?? {})) expect(parsed[OWN_KEYS.has(k) ? COLLISION_PREFIX + k : k]).toEqual(v);
  if (record.error !== undefined) expect(parsed.err).toEqual(record.error);
}

describe('lines on disk never hold a character that breaks a line or drives a terminal', () => {
  it('escapes them on the fast path (fields spliced unparsed) and the full path alike, and the line parses back to the same values', () => {
    let fastPath = 0;
    fc.assert(
      fc.property(wireRecord, (record) => {
        const payload = Buffer.from(encodeFrame(header, [encodeRecord(record)]));
        const decoded = decodeFramePayload(payload, '1-0');
        expect(decoded.rejected).toEqual([]);
        const spliced = decoded.records[0] as LogRecord;
        if (spliced.fieldsJson !== undefined) fastPath++;
        expectSafeAndFaithful(formatLine(spliced), record);
        expectSafeAndFaithful(formatLine(decodeRecord(decodeFrame(payload), 0)), record);
      }),
      { numRuns: 2000 },
    );
    // about 4% take it (fields, no error, no escaped key, no unsafe character anywhere): enough to matter
    expect(fastPath).toBeGreaterThan(40);
  }, 60_000);

  it('escapes them in legacy Pub/Sub messages, plain text or JSON', () => {
    fc.assert(
      fc.property(text, fc.dictionary(key, value, { maxKeys: 4 }), (message, fields) => {
        const legacy = (payload: string) => decodePubSubMessage(Buffer.from(payload), Date.now(), 'h1', 'legacy-h1', () => 1).records[0] as LogRecord;
        const plain = formatLine(legacy(message));
        expect(plain.slice(0, -1)).not.toMatch(UNSAFE);
        // the payload is bytes: a lone surrogate in the test's string was sent as U+FFFD
        if (!message.trimStart().startsWith('{')) expect(JSON.parse(plain).message).toBe(Buffer.from(message).toString());
        const json = formatLine(legacy(JSON.stringify({ ...fields, message })));
        expect(json.slice(0, -1)).not.toMatch(UNSAFE);
        expect(JSON.parse(json).message).toBe(message);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['NEL', '\u0085'],
    ['CSI', '\u009b'],
    ['DEL', '\u007f'],
    ['LINE SEPARATOR', '\u2028'],
    ['PARAGRAPH SEPARATOR', '\u2029'],
  ])('writes %s escaped in the message, a field key and a field value (the scanner leaves such a record to the full path)', (_name, char) => {
    const record: WireRecord = { time: Date.UTC(2026, 10, 25), level: 'info', message: `a${char}b`, fields: { k: `v${char}w`, nested: { [`x${char}`]: 1 } } };
    const [decoded] = decodeFramePayload(Buffer.from(encodeFrame(header, [encodeRecord(record)])), '1-0').records;
    expect(decoded!.fieldsJson).toBeUndefined();
    const line = formatLine(decoded!);
    const escaped = `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
    expect(line).not.toContain(char);
    expect(line).toContain(`"message":"a${escaped}b"`);
    expect(line).toContain(`"k":"v${escaped}w"`);
    expect(JSON.parse(line).nested).toEqual({ [`x${char}`]: 1 });
  });
});
