import { groupStateKeys, shardsOf } from '@log/protocol';
import type { CommandSender } from '@log/protocol/redis';

/** One origin's line of a group's loss report: a producer id with the app and host its frames named. */
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

/** The group's running totals over every producer. */
export interface ReportTotals {
  producers: number;
  received: number;
  duplicates: number;
  deadLettered: number;
  reportedDrops: number;
  missing: number;
  conflicts: number;
}

/** One page of a loss report; `cursor` is undefined on the last page. */
export interface LossReport {
  totals: ReportTotals;
  producers: ProducerReport[];
  cursor: number | undefined;
}

const PRODUCER_FIELDS = ['producer', 'app', 'host', 'received', 'duplicates', 'deadLettered', 'reportedDrops', 'missing', 'highest', 'firstSeen', 'lastSeen', 'conflicts'];

/**
 * Reads the loss report the logger servers of `group` keep in Redis (merged at each commit, see
 * groupStateKeys): read-only, so the server's /stats and an operator's `logctl stats` read the
 * same numbers from the same keys. A sharded channel keeps one report per shard (a producer
 * sends to one shard only): totals are summed over the shards and pages merged across them.
 */
export class LossReportReader {
  private readonly keys: Array<ReturnType<typeof groupStateKeys>>;

  /**
   * @param client a node-redis client, or a RedisConnection of @log/protocol/redis (one Redis or a cluster)
   * @param shards the channel's shard count (LOG_SHARDS), or the shards to read (as shardsOf lists them)
   */
  constructor(
    private readonly client: CommandSender,
    channel: string,
    group: string,
    shards: number | ReadonlyArray<number | undefined> = 1,
  ) {
    this.keys = (typeof shards === 'number' ? shardsOf(shards) : shards).map((shard) => groupStateKeys(channel, group, shard));
  }

  /** The group's running totals (kept by the commit, never summed over producers on demand). */
  async totals(): Promise<ReportTotals> {
    const totals: ReportTotals = { producers: 0, received: 0, duplicates: 0, deadLettered: 0, reportedDrops: 0, missing: 0, conflicts: 0 };
    const replies = await Promise.all(this.keys.map((keys) => this.client.sendCommand(['HGETALL', keys.totals])));
    for (const reply of replies) {
      for (const [field, value] of toPairs(reply)) if (field in totals) totals[field as keyof ReportTotals] += Number(value);
    }
    return totals;
  }

  /** One page of the report, most recently active origins first (over every shard); `cursor` is the page's offset. */
  async report(cursor = 0, limit = 100): Promise<LossReport> {
    // The totals first: a commit between the two reads then shows in the rows, never in the
    // totals alone (read last, totals could count an origin the page left out, and a reader that
    // waits for the totals to reach a number got rows older than them).
    const totals = await this.totals();
    // The first cursor + limit + 1 of each shard hold the merged page's, and one more tells whether there is a next page.
    const perShard = await Promise.all(
      this.keys.map(async (keys) => scored(await this.client.sendCommand(['ZREVRANGE', keys.producers, '0', String(cursor + limit), 'WITHSCORES'])).map((row) => ({ ...row, keys }))),
    );
    // Ties (origins committed in one batch share its time) in ZREVRANGE's own order, name
    // descending: each shard's first cursor + limit + 1 are then a prefix of the merged order.
    // Name ascending dropped a tied origin at a shard's cut: a page showed one origin twice and
    // another never.
    const merged = perShard.flat().sort((a, b) => b.score - a.score || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
    const page = merged.slice(cursor, cursor + limit + 1);
    const more = page.length > limit;
    if (more) page.pop();
    const rows = await Promise.all(page.map(({ name, keys }) => this.client.sendCommand(['HMGET', keys.producer(name), ...PRODUCER_FIELDS]) as Promise<Array<string | null>>));
    const producers = rows.map((row, i): ProducerReport => {
      const value = (k: number) => (row[k] === null || row[k] === undefined ? undefined : String(row[k]));
      const time = (k: number) => (value(k) === undefined ? undefined : new Date(Number(value(k))).toISOString());
      return {
        producer: value(0) ?? page[i]!.name,
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
    return { totals, producers, cursor: more ? cursor + limit : undefined };
  }
}

/** ZREVRANGE ... WITHSCORES: a flat [member, score, ...] array (RESP2) or [member, score] pairs (RESP3). */
function scored(raw: unknown): Array<{ name: string; score: number }> {
  const rows: Array<{ name: string; score: number }> = [];
  if (!Array.isArray(raw)) return rows;
  if (raw.length > 0 && Array.isArray(raw[0])) {
    for (const [name, score] of raw as Array<[unknown, unknown]>) rows.push({ name: String(name), score: Number(score) });
    return rows;
  }
  for (let i = 0; i + 1 < raw.length; i += 2) rows.push({ name: String(raw[i]), score: Number(raw[i + 1]) });
  return rows;
}

/** HGETALL replies: a flat [field, value, ...] array (RESP2) or a map (RESP3). */
export function toPairs(raw: unknown): Array<[string, string]> {
  if (raw instanceof Map) return [...raw].map(([k, v]) => [String(k), String(v)]);
  if (Array.isArray(raw)) {
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([String(raw[i]), String(raw[i + 1])]);
    return pairs;
  }
  if (raw && typeof raw === 'object') return Object.entries(raw).map(([k, v]) => [k, String(v)]);
  return [];
}
