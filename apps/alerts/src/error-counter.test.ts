import { ErrorCounter } from './error-counter';

describe('ErrorCounter', () => {
  it('counts per app per minute and says the threshold once per app and minute', () => {
    const counter = new ErrorCounter(3);
    const t0 = Date.UTC(2026, 11, 1, 12, 0, 5);
    expect([1, 2, 3, 4].map(() => counter.add('shop', t0))).toEqual([false, false, true, false]);
    expect(counter.add('api', t0)).toBe(false);
    expect([1, 2, 3].map(() => counter.add('shop', t0 + 60_000))).toEqual([false, false, true]); // next minute
    expect(counter.count('shop', t0 + 30_000)).toBe(4);
    expect(counter.count('api', t0)).toBe(1);
    counter.prune(t0 + 61 * 60_000);
    expect(counter.count('shop', t0)).toBe(0);
    expect(counter.count('shop', t0 + 60_000)).toBe(3);
  });
});
