import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FRAME_FIELD, SigningKeys, encodeFrame, encodeRecord, parseSigningKey, shardsOf, signFrame, streamKey, type SigningKey } from '@log/protocol';
import { createPublisher } from '@log/publisher';
import { StreamReader } from '@log/subscriber';
import { sleep, startRedis, type RedisServer } from '@log/test-kit';
import { createClient, type RedisClientType } from 'redis';
import { Alerts, type Alert } from '../src/alerts';

// A second consumer of the same logs, beside the logger servers' group: it sees every record, takes
// none from them, and while it is down the servers' trimming waits for it.

let redis: RedisServer;
let admin: RedisClientType;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});
beforeAll(async () => {
  redis = await startRedis();
  admin = createClient({ url: redis.url }) as RedisClientType;
  await admin.connect();
});
afterAll(async () => {
  admin.destroy();
  await redis.dispose();
});

async function webhook(): Promise<{ url: string; alerts: Alert[]; close: () => Promise<void> }> {
  const alerts: Alert[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      alerts.push(JSON.parse(body) as Alert);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, alerts, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const metric = async (alerts: Alerts, name: string, app: string) => Number(new RegExp(`^${name}\\{app="${app}"\\} (\\d+)$`, 'm').exec(await alerts.registry.metrics())?.[1] ?? 0);

it('counts error records per app, alerts once per app and minute past the threshold, and holds the servers’ trimming back while down', async () => {
  const channel = 'alerting';
  const hook = await webhook();
  const options = { url: redis.url, channel, group: 'alerts', consumer: 'a1', threshold: 10, webhookUrl: hook.url };
  let alerts = new Alerts(options);
  await alerts.start();
  cleanups.push(
    () => hook.close(),
    () => alerts.stop(),
  );
  // the logger servers' group, reading and acknowledging everything, and trimming as the server does
  const servers = new StreamReader({ url: redis.url, channel, group: 'logger-server', consumer: 'app1', blockMs: 100 });
  await servers.start();
  cleanups.push(() => servers.close());
  const drain = async () => {
    for (;;) {
      const { entries } = await servers.read();
      if (entries.length === 0) return;
      await servers.ack(entries.map((e) => e.id));
    }
  };

  const shop = createPublisher(channel, { app: 'shop', url: redis.url });
  const api = createPublisher(channel, { app: 'api', url: redis.url });
  cleanups.push(
    () => shop.close(1000),
    () => api.close(1000),
  );
  for (let i = 0; i < 15; i++) shop.error('payment failed', { i });
  for (let i = 0; i < 100; i++) shop.info('fine', { i });
  for (let i = 0; i < 3; i++) api.error('timeout', { i });
  await Promise.all([shop.flush(), api.flush()]);
  for (let i = 0; i < 100 && ((await metric(alerts, 'alerts_error_records_total', 'shop')) < 15 || (await metric(alerts, 'alerts_error_records_total', 'api')) < 3); i++) await sleep(50);
  expect(await metric(alerts, 'alerts_error_records_total', 'shop')).toBe(15);
  expect(await metric(alerts, 'alerts_error_records_total', 'api')).toBe(3);
  for (let i = 0; i < 100 && hook.alerts.length === 0; i++) await sleep(50);
  // the minute may turn during the test: one alert per minute that reached 10
  expect(hook.alerts.length).toBeGreaterThanOrEqual(1);
  expect(hook.alerts.every((a) => a.app === 'shop' && a.errors >= 10 && a.threshold === 10)).toBe(true);
  await drain();

  // alerts down: the servers' group reads on, but trimming keeps what alerts has not read
  await alerts.stop();
  for (let i = 0; i < 3000; i++) shop.error('while alerts is down', { i });
  await shop.flush();
  await drain();
  const trim = await servers.trim();
  expect(trim.slowest).toBe('alerts');
  const [alertsGroup] = ((await admin.xInfoGroups(streamKey(channel))) as Array<{ name: string; 'last-delivered-id': string }>).filter((g) => g.name === 'alerts');
  const unread = (await admin.xRange(streamKey(channel), `(${alertsGroup!['last-delivered-id']}`, '+')) ?? [];
  expect(unread.length).toBeGreaterThan(0);
  const unreadRecords = unread.reduce((sum, entry) => sum + Number(/"n":(\d+)/.exec(entry.message.f!)![1]), 0);
  expect(unreadRecords).toBe(3000); // every record alerts has not seen is still there

  alerts = new Alerts(options);
  await alerts.start();
  for (let i = 0; i < 200 && (await metric(alerts, 'alerts_error_records_total', 'shop')) < 3000; i++) await sleep(50);
  expect(await metric(alerts, 'alerts_error_records_total', 'shop')).toBe(3000); // a new process counts from zero: exactly the records it missed
}, 60_000);

it('reads every shard in its own group, and with the servers’ signing keys counts no record of a frame that fails its signature', async () => {
  const seed = Number(process.env.ALERTS_SEED ?? Date.now() % 1e9);
  console.log(`alerts shards seed ${seed} (replay: ALERTS_SEED=${seed})`);
  let state = seed >>> 0;
  const random = (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
  const channel = 'alerting-sharded';
  const shards = shardsOf(3) as number[];
  const hook = await webhook();
  const texts = shards.map((i) => `app${i}=key${i}:${randomBytes(32).toString('base64')}`);
  const keys = texts.map((text) => parseSigningKey(text) as SigningKey);
  const alerts = new Alerts({ url: redis.url, channel, shards: 3, signingKeys: SigningKeys.parse(texts.join(',')).keys, group: 'alerts', consumer: 'a1', threshold: 5, webhookUrl: hook.url });
  await alerts.start();
  cleanups.push(
    () => hook.close(),
    () => alerts.stop(),
  );
  // The history: per shard, signed frames of its app with a random number of errors among infos.
  const errors = [0, 0, 0];
  const seqs = [1, 1, 1];
  const at = Date.now(); // every record in one minute: an app past the threshold makes exactly one alert
  const frame = (shard: number, levels: Array<'info' | 'error'>, app = `app${shard}`) =>
    encodeFrame(
      { producer: `p${shard}`.padEnd(16, '0'), app, host: 'h', pid: 1, seq: seqs[shard]!, count: levels.length, dropped: 0 },
      levels.map((level) => encodeRecord({ time: at, level, message: level })),
    );
  for (let n = 0; n < 30; n++) {
    const shard = random(3);
    const levels = Array.from({ length: 1 + random(4) }, () => (random(3) === 0 ? ('error' as const) : ('info' as const)));
    await admin.sendCommand(['XADD', streamKey(channel, shard), '*', FRAME_FIELD, signFrame(keys[shard]!, frame(shard, levels))]);
    errors[shard]! += levels.filter((level) => level === 'error').length;
    seqs[shard]! += levels.length;
  }
  // What must not count: a frame signed with another app's key, an unsigned one, one signed by a forged secret.
  await admin.sendCommand(['XADD', streamKey(channel, 1), '*', FRAME_FIELD, signFrame(keys[0]!, frame(1, ['error', 'error']))]);
  await admin.sendCommand(['XADD', streamKey(channel, 2), '*', FRAME_FIELD, frame(2, ['error', 'error', 'error'])]);
  const forged = parseSigningKey(`app0=key0:${randomBytes(32).toString('base64')}`) as SigningKey;
  await admin.sendCommand(['XADD', streamKey(channel, 0), '*', FRAME_FIELD, signFrame(forged, frame(0, ['error']))]);
  const groupsSettled = async () => {
    for (const shard of shards) {
      const groups = (await admin.xInfoGroups(streamKey(channel, shard))) as Array<{ name: string; pending: number; lag: number }>;
      if (!groups.some((g) => g.name === 'alerts' && g.pending === 0 && g.lag === 0)) return false;
    }
    return true;
  };
  for (let i = 0; i < 100 && !(await groupsSettled()); i++) await sleep(50);
  expect(await groupsSettled()).toBe(true);
  for (const shard of shards) expect([shard, await metric(alerts, 'alerts_error_records_total', `app${shard}`)]).toEqual([shard, errors[shard]]);
  expect(await alerts.registry.metrics()).toMatch(/^alerts_bad_signature_frames_total 3$/m);
  // one alert for each app that reached 5 errors, none for the others
  const expected = shards.filter((shard) => errors[shard]! >= 5).map((shard) => `app${shard}`);
  for (let i = 0; i < 40 && hook.alerts.length < expected.length; i++) await sleep(50);
  await sleep(100);
  expect(hook.alerts.map((a) => a.app).sort()).toEqual(expected);
}, 30_000);
