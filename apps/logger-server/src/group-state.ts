import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { groupStateKeys, streamKey } from '@log/protocol';
import { LuaScript } from '@log/protocol/redis';
import type { RedisClientType } from 'redis';
import { LeaseError } from './errors';

/** A script of lua/ (see LuaScript: SCRIPT LOAD once, then EVALSHA). */
function script(name: string): LuaScript {
  return LuaScript.fromFile(join(__dirname, '..', 'lua', `${name}.lua`));
}

const COMMIT = script('commit');
const RENEW = script('lease');
const RELEASE = script('release');

/** How far an open file is acknowledged: its first `offset` bytes, the last line being record `seq` of `origin` (see origin.ts). */
export interface Checkpoint {
  offset: number;
  origin: string;
  seq: number;
}

/** What one batch did to one origin (producer id, app, host), merged into the group's ledger at commit. */
export interface ProducerCommit {
  /** originKey(producer, app, host): the ledger's key. */
  origin: string;
  producer: string;
  app: string;
  host: string;
  /** Records taken back out of the files because another commit of the group had them. */
  takenOut: number;
  reportedDrops: number;
  /** Written sequence numbers as sorted, disjoint [start, end] pairs (flat). */
  written: number[];
  /** Numbers the dedup cache dropped as already written, the same way. */
  seen: number[];
  /** Dead-lettered sequence numbers, the same way. */
  dead: number[];
}

export type CommitOutcome =
  | { kind: 'committed' }
  /** Entries another consumer claimed meanwhile: nothing was committed. */
  | { kind: 'lost'; ids: string[] }
  /** Records some server of the group already committed: nothing was committed. */
  | { kind: 'overlap'; ranges: Array<{ origin: string; start: number; end: number }> }
  /** Another live server holds this consumer name: nothing was committed. */
  | { kind: 'lease'; holder: string };

/** One producer's line of the group's loss report. */
export interface ProducerReport {
  producer: string;
  app: string;
  host: string;
  received: number;
  duplicates: number;
  deadLettered: number;
  reportedDrops: number;
  /** Sequence numbers up to `highest` that no server of the group committed or dead-lettered. */
  missing: number;
  /** Records whose producer id and sequence number another origin (other app or host) also sent: both were kept. */
  conflicts: number;
  highest: number;
  firstSeen: string | undefined;
  lastSeen: string | undefined;
}

export interface ReportTotals {
  producers: number;
  received: number;
  duplicates: number;
  deadLettered: number;
  reportedDrops: number;
  missing: number;
  conflicts: number;
}

const LEASE_TTL_MS = 10_000;
const LEASE_RENEW_MS = 3_000;
const LEASE_POLL_MS = 250;

/**
 * What the servers of one consumer group share in Redis, beside the stream: the commit (ack,
 * durable prefix of each open file, per-producer ledger, in one script), the loss report merged
 * over every server, and the lease that keeps a consumer name to one live server.
 */
export class GroupState {
  private readonly keys: ReturnType<typeof groupStateKeys>;
  private readonly stream: string;
  /** This server's lease: `<token> <host> <pid> <since>`, compared whole. */
  readonly leaseValue: string;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: RedisClientType,
    channel: string,
    private readonly group: string,
    readonly consumer: string,
  ) {
    this.keys = groupStateKeys(channel, group);
    this.stream = streamKey(channel);
    this.leaseValue = `${randomBytes(8).toString('hex')} ${hostname()} ${process.pid} ${new Date().toISOString()}`;
  }

  /**
   * Takes the consumer name for this process. A lease left by a server of this host whose
   * process is gone (kill -9) is taken over at once; one held by a live server is waited out for
   * one expiry (a killed server elsewhere stops renewing), then refused with LeaseError.
   */
  async acquireLease(onWait: (holder: string) => void = () => {}): Promise<void> {
    const key = this.keys.lease(this.consumer);
    const deadline = Date.now() + LEASE_TTL_MS + 2 * LEASE_RENEW_MS;
    let told = false;
    for (;;) {
      const holder = await this.renewLease();
      if (holder === undefined) break;
      if (isDeadLocalHolder(holder)) {
        await RELEASE.run(this.client, [key], [holder]);
        continue;
      }
      if (Date.now() > deadline) throw new LeaseError(this.consumer, holder);
      if (!told) onWait(holder);
      told = true;
      await new Promise((resolve) => setTimeout(resolve, LEASE_POLL_MS));
    }
    this.heartbeat = setInterval(() => {
      this.renewLease().catch(() => {
        // Redis unreachable: the commit checks the lease anyway; the next beat tries again
      });
    }, LEASE_RENEW_MS);
    this.heartbeat.unref();
  }

  /** Renews the lease; returns the holder's value when another server took the name, else undefined. */
  async renewLease(): Promise<string | undefined> {
    const holder = await RENEW.run<string>(this.client, [this.keys.lease(this.consumer)], [this.leaseValue, LEASE_TTL_MS]);
    return holder === '' ? undefined : String(holder);
  }

  async releaseLease(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    await RELEASE.run(this.client, [this.keys.lease(this.consumer)], [this.leaseValue]);
  }

  /** Checkpoints of this consumer's open files, by app. Undefined when Redis knows none of this group's (it lost its data, or they were never written). */
  async checkpoints(): Promise<Map<string, Checkpoint> | undefined> {
    const raw = (await this.client.sendCommand(['HGETALL', this.keys.checkpoints])) as unknown;
    const pairs = toPairs(raw);
    if (pairs.length === 0) return undefined;
    const prefix = `${this.consumer}/`;
    const result = new Map<string, Checkpoint>();
    for (const [field, value] of pairs) {
      if (!field.startsWith(prefix)) continue;
      const checkpoint = parseCheckpoint(value);
      if (checkpoint) result.set(field.slice(prefix.length), checkpoint);
    }
    return result;
  }

  /**
   * Commits a written and fsynced batch, all or nothing: acknowledges `ids`, sets the checkpoints
   * of the files it touched and merges `producers` into the ledger. `token` names the batch: the
   * same commit sent again after a lost reply is applied once (see lua/commit.lua).
   */
  async commit(ids: readonly string[], checkpoints: ReadonlyMap<string, Checkpoint>, producers: readonly ProducerCommit[], token: string): Promise<CommitOutcome> {
    const args: Array<string | number> = [this.group, this.consumer, this.leaseValue, LEASE_TTL_MS, Date.now(), token, ids.length, ...ids];
    args.push(checkpoints.size);
    for (const [app, { offset, origin, seq }] of checkpoints) args.push(`${this.consumer}/${app}`, `${offset} ${origin} ${seq}`);
    args.push(producers.length);
    const keys = [this.stream, this.keys.checkpoints, this.keys.producers, this.keys.totals, this.keys.lease(this.consumer)];
    for (const p of producers) {
      keys.push(this.keys.producer(p.origin), this.keys.origins(p.producer));
      args.push(p.origin, p.producer, p.app, p.host, p.takenOut, p.reportedDrops);
      for (const ranges of [p.written, p.seen, p.dead]) {
        args.push(ranges.length / 2);
        for (const n of ranges) args.push(n);
      }
    }
    const reply = (await COMMIT.run<Array<string | Buffer>>(this.client, keys, args)).map(String);
    switch (reply[0]) {
      case 'OK':
        return { kind: 'committed' };
      case 'LOST':
        return { kind: 'lost', ids: reply.slice(1) };
      case 'LEASE':
        return { kind: 'lease', holder: reply[1] ?? '' };
      default: {
        const ranges: Array<{ origin: string; start: number; end: number }> = [];
        for (let i = 1; i + 2 < reply.length; i += 3) ranges.push({ origin: reply[i]!, start: Number(reply[i + 1]), end: Number(reply[i + 2]) });
        return { kind: 'overlap', ranges };
      }
    }
  }

  /** The group's running totals (kept by the commit, never summed on demand). */
  async totals(): Promise<ReportTotals> {
    const pairs = new Map(toPairs(await this.client.sendCommand(['HGETALL', this.keys.totals])));
    const n = (field: string) => Number(pairs.get(field) ?? 0);
    return {
      producers: n('producers'),
      received: n('received'),
      duplicates: n('duplicates'),
      deadLettered: n('deadLettered'),
      reportedDrops: n('reportedDrops'),
      missing: n('missing'),
      conflicts: n('conflicts'),
    };
  }

  /**
   * One page of the merged loss report, most recently active producers first. `cursor` is the
   * offset of the page; the reply's cursor is undefined on the last page.
   */
  async report(cursor = 0, limit = 100): Promise<{ totals: ReportTotals; producers: ProducerReport[]; cursor: number | undefined }> {
    const names = ((await this.client.sendCommand(['ZREVRANGE', this.keys.producers, String(cursor), String(cursor + limit)])) as unknown[]).map(String);
    const more = names.length > limit;
    if (more) names.pop();
    const fields = ['producer', 'app', 'host', 'received', 'duplicates', 'deadLettered', 'reportedDrops', 'missing', 'highest', 'firstSeen', 'lastSeen', 'conflicts'];
    const rows = await Promise.all(names.map((name) => this.client.sendCommand(['HMGET', this.keys.producer(name), ...fields]) as Promise<Array<string | null>>));
    const producers = rows.map((row, i): ProducerReport => {
      const value = (k: number) => (row[k] === null || row[k] === undefined ? undefined : String(row[k]));
      const time = (k: number) => (value(k) === undefined ? undefined : new Date(Number(value(k))).toISOString());
      return {
        producer: value(0) ?? names[i]!,
        app: value(1) ?? '',
        host: value(2) ?? '',
        received: Number(value(3) ?? 0),
        duplicates: Number(value(4) ?? 0),
        deadLettered: Number(value(5) ?? 0),
        reportedDrops: Number(value(6) ?? 0),
        missing: Number(value(7) ?? 0),
        conflicts: Number(value(11) ?? 0),
        highest: Number(value(8) ?? 0),
        firstSeen: time(9),
        lastSeen: time(10),
      };
    });
    return { totals: await this.totals(), producers, cursor: more ? cursor + limit : undefined };
  }
}

function parseCheckpoint(value: string): Checkpoint | undefined {
  const [offset, origin, seq] = value.split(' ');
  if (offset === undefined || origin === undefined || seq === undefined) return undefined;
  return { offset: Number(offset), origin, seq: Number(seq) };
}

/** HGETALL replies: a flat [field, value, ...] array (RESP2) or a map (RESP3). */
function toPairs(raw: unknown): Array<[string, string]> {
  if (raw instanceof Map) return [...raw].map(([k, v]) => [String(k), String(v)]);
  if (Array.isArray(raw)) {
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([String(raw[i]), String(raw[i + 1])]);
    return pairs;
  }
  if (raw && typeof raw === 'object') return Object.entries(raw).map(([k, v]) => [k, String(v)]);
  return [];
}

/** A lease of a server of this host whose process no longer exists: left by kill -9. */
function isDeadLocalHolder(holder: string): boolean {
  const [, host, pid] = holder.split(' ');
  if (host !== hostname() || pid === undefined || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
