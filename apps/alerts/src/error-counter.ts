/** Minutes of history kept per app. */
const WINDOW_MINUTES = 60;

/**
 * Error records per app per minute (by the record's time), over the last hour. `add` returns true
 * the first time an app's count for a minute reaches the threshold: one alert per app per minute.
 */
export class ErrorCounter {
  private readonly minutes = new Map<string, Map<number, number>>();
  private readonly alerted = new Set<string>();

  constructor(private readonly threshold: number) {}

  add(app: string, timeMs: number): boolean {
    const minute = Math.floor(timeMs / 60_000);
    let perMinute = this.minutes.get(app);
    if (!perMinute) this.minutes.set(app, (perMinute = new Map<number, number>()));
    const count = (perMinute.get(minute) ?? 0) + 1;
    perMinute.set(minute, count);
    if (count < this.threshold) return false;
    const key = `${app} ${minute}`;
    if (this.alerted.has(key)) return false;
    this.alerted.add(key);
    return true;
  }

  /** Errors of `app` in the minute holding `timeMs`. */
  count(app: string, timeMs: number): number {
    return this.minutes.get(app)?.get(Math.floor(timeMs / 60_000)) ?? 0;
  }

  /** Forgets minutes older than the window (call now and then, not per record). */
  prune(nowMs: number): void {
    const oldest = Math.floor(nowMs / 60_000) - WINDOW_MINUTES;
    for (const [app, perMinute] of this.minutes) {
      for (const minute of perMinute.keys()) if (minute < oldest) perMinute.delete(minute);
      if (perMinute.size === 0) this.minutes.delete(app);
    }
    for (const key of this.alerted) if (Number(key.slice(key.indexOf(' ') + 1)) < oldest) this.alerted.delete(key);
  }
}
