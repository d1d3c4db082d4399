import { createRedisConnection, type RedisConnection } from '@log/protocol/redis';
import type { ArchiveQueue } from './archive';
import type { ServerConfig } from './config';
import { DedupCache } from './dedup';
import { DiskError, type ServerError } from './errors';
import { ShardedGroupState } from './group-state';
import { Health } from './health';
import { describeError, serverLog, type ServerLog } from './log';
import { createMetrics, type Metrics } from './metrics';
import { RecordWriter } from './record-writer';
import { LocalCheckpoints, recoverAtStart } from './recovery';
import { FileRotation } from './rotation';
import { FileSink } from './sink';
import { startConsumer, type Consumer } from './transport';

/**
 * How long a clean stop spends closing open files for archiving (each is a manifest, a rename and
 * three fsyncs: thousands of app names take longer than main.ts's drain deadline allows).
 */
const SHUTDOWN_ROTATION_MS = 4000;

/** The composition root: wires the parts, owns their lifecycle (start, fail, drain) and health. */
export class LoggerServer {
  readonly metrics: Metrics;
  readonly health: Health;
  /** Archiving of closed files to S3; undefined when S3_BUCKET is not set. */
  readonly archive: ArchiveQueue | undefined;
  readonly group: ShardedGroupState;
  /** Set when the disk failed or the consumer name was taken: the process exits non-zero and pending entries are redelivered. */
  fatal: ServerError | undefined;
  private readonly sink: FileSink;
  private readonly dedup = new DedupCache();
  private readonly local: LocalCheckpoints;
  private readonly rotation: FileRotation;
  private readonly redis: RedisConnection;
  private consumer: Consumer | undefined;

  constructor(
    readonly config: Readonly<ServerConfig>,
    private readonly log: ServerLog = serverLog,
  ) {
    this.metrics = createMetrics(() => this.group.totals(), config.shards);
    this.health = new Health(this.metrics, config.shards);
    this.sink = new FileSink(config.logDir, config.maxOpenFiles);
    this.local = new LocalCheckpoints(this.sink.statePath(`acknowledged-${config.consumer}.json`));
    this.redis = createRedisConnection({ url: config.redisUrl, clusterNodes: config.clusterNodes });
    this.group = new ShardedGroupState(this.redis, config.channel, config.group, config.consumer, config.shards);
    if (config.s3) {
      // The AWS SDK takes ~80 ms to load: only a server that archives pays for it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy, synchronous load in a constructor on purpose (see above)
      const { ArchiveQueue: Queue } = require('./archive') as typeof import('./archive');
      this.archive = new Queue({ ...config, s3: config.s3 }, this.metrics, log);
    }
    const policy = { maxBytes: config.rotateBytes, maxAgeMs: config.rotateSeconds * 1000 };
    this.rotation = new FileRotation(
      this.sink,
      policy,
      this.local,
      this.archive,
      () => this.consumer?.uncommitted === true,
      (error) => this.fail(error),
      { log, metrics: this.metrics },
    );
  }

  async start(): Promise<void> {
    await this.redis.connect();
    await this.group.acquireLease((holder) => this.log('warn', 'LOG_CONSUMER is held by another server; waiting for its lease to expire', { consumer: this.config.consumer, holder }));
    await recoverAtStart(this.config.transport, this.sink, this.dedup, this.group, this.local, this.log);
    this.archive?.scan();
    void this.archive?.check(); // said at once when the bucket or credentials are wrong; writing logs goes first
    this.archive?.start();
    const hooks = {
      rotate: () => this.rotation.run(),
      rotationDue: () => this.rotation.due(),
      archiveBackpressure: () => this.archive?.paused() ?? false,
      fail: (error: ServerError) => this.fail(error),
    };
    const writer = new RecordWriter(this.sink, this.dedup, this.metrics);
    const { sink, group, local, health, metrics, log } = this;
    this.consumer = await startConsumer(this.config, { writer, sink, group, local, health, metrics, log, hooks });
    this.health.set(true, true);
    this.health.starting = false;
    this.log('info', 'logger server started', { transport: this.config.transport, logDir: this.config.logDir, consumer: this.config.consumer });
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
    const what = error instanceof DiskError ? 'disk failure: stopping' : 'stopping';
    this.log('error', `${what}; entries not acknowledged will be redelivered`, describeError(error));
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

  /** Drains: stop reading, finish the batch in hand (write, fsync, commit), close the files for archiving. */
  async stop(): Promise<void> {
    await this.consumer?.stop();
    if (!this.fatal) {
      this.rotation.run(true, Date.now(), Date.now() + SHUTDOWN_ROTATION_MS);
      const left = this.sink.nonEmptyFiles;
      if (left > 0) this.log('warn', 'left open files for the next start to recover: closing them all would outlast the drain', { files: left });
    }
    this.sink.close();
    await this.archive?.stop();
    if (!this.fatal) await this.group.releaseLease().catch(() => undefined);
    const totals = await this.group.totals().catch(() => undefined);
    this.redis.destroy();
    this.log('info', 'logger server stopped', { group: totals });
  }
}
