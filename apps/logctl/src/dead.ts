import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FRAME_FIELD, assertValidName, deadLetterKey, decodeFrame, encodeFrame, isFrame, streamKey, type FrameHeader } from '@log/protocol';
import { UsageError, type Io } from './io';
import { AS_BUFFERS, connect, entryFields, type RawEntry } from './redis';
import type { Settings } from './settings';

export const DEAD_HELP = `logctl dead <list|show|replay|purge> [options]: the dead-letter stream (entries and records the
server refused, with the reason).

  list [--count N]                 the newest N dead letters (default 20): id, reason, detail
  show ID                          one dead letter with its payload
  replay ID... | --all [--app A]   after a fix: its records go back to the stream under a new
                                   producer id (the server writes them; the original producer's
                                   ledger keeps them as dead-lettered, never missing), then the
                                   dead letter is deleted. A lone record line has no frame
                                   header: --app names its app.
  purge ID... | --all [--yes]      delete dead letters; asks for confirmation unless --yes
  --json                           JSON output
  -h, --help                       this help`;

interface DeadLetter {
  id: string;
  entry: string;
  reason: string;
  detail: string;
  payload: Buffer | undefined;
}

function toLetter(entry: RawEntry): DeadLetter {
  const fields = entryFields(entry);
  return { id: String(entry[0]), entry: String(fields.get('entry') ?? ''), reason: String(fields.get('reason') ?? ''), detail: String(fields.get('detail') ?? ''), payload: fields.get('payload') };
}

async function range(client: Awaited<ReturnType<typeof connect>>, key: string, start: string, end: string, count?: number): Promise<DeadLetter[]> {
  const command = ['XRANGE', key, start, end];
  if (count !== undefined) command.push('COUNT', String(count));
  return ((await client.sendCommand(command, AS_BUFFERS)) as RawEntry[]).map(toLetter);
}

/** The payload's record lines and the header to replay them under (a new producer, sequence numbers from 1). */
function replayFrame(letter: DeadLetter, app: string | undefined): string {
  if (letter.payload === undefined) throw new UsageError(`${letter.id}: no payload to replay`);
  let lines: string[];
  let header: Omit<FrameHeader, 'producer' | 'seq' | 'count' | 'dropped'>;
  if (isFrame(letter.payload)) {
    const frame = decodeFrame(letter.payload, { entryId: letter.id });
    lines = frame.lines.map((line) => (typeof line === 'string' ? line : Buffer.from(line).toString('utf8')));
    header = { app: app ?? frame.header.app, host: frame.header.host, pid: frame.header.pid };
  } else {
    if (app === undefined) throw new UsageError(`${letter.id}: a lone record line (reason ${letter.reason}) has no app: give --app to replay it`);
    lines = [letter.payload.toString('utf8')];
    header = { app, host: 'logctl', pid: process.pid };
  }
  assertValidName('app', header.app);
  return encodeFrame({ ...header, producer: randomBytes(8).toString('hex'), seq: 1, count: lines.length, dropped: 0 }, lines);
}

export async function dead(args: string[], settings: Settings, io: Io): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { count: { type: 'string' }, all: { type: 'boolean', default: false }, yes: { type: 'boolean', default: false }, app: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const key = deadLetterKey(settings.channel);
  const client = await connect(settings.redisUrl);
  const print = (value: unknown, text: string) => io.stdout.write((values.json ? JSON.stringify(value) : text) + '\n');
  try {
    const chosen = async (): Promise<DeadLetter[]> => {
      if (values.all) return range(client, key, '-', '+');
      if (positionals.length === 0) throw new UsageError(`dead ${action}: give dead-letter ids, or --all`);
      const letters: DeadLetter[] = [];
      for (const id of positionals) {
        const found = await range(client, key, id, id);
        if (found.length === 0) throw new UsageError(`no dead letter ${id} in ${key}`);
        letters.push(found[0] as DeadLetter);
      }
      return letters;
    };
    switch (action) {
      case 'list': {
        const count = values.count === undefined ? 20 : Number(values.count);
        if (!(count > 0)) throw new UsageError('--count must be a positive number');
        const letters = ((await client.sendCommand(['XREVRANGE', key, '+', '-', 'COUNT', String(count)], AS_BUFFERS)) as RawEntry[]).map(toLetter);
        if (letters.length === 0 && !values.json) io.stdout.write(`no dead letters in ${key}\n`);
        for (const l of letters)
          print({ id: l.id, entry: l.entry, reason: l.reason, detail: l.detail, bytes: l.payload?.length ?? 0 }, `${l.id}  ${l.reason.padEnd(16)} entry ${l.entry}  ${JSON.stringify(l.detail)}`);
        return 0;
      }
      case 'show': {
        for (const l of await chosen()) {
          const payload = l.payload?.toString('utf8');
          print(
            { id: l.id, entry: l.entry, reason: l.reason, detail: l.detail, payload },
            `id      ${l.id}\nentry   ${l.entry}\nreason  ${l.reason}\ndetail  ${l.detail}\npayload ${JSON.stringify(payload ?? null)}`,
          );
        }
        return 0;
      }
      case 'replay': {
        let failed = 0;
        for (const l of await chosen()) {
          try {
            const frame = replayFrame(l, values.app);
            const id = (await client.sendCommand(['XADD', streamKey(settings.channel), '*', FRAME_FIELD, frame])) as string;
            await client.sendCommand(['XDEL', key, l.id]);
            print({ id: l.id, replayedAs: id }, `${l.id} replayed as ${id}`);
          } catch (error) {
            failed++;
            io.stderr.write(`${l.id}: not replayed: ${(error as Error).message}\n`);
          }
        }
        return failed > 0 ? 1 : 0;
      }
      case 'purge': {
        const letters = await chosen();
        if (!values.yes) {
          if (io.ask === undefined) throw new UsageError(`dead purge would delete ${letters.length} dead letters: add --yes (no terminal to confirm on)`);
          const answer = await io.ask(`delete ${letters.length} dead letters from ${key}? type yes: `);
          if (answer.trim() !== 'yes') {
            io.stdout.write('nothing deleted\n');
            return 1;
          }
        }
        let deleted = 0;
        for (let i = 0; i < letters.length; i += 500) {
          const ids = letters.slice(i, i + 500).map((l) => l.id);
          deleted += Number(await client.sendCommand(['XDEL', key, ...ids]));
        }
        print({ deleted }, `deleted ${deleted} dead letters`);
        return 0;
      }
      default:
        throw new UsageError(action === undefined ? 'dead: which action? list, show, replay or purge' : `dead: unknown action ${JSON.stringify(action)}`);
    }
  } finally {
    client.destroy();
  }
}
