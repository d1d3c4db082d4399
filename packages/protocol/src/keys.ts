import { InvalidNameError } from './errors';
import { assertValidName } from './names';

// Keys of one channel share the hash tag {channel}, so they live in one Redis Cluster slot and
// the server can touch the stream and its dead-letter stream in one pipeline. A channel split
// into shards (LOG_SHARDS > 1) has one such set of keys per shard, tagged {channel:i}: each
// shard's keys stay in one slot (the server's commit script touches them together), and the
// shards' slots differ, so they spread over a cluster's masters.

/** The hash tag of a channel's keys, or of one shard's (`shard` 0..N-1; undefined for an unsharded channel). */
function tag(channel: string, shard: number | undefined): string {
  const name = assertValidName('channel', channel);
  if (shard === undefined) return `{${name}}`;
  if (!Number.isSafeInteger(shard) || shard < 0) throw new InvalidNameError('shard', String(shard), 'must be a whole number >= 0');
  return `{${name}:${shard}}`;
}

/**
 * The shards a channel split in `shards` has, as the `shard` argument of the key functions:
 * [undefined] for 1 (today's unsharded keys, so nothing migrates), else 0..shards-1.
 */
export function shardsOf(shards: number): Array<number | undefined> {
  if (!Number.isSafeInteger(shards) || shards < 1) throw new InvalidNameError('shards', String(shards), 'must be a whole number >= 1');
  return shards === 1 ? [undefined] : Array.from({ length: shards }, (_, i) => i);
}

/** The Redis Stream a channel's (or one of its shards') frames are XADDed to: `log:{<channel>}`, or `log:{<channel>:<shard>}`. */
export function streamKey(channel: string, shard?: number): string {
  return `log:${tag(channel, shard)}`;
}

/** The stream that receives undecodable or invalid entries, with the reason (one per shard). */
export function deadLetterKey(channel: string, shard?: number): string {
  return `log:${tag(channel, shard)}:dead`;
}

/** The Pub/Sub channel: the bare name, so existing publishers (`PUBLISH logger text`) keep working. */
export function pubsubChannel(channel: string): string {
  return assertValidName('channel', channel);
}

/** Consumer group the logger servers share when LOG_GROUP is not set. */
export const DEFAULT_GROUP = 'logger-server';

/** Field of a stream entry that holds the frame. */
export const FRAME_FIELD = 'f';

/**
 * The keys where the servers of one group keep their shared state, beside the stream (same hash
 * tag): how far each consumer's open files are acknowledged, the per-producer loss ledger and its
 * totals, and the lease that keeps a consumer name to one live server. One set per shard, beside
 * its stream.
 */
export function groupStateKeys(channel: string, group: string, shard?: number) {
  const base = `${streamKey(channel, shard)}:${assertValidName('group', group)}`;
  return {
    /** Hash: `<consumer>/<app>` -> `<acknowledged bytes> <last producer> <last seq>` of that open file. */
    checkpoints: `${base}:files`,
    /** Sorted set: origin (`<producer>/<app>/<host>`) -> last time (ms) a batch of it was committed. */
    producers: `${base}:producers`,
    /** Hash of running totals over every origin: received, duplicates, deadLettered, reportedDrops, missing, conflicts, producers. */
    totals: `${base}:totals`,
    /** Hash of one origin's ledger (a bare producer id for ledgers written before origins). */
    producer: (origin: string) => `${base}:producer:${origin}`,
    /** Set of the origins seen with one producer id: more than one means a frame claimed another's id. */
    origins: (producer: string) => `${base}:origins:${producer}`,
    /** String held by the live server running as `consumer`, with an expiry its heartbeat renews. */
    lease: (consumer: string) => `${base}:lease:${consumer}`,
  };
}

/**
 * The Pub/Sub bridge of servers that read both transports (LOG_TRANSPORT=stream,pubsub): the
 * lease held by the one server that moves the channel's Pub/Sub messages into the stream (one
 * per channel, whatever the group: two bridges would add every message twice), where it stopped,
 * and the Pub/Sub channel of the marks every listener counts positions from. A sharded channel's
 * bridge adds into one shard (`shard`), and its keys are that shard's (one hash slot).
 */
export function pubsubBridgeKeys(channel: string, shard?: number) {
  return {
    /** String held by the bridging server, with an expiry it renews with every forward. */
    lease: `${streamKey(channel, shard)}:bridge:lease:pubsub`,
    /** String: where the bridge's last forward ended, among the messages every listener heard (see the server's bridge-ring.ts). */
    position: `${streamKey(channel, shard)}:bridge:position:pubsub`,
    /** Pub/Sub channel of the marks, subscribed on the same connection as the channel itself. */
    barrier: `${pubsubChannel(channel)}:bridge`,
  };
}
