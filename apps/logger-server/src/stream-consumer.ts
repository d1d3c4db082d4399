import { randomBytes } from 'node:crypto';
import { Backoff, sleep, type BackoffOptions } from '@log/protocol';
import type { ReadResult, StreamEntry, StreamReader } from '@log/subscriber';
import type { ServerConfig } from './config';
import { DiskError, LeaseError, ServerError } from './errors';
import type { DeadLetters } from './dead-letters';
import type { Checkpoint, GroupState, ProducerCommit } from './group-state';
import type { HealthReporter } from './health';
import { describeError, type ServerLog } from './log';
import type { Metrics } from './metrics';
import type { RecordWriter } from './record-writer';
import type { Rejected } from './records';
import type { LocalCheckpoints } from './recovery';
import type { FileSink } from './sink';

/** Waits between tries while Redis fails (reading, committing): from 100 ms, doubling up to 5 s, no jitter. */
const REDIS_RETRY: BackoffOptions = { initialMs: 100, maxMs: 5000, jitter: 0 };
/** How long reading pauses while the archive backlog is over its bound, before it looks again. */
const BACKPRESSURE_PAUSE_MS = 500;

/** What the consumer needs from the server around it. */
export interface ConsumerHooks {
  /** Closes due files (only between committed batches); false when the disk failed and the server is stopping. */
  rotate(): boolean;
  /** True when a file is due to be closed: the consumer then commits what it has and rotates before writing on. */
  rotationDue(): boolean;
  /** True while the archive backlog is over its bound: reading pauses. */
  archiveBackpressure(): boolean;
  /** A disk failure or a lost lease: the server stops without acknowledging. */
  fail(error: ServerError): void;
}

/**
 * Lets one batch at a time be written and committed by the consumers of a sharded channel, which
 * share the record writer and the files: a file's checkpoint, committed with one shard's batch,
 * then covers only committed records, so the largest checkpoint of any shard is the file's
 * durable prefix (see recoverOpenFiles). Reading goes on in parallel. Waiters go in turn (FIFO).
 */
export class BatchLock {
  private tail: Promise<void> = Promise.resolve();

  /** Resolves, when the batch before has released it, with the function that releases it. */
  async acquire(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const previous = this.tail;
    this.tail = previous.then(() => mine);
    await previous;
    return release;
  }
}

/**
 * Stream mode's read-write-commit loop: read a batch (this consumer's pending entries first,
 * then new ones; idle entries of other consumers every CLAIM_INTERVAL_MS), write every record,
 * fdatasync each touched file once, then commit (GroupState.commit: acknowledge, checkpoint,
 * ledger, atomically). The next batch is read while this one is written, and its records are
 * queued in memory while this one is fsynced and committed (see store); it is written only
 * once this one is committed, so batches reach the files and the group in order.
 */
export class StreamConsumer {
  private running = false;
  /** Aborted by stop(): a retry wait ends at once instead of holding up the drain. */
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  /** Batches whose records are queued or written but not committed (0 to 2). */
  private inHand = 0;
  /**
   * The commit of the batch before (write, fdatasync, group commit) while the next one's records
   * are queued: resolves with its failure, or undefined when committed. Undefined when none.
   */
  private committing: Promise<Error | undefined> | undefined;
  /** The origins this consumer has committed (to its stream's ledger), for reassert. */
  private readonly origins = new Map<string, { producer: string; app: string; host: string }>();
  /**
   * Set when Redis lost this consumer's last commit (the commit says 'stale': a failover to a
   * replica that had not received it, a restart from an older state) or failed: the next commit
   * re-asserts what this server has on disk of its origins (ProducerCommit.reasserted). Without
   * it the ledger would count records that are on disk as missing.
   */
  private reassert = false;
  /** The token of this consumer's last commit: the next one checks Redis still has it. */
  private lastToken: string | undefined;

  constructor(
    private readonly config: Readonly<ServerConfig>,
    private readonly reader: StreamReader,
    private readonly writer: RecordWriter,
    private readonly deadLetters: DeadLetters,
    private readonly sink: FileSink,
    private readonly group: GroupState,
    private readonly local: LocalCheckpoints,
    /** Its shard's view of the server's health (Health.shard): one shard down shows as that shard failing. */
    private readonly health: HealthReporter,
    private readonly metrics: Metrics,
    private readonly log: ServerLog,
    private readonly hooks: ConsumerHooks,
    /** Shared by the consumers of a sharded channel's shards (see BatchLock); none for one stream. */
    private readonly lock?: BatchLock,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops reading and resolves when the batches in hand (at most two) are committed. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    await this.loop;
    await this.reader.close();
  }

  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** True while a batch is queued or written but not committed: files are not rotated then (see rotate). */
  get uncommitted(): boolean {
    return this.inHand > 0;
  }

  /** Waits for the commit of the batch before, if one is running; throws its failure. */
  private async committed(): Promise<void> {
    const committing = this.committing;
    if (committing === undefined) return;
    const failure = await committing;
    if (this.committing === committing) this.committing = undefined;
    if (failure !== undefined) throw failure;
  }

  private async run(): Promise<void> {
    const reader = this.reader;
    const backoff = new Backoff(REDIS_RETRY);
    let nextClaim = 0;
    let nextTrim = this.config.trimIntervalMs > 0 ? Date.now() + this.config.trimIntervalMs : Number.POSITIVE_INFINITY;
    // The next batch is read while this one is written and fsynced, so Redis round trips and
    // disk waits overlap instead of adding up.
    let prefetched: Promise<ReadResult> | undefined;
    /** Set when the read ahead has answered: it was then waiting while the batch before was stored. */
    let answered = false;
    while (this.running || prefetched) {
      let entries: StreamEntry[];
      let fresh = false;
      try {
        if (prefetched) {
          const next = prefetched;
          prefetched = undefined;
          let waited = answered;
          const ahead = await next;
          ({ entries, fresh } = ahead);
          // A read ahead answers with the first entries to arrive while the batch before is
          // stored; the ones after them would wait in Redis for a batch more (at a steady rate,
          // twice the time a batch takes). They join this batch instead, once the batch before
          // is committed: a short batch (the stream caught up) is not queued during that commit,
          // as it would then be committed alone, one arrival after another, after each commit.
          if (ahead.short && entries.length > 0 && this.running) {
            if (this.committing !== undefined) {
              await this.committed();
              waited = true;
            }
            if (waited) {
              const now = await reader.readNow();
              if (now.entries.length > 0) entries = entries.concat(now.entries);
            }
          }
        } else {
          await this.committed(); // claims, trims and rotation go between committed batches
          if (!this.hooks.rotate()) return; // the server's rotate skips while a batch is uncommitted
          if (this.hooks.archiveBackpressure()) {
            await sleep(BACKPRESSURE_PAUSE_MS, this.stopping.signal);
            continue;
          }
          const now = Date.now();
          if (now >= nextTrim) {
            nextTrim = now + this.config.trimIntervalMs;
            await this.trim().catch((error: unknown) => this.log('warn', 'trimming the stream failed; will try again', describeError(error)));
            await this.deadLetters.retry();
          }
          entries = [];
          if (now >= nextClaim) {
            nextClaim = now + this.config.claimIntervalMs;
            entries = await reader.claimIdle(this.config.claimIdleMs);
            if (entries.length > 0) {
              this.metrics.claimedEntries.inc(entries.length);
              this.log('info', 'claimed entries left pending by other consumers', { count: entries.length });
            }
          }
          if (entries.length === 0) ({ entries, fresh } = await reader.read());
        }
        if (!this.health.redisOk) this.log('info', 'redis reachable again');
        this.health.set(true, this.health.diskOk);
        backoff.reset();
      } catch (error) {
        if (error instanceof ServerError) {
          // the commit of the batch before failed (committed() above)
          await this.stopAfter(error, prefetched);
          return;
        }
        if (!this.running) break;
        this.reassert = true;
        this.metrics.redisErrors.inc();
        if (this.health.redisOk) this.log('warn', 'reading from redis failed; retrying', describeError(error));
        this.health.set(false, this.health.diskOk, error);
        await backoff.wait(this.stopping.signal);
        continue;
      }
      if (entries.length === 0) continue;
      const now = Date.now();
      // No read ahead when a claim or trim is due, or while the archive backlog holds reading back.
      if (this.running && now < nextClaim && now < nextTrim && !this.hooks.archiveBackpressure()) {
        answered = false;
        prefetched = reader.read();
        prefetched.then(
          () => (answered = true),
          () => {}, // handled when awaited at the top of the loop
        );
      }
      // This batch's records are queued while the batch before is committed, unless it must go
      // alone: entries not fresh (their ownership is asked first), shards (they share the files
      // and take turns), a file due to rotate or a SIGHUP's reopen (both need a moment with
      // nothing queued). A short batch has already waited for the commit above; see also store.
      const early = fresh && this.lock === undefined && !this.hooks.rotationDue() && !this.sink.closeRequested;
      let owned: Map<string, number> | undefined;
      try {
        if (!early) {
          await this.committed();
          if (!this.hooks.rotate()) return; // also under constant load, when the loop is never idle
        }
        // Replayed or claimed entries may have been delivered many times (a poison entry) or
        // claimed by another server meanwhile: checked before writing. A fresh read skips the
        // round trip; the commit catches a claim that happens while the batch is written.
        if (!fresh) owned = await reader.ownership(entries.map((entry) => entry.id));
      } catch (error) {
        if (error instanceof ServerError) {
          await this.stopAfter(error, prefetched);
          return;
        }
        // Redis failed before the batch was written (the ownership check): nothing is on disk.
        this.reassert = true;
        this.metrics.redisErrors.inc();
        reader.replayPending();
        this.log('warn', 'reading a batch failed; it will be redelivered', describeError(error));
        this.health.set(false, this.health.diskOk, error);
        await backoff.wait(this.stopping.signal);
        continue;
      }
      try {
        await this.storeInTurn(entries, owned);
      } catch (error) {
        // A disk failure or a lost lease; anything else is a bug, and the process stops on it
        // (main.ts) once the commit in hand has settled: nothing unacknowledged is lost.
        await this.stopAfter(error instanceof ServerError ? error : undefined, prefetched);
        if (error instanceof ServerError) return;
        throw error;
      }
    }
    try {
      await this.committed();
    } catch (error) {
      if (!(error instanceof ServerError)) throw error;
      this.hooks.fail(error);
    }
  }

  /**
   * Ends the loop on a disk failure or a lost lease (or a commit given up when stopping): what
   * was read ahead is dropped (redelivered after the restart), the commit in hand settles first.
   */
  private async stopAfter(error: ServerError | undefined, prefetched: Promise<ReadResult> | undefined): Promise<void> {
    this.running = false;
    if (prefetched) await prefetched.catch(() => undefined);
    await this.committed().catch(() => undefined);
    if (error) this.hooks.fail(error);
  }

  private async trim(): Promise<void> {
    const trim = await this.reader.trim();
    if (trim.trimmed > 0) this.metrics.streamTrimmedEntries.inc(trim.trimmed);
    this.metrics.setGroupGauges(this.group.shard, trim);
  }

  /** store(), holding the BatchLock of a sharded channel. */
  private async storeInTurn(entries: StreamEntry[], owned: Map<string, number> | undefined): Promise<void> {
    const release = await this.lock?.acquire();
    try {
      await this.store(entries, owned);
    } finally {
      release?.();
    }
  }

  /**
   * Queues the batch's records (`owned`: the deliveries of entries not fresh, see run), then
   * (once the batch before is committed) writes, fsyncs and commits it: awaited with shards (the
   * lock is held until the commit), else left running as `committing` while the loop reads and
   * queues the next batch.
   */
  private async store(entries: StreamEntry[], owned: Map<string, number> | undefined): Promise<void> {
    // Opening a file for a new app may close another's descriptor, never one with a write in
    // flight: with as many files in flight as MAX_OPEN_FILES, the commit goes first. Checked
    // here, as nothing is awaited from here to the end of the records' work.
    if (!this.sink.canOpenWhileWriting) await this.committed();
    const ids: string[] = [];
    const dead: Array<{ id: string; rejected: Rejected }> = [];
    for (const entry of entries) {
      const deliveries = owned === undefined ? 1 : owned.get(entry.id);
      if (deliveries === undefined) {
        this.metrics.entriesLostToClaim.inc();
        continue;
      }
      ids.push(entry.id);
      if (deliveries > this.config.maxDeliveries) {
        dead.push({ id: entry.id, rejected: { reason: 'DELIVERY_LIMIT', detail: `delivered ${deliveries} times (MAX_DELIVERIES=${this.config.maxDeliveries})`, payload: entry.frame } });
        continue;
      }
      if (entry.frame === undefined) {
        if (entry.otherFields.length === 0) continue; // trimmed while pending: nothing left to store
        dead.push({ id: entry.id, rejected: { reason: 'MISSING_FRAME', detail: `entry has fields ${entry.otherFields.join(',')} but no frame`, payload: undefined } });
        continue;
      }
      if (entry.otherFields.length > 0) {
        // A second frame field, or fields of a foreign writer: never half-read, stored whole for a look.
        dead.push({ id: entry.id, rejected: { reason: 'UNEXPECTED_FIELDS', detail: `entry has fields ${entry.otherFields.join(',')} beside its frame`, payload: entry.frame } });
        continue;
      }
      for (const rejected of this.writer.writeFrame(entry.frame, entry.id, this.config.signingKeys)) dead.push({ id: entry.id, rejected });
    }
    this.inHand++;
    try {
      await this.committed();
    } catch (error) {
      this.inHand--;
      throw error;
    }
    const commit = this.writeAndSettle(ids, dead).finally(() => this.inHand--);
    if (this.lock !== undefined) await commit;
    else
      this.committing = commit.then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(`commit failed: ${String(error)}`)),
      );
  }

  /** Writes and fsyncs the queued batch, then commits it (settle). */
  private async writeAndSettle(ids: string[], dead: Array<{ id: string; rejected: Rejected }>): Promise<void> {
    const apps = await this.writer.commit();
    await this.settle(ids, apps, dead);
    if (dead.length > 0) this.log('warn', 'dead-lettered bad input', { count: dead.length, reasons: [...new Set(dead.map((d) => d.rejected.reason))] });
  }

  /**
   * Stores the dead letters and commits a batch that is written and fsynced. Until Redis answers,
   * the batch is in doubt (its commit may have been applied before the reply was lost): it is
   * tried again, the same commit, until the answer is known, and nothing else is written
   * meanwhile. Stopping gives up: the batch stays beyond the checkpoint, so the restart cuts it
   * and it is redelivered.
   */
  private async settle(ids: string[], apps: readonly string[], dead: Array<{ id: string; rejected: Rejected }>): Promise<void> {
    const token = randomBytes(8).toString('hex');
    let stored = 0;
    const backoff = new Backoff(REDIS_RETRY);
    let inDoubt = false;
    for (;;) {
      try {
        for (; stored < dead.length; stored++) await this.deadLetters.store(dead[stored]!.id, dead[stored]!.rejected);
        await this.commit(ids, apps, token);
        if (inDoubt) this.log('info', 'redis reachable again; the batch in doubt is committed');
        this.health.set(true, this.health.diskOk);
        return;
      } catch (error) {
        if (error instanceof DiskError || error instanceof LeaseError) throw error;
        this.reassert = true;
        this.metrics.redisErrors.inc();
        // Said once per batch in doubt, also when the read ahead has already found Redis failing.
        if (!inDoubt) this.log('warn', 'committing a batch failed; trying the same commit again until redis answers', describeError(error));
        inDoubt = true;
        this.health.set(false, this.health.diskOk, error);
        if (!this.running) throw new ServerError('REDIS_UNAVAILABLE', 'stopping with a batch written but not committed; it is cut at the next start and redelivered', { cause: error });
        // Redis came back without the stream or the group (restarted empty): the batch's entries
        // are gone from it and the file holds the only copy. With the group made again, the
        // commit finds them pending to nobody and commits the batch (the ledger still decides).
        if (String((error as Error)?.message).includes('NOGROUP')) await this.reader.ensureGroup().catch(() => undefined);
        await backoff.wait(this.stopping.signal);
      }
    }
  }

  /** Adds to `producers` what this server has on disk of every origin it committed (see reassert); origins it forgot are dropped from the list. */
  private addReasserted(producers: ProducerCommit[]): void {
    const inBatch = new Map(producers.map((commit) => [commit.origin, commit]));
    for (const [origin, { producer, app, host }] of this.origins) {
      const ranges = this.writer.onDisk(origin);
      if (ranges.length === 0) {
        this.origins.delete(origin); // idle long enough for the dedup cache to forget it
        continue;
      }
      const commit = inBatch.get(origin);
      if (commit) commit.reasserted = ranges;
      else producers.push({ origin, producer, app, host, takenOut: 0, reportedDrops: 0, written: [], seen: [], dead: [], reasserted: ranges });
    }
  }

  /**
   * Commits the written batch. Entries another server claimed meanwhile, and records the group
   * already committed, are taken back out of the files first; then the rest is committed.
   */
  private async commit(ids: string[], apps: readonly string[], token: string): Promise<void> {
    let pending = ids;
    for (;;) {
      const checkpoints = new Map<string, Checkpoint>();
      for (const app of apps) {
        const checkpoint = this.sink.checkpointOf(app);
        if (checkpoint) checkpoints.set(app, checkpoint);
      }
      const producers = this.writer.producerCommits();
      const reasserting = this.reassert;
      if (reasserting) this.addReasserted(producers);
      const outcome = await this.group.commit(pending, checkpoints, producers, token, reasserting ? undefined : this.lastToken);
      if (outcome.kind === 'stale') {
        this.reassert = true;
        this.log('warn', "redis lost this server's last commit (failover or restart); committing again with what is on disk re-asserted", { consumer: this.group.consumer });
        continue;
      }
      if (outcome.kind === 'committed') {
        this.lastToken = token;
        if (reasserting) this.reassert = false;
        for (const { origin, producer, app, host } of producers) if (!this.origins.has(origin)) this.origins.set(origin, { producer, app, host });
        this.local.update(checkpoints);
        this.metrics.entriesAcked.inc(pending.length);
        this.writer.reset();
        return;
      }
      if (outcome.kind === 'lease') throw new LeaseError(this.group.consumer, outcome.holder);
      if (outcome.kind === 'lost') {
        const lost = new Set(outcome.ids);
        pending = pending.filter((id) => !lost.has(id));
        const removed = await this.writer.takeBackEntries(lost);
        this.metrics.entriesLostToClaim.inc(lost.size);
        this.log('warn', 'entries were claimed by another server while this batch was written; took their records back out', { entries: lost.size, records: removed });
      } else {
        const removed = await this.writer.takeBackCommitted(outcome.ranges);
        this.log('warn', 'records were already committed by a server of the group; took them back out', { records: removed, origins: [...new Set(outcome.ranges.map((r) => r.origin))] });
      }
    }
  }
}
