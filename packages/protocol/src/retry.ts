/** How a retry loop waits between attempts. Every retry loop of the pipeline uses one of these. */
export interface BackoffOptions {
  /** The first wait, in ms (before jitter). */
  initialMs: number;
  /** The wait stops growing here (before jitter). @defaultValue Infinity */
  maxMs?: number;
  /** Each failure multiplies the wait by this. @defaultValue 2 */
  factor?: number;
  /**
   * Spread of each wait around the delay: a wait is `delay * (1 - jitter + 2 * jitter * random())`,
   * so many clients failing together do not retry together. 0 waits exactly the delay.
   * @defaultValue 0.5 (from half to one and a half times the delay)
   */
  jitter?: number;
  /** Source of randomness in [0, 1), for tests. @defaultValue Math.random */
  random?: () => number;
}

/**
 * Exponential backoff, capped, with jitter: next() is the wait before the next attempt and grows
 * the delay for the one after; reset() after a success starts again from initialMs.
 */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private delay: number;

  constructor(options: BackoffOptions) {
    const { initialMs, maxMs = Number.POSITIVE_INFINITY, factor = 2, jitter = 0.5, random = Math.random } = options;
    if (!(initialMs >= 0) || !(maxMs >= initialMs)) throw new RangeError(`backoff needs 0 <= initialMs <= maxMs, got initialMs ${initialMs}, maxMs ${maxMs}`);
    if (!(factor >= 1)) throw new RangeError(`backoff factor must be at least 1, got ${factor}`);
    if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`backoff jitter must be from 0 to 1, got ${jitter}`);
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.factor = factor;
    this.jitter = jitter;
    this.random = random;
    this.delay = initialMs;
  }

  /** The delay the next wait is drawn around, before jitter (for log lines such as `retryInMs`). */
  get delayMs(): number {
    return this.delay;
  }

  /** The wait before the next attempt, in ms; the delay grows (up to maxMs) for the attempt after. */
  next(): number {
    const delay = this.delay;
    this.delay = Math.min(delay * this.factor, this.maxMs);
    return this.jitter === 0 ? delay : delay * (1 - this.jitter + 2 * this.jitter * this.random());
  }

  /** After a success: the next failure waits about initialMs again. */
  reset(): void {
    this.delay = this.initialMs;
  }

  /** Waits next(); ends early when `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void> {
    return sleep(this.next(), signal);
  }
}

/**
 * Resolves after `ms`, or as soon as `signal` aborts (resolves, never rejects: a backoff of up to
 * a minute must not hold up a shutdown, and the loop around it checks why it woke).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
