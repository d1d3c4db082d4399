import { join } from 'node:path';
import { deadLetterKey } from '@log/protocol';
import { createPublisher, type Logger } from '@log/publisher';
import { removeDir, sleep, tempDir, waitUntil } from '@log/test-kit';
import { expectExactlyOnce, groupSettled, httpGet, readLogs, startServer, useRedis, type ServerProcess } from './harness';

// LOG_TRANSPORT=stream,pubsub: servers reading both transports while existing publishers keep
// PUBLISHing. The history is what was published (raw PUBLISH of plain text and JSON, as the Ruby
// daemon's publishers do, our publishers over Pub/Sub and over the stream); the checker reads
// every server's LOG_DIR: each record on disk once across all servers, whichever holds the bridge.

const shared = useRedis();
let dir: string;
const servers: ServerProcess[] = [];
const publishers: Logger[] = [];
afterEach(async () => {
  for (const log of publishers.splice(0)) await log.close();
  for (const server of servers.splice(0)) await server.stop();
  removeDir(dir);
}, 60_000);

function env(channel: string, name: string): Record<string, string> {
  return { REDIS_URL: shared.redis.url, LOG_CHANNEL: channel, LOG_TRANSPORT: 'stream,pubsub', LOG_CONSUMER: name, LOG_DIR: join(dir, name), CLAIM_IDLE_MS: '1000', CLAIM_INTERVAL_MS: '200' };
}

async function start(channel: string, name: string): Promise<ServerProcess> {
  const server = await startServer(env(channel, name));
  servers.push(server);
  return server;
}

async function metric(server: ServerProcess, name: string): Promise<number> {
  const text = (await httpGet(server.httpPort, '/metrics')).body;
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

/** The server of `candidates` holding the bridge, once exactly one does. */
async function bridgeHolder(candidates: ServerProcess[]): Promise<ServerProcess> {
  let holder: ServerProcess | undefined;
  await waitUntil(
    'one server holds the Pub/Sub bridge',
    async () => {
      const held = [];
      for (const server of candidates) if ((await metric(server, 'logger_pubsub_bridge_holder')) === 1) held.push(server);
      holder = held.length === 1 ? held[0] : undefined;
      return holder !== undefined;
    },
    { timeoutMs: 15_000 },
  );
  return holder!;
}

/** Every record under each server's LOG_DIR, all apps. */
function allRecords(names: string[]): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const name of names) for (const records of readLogs(join(dir, name)).values()) for (const record of records) out.push(record);
  return out;
}

/** How many times each token occurs among the records' messages. */
function tokenCounts(records: Array<Record<string, unknown>>, pattern: RegExp): Map<string, number> {
  const counts = new Map<string, number>();
  for (const record of records) {
    const token = pattern.exec(String(record.message))?.[0];
    if (token !== undefined) counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  return counts;
}

it('two servers read the stream and Pub/Sub at once: raw PUBLISH (text and JSON), Pub/Sub frames and stream frames each written once across both', async () => {
  dir = tempDir('migration');
  const channel = 'migrate1';
  const a = await start(channel, 'app1');
  const b = await start(channel, 'app2');
  const holder = await bridgeHolder([a, b]);

  const stream = createPublisher(channel, { app: 'shop', url: shared.redis.url });
  const overPubsub = createPublisher(channel, { app: 'cart', url: shared.redis.url, transport: 'pubsub', maxFrameRecords: 100 });
  publishers.push(stream, overPubsub);
  const RAW = 600;
  const publishes: Array<Promise<number>> = [];
  for (let i = 0; i < RAW; i++) {
    // what `$redis_logger.info(message)` sends today: plain text, or a JSON object
    publishes.push(shared.client.publish(channel, `ruby plain p${i}x`));
    publishes.push(shared.client.publish(channel, JSON.stringify({ message: `ruby json j${i}x`, app: 'billing', level: 'warn', order: i })));
  }
  // bad input heard by both servers: dead-lettered once, by the bridge
  publishes.push(shared.client.publish(channel, Buffer.from([0xff, 0xfe, 0x41])));
  publishes.push(shared.client.publish(channel, 'x'.repeat(300 * 1024)));
  for (let i = 0; i < 2000; i++) stream.info(`stream s${i}x`, { i });
  for (let i = 0; i < 500; i++) overPubsub.info(`pubsub frame f${i}x`, { i });
  await Promise.all([...publishes, stream.flush(), overPubsub.flush()]);
  // every message was heard by both servers (PUBLISH answers with the number of subscribers)
  expect(new Set(await Promise.all(publishes))).toEqual(new Set([2]));

  await waitUntil('every record is on disk', async () => allRecords(['app1', 'app2']).length >= 2 * RAW + 2500, { timeoutMs: 30_000 });
  await groupSettled(shared.client, channel);
  await sleep(300);
  const records = allRecords(['app1', 'app2']);
  expect(records.length).toBe(2 * RAW + 2500);
  const plain = tokenCounts(records, /p\d+x/);
  const json = tokenCounts(records, /j\d+x/);
  for (let i = 0; i < RAW; i++) {
    expect([`p${i}x`, plain.get(`p${i}x`)]).toEqual([`p${i}x`, 1]);
    expect([`j${i}x`, json.get(`j${i}x`)]).toEqual([`j${i}x`, 1]);
  }
  expect(records.filter((r) => /j\d+x/.test(String(r.message))).every((r) => r.app === 'billing' && r.level === 'warn' && typeof r.order === 'number')).toBe(true);
  expect(records.filter((r) => /p\d+x/.test(String(r.message))).every((r) => r.app === 'legacy')).toBe(true);
  expectExactlyOnce(records, stream.producer, 2000);
  expectExactlyOnce(records, overPubsub.producer, 500);

  // only the holder moved messages; the group's loss report has the bridge's records, none missing
  const other = holder === a ? b : a;
  expect(await metric(holder, 'logger_pubsub_bridged_messages_total')).toBe(2 * RAW + overPubsub.stats().frames); // the bad two went to the dead letters
  expect(await metric(other, 'logger_pubsub_bridged_messages_total')).toBe(0);
  const stats = JSON.parse((await httpGet(a.httpPort, '/stats')).body) as { totals: { missing: number } };
  expect(stats.totals.missing).toBe(0);
  const dead = await shared.client.xRange(deadLetterKey(channel), '-', '+');
  expect((dead ?? []).map((letter) => [letter.message.entry, letter.message.reason])).toEqual([
    ['pubsub', 'INVALID_UTF8'],
    ['pubsub', 'RECORD_TOO_LARGE'],
  ]);
}, 90_000);

it.each([
  ['kill -9', 'killed'],
  ['SIGSTOP past the lease, then SIGCONT (a paused bridge must add nothing once another took over)', 'paused'],
] as const)(
  'the bridge meets %s: the other server takes over within the lease; nothing is written twice, and what is missing was published inside the takeover window',
  async (_name, fault) => {
    dir = tempDir('migration-failover');
    const channel = `migrate-${fault}`;
    const a = await start(channel, 'app1');
    const b = await start(channel, 'app2');
    const holder = await bridgeHolder([a, b]);
    const survivor = holder === a ? b : a;
    const holderName = holder === a ? 'app1' : 'app2';

    const stream = createPublisher(channel, { app: 'shop', url: shared.redis.url });
    publishers.push(stream);
    // The history: when each numbered message was published (taken just before its PUBLISH).
    const publishedAt: number[] = [];
    let publishing = true;
    let streamed = 0;
    const loop = (async () => {
      for (let n = 0; publishing; n++) {
        const before = Date.now();
        await shared.client.publish(channel, `tick t${n}x`);
        publishedAt[n] = before;
        stream.info(`stream s${streamed}x`);
        streamed++;
        await sleep(3);
      }
    })();

    await sleep(1500);
    const faultAt = Date.now();
    if (fault === 'killed') {
      await holder.kill9();
      servers.splice(servers.indexOf(holder), 1);
    } else holder.child.kill('SIGSTOP');
    await waitUntil('the survivor holds the bridge', async () => (await metric(survivor, 'logger_pubsub_bridge_holder')) === 1, { timeoutMs: 15_000 });
    const tookOverAt = Date.now();
    // the paused one wakes up with a backlog of messages its successor is forwarding
    if (fault === 'paused') holder.child.kill('SIGCONT');
    await sleep(1500);
    publishing = false;
    await loop;
    await stream.flush();
    // the killed server comes back under its name: it cuts what it wrote and did not acknowledge
    const former = fault === 'killed' ? await start(channel, holderName) : holder;
    await groupSettled(shared.client, channel);
    await sleep(500);
    expect(await metric(former, 'logger_pubsub_bridge_holder')).toBe(0);
    expect(await metric(survivor, 'logger_pubsub_bridge_holder')).toBe(1);

    const records = allRecords(['app1', 'app2']);
    const counts = tokenCounts(records, /t\d+x/);
    const duplicated = [...counts].filter(([, count]) => count > 1);
    expect(duplicated).toEqual([]);
    const missing = publishedAt.flatMap((at, n) => (counts.has(`t${n}x`) ? [] : [{ n, at }]));
    // lost: only what was published from shortly before the fault (the old bridge's last forward
    // interval) until the survivor's barrier; the window is bounded by the lease's expiry
    const windowStart = faultAt - 500;
    expect(missing.filter((m) => m.at < windowStart || m.at > tookOverAt)).toEqual([]);
    expect(tookOverAt - faultAt).toBeLessThan(3000 + 500 + 3000); // lease ttl + poll + a loaded machine's slack
    // the check has something on both sides of the window: all of those are on disk, once
    expect(publishedAt.filter((at) => at < windowStart).length).toBeGreaterThan(50);
    expect(publishedAt.filter((at) => at > tookOverAt).length).toBeGreaterThan(50);
    console.log(
      `${fault}: ${publishedAt.length} messages published, ${missing.length} missing, all published within the ${tookOverAt - faultAt} ms from the fault to the survivor's barrier; ` +
        `survivor skipped ${await metric(survivor, 'logger_pubsub_bridge_skipped_messages_total')} before its barrier; the former bridge counted ${await metric(former, 'logger_pubsub_bridge_lost_messages_total')} lost`,
    );
    expect(await metric(survivor, 'logger_pubsub_bridge_takeovers_total')).toBe(1);
    expectExactlyOnce(records, stream.producer, streamed);
  },
  120_000,
);
