import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FRAME_FIELD, SIGNATURE_MAGIC, deadLetterKey, encodeFrame, encodeRecord, parseSigningKey, signFrame, streamKey, type SigningKey } from '@log/protocol';
import { createPublisher, type Logger } from '@log/publisher';
import { removeDir, sleep, tempDir, waitUntil } from '@log/test-kit';
import { RESP_TYPES } from 'redis';
import { expectExactlyOnce, groupSettled, httpGet, readLogs, startServer, useRedis, type ServerProcess } from './harness';

// Signed frames against a real server: what each publisher logged, and what must come of it.
// Signed by a key of its own app: on disk exactly once. Unsigned, forged (another app's key),
// signed with a wrong secret, tampered with after signing: every frame dead-lettered with
// BAD_SIGNATURE, counted in logger_dead_letters_total exactly as many times as frames were sent,
// and attributed to no producer (the loss report does not know them).

const SEED = Number(process.env.SIGNING_SEED ?? Date.now() % 1e9);
const secret = () => randomBytes(32).toString('base64');
const shopOld = secret();
const shopNew = secret();
const billing = secret();

const shared = useRedis();
let dir: string;
let server: ServerProcess | undefined;
const publishers: Logger[] = [];
afterEach(async () => {
  for (const log of publishers.splice(0)) await log.close();
  await server?.stop();
  server = undefined;
  removeDir(dir);
}, 30_000);

interface Letter {
  entry: string;
  reason: string;
  payload: Buffer;
}

async function deadLetters(channel: string): Promise<Letter[]> {
  const raw = (await shared.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).sendCommand(['XRANGE', deadLetterKey(channel), '-', '+'])) as Array<[Buffer, Buffer[]]>;
  return raw.map(([, fields]) => {
    const map = new Map<string, Buffer>();
    for (let i = 0; i + 1 < fields.length; i += 2) map.set(String(fields[i]), fields[i + 1]!);
    return { entry: String(map.get('entry')), reason: String(map.get('reason')), payload: map.get('payload') ?? Buffer.alloc(0) };
  });
}

function metric(text: string, pattern: RegExp): number {
  return Number(pattern.exec(text)?.[1] ?? 0);
}

function publisher(channel: string, app: string, signingKey: string | undefined, records: number, tag: string): Logger {
  const log = createPublisher(channel, { app, url: shared.redis.url, signingKey, maxFrameRecords: 50, onError: () => {} });
  publishers.push(log);
  for (let i = 0; i < records; i++) log.info(`${tag} ${i}`, { tag, i });
  return log;
}

it(`writes frames signed by a key of their app, dead-letters unsigned, forged, wrong-key and tampered ones with BAD_SIGNATURE and counts each (seed ${SEED})`, async () => {
  console.log(`signing seed ${SEED} (replay: SIGNING_SEED=${SEED})`);
  dir = tempDir('signing');
  const logDir = join(dir, 'log');
  const channel = `sign${SEED}`;
  server = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel, LOG_SIGNING_KEYS: `shop=k1:${shopOld},billing=b1:${billing}` });
  expect(server.output()).not.toContain(shopOld); // the start-up line names keys, never secrets
  expect(server.output()).toContain('shop=k1');

  // good: each app with its own key
  const shop = publisher(channel, 'shop', `k1:${shopOld}`, 1000, 'good');
  const bill = publisher(channel, 'billing', `billing=b1:${billing}`, 300, 'good');
  // bad: unsigned; billing's records under shop's key; shop's key id with another secret
  const unsigned = publisher(channel, 'shop', undefined, 120, 'unsigned');
  const forged = publisher(channel, 'billing', `k1:${shopOld}`, 130, 'forged');
  const wrong = publisher(channel, 'shop', `k1:${secret()}`, 140, 'wrong');
  for (const log of publishers) await log.flush();

  // tampered: a signed frame of a live producer's origin with one byte of its records changed
  // (position from the seed), and an unsigned copy of the same header with the numbers to come
  let state = SEED;
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const key = parseSigningKey(`shop=k1:${shopOld}`) as SigningKey;
  const header = { producer: shop.producer, seq: 1001, count: 5, app: 'shop', host: 'forger', pid: 1, dropped: 0 };
  const lines = Array.from({ length: 5 }, (_, i) => encodeRecord({ time: Date.now(), level: 'info', message: `tampered ${i}` }));
  const signed = signFrame(key, encodeFrame({ ...header, host: 'app1' }, lines));
  const tampered = Buffer.from(signed);
  const recordsStart = signed.indexOf('\n', signed.indexOf('\n') + 1) + 1;
  const at = recordsStart + Math.floor(random() * (signed.length - recordsStart));
  tampered[at] = tampered[at]! ^ 0x01;
  await shared.client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: tampered });
  await shared.client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: encodeFrame(header, lines) });
  // and the signature line alone, with nothing signed behind it
  await shared.client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: `${SIGNATURE_MAGIC}k1 ${'A'.repeat(43)}` });
  const tamperedFrames = 3;

  const badFrames = unsigned.stats().frames + forged.stats().frames + wrong.stats().frames + tamperedFrames;
  expect(badFrames).toBeGreaterThanOrEqual(3 + 3 * 3); // at least 3 frames of 50 records each
  await groupSettled(shared.client, channel);

  // on disk: every good record once, nothing else
  const logs = readLogs(logDir);
  expectExactlyOnce(logs.get('shop') ?? [], shop.producer, 1000);
  expectExactlyOnce(logs.get('billing') ?? [], bill.producer, 300);
  const tags = new Set([...logs.values()].flat().map((r) => r.tag ?? r.message));
  expect([...tags].filter((t) => t !== 'good')).toEqual([]);
  expect([...logs.values()].flat().length).toBe(1300);

  // dead letters: one per bad frame, all BAD_SIGNATURE, holding the frame as it came
  const letters = await deadLetters(channel);
  expect(letters.map((l) => l.reason)).toEqual(Array(badFrames).fill('BAD_SIGNATURE'));
  expect(letters.some((l) => l.payload.equals(tampered))).toBe(true);
  const metrics = (await httpGet(server.httpPort, '/metrics')).body;
  expect(metric(metrics, /logger_dead_letters_total\{reason="BAD_SIGNATURE"\} (\d+)/)).toBe(badFrames);
  expect(metric(metrics, /logger_records_written_total\{app="shop"\} (\d+)/)).toBe(1000);

  // the loss report: the good producers whole, the bad ones unknown (their headers are not believed)
  const stats = JSON.parse((await httpGet(server.httpPort, '/stats')).body) as { producers: Array<{ producer: string; received: number; missing: number; conflicts?: number }> };
  const row = (producer: string) => stats.producers.filter((p) => p.producer === producer);
  expect(row(shop.producer)).toEqual([expect.objectContaining({ received: 1000, missing: 0 })]);
  expect(row(bill.producer)).toEqual([expect.objectContaining({ received: 300, missing: 0 })]);
  for (const bad of [unsigned, forged, wrong]) expect(row(bad.producer)).toEqual([]);

  // the real producer goes on: its records 1001.. (the numbers the forger used) are written
  for (let i = 1000; i < 1010; i++) shop.info(`good ${i}`, { tag: 'good', i });
  await shop.flush();
  await groupSettled(shared.client, channel);
  expectExactlyOnce(readLogs(logDir).get('shop') ?? [], shop.producer, 1010);
}, 60_000);

it('rotates keys: the old and the new key both accepted, then the old one removed', async () => {
  dir = tempDir('signing-rotation');
  const logDir = join(dir, 'log');
  const channel = `rotate${SEED}`;
  const start = (keys: string) => startServer({ REDIS_URL: shared.redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel, LOG_SIGNING_KEYS: keys });

  // 1. every publisher on the old key
  server = await start(`shop=old:${shopOld}`);
  const before = publisher(channel, 'shop', `old:${shopOld}`, 200, 'good');
  await before.flush();
  await groupSettled(shared.client, channel);
  // 2. the servers learn the new key beside the old: publishers move over one by one
  await server.stop();
  server = await start(`shop=old:${shopOld},shop=new:${shopNew}`);
  const oldStill = publisher(channel, 'shop', `old:${shopOld}`, 200, 'good');
  const moved = publisher(channel, 'shop', `new:${shopNew}`, 200, 'good');
  for (const log of [oldStill, moved]) await log.flush();
  await groupSettled(shared.client, channel);
  expect(await deadLetters(channel)).toEqual([]);
  // 3. the old key removed: a publisher left behind on it is refused, the moved one goes on
  await server.stop();
  server = await start(`shop=new:${shopNew}`);
  const leftBehind = publisher(channel, 'shop', `old:${shopOld}`, 100, 'left-behind');
  const after = publisher(channel, 'shop', `new:${shopNew}`, 200, 'good');
  for (const log of [leftBehind, after]) await log.flush();
  await groupSettled(shared.client, channel);

  const shop = readLogs(logDir).get('shop') ?? [];
  for (const log of [before, oldStill, moved, after]) expectExactlyOnce(shop, log.producer, 200);
  expect(shop.length).toBe(800);
  const letters = await deadLetters(channel);
  expect(letters.length).toBe(leftBehind.stats().frames);
  expect(new Set(letters.map((l) => l.reason))).toEqual(new Set(['BAD_SIGNATURE']));
  const metrics = (await httpGet(server.httpPort, '/metrics')).body;
  expect(metric(metrics, /logger_dead_letters_total\{reason="BAD_SIGNATURE"\} (\d+)/)).toBe(leftBehind.stats().frames);
}, 60_000);

it('LOG_TRANSPORT=pubsub with keys: signed frames written, plain messages and unsigned frames dead-lettered', async () => {
  dir = tempDir('signing-pubsub');
  const logDir = join(dir, 'log');
  const channel = `signps${SEED}`;
  server = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel, LOG_TRANSPORT: 'pubsub', LOG_SIGNING_KEYS: `shop=k1:${shopOld}` });
  const good = createPublisher(channel, { app: 'shop', url: shared.redis.url, transport: 'pubsub', signingKey: `k1:${shopOld}`, maxFrameRecords: 50 });
  const bad = createPublisher(channel, { app: 'shop', url: shared.redis.url, transport: 'pubsub', maxFrameRecords: 50 });
  publishers.push(good, bad);
  for (let i = 0; i < 300; i++) {
    good.info(`good ${i}`, { tag: 'good' });
    bad.info(`unsigned ${i}`, { tag: 'unsigned' });
  }
  await good.flush();
  await bad.flush();
  await shared.client.publish(channel, 'plain text from an existing publisher');
  const expected = bad.stats().frames + 1;
  await waitUntil('dead letters', async () => (await deadLetters(channel)).length >= expected, { timeoutMs: 20_000 });
  await sleep(300);
  const letters = await deadLetters(channel);
  expect(letters.map((l) => [l.entry, l.reason])).toEqual(Array(expected).fill(['pubsub', 'BAD_SIGNATURE']));
  expectExactlyOnce(readLogs(logDir).get('shop') ?? [], good.producer, 300);
  expect([...readLogs(logDir).values()].flat().length).toBe(300);
}, 60_000);

it('without LOG_SIGNING_KEYS, signed and unsigned frames are both written (the signature is skipped, not checked)', async () => {
  dir = tempDir('signing-off');
  const logDir = join(dir, 'log');
  const channel = `nokeys${SEED}`;
  server = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel });
  const signed = publisher(channel, 'shop', `k1:${shopOld}`, 500, 'good');
  const wrongKey = publisher(channel, 'shop', `k1:${secret()}`, 500, 'good');
  const unsigned = publisher(channel, 'shop', undefined, 500, 'good');
  for (const log of publishers) await log.flush();
  await groupSettled(shared.client, channel);
  const shop = readLogs(logDir).get('shop') ?? [];
  for (const log of [signed, wrongKey, unsigned]) expectExactlyOnce(shop, log.producer, 500);
  expect(shop.length).toBe(1500);
  expect(await deadLetters(channel)).toEqual([]);
}, 60_000);

it('LOG_TRANSPORT=stream,pubsub with keys: signed Pub/Sub frames go through the bridge and are written, plain messages are dead-lettered', async () => {
  dir = tempDir('signing-bridge');
  const logDir = join(dir, 'log');
  const channel = `signbr${SEED}`;
  server = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel, LOG_TRANSPORT: 'stream,pubsub', LOG_SIGNING_KEYS: `shop=k1:${shopOld}` });
  await waitUntil('the server holds the bridge', async () => /^logger_pubsub_bridge_holder 1$/m.test((await httpGet(server!.httpPort, '/metrics')).body), { timeoutMs: 15_000 });
  const good = createPublisher(channel, { app: 'shop', url: shared.redis.url, transport: 'pubsub', signingKey: `k1:${shopOld}`, maxFrameRecords: 50 });
  publishers.push(good);
  for (let i = 0; i < 300; i++) good.info(`good ${i}`, { tag: 'good' });
  await good.flush();
  await shared.client.publish(channel, 'plain text from an existing publisher');
  await waitUntil('dead letters', async () => (await deadLetters(channel)).length >= 1, { timeoutMs: 20_000 });
  await groupSettled(shared.client, channel);
  const letters = await deadLetters(channel);
  // the bridge made the plain message a frame of its own, unsigned: refused whole
  expect(letters.map((l) => l.reason)).toEqual(['BAD_SIGNATURE']);
  expect(letters[0]!.payload.toString()).toContain('plain text from an existing publisher');
  expectExactlyOnce(readLogs(logDir).get('shop') ?? [], good.producer, 300);
  expect([...readLogs(logDir).values()].flat().length).toBe(300);
}, 60_000);
