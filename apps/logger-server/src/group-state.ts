import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { groupStateKeys, shardsOf, sleep, streamKey } from '@log/protocol';
import { LuaScript, type CommandSender } from '@log/protocol/redis';
import { LossReportReader, idRange, toPairs, type LossReport, type ReportTotals } from '@log/subscriber';
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
  /**
   * Numbers this server has on disk, sent again after Redis failed (a failover may have lost
   * commits that replication had not carried yet): counted received where the ledger lacks them,
   * never as duplicates. The same way.
   */
  reasserted: number[];
}

export type CommitOutcome =
  | { kind: 'committed' }
  /** Entries another consumer claimed meanwhile: nothing was committed. */
  | { kind: 'lost'; ids: string[] }
  /** Records some server of the group already committed: nothing was committed. */
  | { kind: 'overlap'; ranges: Array<{ origin: string; start: number; end: number }> }
  /** Another live server holds this consumer name: nothing was committed. */
  | { kind: 'lease'; holder: string }
  /** Redis does not hold the commit whose token was given as `previous` (it lost it): nothing was committed. */
  | { kind: 'stale' };

export type { ProducerReport, ReportTotals } from '@log/subscriber';

const LEASE_TTL_MS = 10_000;
const LEASE_RENEW_MS = 3_000;
const LEASE_POLL_MS = 250;

/**
 * What the servers of one consumer group share in Redis, beside the stream (of one shard, for a
 * sharded channel): the commit (ack, durable prefix of each open file, per-producer ledger, in one
 * script), the loss report merged over every server, and the lease that keeps a consumer name to
 * one live server.
 */
export class GroupState {
  private readonly keys: ReturnType<typeof groupStateKeys>;
  /** The loss report, read the same way as by logctl stats. */
  private readonly reports: LossReportReader;
  private readonly stream: string;
  /** This server's lease: `<token> <host> <pid> <since>`, compared whole. */
  readonly leaseValue: string;
  private heartbeat: NodeJS.Timeout | undefined;

  /** @param shard the shard of a sharded channel (see shardsOf), undefined for an unsharded one */
  constructor(
    private readonly client: CommandSender,
    channel: string,
    private readonly group: string,
    readonly consumer: string,
    readonly shard?: number,
  ) {
    this.keys = groupStateKeys(channel, group, shard);
    this.reports = new LossReportReader(client, channel, group, [shard]);
    this.stream = streamKey(channel, shard);
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
      await sleep(LEASE_POLL_MS);
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
   * same commit sent again after a lost reply is applied once (see lua/commit.lua). With
   * `previous` (the token of this consumer's last commit), a Redis that lost that commit says
   * 'stale' and commits nothing.
   */
  async commit(ids: readonly string[], checkpoints: ReadonlyMap<string, Checkpoint>, producers: readonly ProducerCommit[], token: string, previous?: string): Promise<CommitOutcome> {
    const { first, last } = ids.length > 0 ? idRange(ids) : { first: '', last: '' };
    const args: Array<string | number> = [this.group, this.consumer, this.leaseValue, LEASE_TTL_MS, Date.now(), token, ids.length, ids.join(' '), first, last];
    args.push(checkpoints.size);
    for (const [app, { offset, origin, seq }] of checkpoints) args.push(`${this.consumer}/${app}`, `${offset} ${origin} ${seq}`);
    args.push(producers.length);
    const keys = [this.stream, this.keys.checkpoints, this.keys.producers, this.keys.totals, this.keys.lease(this.consumer)];
    for (const p of producers) {
      keys.push(this.keys.producer(p.origin), this.keys.origins(p.producer));
      args.push(p.origin, p.producer, p.app, p.host, p.takenOut, p.reportedDrops);
      for (const ranges of [p.written, p.seen, p.dead, p.reasserted]) {
        args.push(ranges.length / 2);
        for (const n of ranges) args.push(n);
      }
    }
    if (previous !== undefined) args.push(previous);
    const reply = (await COMMIT.run<Array<string | Buffer>>(this.client, keys, args)).map(String);
    switch (reply[0]) {
      case 'OK':
        return { kind: 'committed' };
      case 'STALE':
        return { kind: 'stale' };
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
  totals(): Promise<ReportTotals> {
    return this.reports.totals();
  }

  /**
   * One page of the merged loss report, most recently active producers first. `cursor` is the
   * offset of the page; the reply's cursor is undefined on the last page.
   */
  report(cursor = 0, limit = 100): Promise<LossReport> {
    return this.reports.report(cursor, limit);
  }
}

/**
 * A group's state over every shard of a channel (LOG_SHARDS): one GroupState per shard, each with
 * its own lease, commit and checkpoints under the shard's hash tag (a script touches one slot),
 * and the loss report merged over the shards. One shard is today's unsharded GroupState.
 */
export class ShardedGroupState {
  readonly shards: GroupState[];
  private readonly reports: LossReportReader;

  constructor(client: CommandSender, channel: string, group: string, consumer: string, shards: number) {
    this.shards = shardsOf(shards).map((shard) => new GroupState(client, channel, group, consumer, shard));
    this.reports = new LossReportReader(client, channel, group, shards);
  }

  get consumer(): string {
    return this.shards[0]!.consumer;
  }

  /** Takes the consumer name on every shard (see GroupState.acquireLease). */
  async acquireLease(onWait: (holder: string) => void = () => {}): Promise<void> {
    for (const shard of this.shards) await shard.acquireLease(onWait);
  }

  async releaseLease(): Promise<void> {
    await Promise.all(this.shards.map((shard) => shard.releaseLease()));
  }

  /**
   * This consumer's checkpoints by app, one per shard that has one (recoverOpenFiles takes the
   * largest that matches the file). Undefined when no shard knows any of the group's (Redis lost
   * its data, or nothing was ever committed).
   */
  async checkpoints(): Promise<Map<string, Checkpoint[]> | undefined> {
    const perShard = await Promise.all(this.shards.map((shard) => shard.checkpoints()));
    if (perShard.every((checkpoints) => checkpoints === undefined)) return undefined;
    const merged = new Map<string, Checkpoint[]>();
    for (const checkpoints of perShard) {
      for (const [app, checkpoint] of checkpoints ?? []) {
        const list = merged.get(app);
        if (list) list.push(checkpoint);
        else merged.set(app, [checkpoint]);
      }
    }
    return merged;
  }

  /** The group's running totals, summed over the shards. */
  totals(): Promise<ReportTotals> {
    return this.reports.totals();
  }

  /** One page of the loss report merged over the shards (see GroupState.report). */
  report(cursor = 0, limit = 100): Promise<LossReport> {
    return this.reports.report(cursor, limit);
  }
}

function parseCheckpoint(value: string): Checkpoint | undefined {
  const [offset, origin, seq] = value.split(' ');
  if (offset === undefined || origin === undefined || seq === undefined) return undefined;
  return { offset: Number(offset), origin, seq: Number(seq) };
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
