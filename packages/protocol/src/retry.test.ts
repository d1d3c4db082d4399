import { Backoff, sleep } from './retry';

/** A random() that returns the given values in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] as number;
}

describe('Backoff', () => {
  it('doubles from initialMs up to maxMs and starts again after reset()', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000, jitter: 0 });
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) waits.push(backoff.next());
    expect(waits).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    backoff.reset();
    expect(backoff.delayMs).toBe(100);
    expect(backoff.next()).toBe(100);
  });

  it('spreads each wait from (1 - jitter) to (1 + jitter) times the delay', () => {
    const backoff = new Backoff({ initialMs: 50, maxMs: 5000, jitter: 0.5, random: sequence(0, 0.5, 0.999) });
    expect(backoff.next()).toBe(25); // 50 * 0.5
    expect(backoff.next()).toBe(100); // 100 * 1
    expect(backoff.next()).toBeCloseTo(200 * 1.499, 6);
    expect(backoff.delayMs).toBe(400);
  });

  it('never waits more than maxMs * (1 + jitter) nor less than 0, whatever random() says', () => {
    const backoff = new Backoff({ initialMs: 500, maxMs: 60_000 });
    for (let i = 0; i < 200; i++) {
      const wait = backoff.next();
      expect(wait).toBeGreaterThanOrEqual(0);
      expect(wait).toBeLessThan(60_000 * 1.5);
    }
    expect(backoff.delayMs).toBe(60_000);
  });

  it('grows without a cap when maxMs is not given, by the factor given', () => {
    const backoff = new Backoff({ initialMs: 200, factor: 3, jitter: 0 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([200, 600, 1800]);
  });

  it('refuses impossible options with a RangeError that names them', () => {
    expect(() => new Backoff({ initialMs: 100, maxMs: 50 })).toThrow(/initialMs 100, maxMs 50/);
    expect(() => new Backoff({ initialMs: -1 })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 1, factor: 0.5 })).toThrow(/factor/);
    expect(() => new Backoff({ initialMs: 1, jitter: 2 })).toThrow(/jitter/);
  });
});

describe('sleep', () => {
  it('resolves after the time given', async () => {
    const started = process.hrtime.bigint();
    await sleep(30);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeGreaterThanOrEqual(25);
  });

  it('resolves as soon as the signal aborts, and at once for an aborted signal', async () => {
    const controller = new AbortController();
    let done = false;
    const waiting = sleep(60_000, controller.signal).then(() => (done = true));
    await sleep(5);
    expect(done).toBe(false);
    controller.abort();
    await waiting;
    expect(done).toBe(true);
    await sleep(60_000, controller.signal); // already aborted: would time the test out otherwise
  });

  it('Backoff.wait() sleeps the next wait and ends early on abort', async () => {
    const controller = new AbortController();
    const backoff = new Backoff({ initialMs: 60_000, jitter: 0 });
    const waiting = backoff.wait(controller.signal);
    controller.abort();
    await waiting;
    expect(backoff.delayMs).toBe(120_000);
  });
});
