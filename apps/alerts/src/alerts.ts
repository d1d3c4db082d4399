import { Backoff, LEVEL_VALUES, decodeFrame, decodeRecord } from '@log/protocol';
import { StreamReader } from '@log/subscriber';
import { Counter, Gauge, Registry } from 'prom-client';
import { ErrorCounter } from './error-counter';

export interface AlertsOptions {
  url: string;
  channel: string;
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
  private readonly lastMinute = new Gauge({ name: 'alerts_errors_this_minute', help: 'Error records of the current minute, per app', labelNames: ['app'], registers: [this.registry] });
  private readonly counter: ErrorCounter;
  private readonly reader: StreamReader;
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: AlertsOptions) {
    this.counter = new ErrorCounter(options.threshold);
    this.reader = new StreamReader({ url: options.url, channel: options.channel, group: options.group, consumer: options.consumer, blockMs: 500 });
  }

  async start(): Promise<void> {
    await this.reader.start();
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.reader.close();
  }

  private async run(): Promise<void> {
    let nextPrune = 0;
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    while (this.running) {
      let entries;
      try {
        ({ entries } = await this.reader.read());
        backoff.reset();
      } catch (error) {
        this.options.log?.('reading failed; retrying', { error: (error as Error).message, retryInMs: backoff.delayMs });
        await backoff.wait();
        continue;
      }
      const alerts: Alert[] = [];
      for (const entry of entries) if (entry.frame) this.count(entry.frame, entry.id, alerts);
      await this.reader.ack(entries.map((entry) => entry.id));
      for (const alert of alerts) await this.send(alert);
      const now = Date.now();
      if (now >= nextPrune) {
        this.counter.prune(now);
        nextPrune = now + 60_000;
      }
    }
  }

  /** Counts one frame's records; what does not decode is the logger servers' to dead-letter, not ours. */
  private count(frame: Buffer, entryId: string, alerts: Alert[]): void {
    let decoded;
    try {
      decoded = decodeFrame(frame, { entryId });
    } catch {
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
