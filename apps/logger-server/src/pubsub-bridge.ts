import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Backoff, FRAME_FIELD, encodeFrame, encodeRecord, isFrame, pubsubBridgeKeys, streamKey } from '@log/protocol';
import { LuaScript, createRedisClient } from '@log/protocol/redis';
import type { PubSubReader } from '@log/subscriber';
import type { RedisClientType } from 'redis';
import type { ServerConfig } from './config';
import type { DeadLetters } from './dead-letters';
import { describeError, type ServerLog } from './log';
import type { Metrics } from './metrics';
import { decodePubSubMessage } from './records';

const ACQUIRE = LuaScript.fromFile(join(__dirname, '..', 'lua', 'lease.lua'));
const RELEASE = LuaScript.fromFile(join(__dirname, '..', 'lua', 'release.lua'));
const FORWARD = LuaScript.fromFile(join(__dirname, '..', 'lua', 'bridge.lua'));

/** The bridge lease's expiry: a killed bridge is replaced this long (plus a poll) after its last forward. */
export const BRIDGE_LEASE_TTL_MS = 3_000;
/** How often a standby looks for a free lease, and a holder renews it when it has nothing to forward. */
const LEASE_POLL_MS = 500;
/** How often heard messages are forwarded: one script call (XADDs and renewal) per tick. */
const FORWARD_MS = 50;
/** A barrier not heard back this long is published again (the subscription may have been down). */
const BARRIER_RETRY_MS = 2_000;
/** A frame the bridge builds from plain messages holds at most this many records or UTF-16 units. */
const FRAME_RECORDS = 1_000;
const FRAME_UNITS = 512 * 1024;
/** Frames sent per script call, at most this many bytes (a bigger backlog goes over several ticks). */
const CALL_BYTES = 8 * 1024 * 1024;
/** Past this many bytes waiting (Redis down), new messages are dropped and counted (logger_pubsub_bridge_lost_messages_total). */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;

type State = 'standby' | 'syncing' | 'forwarding';

interface Pending {
  payload: Buffer;
  /** Pub/Sub messages it carries: one (a publisher's frame) or the plain messages it was built from. */
  messages: number;
}

/**
 * LOG_TRANSPORT=stream,pubsub: moves the channel's Pub/Sub messages into the stream, so that they
 * are durable from then on and written once by the group, however many servers run. Every such
 * server subscribes; one holds the bridge lease (per channel) and forwards, the others stand by.
 *
 * - Our publishers' frames are added as they came (signature and all). Plain messages (existing
 *   publishers) become frames of this bridge's own producer id, per app, numbered from 1, so the
 *   group's dedup and loss report cover them like any producer's records.
 * - Every forward is one script call that adds the frames only while this server holds the lease
 *   (lua/bridge.lua), and renews it: a bridge that was paused past its expiry adds nothing, so
 *   what its successor forwarded is never added twice.
 * - A server taking the lease over first publishes a barrier on the barrier channel, subscribed on
 *   the same connection as the channel, and forwards only what it hears after its own barrier:
 *   what it hears before was published before the takeover (the old bridge forwarded it, or it
 *   is lost with it). A resumed process whose timers run before its socket is read therefore
 *   never forwards a backlog its predecessor already forwarded.
 *
 * What it loses is Pub/Sub's own loss: messages the old bridge heard and had not added when it
 * died (at most FORWARD_MS of them), and what is published from then until the new bridge's
 * barrier (the lease's expiry, BRIDGE_LEASE_TTL_MS, plus a poll). It never duplicates one.
 */
export class PubSubBridge {
  private readonly client: RedisClientType;
  private readonly keys: ReturnType<typeof pubsubBridgeKeys>;
  private readonly stream: string;
  private readonly leaseValue = `${randomBytes(8).toString('hex')} ${hostname()} ${process.pid} ${new Date().toISOString()}`;
  /** This bridge's producer id for frames built from plain messages; their sequence numbers run per app. */
  private readonly producer = randomBytes(8).toString('hex');
  private readonly nextSeq = new Map<string, number>();
  private state: State = 'standby';
  private barrier = '';
  private barrierAt = 0;
  private heard: Buffer[] = [];
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private forwarding: Promise<void> | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private forwardTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff({ initialMs: 100, maxMs: 2000, jitter: 0 });
  /** While Redis fails: when to try the next forward (0: not failing). */
  private retryAt = 0;
  /** When the last forward (or renewal) was sent. */
  private lastCallAt = 0;
  private stopped = false;

  constructor(
    private readonly config: Readonly<ServerConfig>,
    private readonly reader: PubSubReader,
    private readonly deadLetters: DeadLetters,
    private readonly metrics: Metrics,
    private readonly log: ServerLog,
  ) {
    this.client = createRedisClient({ url: config.redisUrl });
    this.keys = pubsubBridgeKeys(config.channel);
    this.stream = streamKey(config.channel);
  }

  /** True while this server forwards the channel into the stream. */
  get holder(): boolean {
    return this.state === 'forwarding';
  }

  async start(): Promise<void> {
    await this.client.connect();
    await this.reader.start((message, channel) => this.heardMessage(message, channel), [this.keys.barrier]);
    this.leaseTimer = setInterval(() => void this.lookAtLease(), LEASE_POLL_MS);
    this.forwardTimer = setInterval(() => {
      this.forwarding ??= this.forward().finally(() => (this.forwarding = undefined));
    }, FORWARD_MS);
    await this.lookAtLease();
  }

  /** Forwards what it holds (one try), gives the lease up so a standby takes over at its next poll, and disconnects. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.leaseTimer);
    clearInterval(this.forwardTimer);
    await this.forwarding;
    if (this.state === 'forwarding') {
      this.retryAt = 0;
      await this.forward();
      await RELEASE.run(this.client, [this.keys.lease], [this.leaseValue]).catch(() => undefined);
      this.lose('stopping', this.pendingMessages());
    }
    this.setState('standby');
    await this.reader.close();
    this.client.destroy();
  }

  private heardMessage(message: Buffer, channel: string): void {
    if (channel === this.keys.barrier) {
      if (this.state === 'syncing' && message.toString('latin1') === this.barrier) {
        this.setState('forwarding');
        this.log('info', 'this server is the Pub/Sub bridge now: messages heard from here on are moved into the stream', { barrier: this.barrier });
      }
      return;
    }
    if (this.state === 'forwarding') this.heard.push(message);
    else if (this.state === 'syncing') this.metrics.bridgeSkipped.inc();
  }

  /** Standby: takes a free lease and publishes the barrier. Syncing: publishes the barrier again when it was not heard back. */
  private async lookAtLease(): Promise<void> {
    if (this.stopped) return;
    try {
      if (this.state === 'standby') {
        const holder = await ACQUIRE.run<string>(this.client, [this.keys.lease], [this.leaseValue, BRIDGE_LEASE_TTL_MS]);
        if (String(holder) !== '' || this.stopped) return;
        this.metrics.bridgeTakeovers.inc();
        this.setState('syncing');
        await this.publishBarrier();
      } else if (this.state === 'syncing') {
        // Keeps the lease while the barrier travels; strict, as a forward would be.
        if (!(await this.renew())) return;
        if (Date.now() - this.barrierAt > BARRIER_RETRY_MS) await this.publishBarrier();
      }
    } catch (error) {
      this.log('warn', 'the Pub/Sub bridge could not reach redis; trying again', describeError(error));
    }
  }

  private async publishBarrier(): Promise<void> {
    this.barrier = randomBytes(12).toString('hex');
    this.barrierAt = Date.now();
    await this.client.publish(this.keys.barrier, this.barrier);
  }

  /** Renews a lease this server holds (with no frames); false, and back to standby, when it is no longer this server's. */
  private async renew(): Promise<boolean> {
    const holder = String(await FORWARD.run<string>(this.client, [this.keys.lease, this.stream], [this.leaseValue, BRIDGE_LEASE_TTL_MS, FRAME_FIELD]));
    if (holder === '') return true;
    this.lostLease(holder);
    return false;
  }

  private async forward(): Promise<void> {
    this.metrics.pubsubDisconnects.set(this.reader.disconnects);
    if (this.state !== 'forwarding') return;
    this.prepare();
    if (Date.now() < this.retryAt) return;
    const batch: Pending[] = [];
    let bytes = 0;
    for (const item of this.pending) {
      if (batch.length > 0 && bytes + item.payload.length > CALL_BYTES) break;
      batch.push(item);
      bytes += item.payload.length;
    }
    // Nothing to add: the call still renews the lease, once per poll.
    if (batch.length === 0 && Date.now() - this.lastCallAt < LEASE_POLL_MS) return;
    const args: Array<string | number | Buffer> = [this.leaseValue, BRIDGE_LEASE_TTL_MS, FRAME_FIELD];
    for (const item of batch) args.push(item.payload);
    let holder: string;
    try {
      this.lastCallAt = Date.now();
      holder = String(await FORWARD.run<string>(this.client, [this.keys.lease, this.stream], args));
    } catch (error) {
      // In doubt: the frames may have been added. They are sent again as they are; the group's
      // dedup drops a frame added twice (same producer id and numbers).
      if (this.retryAt === 0) this.log('warn', 'the Pub/Sub bridge could not add messages to the stream; trying again', describeError(error));
      this.retryAt = Date.now() + this.backoff.next();
      return;
    }
    this.backoff.reset();
    this.retryAt = 0;
    if (holder !== '') {
      this.lostLease(holder);
      return;
    }
    let messages = 0;
    for (const item of batch) messages += item.messages;
    this.pending.splice(0, batch.length);
    this.pendingBytes -= bytes;
    if (messages > 0) this.metrics.bridgeForwarded.inc(messages);
  }

  /** Turns the messages heard into frames: ours as they are, plain ones into this bridge's own frames. */
  private prepare(): void {
    if (this.heard.length === 0) return;
    const messages = this.heard;
    this.heard = [];
    const now = Date.now();
    const lines = new Map<string, string[]>();
    for (const message of messages) {
      if (this.pendingBytes + message.length > MAX_PENDING_BYTES) {
        this.lose('its buffer is full (redis does not take them)', 1);
        continue;
      }
      if (isFrame(message)) {
        this.add({ payload: message, messages: 1 });
        continue;
      }
      this.metrics.legacyMessages.inc();
      // The legacy decoding of Pub/Sub mode, without keys: the stream's readers check signatures.
      const decoded = decodePubSubMessage(message, now, this.config.consumer, this.producer, () => 0);
      for (const rejected of decoded.rejected) {
        this.deadLetters.store('pubsub', rejected).catch((error: unknown) => {
          this.metrics.deadLetterFailures.inc();
          this.log('error', 'could not store a dead letter; it is only counted', { reason: rejected.reason, ...describeError(error) });
        });
      }
      for (const record of decoded.records) {
        const list = lines.get(record.app) ?? [];
        list.push(encodeRecord({ time: record.time, level: record.level, message: record.message, fields: record.fields }));
        lines.set(record.app, list);
      }
    }
    for (const [app, list] of lines) {
      let start = 0;
      while (start < list.length) {
        let end = start;
        let units = 0;
        while (end < list.length && end - start < FRAME_RECORDS && (end === start || units + list[end]!.length <= FRAME_UNITS)) units += list[end++]!.length;
        const seq = this.nextSeq.get(app) ?? 1;
        const count = end - start;
        this.nextSeq.set(app, seq + count);
        const frame = encodeFrame({ producer: this.producer, seq, count, app, host: this.config.consumer, pid: process.pid, dropped: 0 }, list.slice(start, end));
        this.add({ payload: Buffer.from(frame, 'utf8'), messages: count });
        start = end;
      }
    }
  }

  private add(item: Pending): void {
    this.pending.push(item);
    this.pendingBytes += item.payload.length;
  }

  private pendingMessages(): number {
    let messages = this.heard.length;
    for (const item of this.pending) messages += item.messages;
    return messages;
  }

  private lostLease(holder: string): void {
    this.lose(`the bridge lease went to ${holder === 'nobody' ? 'nobody (it expired)' : 'another server'}`, this.pendingMessages());
    this.heard = [];
    this.pending = [];
    this.pendingBytes = 0;
    this.setState('standby');
  }

  private lose(why: string, messages: number): void {
    if (messages === 0) return;
    this.metrics.bridgeLost.inc(messages);
    this.log('warn', `Pub/Sub messages not moved into the stream: ${why}`, { messages });
  }

  private setState(state: State): void {
    if (this.state === 'forwarding' && state !== 'forwarding') this.log('info', 'this server is no longer the Pub/Sub bridge');
    this.state = state;
    this.metrics.bridgeHolder.set(state === 'forwarding' ? 1 : 0);
  }
}
