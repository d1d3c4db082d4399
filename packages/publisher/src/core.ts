import { randomBytes } from 'node:crypto';
import { Backoff, FRAME_FIELD, pubsubChannel, redactRedisUrl, streamKey } from '@log/protocol';
import { createRedisConnection, type RedisConnection } from '@log/protocol/redis';
import type { RedisClientOptions } from 'redis';
import { RecordsGivenUpError, RedisUnreachableError, ReplicasBehindError, type PublisherError } from './errors';
import { FrameQueue, type Frame } from './frame-queue';
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
  /**
   * Records sent with a part replaced to fit the server's limits (LIMITS of @log/protocol): cut
   * to maxRecordBytes, or fields nested deeper than maxDepth or holding more than maxKeys keys.
   */
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

interface FlushWaiter {
  lastSeq: number;
  resolve: () => void;
}

/**
 * A small frame waits up to this long after the previous send for more records (see pump()):
 * each XADD costs a write and a read system call and ~13 µs in node-redis, far more than a record.
 */
const LINGER_MS = 1;
/** A frame holding this many UTF-16 units of lines is large enough to go at once. */
const LINGER_UNITS = 64 * 1024;
/** Spare frame buffers unused for this long (one to two periods) are let go: see FrameQueue.trimSpares. */
const SPARE_IDLE_MS = 5000;
/** How long the WAIT after a frame (waitReplicas) waits for the replicas; fewer in time and the frame is sent again. */
export const WAIT_TIMEOUT_MS = 1000;

/** The publisher's connection: a RedisConnection, which on one Redis (a node-redis client) can be unref'd. */
type PublisherConnection = RedisConnection & { unref?(): void };

/**
 * The shared half of a publisher: the frame being filled, the queue of sealed frames and the
 * Redis connection. Shaped for the log call: append() does no I/O and allocates nothing but the
 * line it is given; frames are sealed by size or once per event-loop turn and sent pipelined.
 */
export class PublisherCore implements SerializeCounters {
  readonly producer = randomBytes(8).toString('hex');
  readonly options: ResolvedOptions;
  readonly client: PublisherConnection;
  /** The stream (of this publisher's shard) or the Pub/Sub channel. */
  readonly target: string;
  /** XADD's arguments before the frame: the key, MAXLEN when asked, '*', the frame field. */
  private readonly xaddHead: string[];
  /** WAIT <replicas> <timeout> after each XADD; undefined without waitReplicas. */
  private readonly waitCommand: string[] | undefined;

  private readonly queue: FrameQueue;
  private scheduled = false;
  private inFlight = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Waits before re-sending after a failed command: from 50 ms, doubling up to 5 s, with jitter. */
  private readonly retryBackoff = new Backoff({ initialMs: 50, maxMs: 5000 });
  private lingerTimer: NodeJS.Timeout | undefined;
  private spareTimer: NodeJS.Timeout | undefined;
  /** When the last frame was sent (Date.now()). */
  private lastSendAt = 0;
  private waiters: FlushWaiter[] = [];
  private closing: Promise<void> | undefined;
  private closed = false;
  /** Reported to onError since the last connection: one report per outage, not one per retry. */
  private outage = false;

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
    this.queue = new FrameQueue(options, { producer: this.producer, app: options.app, host: options.host, pid: process.pid }, options.signingKey);
    this.target = options.transport === 'stream' ? streamKey(options.channel, options.shard) : pubsubChannel(options.channel);
    this.xaddHead = ['XADD', this.target];
    if (options.maxStreamLength !== undefined) this.xaddHead.push('MAXLEN', '~', String(options.maxStreamLength));
    this.xaddHead.push('*', FRAME_FIELD);
    this.waitCommand = options.waitReplicas > 0 ? ['WAIT', String(options.waitReplicas), String(WAIT_TIMEOUT_MS)] : undefined;
    // Connection failures are counted where they matter (sendErrors, reconnects), never thrown
    // into the app: the client's error listener ignores them.
    this.client = createRedisConnection(
      {
        ...options.redis,
        url: options.url,
        clusterNodes: options.clusterNodes,
        // Our own queue holds what is not yet sent, bounded by maxBufferBytes; node-redis's offline
        // queue would be a second, unbounded one.
        disableOfflineQueue: true,
        // node-redis stops writing commands while the socket has more than its high-water mark
        // buffered (16 KiB by default), until 'drain': with frames of a megabyte, one XADD per
        // event-loop turn, and an app logging more than that per turn fell behind and dropped.
        // Room for every frame in flight; the socket holds references to the frames' buffers,
        // which are counted in maxBufferBytes already, not copies.
        // (node-redis hands its socket options to net.createConnection; its type does not list this one.)
        socket: { highWaterMark: options.maxInFlightFrames * options.maxFrameBytes * 3, ...options.redis?.socket } as unknown as RedisClientOptions['socket'],
      },
      // node-redis emits 'error' on every failed (re)connect; the first of an outage is told to onError, once
      (error: unknown) => this.unreachable(error),
    ) as PublisherConnection;
    const cluster = options.clusterNodes !== undefined;
    this.client.on(cluster ? 'node-reconnecting' : 'reconnecting', () => {
      this.reconnects++;
    });
    // A cluster is ready ('connect') once it knows its slots, after its nodes' own 'node-ready's.
    for (const event of cluster ? ['connect', 'node-ready'] : ['ready']) {
      this.client.on(event, () => {
        this.outage = false;
        this.pump();
      });
    }
    // The connection alone never keeps the app alive; flush(), close() and the exit hook hold
    // the process open (with a timer of their own) while there is something to send. (On a
    // cluster, every node's client is unref'd as it connects: see ClusterConnection.unref.)
    this.client.unref?.();
    this.client.connect().catch(() => {
      // the first connection failed: node-redis keeps retrying, frames wait in the queue
    });
    if (options.flushOnExit) process.on('beforeExit', this.onBeforeExit);
  }

  /** True when the next record would be dropped: the logger skips serializing it. */
  full(): boolean {
    return this.closed || this.queue.full();
  }

  /** Counts a record dropped without being built (buffer full or closed). The caller has counted it in `logged`. */
  drop(): void {
    this.queue.countDrop();
    this.dropped++;
    this.schedule();
  }

  /** Appends one record line. The caller has counted it in `logged`. */
  append(line: string): void {
    if (this.closed) this.queue.countDrop();
    else {
      const sealed = this.queue.frames.length;
      if (this.queue.append(line)) {
        // A frame filled up (size or count): handed to node-redis now (it writes at its next
        // setImmediate), not held back by the wait for an empty pipeline in pump(). Once per frame.
        if (this.queue.frames.length !== sealed) this.pump();
        this.schedule();
        return;
      }
    }
    // Dropped (buffer full or closed): counted here, reported to the server with the next frame.
    this.dropped++;
    this.schedule();
  }

  /**
   * Makes sure a pump() comes after what was just buffered. The invariant that no record is left
   * unsent: after every event, if anything waits (a sealed frame not in flight, lines in the
   * frame being filled, drops not reported), a pump is promised by one of
   * - a queued setImmediate (endOfTurn),
   * - a frame in flight: its command settles, and accepted() pumps, or failed() arms the retry timer,
   * - the retry timer or the linger timer, armed: each pumps when it fires,
   * - the client not ready: its 'ready' (a cluster's 'connect' / 'node-ready') listener pumps;
   *   node-redis reconnects until close() (as before, a client whose reconnect strategy gives up
   *   never sends again: pump() refuses to send while it is not ready),
   * and every pump() leaves one behind while something waits (see pump()). So the setImmediate is
   * queued only when none of the others is certain: a loop logging once per turn, with a frame in
   * flight, does not pay an immediate per turn that would only find pump() with nothing to do.
   * (Nor does a log call during the retry backoff re-send a failed frame before the backoff ends,
   * as its immediate used to; flush() and close() still pump at once.)
   */
  private schedule(): void {
    if (this.scheduled || this.inFlight > 0 || this.lingerTimer !== undefined || this.retryTimer !== undefined || !this.client.isReady) return;
    this.scheduled = true;
    setImmediate(this.endOfTurn);
  }

  private readonly endOfTurn = (): void => {
    this.scheduled = false;
    this.pump();
  };

  /**
   * Sends sealed frames while fewer than maxInFlightFrames are unanswered. The frame being
   * filled is sealed and sent here only when nothing is in flight (as Nagle's algorithm does),
   * and, when it is small, not sooner than LINGER_MS after the previous send; otherwise it keeps
   * growing until Redis answers (accepted() pumps again), the linger timer fires, or it is full
   * (cut by size and count as it fills, and sent at once). So an app that logs once per
   * event-loop turn (a request handler) sends a frame per round trip or millisecond, not one
   * XADD per record, and a record waits at most a round trip or a millisecond more.
   * Returns only with nothing waiting or a later pump promised (schedule()'s invariant): not
   * ready ('ready' pumps); frames in flight (their settling pumps: with inFlight 0 every sealed
   * frame has just been sent, maxInFlightFrames being at least 1); the linger timer armed; or
   * the frame being filled sealed and sent (in flight).
   */
  private pump(): void {
    if (!this.client.isReady) return;
    const max = this.options.maxInFlightFrames;
    for (const frame of this.queue.frames) {
      if (this.inFlight >= max) return;
      if (!frame.inFlight) this.send(frame);
    }
    if (this.inFlight > 0) return;
    const wait = this.lastSendAt + LINGER_MS - Date.now();
    if (wait > 0 && this.queue.fillingUnits < LINGER_UNITS) {
      if (this.lingerTimer === undefined && (this.queue.fillingUnits > 0 || this.queue.dropsUnreported)) {
        this.lingerTimer = setTimeout(this.lingered, wait);
        this.lingerTimer.unref(); // flush(), close() and the exit hook keep the process alive, not this
      }
      return;
    }
    if (this.queue.seal()) this.send(this.queue.frames[this.queue.frames.length - 1] as Frame);
  }

  private readonly lingered = (): void => {
    this.lingerTimer = undefined;
    this.pump();
  };

  private send(frame: Frame): void {
    const payload = this.queue.encode(frame);
    this.lastSendAt = Date.now();
    frame.inFlight = true;
    this.inFlight++;
    let command: Promise<unknown>;
    if (this.options.transport === 'pubsub') command = this.client.sendCommand(['PUBLISH', this.target, payload]);
    else {
      command = this.client.sendCommand([...this.xaddHead, payload]);
      const wait = this.waitCommand;
      if (wait !== undefined) {
        // Once Redis has the frame, on the connection of the stream's master: WAIT counts the
        // replicas that have every write of that connection so far, so this frame's too.
        command = command.then(async (reply) => {
          const replicas = Number(await this.client.sendCommand(wait, undefined, this.target));
          if (replicas < this.options.waitReplicas) throw new ReplicasBehindError(replicas, this.options.waitReplicas, WAIT_TIMEOUT_MS);
          return reply;
        });
      }
    }
    command.then(
      (reply) => this.accepted(frame, reply),
      (error: unknown) => {
        this.failed(frame);
        this.unreachable(error);
      },
    );
  }

  private accepted(frame: Frame, reply: unknown): void {
    this.inFlight--;
    this.queue.remove(frame);
    if (this.spareTimer === undefined && this.queue.spareBuffers > 0) this.armSpareTimer();
    this.sent += frame.count;
    this.frames++;
    this.bytes += frame.payload?.length ?? 0;
    if (this.options.transport === 'pubsub' && reply === 0) this.unheard += frame.count;
    this.retryBackoff.reset();
    this.outage = false;
    this.releaseWaiters();
    if (this.queue.dropsUnreported) this.schedule(); // the rest of drops one header could not carry
    this.pump();
  }

  private armSpareTimer(): void {
    this.spareTimer = setTimeout(this.trimSpares, SPARE_IDLE_MS);
    this.spareTimer.unref();
  }

  private readonly trimSpares = (): void => {
    this.spareTimer = undefined;
    if (this.queue.trimSpares()) this.armSpareTimer();
  };

  private failed(frame: Frame): void {
    this.inFlight--;
    frame.inFlight = false;
    this.sendErrors++;
    // Re-sent with the same producer id and sequence numbers; the server drops any duplicate.
    if (this.retryTimer === undefined) {
      // A timer, not sleep(): it is unref'd, so a publisher waiting to retry never keeps the app alive.
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.pump();
      }, this.retryBackoff.next());
      this.retryTimer.unref();
    }
  }

  private unreachable(cause: unknown): void {
    if (this.outage || this.closed) return;
    this.outage = true;
    const where = this.options.clusterNodes === undefined ? redactRedisUrl(this.options.url) : this.options.clusterNodes.map(redactRedisUrl).join(',');
    this.report(cause instanceof ReplicasBehindError ? cause : new RedisUnreachableError(where, cause));
  }

  /** Hands an error to onError; an onError that throws must not break logging. */
  private report(error: PublisherError): void {
    try {
      this.options.onError(error);
    } catch {
      // the app's handler failed: nothing more to tell it
    }
  }

  private releaseWaiters(): void {
    if (this.waiters.length === 0) return;
    const firstPending = this.queue.firstPendingSeq();
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.lastSeq >= firstPending) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves when every record appended before the call has been accepted by Redis. */
  flush(): Promise<void> {
    return this.flushWithin(undefined).then(() => undefined);
  }

  /**
   * Like flush(), giving up after `timeoutMs` (resolves false then). While it waits, a timer
   * keeps the process alive: the Redis connection itself is unref'd and never does.
   */
  private flushWithin(timeoutMs: number | undefined): Promise<boolean> {
    this.queue.seal();
    this.pump();
    const lastSeq = this.queue.lastSeq();
    if (this.queue.firstPendingSeq() > lastSeq) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const keepAlive = setInterval(() => {}, 1 << 30);
      let timer: NodeJS.Timeout | undefined;
      const waiter: FlushWaiter = {
        lastSeq,
        resolve: () => {
          clearInterval(keepAlive);
          clearTimeout(timer);
          resolve(true);
        },
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          clearInterval(keepAlive);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(false);
        }, timeoutMs);
      }
      this.waiters.push(waiter);
    });
  }

  /** Flushes for at most `timeoutMs`, then disconnects. Later log calls are counted as dropped. */
  close(timeoutMs: number): Promise<void> {
    this.closing ??= (async () => {
      const flushed = await this.flushWithin(timeoutMs);
      this.closed = true;
      if (!flushed) {
        const givenUp = this.queue.discard();
        this.dropped += givenUp;
        if (givenUp > 0) this.report(new RecordsGivenUpError(givenUp, timeoutMs));
      }
      process.removeListener('beforeExit', this.onBeforeExit);
      if (this.retryTimer) clearTimeout(this.retryTimer);
      if (this.lingerTimer) clearTimeout(this.lingerTimer);
      if (this.spareTimer) clearTimeout(this.spareTimer);
      this.client.destroy();
    })();
    return this.closing;
  }

  // The event loop ran dry with records still buffered: flush them (5 s at most), keeping the
  // publisher usable, since an app may go on after beforeExit.
  private exitFlush: Promise<boolean> | undefined;
  private readonly onBeforeExit = (): void => {
    if (this.closed || this.exitFlush || this.queue.firstPendingSeq() === Number.POSITIVE_INFINITY) return;
    this.exitFlush = this.flushWithin(5000).finally(() => {
      this.exitFlush = undefined;
    });
  };

  stats(): PublisherStats {
    return {
      logged: this.logged,
      sent: this.sent,
      dropped: this.dropped,
      buffered: this.queue.bufferedRecords,
      bufferedBytes: this.queue.bufferedBytes,
      truncated: this.truncated,
      unserializable: this.unserializable,
      frames: this.frames,
      bytes: this.bytes,
      reconnects: this.reconnects,
      sendErrors: this.sendErrors,
      unheard: this.unheard,
    };
  }
}
