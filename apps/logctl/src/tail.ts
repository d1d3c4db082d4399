import { parseArgs } from 'node:util';
import { BadSignatureError, FRAME_FIELD, LEVELS, LEVEL_VALUES, decodeFrame, decodeRecord, isLevel, shardsOf, sleep, streamKey, type LogRecord } from '@log/protocol';
import type { RedisConnection } from '@log/protocol/redis';
import { compareIds } from '@log/subscriber';
import { UsageError, type Io } from './io';
import { formatRecord } from './print';
import { AS_BUFFERS, connect, entryFields, type RawEntry } from './redis';
import { parseTime, signingKeysOf, type Settings } from './settings';

export const TAIL_HELP = `logctl tail [options]: records as they arrive, read from the stream with XREAD (no consumer
group: it takes nothing from the servers and acknowledges nothing); from every shard (LOG_SHARDS),
merged in entry id order. With LOG_SIGNING_KEYS, frames are checked as the servers check them:
one that fails is shown on stderr (the servers dead-letter it), counted, and the exit code is 1.

  --app NAME       only this app
  --level LEVEL    only this level and above (${LEVELS.join(', ')})
  --grep REGEX     only records whose message matches
  --since TIME     start this long ago (10m, 2h) or at an ISO time, instead of now
  --from ID        start after this stream entry id (on every shard)
  --count N        stop after N records
  --no-follow      stop at the end of the stream instead of waiting for more
  --json           one JSON object per line, as the server writes them
  -h, --help       this help`;

/** Entry id just before `id` (XREAD returns entries after the id it is given). */
function before(ms: number): string {
  return ms <= 0 ? '0-0' : `${ms - 1}-18446744073709551615`;
}

/** Entries read per XREAD of one shard. */
const READ_COUNT = 100;
/** A cluster's shards are on several nodes (XREAD cannot block on keys of different slots): polled this often while idle. */
const CLUSTER_POLL_MS = 250;

/** An entry and the shard it was read from. */
interface ShardEntry {
  shard: number | undefined;
  entry: RawEntry;
}

/** The entries of each stream of an XREAD reply (an array of [key, entries] under RESP2, a map under RESP3). */
function byStream(reply: Array<[Buffer, RawEntry[]]> | Record<string, RawEntry[]> | Map<unknown, RawEntry[]> | null): Map<string, RawEntry[]> {
  const out = new Map<string, RawEntry[]>();
  if (reply === null) return out;
  const pairs = Array.isArray(reply) ? reply : reply instanceof Map ? [...reply.entries()] : Object.entries(reply);
  for (const [key, entries] of pairs) out.set(String(key), entries as RawEntry[]);
  return out;
}

/**
 * Reads every shard of the channel from its own position, in entry id order across the shards: an
 * entry is handed out only once no shard can still return an older one (every shard whose last
 * read came back full has been read past it), so a backlog comes out in order too.
 */
class ShardedTail {
  private readonly keys: string[];
  private held: ShardEntry[] = [];

  constructor(
    private readonly client: RedisConnection,
    private readonly shards: Array<number | undefined>,
    channel: string,
    /** Per shard: the id after which reading starts. */
    private readonly positions: string[],
    private readonly cluster: boolean,
  ) {
    this.keys = shards.map((shard) => streamKey(channel, shard));
  }

  /** The next entries in id order; empty when nothing arrived (after blocking up to a second when `follow`). */
  async next(follow: boolean): Promise<ShardEntry[]> {
    const replies = await this.read(follow);
    let horizon: string | undefined;
    for (const [i, entries] of replies.entries()) {
      const last = entries[entries.length - 1];
      if (last === undefined) continue;
      this.positions[i] = String(last[0]);
      for (const entry of entries) this.held.push({ shard: this.shards[i], entry });
      if (entries.length === READ_COUNT && (horizon === undefined || compareIds(this.positions[i]!, horizon) < 0)) horizon = this.positions[i];
    }
    // Equal ids (one millisecond on two shards' streams) go by shard, however the reads cut them.
    this.held.sort((a, b) => compareIds(String(a.entry[0]), String(b.entry[0])) || (a.shard ?? 0) - (b.shard ?? 0));
    if (horizon === undefined) return this.held.splice(0);
    let ready = 0;
    while (ready < this.held.length && compareIds(String(this.held[ready]!.entry[0]), horizon) <= 0) ready++;
    return this.held.splice(0, ready);
  }

  private async read(follow: boolean): Promise<RawEntry[][]> {
    if (this.cluster && this.keys.length > 1) {
      const replies = await Promise.all(this.keys.map((key, i) => this.xread([key], [this.positions[i]!], undefined)));
      const entries = replies.map((reply, i) => reply.get(this.keys[i]!) ?? []);
      if (follow && entries.every((list) => list.length === 0) && this.held.length === 0) await sleep(CLUSTER_POLL_MS);
      return entries;
    }
    // One Redis: every shard in one XREAD, blocking until any has something new.
    const reply = await this.xread(this.keys, this.positions, follow && this.held.length === 0 ? 1000 : undefined);
    return this.keys.map((key) => reply.get(key) ?? []);
  }

  private async xread(keys: string[], ids: string[], blockMs: number | undefined): Promise<Map<string, RawEntry[]>> {
    const command = ['XREAD', 'COUNT', String(READ_COUNT)];
    if (blockMs !== undefined) command.push('BLOCK', String(blockMs));
    command.push('STREAMS', ...keys, ...ids);
    return byStream((await this.client.sendCommand(command, AS_BUFFERS)) as Parameters<typeof byStream>[0]);
  }
}

export async function tail(args: string[], settings: Settings, io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      app: { type: 'string' },
      level: { type: 'string' },
      grep: { type: 'string' },
      since: { type: 'string' },
      from: { type: 'string' },
      count: { type: 'string' },
      'no-follow': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.level !== undefined && !isLevel(values.level)) throw new UsageError(`--level must be one of ${LEVELS.join(', ')}`);
  const threshold = values.level === undefined ? 0 : LEVEL_VALUES[values.level as keyof typeof LEVEL_VALUES];
  let pattern: RegExp | undefined;
  try {
    pattern = values.grep === undefined ? undefined : new RegExp(values.grep);
  } catch (error) {
    throw new UsageError(`--grep: ${(error as Error).message}`);
  }
  const limit = values.count === undefined ? Infinity : Number(values.count);
  if (!(limit > 0)) throw new UsageError('--count must be a positive number');
  if (values.from !== undefined && !/^\d+(-\d+)?$/.test(values.from)) throw new UsageError('--from must be a stream entry id (1764000000000-0)');
  const keys = signingKeysOf(settings);
  const start = values.from ?? (values.since !== undefined ? before(parseTime(values.since)) : values['no-follow'] ? '0-0' : '$');
  const follow = !values['no-follow'];
  const color = io.stdout.isTTY === true && !values.json;
  const shards = shardsOf(settings.shards);
  const where = (shard: number | undefined, id: string) => (shard === undefined ? `entry ${id}` : `shard ${shard} entry ${id}`);
  const client = await connect(settings);
  // From now: each shard's last id, taken once at the start ('$' would mean "now" again at every poll of a cluster's shards).
  const positions = start === '$' ? await Promise.all(shards.map((shard) => lastId(client, streamKey(settings.channel, shard)))) : shards.map(() => start);
  const reader = new ShardedTail(client, shards, settings.channel, positions, settings.clusterNodes !== undefined);
  let shown = 0;
  let badSignatures = 0;
  const keep = (record: LogRecord) => (values.app === undefined || record.app === values.app) && LEVEL_VALUES[record.level] >= threshold && (pattern === undefined || pattern.test(record.message));
  try {
    while (shown < limit && io.signal?.aborted !== true) {
      const entries = await reader.next(follow);
      if (entries.length === 0) {
        if (!follow) break;
        continue;
      }
      for (const { shard, entry } of entries) {
        if (shown >= limit) break;
        const id = String(entry[0]);
        const payload = entryFields(entry).get(FRAME_FIELD);
        if (payload === undefined) continue;
        let frame;
        try {
          frame = decodeFrame(payload, { entryId: id, keys });
        } catch (error) {
          if (error instanceof BadSignatureError) badSignatures++;
          io.stderr.write(`${where(shard, id)}: ${(error as Error).message} (the server dead-letters it)\n`);
          continue;
        }
        for (let i = 0; i < frame.lines.length && shown < limit; i++) {
          let record: LogRecord;
          try {
            record = decodeRecord(frame, i, { entryId: id });
          } catch (error) {
            io.stderr.write(`${where(shard, id)} record ${i}: ${(error as Error).message}\n`);
            continue;
          }
          if (!keep(record)) continue;
          io.stdout.write(formatRecord(record, { json: values.json, color }) + '\n');
          shown++;
        }
      }
    }
  } finally {
    client.destroy();
  }
  if (badSignatures > 0) io.stderr.write(`${badSignatures} frames failed the signature check (LOG_SIGNING_KEYS): not shown\n`);
  return badSignatures > 0 ? 1 : 0;
}

/** The id of a stream's last entry ('0-0' when it has none): where a tail from now starts. */
async function lastId(client: RedisConnection, key: string): Promise<string> {
  const reply = (await client.sendCommand(['XREVRANGE', key, '+', '-', 'COUNT', '1'])) as Array<[unknown, unknown]>;
  return reply.length === 0 ? '0-0' : String(reply[0]![0]);
}
