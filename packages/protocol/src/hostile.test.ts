import { FRAME_MAGIC, LIMITS, decodeFrame, decodeRecord, encodeFrame, encodeFrameHeader, encodeRecord, reservedKeyMap, type FrameHeader } from './index';

const header = (over: Partial<FrameHeader> = {}): FrameHeader => ({
  producer: 'p0a1b2c3d4e5f6a7',
  seq: 1,
  count: 0,
  app: 'shop',
  host: 'app1',
  pid: 1234,
  dropped: 0,
  ...over,
});

const line = encodeRecord({ time: Date.now(), level: 'info', message: 'x' });
/** A frame of `count` records with the header fields as raw JSON text, so any number can be tried. */
const rawFrame = (fields: string, count: number) => FRAME_MAGIC + `{"p":"p0a1b2c3d4e5f6a7","a":"shop","h":"app1",${fields}}` + `\n${line}`.repeat(count);

describe('frame headers close every numeric hole', () => {
  const max = Number.MAX_SAFE_INTEGER;
  it.each([
    ['seq 0', '"s":0,"n":1,"i":1,"d":0', 1],
    ['seq + count - 1 past 2^53 - 1 (two records would share a number)', `"s":${max},"n":3,"i":1,"d":0`, 3],
    ['seq + count - 1 one past 2^53 - 1', `"s":${max - 1},"n":3,"i":1,"d":0`, 3],
    ['seq not an integer', '"s":1.5,"n":1,"i":1,"d":0', 1],
    ['seq beyond exact integers', '"s":1e300,"n":0,"i":1,"d":0', 0],
    ['dropped = 2^53 - 1 (a counter would grow by 9e15)', `"s":1,"n":0,"i":1,"d":${max}`, 0],
    ['dropped one past 2^32', `"s":1,"n":0,"i":1,"d":${2 ** 32 + 1}`, 0],
    ['negative dropped', '"s":1,"n":0,"i":1,"d":-1', 0],
    ['pid 2^53 - 1', `"s":1,"n":0,"i":${max},"d":0`, 0],
    ['pid 2^32', `"s":1,"n":0,"i":${2 ** 32},"d":0`, 0],
    ['count above its lines', '"s":1,"n":2,"i":1,"d":0', 1],
    ['count below its lines', '"s":1,"n":1,"i":1,"d":0', 2],
  ])('refuses %s', (_name, fields, count) => {
    expect(() => decodeFrame(rawFrame(fields, count), { entryId: '1-1' })).toThrow(expect.objectContaining({ code: 'FRAME_FORMAT', entryId: '1-1' }));
  });

  it.each([
    ['the last safe seq, alone', `"s":${max},"n":1,"i":1,"d":0`, 1],
    ['a run ending on the last safe seq', `"s":${max - 2},"n":3,"i":1,"d":0`, 3],
    ['a drop-only frame at the last safe seq', `"s":${max},"n":0,"i":1,"d":0`, 0],
    ['2^32 drops', `"s":1,"n":0,"i":1,"d":${2 ** 32}`, 0],
    ['the largest pid', `"s":1,"n":0,"i":${2 ** 32 - 1},"d":0`, 0],
  ])('accepts %s', (_name, fields, count) => {
    expect(decodeFrame(rawFrame(fields, count)).lines).toHaveLength(count);
  });

  it('keeps encodeFrame and decodeFrame in agreement on a valid header', () => {
    expect(decodeFrame(encodeFrame(header({ seq: 7, count: 1, dropped: 3 }), [line])).header).toEqual(header({ seq: 7, count: 1, dropped: 3 }));
  });
});

describe('record times outside the accepted window', () => {
  const receivedAt = Date.UTC(2026, 10, 25, 12);
  const splice = reservedKeyMap(['time']);
  const decodeAt = (t: string, spliceFields?: typeof splice) => {
    const frame = { header: header({ count: 1 }), lines: [`{"t":${t},"l":"info","m":"x","f":{"a":1}}`] };
    return decodeRecord(frame, 0, { receivedAt, spliceFields });
  };

  it.each([
    ['past the last valid Date (toISOString would throw RangeError)', '9000000000000000', 9e15],
    ['just past the last valid Date', '8640000000000001', 8640000000000001],
    ['in the year 2100', '4102444800000', 4102444800000],
    ['more than a day ahead', String(receivedAt + LIMITS.maxFutureMs + 1), receivedAt + LIMITS.maxFutureMs + 1],
    ['in 1970', '1', 1],
    ['just before 2000', String(LIMITS.minTime - 1), LIMITS.minTime - 1],
    ['below zero', '-5', -5],
    ['with a fraction of a millisecond', '1764072000000.5', 1764072000000.5],
    ['in nanoseconds', '1764072000000000000', 1764072000000000000],
  ])('replaces a time %s by the receive time and keeps the original, on both decoding paths', (_name, text, original) => {
    for (const path of [undefined, splice]) {
      const record = decodeAt(text, path);
      expect(record.time).toBe(receivedAt);
      expect(record.originalTime).toBe(original);
      expect(new Date(record.time).toISOString()).toBe('2026-11-25T12:00:00.000Z');
    }
  });

  it.each([
    ['2000-01-01', LIMITS.minTime],
    ['the receive time', receivedAt],
    ['a day ahead (a producer clock running fast)', receivedAt + LIMITS.maxFutureMs],
  ])('keeps a time at %s as given', (_name, time) => {
    for (const path of [undefined, splice]) {
      const record = decodeAt(String(time), path);
      expect(record.time).toBe(time);
      expect(record).not.toHaveProperty('originalTime');
    }
  });

  it('still refuses a time that is not a number', () => {
    expect(() => decodeAt('"2026-11-25"')).toThrow(expect.objectContaining({ code: 'RECORD_INVALID' }));
  });
});

describe('invalid UTF-8 is refused one record at a time', () => {
  // One time for every record (within the accepted window): two frames built a millisecond apart must still hold equal records.
  const time = Date.now();
  const good = (n: number) => Buffer.from(encodeRecord({ time, level: 'info', message: `good ${n} é ✓ 😀` }));
  const frameOf = (...records: Buffer[]) => Buffer.concat([Buffer.from(encodeFrameHeader(header({ seq: 10, count: records.length }))), ...records.flatMap((r) => [Buffer.from('\n'), r])]);

  it.each([
    ['a lone continuation byte', [0x80]],
    ['a truncated sequence before the newline', [0xe2, 0x82]],
    ['an overlong encoding', [0xc0, 0xaf]],
    ['a UTF-16 surrogate encoded as UTF-8', [0xed, 0xa0, 0x80]],
    ['bytes that are never UTF-8', [0xff, 0xfe]],
  ])('refuses only the record holding %s; its neighbours decode', (_name, bad) => {
    const broken = Buffer.concat([Buffer.from('{"t":1,"l":"info","m":"'), Buffer.from(bad), Buffer.from('"}')]);
    const frame = decodeFrame(frameOf(good(1), broken, good(3)), { entryId: '5-0' });
    expect(decodeRecord(frame, 0)).toMatchObject({ seq: 10, message: 'good 1 é ✓ 😀' });
    expect(() => decodeRecord(frame, 1, { entryId: '5-0' })).toThrow(expect.objectContaining({ code: 'INVALID_UTF8', recordIndex: 1, entryId: '5-0' }));
    expect(decodeRecord(frame, 2)).toMatchObject({ seq: 12, message: 'good 3 é ✓ 😀' });
    // the line is kept as its bytes, for a dead letter that shows exactly what came
    expect(Buffer.from(frame.lines[1] as Uint8Array).equals(broken)).toBe(true);
  });

  it('treats a line starting with a byte order mark alike whether its frame is decoded whole or line by line', () => {
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good(2)]);
    const whole = decodeFrame(frameOf(good(1), bom));
    const byLine = decodeFrame(frameOf(good(1), bom, Buffer.from([0xff])));
    expect(() => decodeRecord(whole, 1)).toThrow(expect.objectContaining({ code: 'RECORD_INVALID' }));
    expect(() => decodeRecord(byLine, 1)).toThrow(expect.objectContaining({ code: 'RECORD_INVALID' }));
  });

  it('refuses the whole frame when the header is not UTF-8', () => {
    const bytes = Buffer.from(frameOf(good(1)).toString('latin1').replace('"h":"app1"', '"h":"app\u00ff"'), 'latin1');
    expect(() => decodeFrame(bytes, { entryId: '6-0' })).toThrow(expect.objectContaining({ code: 'INVALID_UTF8', entryId: '6-0' }));
  });

  it('decodes the same frame the same way whether a neighbour is broken or not', () => {
    const clean = decodeFrame(frameOf(good(1), good(2)));
    const broken = decodeFrame(frameOf(good(1), Buffer.from([0xff]), good(2)));
    const receivedAt = Date.now();
    expect(decodeRecord(broken, 0, { receivedAt })).toEqual(decodeRecord(clean, 0, { receivedAt }));
    expect(decodeRecord(broken, 2, { receivedAt })).toEqual({ ...decodeRecord(clean, 1, { receivedAt }), seq: 12 });
  });
});

describe('error messages quote hostile input cut short and escaped', () => {
  it.each([
    ['app name', encodeFrame(header(), []).replace('"a":"shop"', `"a":"x\\u009b31m\\u0085${'y'.repeat(5000)}"`)],
    ['header key', encodeFrame(header(), []).replace('{"p"', `{"\\u2028${'k'.repeat(5000)}":1,"p"`)],
    ['version', `@log9\u009b${'v'.repeat(5000)} {}`],
  ])('in a refused %s', (_name, text) => {
    let message = '';
    try {
      decodeFrame(text);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).not.toBe('');
    expect(message).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    expect(message.length).toBeLessThan(300);
  });
});
