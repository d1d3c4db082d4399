import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FRAME_FIELD, deadLetterKey, encodeFrame, encodeRecord, parseSigningKey, signFrame, streamKey, verifySignature, SigningKeys, type SigningKey } from '@log/protocol';
import { deadLetterCommand } from '@log/subscriber';
import { removeDir, sleep, tempDir, waitUntil } from '@log/test-kit';
import { readFileSync, readdirSync } from 'node:fs';
import { RESP_TYPES } from 'redis';
import { logctl, useRedis, useServer } from './helpers';

// logctl on a channel in 3 shards (LOG_SHARDS=3, one redis-server): tail reads every shard in
// entry id order, dead letters of every shard are listed, shown, replayed (signed when they were
// refused for their signature) and purged, check looks at every shard's stream. From a printed
// seed; each command's output is checked against what was added.

const SEED = Number(process.env.LOGCTL_SHARDS_SEED ?? Date.now() % 1e9);
const SHARDS = 3;

const shared = useRedis();
let channelNo = 0;
const env = (channel: string, extra: Record<string, string> = {}): Record<string, string> => ({ REDIS_URL: shared.redis.url, LOG_CHANNEL: channel, LOG_SHARDS: String(SHARDS), ...extra });
const nextChannel = () => `lshard${SEED}x${++channelNo}`;
const secret = () => randomBytes(32).toString('base64');

beforeAll(() => {
  console.log(`logctl shards seed ${SEED} (replay: LOGCTL_SHARDS_SEED=${SEED})`);
});

/** mulberry32, from the printed seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function frameOf(producer: string, app: string, seq: number, messages: string[]): string {
  return encodeFrame(
    { producer, app, host: 'web1', pid: 7, seq, count: messages.length, dropped: 0 },
    messages.map((message, i) => encodeRecord({ time: Date.now() + i, level: 'info', message })),
  );
}

const xadd = async (channel: string, shard: number, payload: string | Buffer) => (await shared.client.sendCommand(['XADD', streamKey(channel, shard), '*', FRAME_FIELD, payload])) as string;
const messages = (out: string) =>
  out
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { message: string }).message);

describe('logctl tail over shards', () => {
  it('prints every shard’s records once, in entry id order, also past a read of 100, and follows every shard', async () => {
    const channel = nextChannel();
    const random = rng(SEED);
    // The history: frames to random shards; what tail must print, in the order of (entry id, shard).
    const added: Array<{ id: string; shard: number; messages: string[] }> = [];
    const seqs = [1, 1, 1];
    for (let n = 0; n < 330; n++) {
      const shard = n < 120 ? 1 : random(SHARDS); // shard 1 alone first: more than one read's worth before the others start
      const batch = Array.from({ length: 1 + random(3) }, (_, i) => `m${n}.${i}`);
      added.push({ id: await xadd(channel, shard, frameOf(`prod${shard}aaaaaaaaaaa`, `app${shard}`, seqs[shard]!, batch)), shard, messages: batch });
      seqs[shard]! += batch.length;
    }
    const byId = (a: { id: string; shard: number }, b: { id: string; shard: number }) => {
      const [am, as] = a.id.split('-').map(Number) as [number, number];
      const [bm, bs] = b.id.split('-').map(Number) as [number, number];
      return am - bm || as - bs || a.shard - b.shard;
    };
    const expected = [...added].sort(byId).flatMap((a) => a.messages);
    const all = await logctl(env(channel), ['tail', '--no-follow', '--json']);
    expect(all).toMatchObject({ code: 0, err: '' });
    expect(messages(all.out)).toEqual(expected);
    // with one shard configured, only the unsharded stream is read: nothing of these
    expect(messages((await logctl({ REDIS_URL: shared.redis.url, LOG_CHANNEL: channel }, ['tail', '--no-follow', '--json'])).out)).toEqual([]);
    // --from an id: after it, on every shard
    const middle = [...added].sort(byId)[200]!;
    const after = [...added]
      .sort(byId)
      .filter((a) => byId(a, { id: middle.id, shard: Number.MAX_SAFE_INTEGER }) > 0)
      .flatMap((a) => a.messages);
    expect(messages((await logctl(env(channel), ['tail', '--no-follow', '--json', '--from', middle.id])).out)).toEqual(after);

    // following from now: new records of any shard arrive, and nothing older
    const following = logctl(env(channel), ['tail', '--count', '3', '--json']);
    await sleep(300);
    // a few ms apart: entries of one millisecond on two shards have equal ids (tail orders those by shard)
    await xadd(channel, 2, frameOf('prod2aaaaaaaaaaa', 'app2', seqs[2]!, ['live 2']));
    await sleep(5);
    await xadd(channel, 0, frameOf('prod0aaaaaaaaaaa', 'app0', seqs[0]!, ['live 0']));
    await sleep(5);
    await xadd(channel, 1, frameOf('prod1aaaaaaaaaaa', 'app1', seqs[1]!, ['live 1']));
    expect(messages((await following).out)).toEqual(['live 2', 'live 0', 'live 1']);
  });

  it('with LOG_SIGNING_KEYS checks signatures as the servers do: shows what fails on stderr, counts it, exit 1', async () => {
    const channel = nextChannel();
    const shopKey = `shop=shop-k1:${secret()}`;
    const key = parseSigningKey(shopKey) as SigningKey;
    const forged = parseSigningKey(`shop=shop-k1:${secret()}`) as SigningKey; // the key id, another secret
    const billing = parseSigningKey(`billing=bill-k1:${secret()}`) as SigningKey;
    const apart = async (shard: number, payload: string | Buffer) => {
      await xadd(channel, shard, payload);
      await sleep(3); // one entry per millisecond: the order of addition is the order of ids
    };
    await apart(0, signFrame(key, frameOf('aaaaaaaaaaaaaaaa', 'shop', 1, ['signed good'])));
    await apart(1, signFrame(forged, frameOf('bbbbbbbbbbbbbbbb', 'shop', 1, ['forged'])));
    await apart(2, frameOf('cccccccccccccccc', 'shop', 1, ['unsigned']));
    await apart(2, signFrame(key, frameOf('dddddddddddddddd', 'shop', 2, ['signed good 2'])));
    await apart(0, signFrame(billing, frameOf('eeeeeeeeeeeeeeee', 'shop', 1, ['other app key'])));
    const keys = `${shopKey},billing=bill-k1:${billing.secret.export().toString('base64')}`;
    const checked = await logctl(env(channel, { LOG_SIGNING_KEYS: keys }), ['tail', '--no-follow', '--json']);
    expect(checked.code).toBe(1);
    expect(messages(checked.out)).toEqual(['signed good', 'signed good 2']);
    const lines = checked.err.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^shard 1 entry \S+: bad signature: signature does not match/);
    expect(lines[1]).toMatch(/^shard 2 entry \S+: bad signature: the frame is not signed/);
    expect(lines[2]).toMatch(/^shard 0 entry \S+: bad signature: key bill-k1 signs for app billing, not shop/);
    expect(lines[3]).toBe('3 frames failed the signature check (LOG_SIGNING_KEYS): not shown');
    expect(checked.err).not.toContain(key.secret.export().toString('base64')); // never a secret
    // without keys the signature line is skipped, as a server without keys does
    const unchecked = await logctl(env(channel), ['tail', '--no-follow', '--json']);
    expect(unchecked).toMatchObject({ code: 0, err: '' });
    expect(messages(unchecked.out)).toEqual(['signed good', 'forged', 'unsigned', 'signed good 2', 'other app key']);
    // a bad LOG_SIGNING_KEYS is a usage error that names the problem, not the secret
    const bad = await logctl(env(channel, { LOG_SIGNING_KEYS: 'shop=k:short' }), ['tail', '--no-follow']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('LOG_SIGNING_KEYS: key k: the secret must be at least 16 bytes');
  });
});

describe('logctl dead and check over shards, beside a real server with signing keys', () => {
  const servers = useServer();

  it('lists every shard’s dead letters, refuses to replay BAD_SIGNATURE letters unsigned (they stay), replays them signed, and the server writes them once', async () => {
    const channel = nextChannel();
    const logDir = tempDir('logctl-shards');
    const shopKey = `shop=shop-k1:${secret()}`;
    const key = parseSigningKey(shopKey) as SigningKey;
    const forged = parseSigningKey(`shop=shop-k1:${secret()}`) as SigningKey;
    const billingKey = `billing=bill-k1:${secret()}`;
    const serverKeys = `${shopKey},${billingKey}`;
    const server = await servers.start({ REDIS_URL: shared.redis.url, LOG_CHANNEL: channel, LOG_SHARDS: String(SHARDS), LOG_SIGNING_KEYS: serverKeys, LOG_DIR: logDir });
    const { httpPort } = server;
    const output = () => server.output();
    // shard 0: a good frame; shard 1: a forged one; shard 2: an unsigned one. The server dead-letters 1 and 2.
    await xadd(channel, 0, signFrame(key, frameOf('aaaaaaaaaaaaaaaa', 'shop', 1, ['good 1', 'good 2'])));
    await xadd(channel, 1, signFrame(forged, frameOf('bbbbbbbbbbbbbbbb', 'shop', 1, ['forged 1', 'forged 2', 'forged 3'])));
    await xadd(channel, 2, frameOf('cccccccccccccccc', 'shop', 1, ['unsigned 1']));
    // and a letter of another reason on shard 0, as a server would have stored it
    await shared.client.sendCommand(deadLetterCommand(deadLetterKey(channel, 0), '1-1', 'DELIVERY_LIMIT', 'delivered 11 times', Buffer.from(frameOf('ffffffffffffffff', 'shop', 9, ['limit 1']))));
    const deadLength = async (shard: number) => Number(await shared.client.sendCommand(['XLEN', deadLetterKey(channel, shard)]));
    await waitUntil('BAD_SIGNATURE letters on shards 1 and 2', async () => (await deadLength(1)) === 1 && (await deadLength(2)) === 1, { timeoutMs: 20_000, child: server.child, output });

    const list = await logctl(env(channel), ['dead', 'list', '--json']);
    expect(list.code).toBe(0);
    const letters = list.out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; shard: number; reason: string });
    expect(letters.map((l) => [l.shard, l.reason]).sort()).toEqual([
      [0, 'DELIVERY_LIMIT'],
      [1, 'BAD_SIGNATURE'],
      [2, 'BAD_SIGNATURE'],
    ]);
    for (const l of letters) expect(l.id).toMatch(new RegExp(`^${l.shard}/\\d+-\\d+$`));
    const onShard = (shard: number) => letters.find((l) => l.shard === shard)!.id;
    const show = await logctl(env(channel), ['dead', 'show', onShard(1)]);
    expect(show.out).toContain('reason  BAD_SIGNATURE');
    expect(show.out).toContain('forged 1');
    // a bare id is found on its shard; an unknown shard is a usage error
    expect((await logctl(env(channel), ['dead', 'show', onShard(2).split('/')[1]!])).out).toContain('unsigned 1');
    expect((await logctl(env(channel), ['dead', 'show', `7/${onShard(2).split('/')[1]!}`])).code).toBe(2);

    // No key: BAD_SIGNATURE letters are refused with the reason and stay.
    const unsigned = await logctl(env(channel), ['dead', 'replay', onShard(1), onShard(2)]);
    expect(unsigned).toMatchObject({ code: 1, out: '' });
    expect(unsigned.err).toContain(`${onShard(1)}: refused for its signature (BAD_SIGNATURE), and an unsigned replay would be refused again: give LOG_SIGNING_KEY (a key of app shop)`);
    expect(unsigned.err).toContain(`${onShard(2)}: refused for its signature (BAD_SIGNATURE)`);
    expect([await deadLength(1), await deadLength(2)]).toEqual([1, 1]);
    // A key of another app is refused too.
    const wrongApp = await logctl(env(channel, { LOG_SIGNING_KEY: billingKey }), ['dead', 'replay', onShard(1)]);
    expect(wrongApp.code).toBe(1);
    expect(wrongApp.err).toContain('LOG_SIGNING_KEY bill-k1 signs for app billing, not shop; left in place');
    expect(await deadLength(1)).toBe(1);

    // With the servers' LOG_SIGNING_KEYS (the app's newest key): every letter signed, written by the server.
    const signed = await logctl(env(channel, { LOG_SIGNING_KEYS: serverKeys }), ['dead', 'replay', '--all', '--json']);
    expect(signed).toMatchObject({ code: 0, err: '' });
    const replayed = signed.out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; replayedAs: string; signed: boolean });
    expect(replayed.map((r) => [r.id, r.replayedAs.split('/')[0], r.signed])).toEqual([
      [onShard(0), '0', true],
      [onShard(1), '1', true],
      [onShard(2), '2', true],
    ]);
    const keys = SigningKeys.parse(serverKeys).keys!;
    for (const r of replayed) {
      const [shard, id] = r.replayedAs.split('/') as [string, string];
      const raw = (await shared.client.sendCommand(['XRANGE', streamKey(channel, Number(shard)), id, id], { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } })) as Array<[Buffer, Buffer[]]>;
      expect(verifySignature(raw[0]![1][1]!, keys).key.id).toBe('shop-k1');
    }
    expect([await deadLength(0), await deadLength(1), await deadLength(2)]).toEqual([0, 0, 0]);

    // The checker: every record that was good or replayed is on disk exactly once; nothing else.
    const want = ['good 1', 'good 2', 'limit 1', 'forged 1', 'forged 2', 'forged 3', 'unsigned 1'].sort();
    const onDisk = () => {
      const dir = join(logDir, 'shop');
      const lines: string[] = [];
      for (const name of readdirSync(dir)) if (name.endsWith('.log') || name.endsWith('.jsonl')) lines.push(...readFileSync(join(dir, name), 'utf8').split('\n').filter(Boolean));
      return lines.map((line) => (JSON.parse(line) as { message: string }).message).sort();
    };
    await waitUntil('replayed records on disk', async () => onDisk().length >= want.length, { timeoutMs: 20_000, child: server.child, output });
    await sleep(300);
    expect(onDisk()).toEqual(want);
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^logger_dead_letters_total\{reason="BAD_SIGNATURE"\} 2$/m);
    // purge --all: every shard's letters
    for (const shard of [0, 2, 2]) await shared.client.sendCommand(deadLetterCommand(deadLetterKey(channel, shard), '1-1', 'RECORD_INVALID', 'bad', Buffer.from('x')));
    expect((await logctl(env(channel), ['dead', 'purge', '--all', '--yes'])).out).toBe('deleted 3 dead letters\n');
    expect([await deadLength(0), await deadLength(1), await deadLength(2)]).toEqual([0, 0, 0]);
    const stats = await logctl(env(channel), ['stats', '--json']);
    expect((JSON.parse(stats.out) as { totals: { received: number; missing: number } }).totals).toMatchObject({ received: 7, missing: 0 });
  }, 60_000);

  it('check looks at every shard’s stream and says when a publisher uses more shards than LOG_SHARDS', async () => {
    const channel = nextChannel();
    const logDir = tempDir('logctl-check');
    await xadd(channel, 0, frameOf('aaaaaaaaaaaaaaaa', 'shop', 1, ['x']));
    await xadd(channel, 2, frameOf('bbbbbbbbbbbbbbbb', 'shop', 1, ['y']));
    const fine = await logctl(env(channel, { LOG_DIR: logDir }), ['check']);
    expect(fine.code).toBe(0);
    expect(fine.out).toContain(`LOG_SHARDS=3: ${streamKey(channel, 0)} exists, ${streamKey(channel, 1)} not created yet, ${streamKey(channel, 2)} exists`);
    await xadd(channel, 3, frameOf('cccccccccccccccc', 'shop', 1, ['z']));
    const stray = await logctl(env(channel, { LOG_DIR: logDir }), ['check', '--json']);
    expect(stray.code).toBe(1);
    const outcomes = JSON.parse(stray.out) as Array<{ check: string; ok: boolean; detail: string }>;
    expect(outcomes.filter((o) => !o.ok)).toEqual([
      {
        check: 'shards',
        ok: false,
        detail: `${streamKey(channel, 3)} exists: a publisher uses more shards than LOG_SHARDS=3, and no server reads it (give servers and publishers the same LOG_SHARDS)`,
      },
    ]);
    // one shard configured: the sharded streams are strays
    expect((await logctl({ REDIS_URL: shared.redis.url, LOG_CHANNEL: channel, LOG_DIR: logDir }, ['check'])).out).toContain(`PROBLEM shards: ${streamKey(channel, 0)}`);
    removeDir(logDir);
  });
});
