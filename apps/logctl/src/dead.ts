import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FRAME_FIELD, assertValidName, deadLetterKey, decodeFrame, encodeFrame, isFrame, shardsOf, signFrame, streamKey, type FrameHeader, type SigningKey } from '@log/protocol';
import type { RedisConnection } from '@log/protocol/redis';
import { compareIds } from '@log/subscriber';
import { UsageError, type Io } from './io';
import { AS_BUFFERS, connect, entryFields, type RawEntry } from './redis';
import { signingKeyOf, signingKeysOf, type Settings } from './settings';

export const DEAD_HELP = `logctl dead <list|show|replay|purge> [options]: the dead-letter streams (entries and records the
server refused, with the reason), of every shard (LOG_SHARDS): a dead letter of shard 2 is
named 2/<id>; a bare <id> is looked for on every shard.

  list [--count N]                 the newest N dead letters (default 20): id, reason, detail
  show ID                          one dead letter with its payload
  replay ID... | --all [--app A]   after a fix: its records go back to its shard's stream under a
                                   new producer id (the server writes them; the original
                                   producer's ledger keeps them as dead-lettered, never missing),
                                   then the dead letter is deleted. A lone record line has no frame
                                   header: --app names its app. Signed with LOG_SIGNING_KEY
                                   (app=keyid:secret, as a publisher of the app has it), else with
                                   the app's last key in LOG_SIGNING_KEYS; a BAD_SIGNATURE letter
                                   (or any, while LOG_SIGNING_KEYS says the servers check) is not
                                   replayed without a key of its app: it stays where it is.
  purge ID... | --all [--yes]      delete dead letters; asks for confirmation unless --yes
  --json                           JSON output
  -h, --help                       this help`;

interface DeadLetter {
  /** The name logctl shows and takes: the entry id, prefixed by `<shard>/` on a sharded channel. */
  ref: string;
  id: string;
  shard: number | undefined;
  entry: string;
  reason: string;
  detail: string;
  payload: Buffer | undefined;
}

function toLetter(entry: RawEntry, shard: number | undefined): DeadLetter {
  const fields = entryFields(entry);
  const id = String(entry[0]);
  return {
    ref: shard === undefined ? id : `${shard}/${id}`,
    id,
    shard,
    entry: String(fields.get('entry') ?? ''),
    reason: String(fields.get('reason') ?? ''),
    detail: String(fields.get('detail') ?? ''),
    payload: fields.get('payload'),
  };
}

async function range(client: RedisConnection, channel: string, shard: number | undefined, start: string, end: string, count?: number): Promise<DeadLetter[]> {
  const command = ['XRANGE', deadLetterKey(channel, shard), start, end];
  if (count !== undefined) command.push('COUNT', String(count));
  return ((await client.sendCommand(command, AS_BUFFERS)) as RawEntry[]).map((entry) => toLetter(entry, shard));
}

/** How replayed frames are signed: LOG_SIGNING_KEY, else each app's newest key of LOG_SIGNING_KEYS. */
interface Signer {
  key: SigningKey | undefined;
  keys: ReturnType<typeof signingKeysOf>;
}

/**
 * The frame to replay a letter's records under (a new producer, sequence numbers from 1), signed
 * when a key of its app is at hand. Throws (the letter stays) when it must be signed and cannot:
 * a BAD_SIGNATURE letter sent unsigned would only be refused again.
 */
function replayFrame(letter: DeadLetter, app: string | undefined, signer: Signer): string | Buffer {
  if (letter.payload === undefined) throw new UsageError(`${letter.ref}: no payload to replay`);
  let lines: string[];
  let header: Omit<FrameHeader, 'producer' | 'seq' | 'count' | 'dropped'>;
  if (isFrame(letter.payload)) {
    const frame = decodeFrame(letter.payload, { entryId: letter.id });
    lines = frame.lines.map((line) => (typeof line === 'string' ? line : Buffer.from(line).toString('utf8')));
    header = { app: app ?? frame.header.app, host: frame.header.host, pid: frame.header.pid };
  } else {
    if (app === undefined) throw new UsageError(`${letter.ref}: a lone record line (reason ${letter.reason}) has no app: give --app to replay it`);
    lines = [letter.payload.toString('utf8')];
    header = { app, host: 'logctl', pid: process.pid };
  }
  assertValidName('app', header.app);
  const frame = encodeFrame({ ...header, producer: randomBytes(8).toString('hex'), seq: 1, count: lines.length, dropped: 0 }, lines);
  const key = signer.key ?? signer.keys?.ofApp(header.app).at(-1);
  if (key === undefined) {
    if (letter.reason === 'BAD_SIGNATURE')
      throw new UsageError(
        `${letter.ref}: refused for its signature (BAD_SIGNATURE), and an unsigned replay would be refused again: give LOG_SIGNING_KEY (a key of app ${header.app}) or LOG_SIGNING_KEYS with one; left in place`,
      );
    if (signer.keys !== undefined) throw new UsageError(`${letter.ref}: LOG_SIGNING_KEYS has no key of app ${header.app}, and the servers refuse unsigned frames; left in place`);
    return frame;
  }
  if (key.app !== undefined && key.app !== header.app) throw new UsageError(`${letter.ref}: LOG_SIGNING_KEY ${key.id} signs for app ${key.app}, not ${header.app}; left in place`);
  return signFrame(key, frame);
}

export async function dead(args: string[], settings: Settings, io: Io): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { count: { type: 'string' }, all: { type: 'boolean', default: false }, yes: { type: 'boolean', default: false }, app: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const shards = shardsOf(settings.shards);
  const channel = settings.channel;
  const where = shards.length === 1 ? deadLetterKey(channel) : `${deadLetterKey(channel, 0)} .. ${deadLetterKey(channel, shards.length - 1)}`;
  const signer: Signer | undefined = action === 'replay' ? { key: signingKeyOf(settings), keys: signingKeysOf(settings) } : undefined;
  const client = await connect(settings);
  const print = (value: unknown, text: string) => io.stdout.write((values.json ? JSON.stringify(value) : text) + '\n');
  try {
    /** One letter by its name: `<shard>/<id>`, or a bare id looked for on every shard. */
    const find = async (ref: string): Promise<DeadLetter> => {
      const slash = ref.indexOf('/');
      const named = slash === -1 ? undefined : Number(ref.slice(0, slash));
      const id = slash === -1 ? ref : ref.slice(slash + 1);
      if (!/^\d+-\d+$/.test(id)) throw new UsageError(`${JSON.stringify(ref)} is not a dead letter's id (${shards.length === 1 ? '1764000000000-0' : '2/1764000000000-0'})`);
      if (named !== undefined && !shards.includes(named)) throw new UsageError(`${ref}: no shard ${ref.slice(0, slash)} (LOG_SHARDS=${settings.shards})`);
      const found = (await Promise.all((named === undefined ? shards : [named]).map((shard) => range(client, channel, shard, id, id)))).flat();
      if (found.length === 0) throw new UsageError(`no dead letter ${ref} in ${where}`);
      if (found.length > 1) throw new UsageError(`${ref} is a dead letter of several shards: name one, as ${found.map((l) => l.ref).join(' or ')}`);
      return found[0]!;
    };
    const chosen = async (): Promise<DeadLetter[]> => {
      if (values.all) return (await Promise.all(shards.map((shard) => range(client, channel, shard, '-', '+')))).flat();
      if (positionals.length === 0) throw new UsageError(`dead ${action}: give dead-letter ids, or --all`);
      const letters: DeadLetter[] = [];
      for (const ref of positionals) letters.push(await find(ref));
      return letters;
    };
    switch (action) {
      case 'list': {
        const count = values.count === undefined ? 20 : Number(values.count);
        if (!(count > 0)) throw new UsageError('--count must be a positive number');
        // The newest `count` of each shard hold the newest `count` of all.
        const perShard = await Promise.all(
          shards.map(async (shard) =>
            ((await client.sendCommand(['XREVRANGE', deadLetterKey(channel, shard), '+', '-', 'COUNT', String(count)], AS_BUFFERS)) as RawEntry[]).map((entry) => toLetter(entry, shard)),
          ),
        );
        const letters = perShard
          .flat()
          .sort((a, b) => compareIds(b.id, a.id))
          .slice(0, count);
        if (letters.length === 0 && !values.json) io.stdout.write(`no dead letters in ${where}\n`);
        for (const l of letters)
          print(
            { id: l.ref, ...(l.shard === undefined ? {} : { shard: l.shard }), entry: l.entry, reason: l.reason, detail: l.detail, bytes: l.payload?.length ?? 0 },
            `${l.ref}  ${l.reason.padEnd(16)} entry ${l.entry}  ${JSON.stringify(l.detail)}`,
          );
        return 0;
      }
      case 'show': {
        for (const l of await chosen()) {
          const payload = l.payload?.toString('utf8');
          print(
            { id: l.ref, entry: l.entry, reason: l.reason, detail: l.detail, payload },
            `id      ${l.ref}\nentry   ${l.entry}\nreason  ${l.reason}\ndetail  ${l.detail}\npayload ${JSON.stringify(payload ?? null)}`,
          );
        }
        return 0;
      }
      case 'replay': {
        let failed = 0;
        for (const l of await chosen()) {
          try {
            const frame = replayFrame(l, values.app, signer!);
            const id = (await client.sendCommand(['XADD', streamKey(channel, l.shard), '*', FRAME_FIELD, frame])) as string;
            await client.sendCommand(['XDEL', deadLetterKey(channel, l.shard), l.id]);
            const as = l.shard === undefined ? id : `${l.shard}/${id}`;
            print({ id: l.ref, replayedAs: as, signed: typeof frame !== 'string' }, `${l.ref} replayed as ${as}${typeof frame === 'string' ? '' : ' (signed)'}`);
          } catch (error) {
            failed++;
            io.stderr.write(`${error instanceof UsageError ? '' : `${l.ref}: not replayed: `}${(error as Error).message}\n`);
          }
        }
        return failed > 0 ? 1 : 0;
      }
      case 'purge': {
        const letters = await chosen();
        if (!values.yes) {
          if (io.ask === undefined) throw new UsageError(`dead purge would delete ${letters.length} dead letters: add --yes (no terminal to confirm on)`);
          const answer = await io.ask(`delete ${letters.length} dead letters from ${where}? type yes: `);
          if (answer.trim() !== 'yes') {
            io.stdout.write('nothing deleted\n');
            return 1;
          }
        }
        let deleted = 0;
        for (const shard of shards) {
          const ids = letters.filter((l) => l.shard === shard).map((l) => l.id);
          for (let i = 0; i < ids.length; i += 500) deleted += Number(await client.sendCommand(['XDEL', deadLetterKey(channel, shard), ...ids.slice(i, i + 500)]));
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
