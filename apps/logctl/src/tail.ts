import { parseArgs } from 'node:util';
import { FRAME_FIELD, LEVELS, LEVEL_VALUES, decodeFrame, decodeRecord, isLevel, streamKey, type LogRecord } from '@log/protocol';
import { UsageError, type Io } from './io';
import { formatRecord } from './print';
import { AS_BUFFERS, connect, entryFields, type RawEntry } from './redis';
import { parseTime, type Settings } from './settings';

export const TAIL_HELP = `logctl tail [options]: records as they arrive, read from the stream with XREAD (no consumer
group: it takes nothing from the servers and acknowledges nothing).

  --app NAME       only this app
  --level LEVEL    only this level and above (${LEVELS.join(', ')})
  --grep REGEX     only records whose message matches
  --since TIME     start this long ago (10m, 2h) or at an ISO time, instead of now
  --from ID        start after this stream entry id
  --count N        stop after N records
  --no-follow      stop at the end of the stream instead of waiting for more
  --json           one JSON object per line, as the server writes them
  -h, --help       this help`;

/** Entry id just before `id` (XREAD returns entries after the id it is given). */
function before(ms: number): string {
  return ms <= 0 ? '0-0' : `${ms - 1}-18446744073709551615`;
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
  let id = values.from ?? (values.since !== undefined ? before(parseTime(values.since)) : values['no-follow'] ? '0-0' : '$');
  const follow = !values['no-follow'];
  const color = io.stdout.isTTY === true && !values.json;
  const key = streamKey(settings.channel);
  const client = await connect(settings.redisUrl);
  let shown = 0;
  const keep = (record: LogRecord) => (values.app === undefined || record.app === values.app) && LEVEL_VALUES[record.level] >= threshold && (pattern === undefined || pattern.test(record.message));
  try {
    while (shown < limit && io.signal?.aborted !== true) {
      const command = ['XREAD', 'COUNT', '100'];
      if (follow) command.push('BLOCK', '1000');
      command.push('STREAMS', key, id);
      const reply = (await client.sendCommand(command, AS_BUFFERS)) as Array<[Buffer, RawEntry[]]> | Record<string, RawEntry[]> | null;
      const entries: RawEntry[] = reply === null ? [] : Array.isArray(reply) ? (reply[0]?.[1] ?? []) : (Object.values(reply)[0] ?? []);
      if (entries.length === 0) {
        if (!follow) break;
        continue;
      }
      for (const entry of entries) {
        id = String(entry[0]);
        const payload = entryFields(entry).get(FRAME_FIELD);
        if (payload === undefined) continue;
        let frame;
        try {
          frame = decodeFrame(payload, { entryId: id });
        } catch (error) {
          io.stderr.write(`entry ${id}: ${(error as Error).message} (the server dead-letters it)\n`);
          continue;
        }
        for (let i = 0; i < frame.lines.length && shown < limit; i++) {
          let record: LogRecord;
          try {
            record = decodeRecord(frame, i, { entryId: id });
          } catch (error) {
            io.stderr.write(`entry ${id} record ${i}: ${(error as Error).message}\n`);
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
  return 0;
}
