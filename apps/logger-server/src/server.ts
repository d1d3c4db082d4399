import { readdirSync } from 'node:fs';
import { isValidName } from '@log/protocol';
import { PubSubReader, StreamReader, type StreamEntry } from '@log/subscriber';
import type { ServerConfig } from './config';
import type { ArchiveQueue } from './archive';
import { ProducerLedger } from './dedup';
import { DiskError, ServerError, UnsafePathError } from './errors';
import { formatLine } from './format';
import { describeError, serverLog, type ServerLog } from './log';
import { createMetrics, type Metrics } from './metrics';
import { decodeFramePayload, decodePubSubMessage, type Decoded, type Rejected } from './records';
import { FileSink, recoverFile } from './sink';

const PUBSUB_COMMIT_MS = 50;

export interface ServerState {
  ready: boolean;
  redisOk: boolean;
  diskOk: boolean;
  lastError: string | undefined;
}

/**
 * The daemon's core: read a batch, write every record to its file, fdatasync each touched file
 * once, then acknowledge (stream) — so nothing is acknowledged that is not on disk.
 */
export class LoggerServer {
  readonly metrics: Metrics = createMetrics();
  readonly ledger = new ProducerLedger();
  readonly state: ServerState = { ready: false, redisOk: false, diskOk: true, lastError: undefined };
  private readonly sink: FileSink;
  private stream: StreamReader | undefined;
  private pubsub: PubSubReader | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private pubsubTimer: NodeJS.Timeout | undefined;
  private pubsubQueue: Buffer[] = [];
  /** Ends the Pub/Sub mode's wait (it has no read loop of its own). */
  private endPubSub: (() => void) | undefined;
  private legacySeq = 0;
  /** Set when the disk failed: the process must exit non-zero so pending entries are redelivered. */
  fatal: ServerError | undefined;
  /** Archiving of closed files to S3; undefined when S3_BUCKET is not set. */
  readonly archive: ArchiveQueue | undefined;
  /** True while a batch is written but its ack failed: files are not rotated then (see rotate). */
  private ackFailed = false;
  private backpressured = false;

  constructor(
    readonly config: Readonly<ServerConfig>,
    private readonly log: ServerLog = serverLog,
  ) {
    this.sink = new FileSink(config.logDir);
    if (config.s3) {
      // The AWS SDK takes ~80 ms to load: only a server that archives pays for it.
      const { ArchiveQueue: Queue } = require('./archive') as typeof import('./archive');
      this.archive = new Queue({ ...config, s3: config.s3 }, this.metrics, log);
    }
  }

  /**
   * Closes the files that are due and hands them to the archiver. Only between batches and only
   * when every written batch was acknowledged: the dedup ledger is rebuilt from the open files'
   * tails after a crash, so a written but unacknowledged batch must stay in an open file.
   * Returns false when the disk failed: the server is stopping then (fail), and the caller's
   * loop must end instead of taking the failure for a Redis one.
   */
  private rotate(all = false): boolean {
    if (this.ackFailed) return true; // even at shutdown: the batch is redelivered after the restart
    let closed;
    try {
      closed = this.sink.rotate({ maxBytes: this.config.rotateBytes, maxAgeMs: this.config.rotateSeconds * 1000 }, Date.now(), all);
    } catch (error) {
      if (!(error instanceof DiskError)) throw error;
      this.fail(error);
      return false;
    }
    for (const file of closed) this.archive?.add(file);
    return true;
  }

  /** True while too many closed files wait for S3: reading pauses and entries wait safely in Redis. */
  private archiveBackpressure(): boolean {
    const over = this.archive !== undefined && this.config.s3 !== undefined && this.archive.backlogBytes > this.config.s3.backlogBytes;
    if (over !== this.backpressured) {
      this.backpressured = over;
      this.log(over ? 'warn' : 'info', over ? 'archive backlog over ARCHIVE_BACKLOG_BYTES: pausing reads from redis' : 'archive backlog drained: reading again', {
        backlogBytes: this.archive?.backlogBytes,
      });
    }
    return over;
  }

  /** 'off' without S3, 'degraded' when the oldest closed file waits longer than ARCHIVE_STALE_SECONDS. */
  archiveHealth(): 'off' | 'ok' | 'degraded' {
    if (!this.archive || !this.config.s3) return 'off';
    return this.archive.oldestAgeSeconds > this.config.s3.staleSeconds || this.backpressured ? 'degraded' : 'ok';
  }

  async start(): Promise<void> {
    this.rebuildLedger();
    this.archive?.scan();
    this.archive?.start();
    this.running = true;
    if (this.config.transport === 'stream') {
      this.stream = new StreamReader({
        url: this.config.redisUrl,
        channel: this.config.channel,
        group: this.config.group,
        consumer: this.config.consumer,
        count: this.config.readCount,
        blockMs: this.config.readBlockMs,
      });
      await this.stream.start();
      this.loop = this.streamLoop();
    } else {
      this.pubsub = new PubSubReader({ url: this.config.redisUrl, channel: this.config.channel });
      await this.pubsub.start((message) => this.pubsubQueue.push(message));
      this.pubsubTimer = setInterval(() => this.commitPubSub(), PUBSUB_COMMIT_MS);
      this.loop = new Promise<void>((resolve) => (this.endPubSub = resolve));
    }
    this.setHealth(true, true);
    this.log('info', 'logger server started', { transport: this.config.transport, logDir: this.config.logDir, consumer: this.config.consumer });
  }

  /**
   * Reads the open files a previous run left (after a crash; a clean stop closes them all), so
   * records written before the crash but not acknowledged are not written twice, and the file's
   * summary (its manifest at rotation) covers every record in it.
   */
  private rebuildLedger(): void {
    let apps: string[];
    try {
      apps = readdirSync(this.config.logDir);
    } catch {
      return;
    }
    let lines = 0;
    for (const app of apps) {
      if (!isValidName(app)) continue;
      const summary = this.sink.summaryOf(app);
      recoverFile(this.sink.pathOf(app), (line) => {
        try {
          const record = JSON.parse(line) as { producer?: unknown; seq?: unknown; host?: unknown; time?: unknown };
          if (typeof record.producer !== 'string' || typeof record.seq !== 'number') return;
          this.ledger.remember(record.producer, record.seq, app, String(record.host));
          summary.add(typeof record.time === 'string' ? Date.parse(record.time) : Number.NaN, record.producer, record.seq);
          lines++;
        } catch {
          // a line that is not ours: nothing to remember
        }
      });
    }
    if (lines > 0) this.log('info', 'rebuilt dedup state and file summaries from open files', { records: lines });
  }

  private async streamLoop(): Promise<void> {
    const reader = this.stream as StreamReader;
    let backoffMs = 100;
    let nextClaim = 0;
    let nextTrim = this.config.trimIntervalMs > 0 ? Date.now() + this.config.trimIntervalMs : Number.POSITIVE_INFINITY;
    // The next batch is read while this one is written and fsynced, so Redis round trips and
    // disk waits overlap instead of adding up.
    let prefetched: Promise<{ entries: StreamEntry[]; fresh: boolean }> | undefined;
    const readBatch = async () => {
      const entries = await reader.read();
      return { entries, fresh: reader.lastReadFresh };
    };
    while (this.running || prefetched) {
      let entries: StreamEntry[];
      let fresh = false;
      try {
        if (prefetched) {
          const next = prefetched;
          prefetched = undefined;
          ({ entries, fresh } = await next);
        } else {
          if (!this.rotate()) return;
          if (this.archiveBackpressure()) {
            await sleep(500);
            continue;
          }
          const now = Date.now();
          if (now >= nextTrim) {
            nextTrim = now + this.config.trimIntervalMs;
            await this.trim(reader).catch((error: unknown) => this.log('warn', 'trimming the stream failed; will try again', describeError(error)));
          }
          entries = [];
          if (now >= nextClaim) {
            nextClaim = now + this.config.claimIntervalMs;
            entries = await reader.claimIdle(this.config.claimIdleMs);
            if (entries.length > 0) {
              this.metrics.claimed.inc(entries.length);
              this.log('info', 'claimed entries left pending by other consumers', { count: entries.length });
            }
          }
          if (entries.length === 0) ({ entries, fresh } = await readBatch());
        }
        if (!this.state.redisOk) this.log('info', 'redis reachable again');
        this.setHealth(true, this.state.diskOk);
        backoffMs = 100;
      } catch (error) {
        if (!this.running) break;
        this.metrics.redisErrors.inc();
        if (this.state.redisOk) this.log('warn', 'reading from redis failed; retrying', describeError(error));
        this.setHealth(false, this.state.diskOk, error);
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5000);
        continue;
      }
      if (entries.length === 0) continue;
      const now = Date.now();
      // No read ahead when a claim or trim is due, or while the archive backlog holds reading back.
      if (this.running && now < nextClaim && now < nextTrim && !this.archiveBackpressure()) {
        prefetched = readBatch();
        prefetched.catch(() => {}); // handled when awaited at the top of the loop
      }
      try {
        await this.storeEntries(reader, entries, fresh);
        this.ackFailed = false;
        if (!this.rotate()) return; // also under constant load, when the loop is never idle
      } catch (error) {
        if (error instanceof DiskError) {
          this.fail(error);
          return;
        }
        // Redis failed during dead-lettering or ack: the entries stay pending and are read again
        // (the ledger drops the records already written).
        this.metrics.redisErrors.inc();
        this.ackFailed = true;
        reader.replayPending();
        this.log('warn', 'acknowledging a batch failed; it will be redelivered', describeError(error));
        this.setHealth(false, this.state.diskOk, error);
        await sleep(backoffMs);
      }
    }
  }

  private async trim(reader: StreamReader): Promise<void> {
    const { trimmed, groups, slowest } = await reader.trim();
    if (trimmed > 0) this.metrics.trimmed.inc(trimmed);
    for (const group of groups) {
      this.metrics.retentionBlockedBy.set({ group: group.name }, group.name === slowest ? 1 : 0);
      this.metrics.groupPending.set({ group: group.name }, group.pending);
      if (group.lag !== undefined) this.metrics.groupLag.set({ group: group.name }, group.lag);
    }
  }

  private async storeEntries(reader: StreamReader, entries: StreamEntry[], fresh: boolean): Promise<void> {
    const ids: string[] = [];
    const dead: Array<{ id: string; rejected: Rejected }> = [];
    /** Where each entry's lines sit in its app's batch, to take them back if the entry is lost to a claim. */
    const spans: Array<{ id: string; app: string; start: number; end: number }> = [];
    let written = 0;
    // Replayed or claimed entries may have been delivered many times (a poison entry) or claimed
    // by another server meanwhile: check them before writing. A fresh read skips the round trip;
    // the atomic ack below still catches a claim that happens while the batch is written.
    const owned = fresh ? undefined : await reader.ownership(entries.map((entry) => entry.id));
    for (const entry of entries) {
      const deliveries = owned === undefined ? 1 : owned.get(entry.id);
      if (deliveries === undefined) {
        this.metrics.notOwned.inc();
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
      const decoded = decodeFramePayload(entry.frame, entry.id);
      const app = decoded.frame?.app;
      const start = app === undefined ? 0 : this.sink.pendingCount(app);
      written += this.write(decoded);
      if (app !== undefined) spans.push({ id: entry.id, app, start, end: this.sink.pendingCount(app) });
      for (const rejected of decoded.rejected) dead.push({ id: entry.id, rejected });
    }
    this.commit(written);
    for (const { id, rejected } of dead) {
      await reader.deadLetter(id, rejected.reason, rejected.detail, rejected.payload);
      this.metrics.deadLetters.inc({ reason: rejected.reason });
    }
    // Acknowledge only what is still ours, atomically. Entries another server claimed while this
    // one was paused after the ownership check are taken back out of the files: that server
    // writes them.
    const lost = new Set(await reader.ackOwned(ids));
    this.metrics.entriesAcked.inc(ids.length - lost.size);
    if (lost.size > 0) {
      const drop = new Map<string, Array<[number, number]>>();
      for (const span of spans) {
        if (!lost.has(span.id) || span.end === span.start) continue;
        const ranges = drop.get(span.app) ?? [];
        ranges.push([span.start, span.end]);
        drop.set(span.app, ranges);
      }
      const removed = this.sink.dropFromLastBatch(drop);
      this.metrics.notOwned.inc(lost.size);
      this.log('warn', 'entries were claimed by another server while this batch was written; took their records back out', { entries: lost.size, records: removed });
    }
    if (dead.length > 0) this.log('warn', 'dead-lettered bad input', { count: dead.length, reasons: [...new Set(dead.map((d) => d.rejected.reason))] });
  }

  /** Records queued per app in the current batch; counted into the metrics once per batch, not per record. */
  private readonly batchPerApp = new Map<string, number>();

  /**
   * Queues the new records of a decoded payload for writing; returns how many. A record whose
   * file cannot be opened safely (a symlink planted under LOG_DIR) joins decoded.rejected.
   */
  private write(decoded: Decoded): number {
    let written = 0;
    let duplicates = 0;
    const frame = decoded.frame;
    if (frame) {
      this.ledger.reportDrops(frame.producer, frame.dropped, frame.app, frame.host);
      if (frame.dropped > 0) this.metrics.reportedDrops.inc(frame.dropped);
      this.ledger.touch(frame.producer);
    }
    for (const record of decoded.records) {
      if (frame && !this.ledger.accept(record.producer, record.seq, record.app, record.host)) {
        duplicates++;
        continue;
      }
      const line = formatLine(record);
      try {
        this.sink.append(record.app, line, record.time, record.producer, record.seq);
      } catch (error) {
        if (!(error instanceof UnsafePathError)) throw error;
        decoded.rejected.push({ reason: error.code, detail: error.message, payload: Buffer.from(line) });
        continue;
      }
      written++;
    }
    const app = decoded.records[0]?.app;
    if (app !== undefined && written > 0) this.batchPerApp.set(app, (this.batchPerApp.get(app) ?? 0) + written);
    if (duplicates > 0) this.metrics.duplicates.inc(duplicates);
    return written;
  }

  /** Writes and fsyncs everything queued. Throws DiskError. */
  private commit(records: number): void {
    const end = this.metrics.fsyncSeconds.startTimer();
    const { bytes } = this.sink.commit();
    end();
    for (const [app, count] of this.batchPerApp) this.metrics.recordsWritten.inc({ app }, count);
    this.batchPerApp.clear();
    this.metrics.bytesWritten.inc(bytes);
    this.metrics.batchRecords.observe(records);
    this.metrics.missing.set(this.ledger.totals().missing);
  }

  private commitPubSub(): void {
    if (this.fatal) return; // the disk failed: nothing more is written (the timer may tick once more before stop)
    this.metrics.pubsubDisconnects.set(this.pubsub?.disconnects ?? 0);
    if (this.pubsubQueue.length === 0) {
      this.rotate();
      return;
    }
    const messages = this.pubsubQueue;
    this.pubsubQueue = [];
    const now = Date.now();
    const legacyProducer = `legacy-${this.config.consumer}`;
    let written = 0;
    const dead: Rejected[] = [];
    for (const message of messages) {
      const decoded = decodePubSubMessage(message, now, this.config.consumer, legacyProducer, () => ++this.legacySeq);
      if (!decoded.frame) this.metrics.legacyMessages.inc();
      written += this.write(decoded);
      dead.push(...decoded.rejected);
    }
    try {
      this.commit(written);
    } catch (error) {
      if (error instanceof DiskError) this.fail(error);
      return;
    }
    for (const rejected of dead) {
      this.metrics.deadLetters.inc({ reason: rejected.reason });
      this.log('warn', 'bad pubsub message: dead-lettered', { reason: rejected.reason, detail: rejected.detail });
      // Not awaited: a Redis that cannot take it must not hold up writing the good messages.
      this.pubsub?.deadLetter(rejected.reason, rejected.detail, rejected.payload).catch((error: unknown) => {
        this.metrics.deadLetterFailures.inc();
        this.log('error', 'could not store a dead letter; it is only counted', { reason: rejected.reason, ...describeError(error) });
      });
    }
  }

  private fail(error: ServerError): void {
    this.fatal = error;
    this.running = false;
    this.endPubSub?.();
    this.state.diskOk = false;
    this.setHealth(this.state.redisOk, false, error);
    // Also after a failed rotation, when every batch was acknowledged: only what is not is redelivered.
    this.log('error', 'disk failure: stopping; entries not acknowledged will be redelivered', describeError(error));
  }

  private setHealth(redisOk: boolean, diskOk: boolean, error?: unknown): void {
    this.state.redisOk = redisOk;
    this.state.diskOk = diskOk;
    this.state.ready = redisOk && diskOk;
    if (error !== undefined) this.state.lastError = error instanceof Error ? error.message : String(error);
    this.metrics.up.set(this.state.ready ? 1 : 0);
  }

  /** SIGHUP: close files so the next write reopens them (after logrotate moved them). */
  reopenFiles(): void {
    this.sink.close();
    this.log('info', 'reopened log files');
  }

  /** Resolves when the read loop has ended (after stop(), or on a disk failure). */
  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Drains: stop reading, finish the batch in hand (write, fsync, ack), close. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.pubsubTimer) clearInterval(this.pubsubTimer);
    this.endPubSub?.();
    await this.loop;
    if (this.pubsub) {
      await this.pubsub.close();
      this.commitPubSub();
    }
    await this.stream?.close();
    if (!this.fatal) this.rotate(true); // shutdown closes the files for archiving
    this.sink.close();
    await this.archive?.stop();
    this.log('info', 'logger server stopped', this.ledger.totals());
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
