import { parseTimeStamp, timeStamp } from './stamp';

describe('timeStamp', () => {
  it('spells a time without separators and parses back to the same millisecond', () => {
    const ms = Date.UTC(2026, 10, 25, 13, 4, 5, 678);
    expect(timeStamp(ms)).toBe('20261125T130405678Z');
    expect(parseTimeStamp('20261125T130405678Z')).toBe(ms);
    for (const t of [0, 946_684_800_000, 1_764_000_000_123, 253_402_300_799_999]) expect(parseTimeStamp(timeStamp(t))).toBe(t);
  });

  it('sorts as the times do', () => {
    const times = [1_764_000_000_999, 1_764_000_001_000, 1_700_000_000_000, 1_800_000_000_000];
    const stamps = times.map(timeStamp);
    expect([...stamps].sort().map((s) => parseTimeStamp(s))).toEqual([...times].sort((a, b) => a - b));
  });

  it('refuses what is not a stamp, including dates that do not exist', () => {
    for (const text of [
      '',
      '20261125T130405678',
      '20261125T130405678Z.jsonl',
      '2026-11-25T13:04:05.678Z',
      '20261332T000000000Z',
      '20260230T000000000Z',
      '20261125T250000000Z',
      'x0261125T130405678Z',
    ]) {
      expect(parseTimeStamp(text)).toBeUndefined();
    }
  });
});
