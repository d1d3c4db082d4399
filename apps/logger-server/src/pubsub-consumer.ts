import { randomBytes } from 'node:crypto';
import type { PubSubReader } from '@log/subscriber';
import type { ServerConfig } from './config';
import { DiskError, type ServerError } from './errors';
import type { DeadLetters } from './dead-letters';
import type { GroupState } from './group-state';
import { describeError, type ServerLog } from './log';
import type { Metrics } from './metrics';
import type { RecordWriter } from './record-writer';
import { decodePubSubMessage, type Rejected } from './records';

const COMMIT_MS = 50;

/**
 * Pub/Sub mode (at-most-once): messages heard are queued and written every 50 ms, one fsync
 * per touched file. Frames' records are merged into the group's ledger after the write (a
 * Redis that cannot take it never holds the files up); records another server of the group
 * already committed (every server hears every message) are taken back out.
 */
export class PubSubConsumer {
  private queue: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private committing: Promise<void> | undefined;
  private legacySeq = 0;
  private failed = false;
  private stopped!: () => void;
  readonly done = new Promise<void>((resolve) => (this.stopped = resolve));
  /** Always false: Pub/Sub acknowledges nothing, so a rotation never waits for a commit. */
  readonly uncommitted = false;

  constructor(
    private readonly config: Readonly<ServerConfig>,
    private readonly reader: PubSubReader,
    private readonly writer: RecordWriter,
    private readonly deadLetters: DeadLetters,
    private readonly group: GroupState,
    private readonly metrics: Metrics,
    private readonly log: ServerLog,
    private readonly hooks: { rotate(): boolean; fail(error: ServerError): void },
  ) {}

  async start(): Promise<void> {
    await this.reader.start((message) => this.queue.push(message));
    this.timer = setInterval(() => {
      this.committing ??= this.commit().finally(() => (this.committing = undefined));
    }, COMMIT_MS);
  }

  /** Stops listening and writes what was heard. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.committing;
    await this.reader.close();
    await this.commit();
    this.stopped();
  }

  private async commit(): Promise<void> {
    if (this.failed) return; // the disk failed: nothing more is written (the timer may tick once more before stop)
    this.metrics.pubsubDisconnects.set(this.reader.disconnects);
    if (this.queue.length === 0) {
      if (!this.hooks.rotate()) this.failed = true;
      return;
    }
    const messages = this.queue;
    this.queue = [];
    const now = Date.now();
    const legacyProducer = `legacy-${this.config.consumer}`;
    const dead: Rejected[] = [];
    try {
      for (const message of messages) {
        const decoded = decodePubSubMessage(message, now, this.config.consumer, legacyProducer, () => ++this.legacySeq, this.config.signingKeys);
        if (!decoded.header) this.metrics.legacyMessages.inc();
        this.writer.write(decoded, 'pubsub');
        for (const rejected of decoded.rejected) dead.push(rejected);
      }
      await this.writer.commit();
    } catch (error) {
      if (!(error instanceof DiskError)) throw error;
      this.failed = true;
      this.hooks.fail(error);
      return;
    }
    for (const rejected of dead) {
      this.log('warn', 'bad pubsub message: dead-lettered', { reason: rejected.reason, detail: rejected.detail });
      // Not awaited: a Redis that cannot take it must not hold up writing the good messages.
      this.deadLetters.store('pubsub', rejected).catch((error: unknown) => {
        this.metrics.deadLetterFailures.inc();
        this.log('error', 'could not store a dead letter; it is only counted', { reason: rejected.reason, ...describeError(error) });
      });
    }
    try {
      const token = randomBytes(8).toString('hex');
      for (;;) {
        const outcome = await this.group.commit([], new Map(), this.writer.producerCommits(), token);
        if (outcome.kind !== 'overlap') break;
        await this.writer.takeBackCommitted(outcome.ranges);
      }
    } catch (error) {
      this.log('warn', 'could not merge a batch into the loss report', describeError(error));
    } finally {
      this.writer.reset();
    }
  }
}
