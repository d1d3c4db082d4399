import { randomBytes } from 'node:crypto';
import { FRAME_FIELD, encodeFrameHeader, pubsubChannel, streamKey } from '@log/protocol';
import { createClient, type RedisClientType } from 'redis';
import type { ResolvedOptions } from './options';
import type { SerializeCounters } from './serialize';

/** Counters of one publisher (shared by its child loggers). logged = sent + dropped + buffered. */
export interface PublisherStats {
  /** Records passed to an enabled log call. */
  logged: number;
  /** Records accepted by Redis. */
  sent: number;
  /** Records dropped (buffer full, or logged after close) and reported to the server. */
  dropped: number;
  /** Records logged but not yet accepted by Redis. */
  buffered: number;
  /** Bytes held for those records. */
  bufferedBytes: number;
  /** Records cut to maxRecordBytes (they are still sent). */
  truncated: number;
  /** Values replaced because they could not be serialized (circular, BigInt, throwing getters). */
  unserializable: number;
  /** Frames accepted by Redis, and their bytes. */
  frames: number;
  bytes: number;
  /** Times the connection to Redis was lost and re-established. */
  reconnects: number;
  /** Commands Redis refused or that failed with the connection; their frames were re-sent. */
  sendErrors: number;
  /** Pub/Sub only: records published while no subscriber listened (Redis answered 0). */
  unheard: number;
}

interface Frame {
  firstSeq: number;
  lines: string[];
  /** Built on first send so that the drop count it reports is the latest; fixed after that. */
  text: string | undefined;
  bytes: number;
  inFlight: boolean;
}

interface FlushWaiter {
  lastSeq: number;
  resolve: () => void;
}

const MAX_RETRY_DELAY_MS = 5000;

/**
 * The shared half of a publisher: the frame being filled, the queue of sealed frames and the
 * Redis connection. Shaped for the log call: append() does no I/O and allocates nothing but the
 * line it is given; frames are sealed by size or once per event-loop turn and sent pipelined.
 */
export class PublisherCore implements SerializeCounters {
  readonly producer = randomBytes(8).toString('hex');
  readonly options: ResolvedOptions;
  readonly client: RedisClientType;
  private readonly target: string;

  // the frame being filled
  private lines: string[] = [];
  private linesBytes = 0;
  private nextSeq = 1;
  private scheduled = false;

  // sealed frames, oldest first, until Redis accepts them
  private readonly queue: Frame[] = [];
  private inFlight = 0;
  private queuedBytes = 0;
  private droppedSinceReport = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 50;
  private waiters: FlushWaiter[] = [];
  private closing: Promise<void> | undefined;
  private closed = false;
  private lastError: unknown;

  logged = 0;
  sent = 0;
  dropped = 0;
  truncated = 0;
  unserializable = 0;
  frames = 0;
  bytes = 0;
  reconnects = 0;
  sendErrors = 0;
  unheard = 0;

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.target = options.transport === 'stream' ? streamKey(options.channel) : pubsubChannel(options.channel);
    this.client = createClient({
      ...options.redis,
      url: options.url,
      // Our own queue holds what is not yet sent, bounded by maxBufferBytes; node-redis's offline
      // queue would be a second, unbounded one.
      disableOfflineQueue: true,
    }) as RedisClientType;
    this.client.on('error', (error: unknown) => {
      this.lastError = error;
    });
    this.client.on('reconnecting', () => {
      this.reconnects++;
    });
    this.client.on('ready', () => this.pump());
    // The connection alone never keeps the app alive; flush() and the exit hook hold it open
    // while there is something to send.
    this.client.unref();
    this.client.connect().catch((error: unknown) => {
      this.lastError = error;
    });
    if (options.flushOnExit) process.once('beforeExit', this.onBeforeExit);
  }

  /** Appends one record line. The caller has counted it in `logged`. */
  append(line: string): void {
    const bytes = line.length;
    if (this.closed || this.queuedBytes + this.linesBytes + bytes > this.options.maxBufferBytes) {
      // Drop the newest record: what is buffered is older and already has sequence numbers,
      // so the sequence stays gap-free and every drop is a counted, reported drop.
      this.dropped++;
      this.droppedSinceReport++;
      this.schedule();
      return;
    }
    if (this.lines.length > 0 && this.linesBytes + bytes > this.options.maxFrameBytes) this.seal();
    this.lines.push(line);
    this.linesBytes += bytes;
    if (this.lines.length >= this.options.maxFrameRecords) this.seal();
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.endOfTurn);
  }

  private readonly endOfTurn = (): void => {
    this.scheduled = false;
    this.seal();
    this.pump();
  };

  /** Closes the frame being filled (or opens an empty one that only reports drops). */
  private seal(): void {
    if (this.lines.length === 0) {
      if (this.droppedSinceReport === 0 || this.queue.some((frame) => frame.text === undefined)) return;
    }
    const count = this.lines.length;
    this.queue.push({ firstSeq: this.nextSeq, lines: this.lines, text: undefined, bytes: this.linesBytes, inFlight: false });
    this.queuedBytes += this.linesBytes;
    this.nextSeq += count;
    this.lines = [];
    this.linesBytes = 0;
  }

  private pump(): void {
    if (!this.client.isReady) return;
    for (const frame of this.queue) {
      if (this.inFlight >= this.options.maxInFlightFrames) return;
      if (!frame.inFlight) this.send(frame);
    }
  }

  private send(frame: Frame): void {
    if (frame.text === undefined) {
      const header = encodeFrameHeader({
        producer: this.producer,
        seq: frame.firstSeq,
        count: frame.lines.length,
        app: this.options.app,
        host: this.options.host,
        pid: process.pid,
        dropped: this.droppedSinceReport,
      });
      this.droppedSinceReport = 0;
      frame.text = frame.lines.length === 0 ? header : header + '\n' + frame.lines.join('\n');
    }
    frame.inFlight = true;
    this.inFlight++;
    const command =
      this.options.transport === 'stream'
        ? this.client.xAdd(this.target, '*', { [FRAME_FIELD]: frame.text })
        : this.client.publish(this.target, frame.text);
    command.then(
      (reply) => this.accepted(frame, reply),
      (error: unknown) => this.failed(frame, error),
    );
  }

  private accepted(frame: Frame, reply: unknown): void {
    this.inFlight--;
    const index = this.queue.indexOf(frame);
    if (index >= 0) this.queue.splice(index, 1);
    this.queuedBytes -= frame.bytes;
    this.sent += frame.lines.length;
    this.frames++;
    this.bytes += frame.text?.length ?? 0;
    if (this.options.transport === 'pubsub' && reply === 0) this.unheard += frame.lines.length;
    this.retryDelayMs = 50;
    this.releaseWaiters();
    this.pump();
  }

  private failed(frame: Frame, error: unknown): void {
    this.inFlight--;
    frame.inFlight = false;
    this.sendErrors++;
    this.lastError = error;
    // Re-sent with the same producer id and sequence numbers; the server drops any duplicate.
    if (this.retryTimer === undefined) {
      const delay = this.retryDelayMs * (0.5 + Math.random());
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, MAX_RETRY_DELAY_MS);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.pump();
      }, delay);
      this.retryTimer.unref();
    }
  }

  private releaseWaiters(): void {
    if (this.waiters.length === 0) return;
    const firstPending = this.firstPendingSeq();
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.lastSeq >= firstPending) return true;
      waiter.resolve();
      return false;
    });
  }

  private firstPendingSeq(): number {
    for (const frame of this.queue) if (frame.lines.length > 0) return frame.firstSeq;
    return this.lines.length > 0 ? this.nextSeq : Number.POSITIVE_INFINITY;
  }

  /** Resolves when every record appended before the call has been accepted by Redis. */
  flush(): Promise<void> {
    this.seal();
    this.pump();
    const lastSeq = this.nextSeq - 1;
    if (this.firstPendingSeq() > lastSeq) return Promise.resolve();
    // While there is something to send, the connection keeps the process alive.
    this.client.ref();
    return new Promise<void>((resolve) => this.waiters.push({ lastSeq, resolve })).finally(() => {
      if (this.waiters.length === 0) this.client.unref();
    });
  }

  /** Flushes for at most `timeoutMs`, then disconnects. Later log calls are counted as dropped. */
  close(timeoutMs: number): Promise<void> {
    this.closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([this.flush(), deadline]);
      clearTimeout(timer);
      this.closed = true;
      process.removeListener('beforeExit', this.onBeforeExit);
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.client.destroy();
    })();
    return this.closing;
  }

  private readonly onBeforeExit = (): void => {
    if (this.closed || this.firstPendingSeq() === Number.POSITIVE_INFINITY) return;
    void this.close(5000);
  };

  bufferedRecords(): number {
    let records = this.lines.length;
    for (const frame of this.queue) records += frame.lines.length;
    return records;
  }

  stats(): PublisherStats {
    return {
      logged: this.logged,
      sent: this.sent,
      dropped: this.dropped,
      buffered: this.bufferedRecords(),
      bufferedBytes: this.queuedBytes + this.linesBytes,
      truncated: this.truncated,
      unserializable: this.unserializable,
      frames: this.frames,
      bytes: this.bytes,
      reconnects: this.reconnects,
      sendErrors: this.sendErrors,
      unheard: this.unheard,
    };
  }

  /** The last error seen from Redis, for diagnostics; it never reaches the app as a throw. */
  get lastRedisError(): unknown {
    return this.lastError;
  }
}
