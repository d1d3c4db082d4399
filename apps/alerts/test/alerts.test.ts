import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { streamKey } from '@log/protocol';
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
