import { join } from 'node:path';
import { DEFAULT_GROUP, FRAME_FIELD, assertValidName, deadLetterKey, streamKey, type DeadLetterReason } from '@log/protocol';
import { LuaScript, createRedisConnection, type RedisConnection } from '@log/protocol/redis';
import { RESP_TYPES, type RedisClientOptions } from 'redis';
import { SubscriberError } from './errors';
import { deadLetterCommand } from './dead-letter';

/** One stream entry as read: its id and the frame bytes (undefined when the entry has no frame field). */
export interface StreamEntry {
  id: string;
  /** The frame, as raw bytes so that invalid UTF-8 can be detected rather than replaced. */
  frame: Buffer | undefined;
  /** Names of the entry's fields other than the frame field (a foreign writer's entry). */
  otherFields: string[];
}

export interface StreamReaderOptions {
  /** Redis URL. @defaultValue process.env.REDIS_URL, then 'redis://127.0.0.1:6379' */
  url?: string;
  /** Seed URLs of a Redis Cluster: read from it instead of `url`. */
  clusterNodes?: readonly string[];
  /** Channel name; the stream is streamKey(channel, shard). */
  channel: string;
  /** The shard of a sharded channel this reader reads (0..N-1; see shardsOf); undefined for an unsharded one. */
  shard?: number;
  /** Consumer group shared by all logger servers. @defaultValue 'logger-server' */
  group?: string;
  /** This reader's name in the group: stable across restarts so its pending entries come back to it. */
  consumer: string;
  /** Most entries per read (an entry is one frame, up to ~1 MiB). @defaultValue 64 */
  count?: number;
  /** How long one read blocks waiting for entries, in ms. @defaultValue 1000 */
  blockMs?: number;
  /**
   * When above 0, batches are cut by bytes. A read of new entries asks for as many as this many
   * bytes hold at the size of the last batch's largest entry (at least 1, at most `count`; 1 for
   * the first batch), so large entries make batches of a few, read while the previous one is
   * written. And read() goes
   * on reading new entries (further XREADGROUPs without blocking, READS_IN_FLIGHT of them sent
   * before the first answers) while each came back full and the batch holds less than this many
   * bytes, up to MAX_READS_PER_BATCH reads: small entries (one record each) make batches as large
   * as big ones. A further read asks for as many entries as the bytes left, after the reads in
   * flight, would hold at the size of the batch's largest entry so far, from 1 to 4 x `count`:
   * never one XREADGROUP of very many entries that could each be large. A batch holds at most
   * batchBytes + READS_IN_FLIGHT x 4 x count x the largest entry.
   * @defaultValue 0 (one XREADGROUP of `count` per read())
   */
  batchBytes?: number;
  /**
   * When above 0, entries are returned only once this many replicas have the record of their
   * delivery to this consumer (WAIT after each read and claim). Without it, a failover to a replica
   * that had not received the delivery hands the entries to the group again as new: another
   * consumer then stores them too, on top of this one's copy. A read that fewer replicas confirm
   * within WAIT_TIMEOUT_MS fails with REPLICAS_BEHIND; the next read() returns the same entries
   * (this consumer's pending ones) and waits again.
   * @defaultValue 0 (no WAIT)
   */
  waitReplicas?: number;
  /** Extra node-redis client options (TLS, username, password, ...). */
  redis?: Omit<RedisClientOptions, 'url'>;
}

/** A batch as read() and readNow() return it. */
export interface ReadResult {
  entries: StreamEntry[];
  /** New entries ('>'): each delivered once, just now. */
  fresh: boolean;
  /** New entries came back fewer than asked for: the stream was caught up. */
  short: boolean;
}

/** One entry of a reply: its id and its fields as [name, value, ...] (null for an entry trimmed while pending). */
type RawEntry = [Buffer, Buffer[] | null];
/** XREADGROUP's reply: an array of [stream, entries] under RESP2, a map stream -> entries under RESP3. */
type RawStreams = Array<[Buffer, RawEntry[]]> | Map<unknown, RawEntry[]> | Record<string, RawEntry[]> | null;

/** A raw entry as a StreamEntry: the first frame field is the frame, every other field name is listed. */
function toEntry([id, fields]: RawEntry): StreamEntry {
  // A pending entry that was deleted (trimmed) replays as [id, null]: nothing to store.
  if (fields === null) return { id: id.toString(), frame: undefined, otherFields: [] };
  let frame: Buffer | undefined;
  const otherFields: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = (fields[i] as Buffer).toString();
    if (name === FRAME_FIELD && frame === undefined) frame = fields[i + 1];
    else otherFields.push(name);
  }
  return { id: id.toString(), frame, otherFields };
}

/** Compares stream ids ('ms-seq') numerically. */
export function compareIds(a: string, b: string): number {
  const ad = a.indexOf('-');
  const bd = b.indexOf('-');
  // Redis writes both parts as decimals without leading zeros: the longer is the larger, and of
  // equal lengths the one that sorts after (no BigInt per comparison: a batch compares thousands).
  if (ad > 0 && bd > 0 && a.charCodeAt(0) !== 48 && b.charCodeAt(0) !== 48 && a.charCodeAt(ad + 1) !== 48 && b.charCodeAt(bd + 1) !== 48) {
    if (ad !== bd) return ad < bd ? -1 : 1;
    for (let i = 0; i < ad; i++) {
      const d = a.charCodeAt(i) - b.charCodeAt(i);
      if (d !== 0) return d < 0 ? -1 : 1;
    }
    if (a.length !== b.length) return a.length < b.length ? -1 : 1;
    return a === b ? 0 : a < b ? -1 : 1;
  }
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

/** The smallest and the largest of stream ids (at least one). */
export function idRange(ids: readonly string[]): { first: string; last: string } {
  let first = ids[0] as string;
  let last = first;
  for (const id of ids) {
    if (compareIds(id, first) < 0) first = id;
    else if (compareIds(id, last) > 0) last = id;
  }
  return { first, last };
}

/** The id right after `id`: trimming with MINID of it removes `id` itself and everything before. */
function nextId(id: string): string {
  const [ms = '0', seq = '0'] = id.split('-');
  return `${ms}-${BigInt(seq) + 1n}`;
}

/** The entries of the one stream a reply is about (XREADGROUP reads one stream here). */
function entriesOf(reply: RawStreams): RawEntry[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) return reply[0]?.[1] ?? [];
  if (reply instanceof Map) return (reply.values().next().value as RawEntry[] | undefined) ?? [];
  return Object.values(reply)[0] ?? [];
}

/** XINFO replies are maps (RESP3) or flat [key, value, ...] arrays (RESP2). */
function toRecord(raw: unknown): Record<string, unknown> {
  if (raw instanceof Map) return Object.fromEntries(raw as Map<string, unknown>);
  if (Array.isArray(raw)) {
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < raw.length; i += 2) out[String(raw[i])] = raw[i + 1];
    return out;
  }
  return (raw ?? {}) as Record<string, unknown>;
}

/** lua/ack-owned.lua: XPENDING over the batch's range, then XACK of the entries still ours, in one step. */
const ACK_OWNED = LuaScript.fromFile(join(__dirname, '..', 'lua', 'ack-owned.lua'));

/** Bulk strings come back as Buffers: a frame's bytes are checked as UTF-8 by the decoder, never replaced. */
const AS_BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

/** How long the WAIT of waitReplicas waits for the replicas before the read fails (and is tried again). */
const WAIT_TIMEOUT_MS = 1000;

/** Most XREADGROUPs one read() makes with batchBytes (see StreamReaderOptions.batchBytes). */
const MAX_READS_PER_BATCH = 64;
/** A batch's further reads sent before the one before has answered: round trips overlap. */
const READS_IN_FLIGHT = 4;

/** Bytes of an entry's fields as read. */
function entryBytes([, fields]: RawEntry): number {
  let bytes = 0;
  if (fields !== null) for (const field of fields) bytes += field.length;
  return bytes;
}

/**
 * Reads a channel's stream through a consumer group (at-least-once): entries stay pending until
 * ack() says they are safely stored. After a restart under the same consumer name it first
 * returns the entries it had read and not acknowledged.
 *
 * The blocking XREADGROUP has a connection of its own; acks and dead letters use a second one,
 * so they are never stuck behind a blocked read.
 */
export class StreamReader {
  readonly key: string;
  readonly deadLetterKey: string;
  readonly group: string;
  readonly consumer: string;
  private readonly count: number;
  private readonly blockMs: number;
  private readonly batchBytes: number;
  private readonly waitReplicas: number;
  private readonly reader: RedisConnection;
  private readonly writer: RedisConnection;
  /** With batchBytes: the largest entry (bytes) of the last batch of new entries; 0 before the first. */
  private largest = 0;
  /** '0' replays this consumer's pending entries first; '>' reads new ones. */
  private cursor = '0';
  private closing: Promise<void> | undefined;

  constructor(options: StreamReaderOptions) {
    this.key = streamKey(options.channel, options.shard);
    this.deadLetterKey = deadLetterKey(options.channel, options.shard);
    this.group = assertValidName('group', options.group ?? DEFAULT_GROUP);
    this.consumer = assertValidName('consumer', options.consumer);
    this.count = options.count ?? 64;
    this.blockMs = options.blockMs ?? 1000;
    this.batchBytes = options.batchBytes ?? 0;
    this.waitReplicas = options.waitReplicas ?? 0;
    // On a cluster each is a cluster client of its own: the blocking read holds only its own
    // connection to the shard's master.
    const clientOptions = { ...options.redis, url: options.url, clusterNodes: options.clusterNodes };
    this.reader = createRedisConnection(clientOptions);
    this.writer = createRedisConnection(clientOptions);
  }

  /** Connects and creates the group at the start of the stream (so nothing published before the first start is missed). */
  async start(): Promise<void> {
    try {
      await Promise.all([this.reader.connect(), this.writer.connect()]);
    } catch (error) {
      throw this.redisError('connecting', error);
    }
    await this.ensureGroup();
  }

  /** Creates the stream and group if missing (after a Redis restart without persistence both are gone). */
  async ensureGroup(): Promise<void> {
    try {
      await this.writer.sendCommand(['XGROUP', 'CREATE', this.key, this.group, '0', 'MKSTREAM']);
    } catch (error) {
      const message = String((error as Error)?.message);
      // OOM: a Redis at maxmemory refuses XGROUP CREATE even for a group that exists. Reading goes
      // on (it frees the memory); a group that is really missing shows as NOGROUP and is created then.
      if (!message.startsWith('BUSYGROUP') && !message.startsWith('OOM')) {
        throw new SubscriberError('REDIS', `cannot create group ${this.group} on ${this.key}`, { key: this.key, cause: error });
      }
    }
  }

  /**
   * Reads the next batch: first this consumer's own pending entries, then new ones (blocking up
   * to blockMs). `entries` is [] when nothing arrived; `fresh` is true when they are new ('>'):
   * each was delivered once, just now, so there is no delivery count to check and nobody else
   * has had a chance to claim them. `short` is true when new entries came back fewer than asked
   * for (the stream was caught up): more may arrive soon, see readNow. A vanished group is recreated.
   */
  async read(): Promise<ReadResult> {
    if (this.closing) throw new SubscriberError('CLOSED', 'reader is closed', { key: this.key });
    if (this.cursor === '>') return this.readNew(true);
    const raw = await this.readRaw(true, this.count);
    // Replaying our own pending entries: continue after the last one, or go on to new entries.
    const last = raw[raw.length - 1];
    this.cursor = raw.length < this.count || last === undefined ? '>' : last[0].toString();
    if (raw.length === 0) return this.read();
    await this.confirmReplicated(this.reader, raw.length);
    return { entries: raw.map(toEntry), fresh: false, short: false };
  }

  /**
   * New entries there are now, without blocking, sized like read()'s. For a batch read ahead
   * that came back short a while ago (a blocking read answers with the first entries to arrive):
   * those that arrived since join it instead of waiting in Redis a batch more. No entries while
   * this consumer's pending ones are to be replayed first (see read).
   */
  async readNow(): Promise<ReadResult> {
    if (this.closing) throw new SubscriberError('CLOSED', 'reader is closed', { key: this.key });
    if (this.cursor !== '>') return { entries: [], fresh: true, short: true };
    return this.readNew(false);
  }

  private async readNew(block: boolean): Promise<ReadResult> {
    // With batchBytes, a new read asks for no more entries than the bytes hold at the size of the
    // last batch's largest entry: ten-thousand-record frames make batches of a few entries, read
    // while the one before is written, instead of one of tens of MiB.
    // Before the first batch the size is unknown: one entry, and the further reads take the rest.
    let count = this.count;
    if (this.batchBytes > 0) count = this.largest === 0 ? 1 : Math.max(1, Math.min(this.count, Math.floor(this.batchBytes / this.largest)));
    const raw = await this.readRaw(block, count);
    let short = raw.length < count;
    if (this.batchBytes > 0 && raw.length > 0) short = await this.readMore(raw, !short);
    if (raw.length > 0) await this.confirmReplicated(this.reader, raw.length);
    return { entries: raw.map(toEntry), fresh: true, short };
  }

  /**
   * Notes the batch's largest entry, and appends further new entries to a full read while the
   * batch is small (see batchBytes). Returns true when a read came back short (caught up).
   */
  private async readMore(raw: RawEntry[], full: boolean): Promise<boolean> {
    let bytes = 0;
    let largest = 1;
    for (const entry of raw) {
      const size = entryBytes(entry);
      bytes += size;
      if (size > largest) largest = size;
    }
    this.largest = largest;
    if (!full) return true;
    if (bytes >= this.batchBytes || this.cursor !== '>') return false;
    // Plain XREADGROUPs (no BLOCK), a few in flight on the reader's connection: a Lua script doing
    // the same cost Redis about 7 us per entry (each reply turned into Lua tables and back), where
    // XREADGROUP alone costs 1. A read is sized by the bytes left once the reads in flight are
    // counted at the largest entry so far, so the batch is what one read after another would make.
    const inFlight: Array<{ count: number; reply: Promise<RawEntry[]> }> = [];
    let projected = bytes;
    let reads = 1;
    let more = true;
    let short = false;
    const send = (): void => {
      const count = Math.min(4 * this.count, Math.max(1, Math.floor((this.batchBytes - projected) / largest)));
      const reply = this.readRaw(false, count);
      reply.catch(() => {}); // handled when its turn comes below
      inFlight.push({ count, reply });
      projected += count * largest;
      reads++;
    };
    send();
    while (inFlight.length > 0) {
      while (more && inFlight.length < READS_IN_FLIGHT && reads < MAX_READS_PER_BATCH && projected < this.batchBytes) send();
      const { count, reply } = inFlight.shift()!;
      let entries: RawEntry[];
      try {
        entries = await reply;
      } catch {
        // The entries in hand are ours (pending) and are returned; readRaw set the cursor so the
        // next read() replays what this or a later read in flight may have delivered.
        more = false;
        continue;
      }
      for (const entry of entries) {
        raw.push(entry);
        const size = entryBytes(entry);
        bytes += size;
        if (size > largest) largest = size;
      }
      projected = bytes;
      for (const read of inFlight) projected += read.count * largest;
      if (entries.length < count) short = true;
      if (short || bytes >= this.batchBytes || this.cursor !== '>') more = false;
    }
    this.largest = largest;
    return short;
  }

  /**
   * waitReplicas: WAIT until the replicas have every write this connection made (the deliveries
   * just read or claimed). Fewer in time: the entries stay pending to this consumer and the next
   * read() replays them (cursor '0'), so nothing is handed out before a failover could keep it.
   */
  private async confirmReplicated(connection: RedisConnection, entries: number): Promise<void> {
    if (this.waitReplicas <= 0) return;
    let replicas: number;
    try {
      replicas = Number(await connection.sendCommand(['WAIT', String(this.waitReplicas), String(WAIT_TIMEOUT_MS)], undefined, this.key));
    } catch (error) {
      this.cursor = '0';
      throw this.redisError('WAIT', error);
    }
    if (replicas < this.waitReplicas) {
      this.cursor = '0';
      throw new SubscriberError(
        'REPLICAS_BEHIND',
        `only ${replicas} of ${this.waitReplicas} replicas confirmed the delivery of ${entries} entries of ${this.key} within ${WAIT_TIMEOUT_MS} ms (waitReplicas); they are read again`,
        { key: this.key },
      );
    }
  }

  private async readRaw(block = true, count = this.count): Promise<RawEntry[]> {
    const args = ['XREADGROUP', 'GROUP', this.group, this.consumer, 'COUNT', String(count)];
    if (this.cursor === '>' && block) args.push('BLOCK', String(this.blockMs));
    args.push('STREAMS', this.key, this.cursor);
    try {
      return entriesOf(await this.reader.sendCommand<RawStreams>(args, AS_BUFFERS));
    } catch (error) {
      if (String((error as Error)?.message).startsWith('NOGROUP')) {
        await this.ensureGroup();
        this.cursor = '0';
        return [];
      }
      // The connection may have dropped with entries delivered to us and not yet acknowledged:
      // replay our pending entries on the next read.
      this.cursor = '0';
      throw this.redisError('XREADGROUP', error);
    }
  }

  /**
   * Makes the next read() start again with this consumer's pending entries. Call it when a batch
   * could not be acknowledged, so those entries are not left pending until the next restart.
   */
  replayPending(): void {
    this.cursor = '0';
  }

  /**
   * Takes over entries that other consumers of the group read and did not acknowledge within
   * `minIdleMs` (a dead or stuck server): XAUTOCLAIM, at most `max` entries per call.
   */
  async claimIdle(minIdleMs: number, max = this.count): Promise<StreamEntry[]> {
    const claimed: StreamEntry[] = [];
    let cursor = '0-0';
    do {
      const reply = await this.send<[Buffer, RawEntry[], Buffer[]?]>(
        ['XAUTOCLAIM', this.key, this.group, this.consumer, String(minIdleMs), cursor, 'COUNT', String(Math.min(max - claimed.length, this.count))],
        AS_BUFFERS,
      );
      cursor = reply[0].toString();
      for (const raw of reply[1]) claimed.push(toEntry(raw));
    } while (cursor !== '0-0' && claimed.length < max);
    if (claimed.length > 0) await this.confirmReplicated(this.writer, claimed.length);
    return claimed;
  }

  /**
   * For entries this reader holds: which are still this consumer's (another may have claimed
   * them meanwhile) and how many times each was delivered. One XPENDING over the batch's range.
   */
  async ownership(ids: readonly string[]): Promise<Map<string, number>> {
    const owned = new Map<string, number>();
    if (ids.length === 0) return owned;
    const { first, last } = idRange(ids);
    const reply = await this.send<Array<[Buffer, Buffer, number, number]>>(['XPENDING', this.key, this.group, first, last, String(ids.length), this.consumer], AS_BUFFERS);
    const wanted = new Set(ids);
    for (const [id, , , deliveries] of reply) {
      const text = id.toString();
      if (wanted.has(text)) owned.set(text, Number(deliveries));
    }
    return owned;
  }

  /**
   * Trims the stream below the oldest entry some group still needs: its oldest pending entry,
   * or, with nothing pending, the entries it has not read yet. Never removes an entry a group
   * has not acknowledged. Returns the MINID used (undefined when nothing may be trimmed) and, per
   * group, its pending count and lag for metrics.
   */
  async trim(): Promise<{
    minId: string | undefined;
    trimmed: number;
    /** The group whose position set minId: the one holding retention back. */
    slowest: string | undefined;
    groups: Array<{ name: string; pending: number; lag: number | undefined }>;
  }> {
    const info = await this.send<unknown[]>(['XINFO', 'GROUPS', this.key]);
    let minId: string | undefined;
    let slowest: string | undefined;
    const groups: Array<{ name: string; pending: number; lag: number | undefined }> = [];
    for (const raw of info) {
      const group = toRecord(raw);
      const name = String(group.name);
      const pending = Number(group.pending);
      const lag = group.lag === null || group.lag === undefined ? undefined : Number(group.lag);
      groups.push({ name, pending, lag });
      let keepFrom: string;
      if (pending > 0) {
        const summary = await this.send<[number, string | null]>(['XPENDING', this.key, name]);
        keepFrom = String(summary[1]);
      } else keepFrom = nextId(String(group['last-delivered-id']));
      if (minId === undefined || compareIds(keepFrom, minId) < 0) {
        minId = keepFrom;
        slowest = name;
      }
    }
    if (minId === undefined || minId === '0-1') return { minId: undefined, trimmed: 0, slowest, groups };
    const trimmed = await this.send<number>(['XTRIM', this.key, 'MINID', '~', minId]);
    return { minId, trimmed: Number(trimmed), slowest, groups };
  }

  /**
   * Acknowledges the entries that are still this consumer's, atomically (one Lua script: XPENDING
   * over the range, then XACK), and returns the ids another consumer claimed meanwhile. With it a
   * server that was paused after writing a batch learns which of its records another server
   * also stored, before anything of its batch is acknowledged.
   */
  async ackOwned(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const { first, last } = idRange(ids);
    const args: string[] = [this.group, this.consumer, first, last, String(ids.length)];
    for (const id of ids) args.push(id);
    let lost: Array<Buffer | string>;
    try {
      lost = await ACK_OWNED.run<Array<Buffer | string>>(this.writer, [this.key], args);
    } catch (error) {
      throw this.redisError('ackOwned (lua/ack-owned.lua)', error);
    }
    return lost.map(String);
  }

  /** Acknowledges entries: they are stored and will not be delivered again. */
  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const args = ['XACK', this.key, this.group];
    for (const id of ids) args.push(id);
    await this.send(args);
  }

  /** Copies a bad entry to the dead-letter stream with the reason (XADD, capped); acknowledging it is the caller's, with its batch. */
  async deadLetter(entryId: string, reason: DeadLetterReason, detail: string, payload: Buffer | undefined): Promise<void> {
    await this.send(deadLetterCommand(this.deadLetterKey, entryId, reason, detail, payload));
  }

  /** One command on the writer connection; any failure becomes a SubscriberError (REDIS) with the cause kept. */
  private async send<T>(args: Array<string | Buffer>, options?: typeof AS_BUFFERS): Promise<T> {
    try {
      return await this.writer.sendCommand<T>(args, options);
    } catch (error) {
      throw this.redisError(String(args[0]), error);
    }
  }

  private redisError(what: string, cause: unknown): SubscriberError {
    return new SubscriberError('REDIS', `${what} on ${this.key} failed`, { key: this.key, cause });
  }

  /** Disconnects both connections. Safe to call more than once; the same promise is returned. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const client of [this.reader, this.writer]) {
        try {
          client.destroy();
        } catch {
          // already closed: nothing to do
        }
      }
    })();
    return this.closing;
  }
}
