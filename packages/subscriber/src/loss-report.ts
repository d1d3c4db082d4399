import { groupStateKeys } from '@log/protocol';
import type { RedisClientType } from 'redis';

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
 * same numbers from the same keys.
 */
export class LossReportReader {
  private readonly keys: ReturnType<typeof groupStateKeys>;

  constructor(
    private readonly client: Pick<RedisClientType, 'sendCommand'>,
    channel: string,
    group: string,
  ) {
    this.keys = groupStateKeys(channel, group);
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

  /** One page of the report, most recently active origins first; `cursor` is the page's offset. */
  async report(cursor = 0, limit = 100): Promise<LossReport> {
    const names = ((await this.client.sendCommand(['ZREVRANGE', this.keys.producers, String(cursor), String(cursor + limit)])) as unknown[]).map(String);
    const more = names.length > limit;
    if (more) names.pop();
    const rows = await Promise.all(names.map((name) => this.client.sendCommand(['HMGET', this.keys.producer(name), ...PRODUCER_FIELDS]) as Promise<Array<string | null>>));
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
