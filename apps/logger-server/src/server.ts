import { createRedisConnection, type RedisConnection } from '@log/protocol/redis';
import type { ArchiveQueue } from './archive';
import type { ServerConfig } from './config';
import { DedupCache } from './dedup';
import { DiskError, type ServerError } from './errors';
import { ShardedGroupState } from './group-state';
import { Health } from './health';
import { describeError, serverLog, type ServerLog } from './log';
import { createMetrics, type Metrics } from './metrics';
import type { PubSubConsumer } from './pubsub-consumer';
import { RecordWriter } from './record-writer';
import { LocalCheckpoints, recoverOpenFiles } from './recovery';
import { FileSink } from './sink';
import type { StreamConsumer } from './stream-consumer';
import { startConsumer, type ShardedConsumer } from './transport';

/**
 * The composition root: wires the file sink, the record writer, the group's shared state and
 * one consumer (stream or Pub/Sub), and owns their lifecycle, health and archiving.
 */
export class LoggerServer {
  readonly metrics: Metrics = createMetrics(() => this.group.totals());
  readonly health = new Health(this.metrics);
  /** Archiving of closed files to S3; undefined when S3_BUCKET is not set. */
  readonly archive: ArchiveQueue | undefined;
  readonly group: ShardedGroupState;
  /** Set when the disk failed or the consumer name was taken: the process exits non-zero and pending entries are redelivered. */
  fatal: ServerError | undefined;
  private readonly sink: FileSink;
  private readonly dedup = new DedupCache();
  private readonly writer: RecordWriter;
  private readonly local: LocalCheckpoints;
  private readonly redis: RedisConnection;
  private consumer: StreamConsumer | ShardedConsumer | PubSubConsumer | undefined;

  constructor(
    readonly config: Readonly<ServerConfig>,
    private readonly log: ServerLog = serverLog,
  ) {
    this.sink = new FileSink(config.logDir, config.maxOpenFiles);
    this.writer = new RecordWriter(this.sink, this.dedup, this.metrics);
    this.local = new LocalCheckpoints(this.sink.statePath(`acknowledged-${config.consumer}.json`));
    this.redis = createRedisConnection({ url: config.redisUrl, clusterNodes: config.clusterNodes });
    this.group = new ShardedGroupState(this.redis, config.channel, config.group, config.consumer, config.shards);
    if (config.s3) {
      // The AWS SDK takes ~80 ms to load: only a server that archives pays for it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy, synchronous load in a constructor on purpose (see above)
      const { ArchiveQueue: Queue } = require('./archive') as typeof import('./archive');
      this.archive = new Queue({ ...config, s3: config.s3 }, this.metrics, log);
    }
  }

  async start(): Promise<void> {
    await this.redis.connect();
    await this.group.acquireLease((holder) => this.log('warn', 'LOG_CONSUMER is held by another server; waiting for its lease to expire', { consumer: this.config.consumer, holder }));
    const stream = this.config.transport === 'stream';
    const recovered = recoverOpenFiles(
      this.sink,
      this.dedup,
      {
        mode: stream ? 'acknowledged' : 'complete-lines',
        checkpoints: stream ? await this.group.checkpoints() : undefined,
        local: this.local.read(),
      },
      this.log,
    );
    for (const file of recovered) if (file.cut > 0 || file.records > 0) this.log('info', 'recovered an open file', { ...file });
    this.archive?.scan();
    // Said at once when the bucket or the credentials are wrong; not awaited: writing logs goes first.
    void this.archive?.check();
    this.archive?.start();
    const hooks = { rotate: () => this.rotate(), archiveBackpressure: () => this.archive?.paused() ?? false, fail: (error: ServerError) => this.fail(error) };
    const { writer, sink, group, local, health, metrics, log } = this;
    this.consumer = await startConsumer(this.config, { writer, sink, group, local, health, metrics, log, hooks });
    this.health.set(true, true);
    this.health.starting = false;
    this.log('info', 'logger server started', { transport: this.config.transport, logDir: this.config.logDir, consumer: this.config.consumer });
  }

  /**
   * Closes the files that are due and hands them to the archiver: only between committed batches
   * (a written but uncommitted batch stays in its open file, cut at restart and redelivered).
   * Returns false when the disk failed: the server is stopping then (fail), and the caller's loop
   * must end instead of taking the failure for a Redis one.
   */
  private rotate(all = false): boolean {
    if (this.consumer && 'uncommitted' in this.consumer && this.consumer.uncommitted) return true;
    let closed;
    try {
      closed = this.sink.rotate({ maxBytes: this.config.rotateBytes, maxAgeMs: this.config.rotateSeconds * 1000 }, Date.now(), all);
    } catch (error) {
      if (!(error instanceof DiskError)) throw error;
      this.fail(error);
      return false;
    }
    for (const file of closed) {
      this.local.forget(file.app);
      this.archive?.add(file);
    }
    return true;
  }

  /** 'off' without S3, else the archive's own health (ArchiveQueue.health). */
  archiveHealth(): { state: 'off' | 'ok' | 'degraded' | 'failing'; reason?: string } {
    return this.archive?.health() ?? { state: 'off' };
  }

  private fail(error: ServerError): void {
    if (this.fatal) return;
    this.fatal = error;
    void this.consumer?.stop();
    this.health.set(this.health.redisOk, error.code === 'CONSUMER_IN_USE' ? this.health.diskOk : false, error);
    // Also after a failed rotation, when every batch was committed: only what is not is redelivered.
    this.log(
      'error',
      error instanceof DiskError ? 'disk failure: stopping; entries not acknowledged will be redelivered' : 'stopping: entries not acknowledged will be redelivered',
      describeError(error),
    );
  }

  /** SIGHUP: close files so the next write reopens them (after logrotate moved them). */
  reopenFiles(): void {
    this.sink.close();
    this.log('info', 'reopened log files');
  }

  /** Resolves when the consumer has ended (after stop(), or on a fatal error). */
  get done(): Promise<void> {
    return this.consumer?.done ?? Promise.resolve();
  }

  /** Drains: stop reading, finish the batch in hand (write, fsync, commit), close. */
  async stop(): Promise<void> {
    await this.consumer?.stop();
    if (!this.fatal) this.rotate(true); // shutdown closes the files for archiving
    this.sink.close();
    await this.archive?.stop();
    if (!this.fatal) await this.group.releaseLease().catch(() => undefined);
    const totals = await this.group.totals().catch(() => undefined);
    this.redis.destroy();
    this.log('info', 'logger server stopped', { group: totals });
  }
}
