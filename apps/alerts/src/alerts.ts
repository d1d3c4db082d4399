import { BadSignatureError, Backoff, LEVEL_VALUES, decodeFrame, decodeRecord, shardsOf, type SigningKeys } from '@log/protocol';
import { StreamReader } from '@log/subscriber';
import { Counter, Gauge, Registry } from 'prom-client';
import { ErrorCounter } from './error-counter';

export interface AlertsOptions {
  url: string;
  /** Seed URLs of a Redis Cluster (REDIS_CLUSTER_NODES): read from it instead of `url`. */
  clusterNodes?: readonly string[];
  channel: string;
  /** The channel's shards (LOG_SHARDS): its group reads every shard's stream. @defaultValue 1 */
  shards?: number;
  /**
   * The logger servers' LOG_SIGNING_KEYS: frames are checked as the servers check them, and one
   * that fails is not counted (the servers dead-letter it) but counted in
   * alerts_bad_signature_frames_total. Undefined: a signature line is skipped unchecked.
   */
  signingKeys?: SigningKeys;
  /** Its own consumer group: it reads every record, beside the logger servers' group, taking nothing from them. */
  group: string;
  consumer: string;
  /** Error records of one app in one minute that make an alert. */
  threshold: number;
  /** Where an alert is POSTed as JSON `{ app, minute, errors, threshold }`; undefined: metrics only. */
  webhookUrl: string | undefined;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** One alert as the webhook receives it. */
export interface Alert {
  app: string;
  /** ISO start of the minute. */
  minute: string;
  errors: number;
  threshold: number;
}

const ERROR = LEVEL_VALUES.error;

/**
 * Counts error records (level error and above) per app per minute from its own consumer group.
 * At-least-once, like every group reader: entries are acknowledged after they are counted, so
 * a crash between the two counts those entries again (fine for alerting, not for accounting).
 * While it is stopped its group holds the logger servers' trimming back: nothing is lost to it.
 */
export class Alerts {
  readonly registry = new Registry();
  private readonly errors = new Counter({ name: 'alerts_error_records_total', help: 'Error records (level error and above) read, per app', labelNames: ['app'], registers: [this.registry] });
  private readonly records = new Counter({ name: 'alerts_records_total', help: 'Records read', registers: [this.registry] });
  private readonly alertsSent = new Counter({ name: 'alerts_sent_total', help: 'Alerts sent to the webhook', labelNames: ['app'], registers: [this.registry] });
  private readonly webhookFailures = new Counter({ name: 'alerts_webhook_failures_total', help: 'Alerts the webhook did not take (logged, not retried)', registers: [this.registry] });
  private readonly badSignatures = new Counter({
    name: 'alerts_bad_signature_frames_total',
    help: 'Frames whose signature failed the check against LOG_SIGNING_KEYS: their records are not counted (the servers dead-letter them)',
    registers: [this.registry],
  });
  private readonly lastMinute = new Gauge({ name: 'alerts_errors_this_minute', help: 'Error records of the current minute, per app', labelNames: ['app'], registers: [this.registry] });
  private readonly counter: ErrorCounter;
  /** One reader per shard of the channel, each in its group on that shard's stream. */
  private readonly readers: StreamReader[];
  private running = false;
  private loops: Array<Promise<void>> = [];
  private nextPrune = 0;

  constructor(private readonly options: AlertsOptions) {
    this.counter = new ErrorCounter(options.threshold);
    const { url, clusterNodes, channel, group, consumer } = options;
    this.readers = shardsOf(options.shards ?? 1).map((shard) => new StreamReader({ url, clusterNodes, channel, shard, group, consumer, blockMs: 500 }));
  }

  async start(): Promise<void> {
    for (const reader of this.readers) await reader.start();
    this.running = true;
    // A loop per shard: one shard's Redis failing (a cluster master down) holds none of the others back.
    this.loops = this.readers.map((reader, i) => this.run(reader, this.readers.length === 1 ? undefined : i));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const reader of this.readers) await reader.close();
  }

  private async run(reader: StreamReader, shard: number | undefined): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    while (this.running) {
      let entries;
      try {
        ({ entries } = await reader.read());
        backoff.reset();
      } catch (error) {
        this.options.log?.('reading failed; retrying', { shard, error: (error as Error).message, retryInMs: backoff.delayMs });
        await backoff.wait();
        continue;
      }
      const alerts: Alert[] = [];
      for (const entry of entries) if (entry.frame) this.count(entry.frame, entry.id, shard, alerts);
      await reader.ack(entries.map((entry) => entry.id));
      for (const alert of alerts) await this.send(alert);
      const now = Date.now();
      if (now >= this.nextPrune) {
        this.counter.prune(now);
        this.nextPrune = now + 60_000;
      }
    }
  }

  /** Counts one frame's records; what does not decode (or, with signing keys, fails its signature) is the logger servers' to dead-letter, not ours. */
  private count(frame: Buffer, entryId: string, shard: number | undefined, alerts: Alert[]): void {
    let decoded;
    try {
      decoded = decodeFrame(frame, { entryId, keys: this.options.signingKeys });
    } catch (error) {
      if (error instanceof BadSignatureError) {
        this.badSignatures.inc();
        this.options.log?.('frame not counted: bad signature', { shard, entryId, error: error.message });
      }
      return;
    }
    for (let i = 0; i < decoded.lines.length; i++) {
      let record;
      try {
        record = decodeRecord(decoded, i);
      } catch {
        continue;
      }
      this.records.inc();
      if ((LEVEL_VALUES[record.level] ?? 0) < ERROR) continue;
      this.errors.inc({ app: record.app });
      if (this.counter.add(record.app, record.time)) {
        const minute = Math.floor(record.time / 60_000) * 60_000;
        alerts.push({ app: record.app, minute: new Date(minute).toISOString(), errors: this.counter.count(record.app, record.time), threshold: this.options.threshold });
      }
      this.lastMinute.set({ app: record.app }, this.counter.count(record.app, Date.now()));
    }
  }

  private async send(alert: Alert): Promise<void> {
    this.options.log?.('alert', { ...alert });
    if (this.options.webhookUrl === undefined) return;
    try {
      const response = await fetch(this.options.webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(alert), signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.alertsSent.inc({ app: alert.app });
    } catch (error) {
      this.webhookFailures.inc();
      this.options.log?.('webhook failed', { app: alert.app, error: (error as Error).message });
    }
  }
}
