import type { Metrics } from './metrics';

/** What a read loop reports its Redis and disk state through: the server's Health, or one shard's view of it (Health.shard). */
export interface HealthReporter {
  /** This reporter's Redis (a shard's loop: its own shard) as last seen. */
  readonly redisOk: boolean;
  readonly diskOk: boolean;
  set(redisOk: boolean, diskOk: boolean, error?: unknown): void;
}

/** One shard's Redis as its loop last saw it, and why it failed. */
interface ShardState {
  redisOk: boolean;
  error: string | undefined;
}

/** The error's message and its cause's (Redis's own words: `NOPERM ...` under `XAUTOCLAIM on ... failed`). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return cause === undefined || error.message.includes(cause) ? error.message : `${error.message}: ${cause}`;
}

/**
 * What /healthz reports: Redis and the disk each working or not, and the last error seen. With
 * LOG_SHARDS > 1 each shard's loop reports through its own view (shard(i)): Redis is ok only while
 * every shard's is, so one shard's master down keeps the server unready, whatever the other
 * loops see meanwhile, and failingShards names it.
 */
export class Health implements HealthReporter {
  diskOk = true;
  lastError: string | undefined;
  /** True until the server has started reading: /healthz says `starting` (503) with the reason it waits. */
  starting = true;
  private readonly shardStates: ShardState[];

  constructor(
    private readonly metrics: Metrics,
    /** LOG_SHARDS: how many loops report (1: the server's one loop, no per-shard detail). */
    readonly shards = 1,
  ) {
    this.shardStates = Array.from({ length: shards }, () => ({ redisOk: false, error: undefined }));
  }

  /** True while every shard's Redis answers. */
  get redisOk(): boolean {
    return this.shardStates.every((state) => state.redisOk);
  }

  get ready(): boolean {
    return this.redisOk && this.diskOk;
  }

  /** The shards whose Redis failed at their loop's last try, with the error (empty when all answer). */
  get failingShards(): Array<{ shard: number; error: string | undefined }> {
    const failing: Array<{ shard: number; error: string | undefined }> = [];
    for (const [shard, state] of this.shardStates.entries()) if (!state.redisOk) failing.push({ shard, error: state.error });
    return failing;
  }

  /** The whole server's state (start, a fatal error): every shard's Redis at once. */
  set(redisOk: boolean, diskOk: boolean, error?: unknown): void {
    const text = error === undefined ? undefined : describe(error);
    for (const state of this.shardStates) {
      state.redisOk = redisOk;
      if (!redisOk && text !== undefined) state.error = text;
    }
    this.update(diskOk, text);
  }

  /** The view one shard's loop reports through: its Redis state is its own, the disk is shared. */
  shard(index: number): HealthReporter {
    const state = this.shardStates[index];
    if (state === undefined) throw new RangeError(`shard ${index} of ${this.shards}`);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the view's getters read the server's state
    const health = this;
    return {
      get redisOk() {
        return state.redisOk;
      },
      get diskOk() {
        return health.diskOk;
      },
      set(redisOk: boolean, diskOk: boolean, error?: unknown) {
        const text = error === undefined ? undefined : describe(error);
        state.redisOk = redisOk;
        if (!redisOk && text !== undefined) state.error = text;
        health.update(diskOk, text === undefined || health.shards === 1 ? text : `shard ${index}: ${text}`);
      },
    };
  }

  private update(diskOk: boolean, error: string | undefined): void {
    this.diskOk = diskOk;
    if (error !== undefined) this.lastError = error;
    this.metrics.ready.set(this.ready ? 1 : 0);
  }
}
