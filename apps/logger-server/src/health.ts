import type { Metrics } from './metrics';

/** What /healthz reports: Redis and the disk each working or not, and the last error seen. */
export class Health {
  redisOk = false;
  diskOk = true;
  lastError: string | undefined;
  /** True until the server has started reading: /healthz says `starting` (503) with the reason it waits. */
  starting = true;

  constructor(private readonly metrics: Metrics) {}

  get ready(): boolean {
    return this.redisOk && this.diskOk;
  }

  set(redisOk: boolean, diskOk: boolean, error?: unknown): void {
    this.redisOk = redisOk;
    this.diskOk = diskOk;
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- anything thrown: a string, a number, an object's own text
    if (error !== undefined) this.lastError = error instanceof Error ? error.message : String(error);
    this.metrics.ready.set(this.ready ? 1 : 0);
  }
}
