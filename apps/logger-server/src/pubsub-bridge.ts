import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Backoff, FRAME_FIELD, deadLetterKey, encodeFrame, encodeRecord, isFrame, pubsubBridgeKeys, shardsOf, streamKey } from '@log/protocol';
import { LuaScript, createRedisClient, createRedisConnection, type RedisConnection } from '@log/protocol/redis';
import { PubSubReader, SubscriberError, deadLetterCommand } from '@log/subscriber';
import { HeardRing, decodePosition, encodePosition, type RingPosition } from './bridge-ring';
import type { ServerConfig } from './config';
import { DeadLetters } from './dead-letters';
import { StartupError } from './errors';
import { describeError, type ServerLog } from './log';
import type { Metrics } from './metrics';
import { decodePubSubMessage } from './records';

const FORWARD = LuaScript.fromFile(join(__dirname, '..', 'lua', 'bridge.lua'));
const RELEASE = LuaScript.fromFile(join(__dirname, '..', 'lua', 'release.lua'));

/** The bridge lease's expiry: a killed bridge is replaced this long (plus a poll) after its last forward. */
export const BRIDGE_LEASE_TTL_MS = 3_000;
/** How often a standby looks for a free lease, and a holder renews it when it has nothing to forward. */
const LEASE_POLL_MS = 500;
/** How often heard messages are forwarded: one script call (XADDs, position and renewal) per tick. */
const FORWARD_MS = 50;
/** How often the bridge publishes a mark: a position is counted from the last one (see bridge-ring.ts). */
const MARK_MS = 1_000;
/** How long a server taking over waits to hear its predecessor's mark and last message (they may be on their way still). */
const PLACE_WAIT_MS = 2_000;
/** A bridge whose own subscription went down hands the lease over: it does not try to take it back this long, so a standby that heard everything does. */
const HAND_OVER_MS = 2 * LEASE_POLL_MS;
/**
 * On a cluster, a subscription down this long while the slot map still names its node is made
 * again (a fresh connection to the node the map names), rather than left to the client's retries.
 */
const RESUBSCRIBE_AFTER_MS = 5_000;
/** How long a node asked for the slot map (its subscription's node gone) may take to connect. */
const ASK_NODE_MS = 1_000;
/** A frame the bridge builds from plain messages holds at most this many records or UTF-16 units. */
const FRAME_RECORDS = 1_000;
const FRAME_UNITS = 512 * 1024;
/** Messages sent per script call, at most this many bytes (a bigger backlog goes over several ticks). */
const CALL_BYTES = 8 * 1024 * 1024;
/** Past this many bytes not forwarded (Redis down), the oldest are dropped and counted (logger_pubsub_bridge_lost_messages_total). */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;

type State = 'standby' | 'placing' | 'forwarding';

/**
 * LOG_TRANSPORT=stream,pubsub: moves the channel's Pub/Sub messages into the stream, so that they
 * are durable from then on and written once by the group, however many servers run. Every such
 * server subscribes and keeps what it heard lately (HeardRing); one holds the bridge lease (per
 * channel) and forwards, the others stand by.
 *
 * - Our publishers' frames are added as they came (signature and all). Plain messages (existing
 *   publishers) become frames of this bridge's own producer id, per app, numbered from 1, so the
 *   group's dedup and loss report cover them like any producer's records.
 * - Every forward is one script call (lua/bridge.lua) that, only while this server holds the
 *   lease, adds the frames, records the position they end at, and renews the lease: a bridge
 *   paused past its expiry adds nothing, and the position always matches what is in the stream.
 * - Redis delivers a channel's messages to every subscriber in the same order, so a position is
 *   the same place in every server's ring: a count of messages after a mark (a random id the
 *   bridge publishes every MARK_MS on the barrier channel, subscribed on the same connection;
 *   every server also publishes one when it subscribes, so it can be placed soon after). A
 *   server taking over finds its predecessor's position in its own ring and forwards everything
 *   after it: nothing it heard is lost, nothing is forwarded twice.
 * - What cannot be placed is counted: a takeover by a server that did not hear the
 *   predecessor's mark, or whose subscription was down in between (logger_pubsub_bridge_
 *   unplaced_windows_total, logged with the window; the server forwards only what it hears from
 *   then on), and messages gone from its ring (logger_pubsub_bridge_lost_messages_total). A
 *   bridge whose own subscription goes down forwards up to the gap and hands the lease over, so
 *   a standby that heard the messages forwards them. A server whose subscription is down takes
 *   no lease over until it hears again: the gap's window is then closed, and what it logs covers
 *   everything it missed.
 * - On a cluster every server subscribes on the node serving the bridge's slot, and follows it
 *   when that node fails over (followSlot).
 *
 * Time is read once per tick (FORWARD_MS), not per message: a message is timed when its tick ran.
 */
export class PubSubBridge {
  private readonly client: RedisConnection;
  private readonly keys: ReturnType<typeof pubsubBridgeKeys>;
  private readonly stream: string;
  private readonly leaseValue = `${randomBytes(8).toString('hex')} ${hostname()} ${process.pid} ${new Date().toISOString()}`;
  /** This bridge's producer id for frames built from plain messages; their sequence numbers run per app. */
  private readonly producer = randomBytes(8).toString('hex');
  private readonly nextSeq = new Map<string, number>();
  private readonly ring = new HeardRing();
  private state: State = 'standby';
  private now = Date.now();
  /** Forwarding: the absolute index of the first message heard not yet in pending. */
  private cursor = 0;
  /** Frames of the messages before cursor not yet added, and the position they end at. */
  private pending: Buffer[] = [];
  private pendingMessages = 0;
  private pendingPosition = '';
  /** The first sequence number per app of the pending frames, to take back when they are certainly not added. */
  private readonly pendingFirstSeq = new Map<string, number>();
  /** A call with the pending frames failed without an answer: they may be in the stream. */
  private pendingInDoubt = false;
  /** Placing: the predecessor's position (undefined: none ever forwarded), and until when to wait for it. */
  private predecessor: RingPosition | undefined;
  private placeUntil = 0;
  /** Forwarding after this server's own subscription went down: forward up to here, then hand over. */
  private handOverAt: number | undefined;
  private standbyUntil = 0;
  private seenDisconnects = 0;
  /** Disconnects of the readers replaced (a cluster's subscription moved), for the metric's total. */
  private formerDisconnects = 0;
  /** Since when the subscription is down (undefined: up): from its drop to a message heard, or a new subscription made. */
  private downSince: number | undefined;
  /** On a cluster: the node subscribed on (host:port), and a move to another in progress. */
  private subscribedTo: string | undefined;
  /** On a cluster: the bridge's slot, and every node the last slot map named (host:port). */
  private slot: number | undefined;
  private knownNodes: string[] = [];
  private moving: Promise<void> | undefined;
  private lastMarkAt = 0;
  private forwarding: Promise<void> | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private forwardTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff({ initialMs: 100, maxMs: 2000, jitter: 0 });
  /** While Redis fails: when to try the next forward (0: not failing). */
  private retryAt = 0;
  /** When the last forward (or renewal) was sent. */
  private lastCallAt = 0;
  private stopped = false;

  private reader: PubSubReader | undefined;
  private readonly deadLetters: DeadLetters;
  private readonly deadLetterKey: string;

  /** `spool`: where dead letters Redis cannot take are kept (see DeadLetters). */
  constructor(
    private readonly config: Readonly<ServerConfig>,
    spool: string,
    private readonly metrics: Metrics,
    private readonly log: ServerLog,
  ) {
    this.client = createRedisConnection({ url: config.redisUrl, clusterNodes: config.clusterNodes });
    // A sharded channel's bridge adds into its first shard: one producer id's frames on one stream, in order.
    const shard = shardsOf(config.shards)[0];
    this.keys = pubsubBridgeKeys(config.channel, shard);
    this.stream = streamKey(config.channel, shard);
    this.deadLetterKey = deadLetterKey(config.channel, shard);
    this.deadLetters = new DeadLetters(
      spool,
      (_entry, reason, detail, payload) => this.client.sendCommand(deadLetterCommand(this.deadLetterKey, 'pubsub', reason, detail, payload)).then(() => undefined),
      metrics,
      log,
    );
  }

  /** True while this server forwards the channel into the stream. */
  get holder(): boolean {
    return this.state === 'forwarding';
  }

  async start(): Promise<void> {
    await this.client.connect();
    let node: string | undefined;
    if (this.config.clusterNodes !== undefined) {
      node = await this.slotOwner().catch((error: unknown) => {
        if (error instanceof StartupError) throw error;
        throw new StartupError('REDIS_UNUSABLE', 'REDIS_CLUSTER_NODES', "could not read the slot map to find the node serving the Pub/Sub bridge's slot", { cause: error });
      });
    }
    await this.subscribe(node);
    await this.publishMark().catch(() => undefined);
    this.leaseTimer = setInterval(() => void this.lookAtLease(), LEASE_POLL_MS);
    this.forwardTimer = setInterval(() => {
      this.forwarding ??= this.tick().finally(() => (this.forwarding = undefined));
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
    await this.moving;
    if (this.state === 'forwarding') {
      this.retryAt = 0;
      this.lastCallAt = 0;
      await this.forward().catch(() => undefined);
      await RELEASE.run(this.client, [this.keys.lease], [this.leaseValue]).catch(() => undefined);
      const left = this.pendingMessages + (this.ring.end - this.cursor);
      if (left > 0) this.log('warn', 'stopping with Pub/Sub messages not moved into the stream: a standby that heard them forwards them', { messages: left });
    }
    this.setState('standby');
    await this.reader?.close();
    this.client.destroy();
  }

  /**
   * Subscribes (again) on `node` (host:port of a cluster's node; undefined: REDIS_URL), replacing
   * the reader in use. A reader that fails to subscribe is kept (closed) with the subscription
   * down, so the next poll tries again.
   */
  private async subscribe(node: string | undefined, timeoutMs?: number): Promise<void> {
    const old = this.reader;
    if (old !== undefined) {
      this.formerDisconnects += old.disconnects;
      await old.close();
    }
    const reader = new PubSubReader({ url: node === undefined ? this.config.redisUrl : this.nodeUrl(node), channel: this.config.channel });
    this.reader = reader;
    this.seenDisconnects = 0;
    // A replaced reader's last messages are not this subscription's: they would be counted at the wrong place.
    const subscribed = reader.start((message, channel) => this.reader === reader && this.heard(message, channel), [this.keys.barrier]);
    let timer: NodeJS.Timeout | undefined;
    try {
      // node-redis retries a connect to a node that is down without end: a move must not wait on it.
      await (timeoutMs === undefined
        ? subscribed
        : Promise.race([
            subscribed,
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new SubscriberError('REDIS', `SUBSCRIBE on ${node ?? 'REDIS_URL'}: no answer within ${timeoutMs} ms`, { key: this.config.channel })), timeoutMs);
            }),
          ]));
    } catch (error) {
      await reader.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.subscribedTo = node;
  }

  /** A cluster node's URL: the first seed's, with the node's host and port (scheme, credentials and TLS kept). */
  private nodeUrl(node: string): string {
    const url = new URL(this.config.clusterNodes![0]!);
    const colon = node.lastIndexOf(':');
    url.hostname = node.slice(0, colon);
    url.port = node.slice(colon + 1);
    return url.toString();
  }

  /**
   * Where to subscribe on a cluster: PUBLISH reaches every node, but messages published on
   * different nodes may reach two nodes in different orders, so every server subscribes on the
   * same node, the master serving the bridge's keys (as the cluster's slot map says, asked of that
   * master), so that their rings agree. The same rule after a failover (followSlot).
   */
  private async slotOwner(): Promise<string> {
    const slot = (this.slot ??= Number(await this.client.sendCommand(['CLUSTER', 'KEYSLOT', this.keys.lease], undefined, this.keys.lease)));
    const ranges = await this.slotMap();
    this.knownNodes = [...new Set(ranges.flatMap(([, , ...nodes]) => nodes.map(([host, port]) => `${String(host)}:${String(port)}`)))];
    const owner = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2];
    if (owner === undefined) throw new StartupError('REDIS_UNUSABLE', 'REDIS_CLUSTER_NODES', `no node of the cluster serves slot ${slot} (of ${this.keys.lease}), where the Pub/Sub bridge subscribes`);
    return `${String(owner[0])}:${String(owner[1])}`;
  }

  /**
   * CLUSTER SLOTS: asked through the cluster client while the subscription is up. While it is
   * down, of the other nodes the last map named, one at a time on a connection of its own: the
   * cluster client would ask the node it believes serves the slot, the one gone, until it
   * refreshes its own map (seconds later), and every second here is messages nobody hears.
   */
  private async slotMap(): Promise<Array<[number, number, ...Array<[string, number]>]>> {
    const others = this.downSince === undefined ? [] : this.knownNodes.filter((node) => node !== this.subscribedTo);
    if (others.length === 0) return this.client.sendCommand(['CLUSTER', 'SLOTS'], undefined, this.keys.lease);
    let lastError: unknown;
    for (const node of others) {
      const client = createRedisClient({ url: this.nodeUrl(node), disableOfflineQueue: true, socket: { connectTimeout: ASK_NODE_MS, reconnectStrategy: false } });
      try {
        await client.connect();
        return (await client.sendCommand(['CLUSTER', 'SLOTS'])) as Array<[number, number, ...Array<[string, number]>]>;
      } catch (error) {
        lastError = error;
      } finally {
        try {
          client.destroy();
        } catch {
          // never connected
        }
      }
    }
    throw lastError;
  }

  /**
   * On a cluster, while the subscription is down: subscribes again on the node the slot map now
   * names for the bridge's slot, when that is another node (its node failed over), or when it
   * stayed down RESUBSCRIBE_AFTER_MS. Every server follows the same map, so their rings agree on
   * order again; what was published meanwhile is the gap sawGap opened, closed here.
   */
  private async followSlot(): Promise<void> {
    const since = this.downSince;
    if (this.config.clusterNodes === undefined || since === undefined || this.stopped) return;
    const owner = await this.slotOwner();
    const stale = Date.now() - since >= RESUBSCRIBE_AFTER_MS;
    if ((owner === this.subscribedTo && !stale) || this.stopped) return;
    this.log(
      'warn',
      owner === this.subscribedTo
        ? "the Pub/Sub subscription stayed down: subscribing again on the node serving the bridge's slot"
        : "the node of the Pub/Sub subscription no longer serves the bridge's slot (a failover): subscribing on the node that does",
      {
        from: this.subscribedTo,
        to: owner,
        downMs: Date.now() - since,
      },
    );
    try {
      await this.subscribe(owner, RESUBSCRIBE_AFTER_MS);
    } catch (error) {
      // Tried again at the next poll, after the same bound when the map still names this node.
      this.downSince = Date.now();
      this.log('warn', 'the Pub/Sub bridge could not subscribe; trying again', { node: owner, ...describeError(error) });
      return;
    }
    this.back();
    void this.publishMark().catch(() => undefined);
  }

  /** Every message heard, on every server: kept in the ring (no I/O, no allocation of ours). */
  private heard(message: Buffer, channel: string): void {
    if (this.reader!.disconnects !== this.seenDisconnects) this.sawGap();
    if (this.downSince !== undefined) this.back();
    if (channel === this.keys.barrier) this.ring.mark(message.toString('latin1'), this.now);
    else this.ring.push(message, this.now);
  }

  /** The subscription was down (node-redis subscribed again): a gap in the ring; a bridge hands over after it. */
  private sawGap(): void {
    this.seenDisconnects = this.reader!.disconnects;
    this.metrics.pubsubDisconnects.set(this.formerDisconnects + this.seenDisconnects);
    this.downSince ??= Date.now();
    this.ring.gap(Date.now());
    if (this.state === 'forwarding' && this.handOverAt === undefined) {
      this.handOverAt = this.ring.end;
      this.log('warn', "the Pub/Sub bridge's subscription was down: it forwards what it heard before and hands the bridge over to a server that heard the rest", {
        messages: this.handOverAt - this.cursor,
      });
    }
    void this.publishMark().catch(() => undefined);
  }

  /**
   * The subscription is up again (a message heard, or subscribed anew): the gap's window ends now,
   * not at the last reconnect attempt seen, so a window logged for it covers what it missed.
   */
  private back(): void {
    this.downSince = undefined;
    this.ring.gap(Date.now());
  }

  private async publishMark(): Promise<void> {
    this.lastMarkAt = this.now;
    await this.client.sendCommand(['PUBLISH', this.keys.barrier, randomBytes(12).toString('hex')]);
  }

  /** Standby: takes a free lease. Placing: keeps it while looking for the predecessor's position. */
  private async lookAtLease(): Promise<void> {
    if (this.stopped) return;
    // A drop is otherwise noticed at the next tick or message: a takeover before that would place
    // the predecessor in a ring whose gap is not recorded yet, and lose what it missed silently.
    if (this.reader!.disconnects !== this.seenDisconnects) this.sawGap();
    try {
      if (this.downSince !== undefined) {
        // Hearing its own mark tells a server its subscription is back, when nothing else is published.
        void this.publishMark().catch(() => undefined);
        this.moving ??= this.followSlot()
          .catch((error: unknown) => this.log('warn', "the Pub/Sub bridge could not read the cluster's slot map; trying again", describeError(error)))
          .finally(() => (this.moving = undefined));
      }
      if (this.state === 'standby') {
        // A server whose subscription is down would place a predecessor's position in a ring
        // that is missing messages still being published: it waits until it hears again.
        if (this.now < this.standbyUntil || this.downSince !== undefined) return;
        const [holder, position] = await FORWARD.run<[string, string?]>(this.client, [this.keys.lease, this.keys.position, this.stream], ['take', this.leaseValue, BRIDGE_LEASE_TTL_MS]);
        if (String(holder) !== '' || this.stopped) return;
        this.metrics.bridgeTakeovers.inc();
        this.predecessor = decodePosition(position === undefined ? undefined : String(position));
        this.placeUntil = Date.now() + PLACE_WAIT_MS;
        this.setState('placing');
        this.place();
      } else if (this.state === 'placing') {
        await this.renew();
      }
    } catch (error) {
      this.log('warn', 'the Pub/Sub bridge could not reach redis; trying again', describeError(error));
    }
  }

  /** Renews a lease this server holds (no frames, position kept); false, and back to standby, when it is no longer this server's. */
  private async renew(): Promise<boolean> {
    const [holder] = await FORWARD.run<[string]>(this.client, [this.keys.lease, this.keys.position, this.stream], ['forward', this.leaseValue, BRIDGE_LEASE_TTL_MS, '', FRAME_FIELD]);
    if (String(holder) === '') return true;
    this.lostLease(String(holder));
    return false;
  }

  /** Where to forward from: after the predecessor's position in this server's ring, or (none ever forwarded) all of it. */
  private place(): void {
    if (this.reader!.disconnects !== this.seenDisconnects) this.sawGap();
    if (this.downSince !== undefined) return; // the gap's window ends when it hears again (see lookAtLease)
    if (this.predecessor === undefined) {
      this.startForwarding(this.ring.base, 'no bridge forwarded before: from the oldest message this server heard');
      return;
    }
    const placement = this.ring.place(this.predecessor);
    if (placement.kind === 'wait' && Date.now() < this.placeUntil) return;
    if (placement.kind !== 'placed') {
      this.metrics.bridgeUnplaced.inc();
      const heard = this.ring.end - this.ring.base;
      this.log('warn', 'Pub/Sub messages may be lost: could not find where the previous bridge stopped; forwarding what is heard from now on', {
        why: placement.why,
        window: `${new Date(this.predecessor.at).toISOString()} .. ${new Date(this.now).toISOString()}`,
        heardNotForwarded: heard,
      });
      this.startForwarding(this.ring.end, 'from now on');
      return;
    }
    if (placement.rolledOver > 0) this.lose("they had left this server's ring before it took over", placement.rolledOver);
    for (const gap of placement.gaps) {
      this.metrics.bridgeUnplaced.inc();
      this.log('warn', "Pub/Sub messages may be lost: this server's subscription was down after the previous bridge's last forward", {
        window: `${new Date(gap.from).toISOString()} .. ${new Date(gap.to).toISOString()}`,
      });
    }
    this.startForwarding(placement.cursor, 'after where the previous bridge stopped');
  }

  private startForwarding(cursor: number, from: string): void {
    this.cursor = cursor;
    this.handOverAt = undefined;
    this.setState('forwarding');
    this.log('info', `this server is the Pub/Sub bridge now: it moves the messages it heard into the stream, ${from}`, { messages: this.ring.end - cursor });
  }

  private async tick(): Promise<void> {
    this.now = Date.now();
    if (this.reader!.disconnects !== this.seenDisconnects) this.sawGap();
    if (this.state === 'placing') this.place();
    if (this.state === 'forwarding') {
      await this.forward();
      if (this.state === 'forwarding' && this.now - this.lastMarkAt >= MARK_MS) await this.publishMark().catch(() => undefined);
    }
    this.ring.trim(this.now, this.state === 'forwarding' ? this.cursor : undefined);
  }

  private async forward(): Promise<void> {
    if (this.pending.length === 0 && this.pendingPosition === '') this.prepare();
    if (Date.now() < this.retryAt) return;
    // Nothing to add: the call still renews the lease, once per poll.
    if (this.pendingPosition === '' && Date.now() - this.lastCallAt < LEASE_POLL_MS) return;
    const args: Array<string | number | Buffer> = ['forward', this.leaseValue, BRIDGE_LEASE_TTL_MS, this.pendingPosition, FRAME_FIELD];
    for (const frame of this.pending) args.push(frame);
    let holder: string;
    try {
      this.lastCallAt = Date.now();
      holder = String((await FORWARD.run<[string]>(this.client, [this.keys.lease, this.keys.position, this.stream], args))[0]);
    } catch (error) {
      // In doubt: the frames may have been added. They are sent again as they are; the group's
      // dedup drops a frame added twice (same producer id and numbers), and the position is the same.
      if (this.retryAt === 0) this.log('warn', 'the Pub/Sub bridge could not add messages to the stream; trying again', describeError(error));
      this.pendingInDoubt = this.pendingPosition !== '';
      this.retryAt = Date.now() + this.backoff.next();
      return;
    }
    this.backoff.reset();
    this.retryAt = 0;
    if (holder !== '') {
      this.lostLease(holder);
      return;
    }
    if (this.pendingMessages > 0) this.metrics.bridgeForwarded.inc(this.pendingMessages);
    this.clearPending();
    if (this.handOverAt !== undefined && this.cursor >= this.handOverAt) await this.handOver();
  }

  /** After its own gap: gives the lease up and stays a standby for a while, so a server that heard what it missed takes over. */
  private async handOver(): Promise<void> {
    await RELEASE.run(this.client, [this.keys.lease], [this.leaseValue]).catch(() => undefined);
    this.standbyUntil = Date.now() + HAND_OVER_MS;
    this.setState('standby');
  }

  /**
   * Turns the messages heard after the cursor (at most CALL_BYTES of them, and none after a gap
   * of its own) into frames: ours as they are, plain ones into this bridge's own frames; and
   * the position they end at.
   */
  private prepare(): void {
    if (this.ring.bytes > MAX_PENDING_BYTES) {
      let excess = this.ring.bytesFrom(this.cursor) - MAX_PENDING_BYTES;
      let dropped = 0;
      for (; excess > 0 && this.cursor < this.ring.end; dropped++) excess -= this.ring.at(this.cursor++).length;
      this.lose('its buffer is full (redis does not take them)', dropped);
    }
    const end = Math.min(this.ring.end, this.handOverAt ?? Number.POSITIVE_INFINITY);
    if (this.cursor >= end) return;
    const lines = new Map<string, string[]>();
    let bytes = 0;
    let to = this.cursor;
    for (; to < end && (to === this.cursor || bytes + this.ring.at(to).length <= CALL_BYTES); to++) {
      const message = this.ring.at(to);
      bytes += message.length;
      if (isFrame(message)) {
        this.pending.push(message);
        this.pendingMessages++;
        continue;
      }
      this.metrics.legacyMessages.inc();
      // The legacy decoding of Pub/Sub mode, without keys: the stream's readers check signatures.
      const decoded = decodePubSubMessage(message, this.ring.heardAt(to), this.config.consumer, this.producer, () => 0);
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
        let stop = start;
        let units = 0;
        while (stop < list.length && stop - start < FRAME_RECORDS && (stop === start || units + list[stop]!.length <= FRAME_UNITS)) units += list[stop++]!.length;
        const seq = this.nextSeq.get(app) ?? 1;
        if (!this.pendingFirstSeq.has(app)) this.pendingFirstSeq.set(app, seq);
        const count = stop - start;
        this.nextSeq.set(app, seq + count);
        const frame = encodeFrame({ producer: this.producer, seq, count, app, host: this.config.consumer, pid: process.pid, dropped: 0 }, list.slice(start, stop));
        this.pending.push(Buffer.from(frame, 'utf8'));
        this.pendingMessages += count;
        start = stop;
      }
    }
    this.cursor = to;
    this.pendingPosition = encodePosition(this.ring.position(to, this.now));
  }

  /** Its lease went to another server (or expired): what it had not added is that server's to forward, from the position. */
  private lostLease(holder: string): void {
    this.log('warn', `the Pub/Sub bridge lease went to ${holder === 'nobody' ? 'nobody (it expired)' : 'another server'}: the next bridge forwards what this one had not added`, {
      messages: this.pendingMessages + (this.ring.end - this.cursor),
    });
    // Numbers never added are taken back, or the group would count them missing when this server
    // bridges again. Frames in doubt keep theirs (reused, they would be dropped as duplicates).
    if (!this.pendingInDoubt) for (const [app, seq] of this.pendingFirstSeq) this.nextSeq.set(app, seq);
    this.clearPending();
    this.setState('standby');
  }

  private clearPending(): void {
    this.pending = [];
    this.pendingMessages = 0;
    this.pendingPosition = '';
    this.pendingFirstSeq.clear();
    this.pendingInDoubt = false;
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
