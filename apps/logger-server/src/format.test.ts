import { decodeRecord, encodeRecord, type LogRecord } from '@log/protocol';
import { SPLICE_RESERVED, formatLine } from './format';

const base: LogRecord = { time: Date.UTC(2026, 10, 25), level: 'info', message: 'hi', app: 'shop', host: 'h1', pid: 7, producer: 'abc', seq: 3 };

describe('formatLine', () => {
  it('writes one flat JSON object per line with the own keys first', () => {
    const line = formatLine({ ...base, fields: { user: 1 } });
    expect(line.endsWith('}\n')).toBe(true);
    expect(JSON.parse(line)).toEqual({ time: '2026-11-25T00:00:00.000Z', level: 'info', app: 'shop', host: 'h1', pid: 7, producer: 'abc', seq: 3, message: 'hi', user: 1 });
  });

  it('keeps colliding fields under the fields. prefix', () => {
    const parsed = JSON.parse(formatLine({ ...base, fields: { time: 'x', seq: 'y', level: 'z', other: 1 } }));
    expect(parsed).toMatchObject({ time: '2026-11-25T00:00:00.000Z', seq: 3, level: 'info', 'fields.time': 'x', 'fields.seq': 'y', 'fields.level': 'z', other: 1 });
  });

  it('escapes CR, LF, ESC and other control characters: one record is one line', () => {
    const line = formatLine({ ...base, message: 'a\nb\r\u001b[31mred\u0000', fields: { 'k\ney': 'v\u0007' } });
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(line).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(JSON.parse(line).message).toBe('a\nb\r\u001b[31mred\u0000');
  });

  it('writes a producer time the decoder replaced as originalTime, and a field of that name as fields.originalTime', () => {
    const parsed = JSON.parse(formatLine({ ...base, originalTime: 4102444800000, fields: { originalTime: 'mine' } }));
    expect(parsed).toMatchObject({ time: '2026-11-25T00:00:00.000Z', originalTime: 4102444800000, 'fields.originalTime': 'mine' });
    expect(JSON.parse(formatLine(base))).not.toHaveProperty('originalTime');
  });

  it("writes pino's six levels, and a producer's own level name beside its level", () => {
    const frame = {
      header: { producer: 'abc', seq: 1, count: 3, app: 'shop', host: 'h1', pid: 7, dropped: 0 },
      lines: [
        encodeRecord({ time: base.time, level: 'trace', message: 't' }),
        encodeRecord({ time: base.time, level: 'fatal', message: 'f', fields: { levelName: 'mine' } }),
        encodeRecord({ time: base.time, level: 'debug', levelName: 'verbose', message: 'v' }),
      ],
    };
    const parsed = [0, 1, 2].map((i) => JSON.parse(formatLine(decodeRecord(frame, i, { spliceFields: SPLICE_RESERVED }))));
    expect(parsed.map((p) => p.level)).toEqual(['trace', 'fatal', 'debug']);
    expect(parsed[1]).toMatchObject({ 'fields.levelName': 'mine' });
    expect(parsed[1]).not.toHaveProperty('levelName');
    expect(parsed[2]).toMatchObject({ level: 'debug', levelName: 'verbose', message: 'v' });
  });

  it('writes the error under err', () => {
    const parsed = JSON.parse(formatLine({ ...base, error: { name: 'Error', message: 'boom', cause: { name: 'Error', message: 'root' } } }));
    expect(parsed.err).toEqual({ name: 'Error', message: 'boom', cause: { name: 'Error', message: 'root' } });
  });

  it('writes the same line from spliced fields as from parsed ones, still one line, escapes kept', () => {
    const wire = encodeRecord({ time: base.time, level: 'warn', message: 'x\u001b', fields: { user: 1, key: 'v\r\u0007', nested: { a: [1, 'é', null] } } });
    const frame = { header: { producer: 'abc', seq: 3, count: 1, app: 'shop', host: 'h1', pid: 7, dropped: 0 }, lines: [wire] };
    const spliced = decodeRecord(frame, 0, { spliceFields: SPLICE_RESERVED });
    const parsed = decodeRecord(frame, 0);
    expect(spliced.fieldsJson).toBeDefined(); // the fast path was taken
    const line = formatLine(spliced);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(line).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(JSON.parse(line)).toEqual(JSON.parse(formatLine(parsed)));
  });
});
