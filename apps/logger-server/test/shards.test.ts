import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FRAME_FIELD, deadLetterKey, encodeFrame, encodeRecord, shardsOf, streamKey } from '@log/protocol';
import { createRedisConnection } from '@log/protocol/redis';
import { removeDir, sleep, startRedisCluster, tempDir, waitUntil } from '@log/test-kit';
import { expectExactlyOnce, httpGet, readLogs, rng, startServer, useRedis, type ServerProcess } from './harness';

// A server of a channel in 3 shards reports each shard's group gauges under its own `shard` label,
// and /healthz is a function of every shard's Redis: one shard whose keys the server may no longer
// touch (its ACL user loses them, a real NOPERM from Redis on that shard's commands only) keeps it
// unready, steadily, naming that shard, while the other shards' records go on landing. When the
// shard is back, its records land too, each exactly once.

const SEED = Number(process.env.SHARDS_SEED ?? Date.now() % 1e9);
const SHARDS = 3;
const LOGCTL = join(__dirname, '..', '..', 'logctl', 'dist', 'main.js');

const shared = useRedis();
let dir: string;
let server: ServerProcess | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  removeDir(dir);
}, 30_000);

type Healthz = { status: string; redis: string; failingShards?: Array<{ shard: number; error?: string }>; lastError?: string };

it(`labels group gauges by shard, and /healthz stays unready naming the shard whose Redis refuses it (seed ${SEED})`, async () => {
  console.log(`shards seed ${SEED} (replay: SHARDS_SEED=${SEED})`);
  const r = rng(SEED);
  dir = tempDir('shards');
  const logDir = join(dir, 'log');
  const channel = `shards${SEED}`;
  const keys = shardsOf(SHARDS).map((shard) => streamKey(channel, shard));
  const client = shared.client;
  const keyPatterns = (shards: number[]) => shards.flatMap((i) => [`~${keys[i]!}`, `~${keys[i]!}:*`]);
  // The server's own user: every key of the channel, to start with.
  await client.sendCommand(['ACL', 'SETUSER', 'srv', 'on', '>srv-pass', 'resetkeys', ...keyPatterns([0, 1, 2]), 'resetchannels', '+@all']);

  // The history: frames of one producer per shard, a random number per shard (so the shards' gauges differ).
  const sent: Array<{ producer: string; count: number }> = [];
  let frames = [0, 0, 0];
  const send = async (shard: number, n: number) => {
    for (let i = 0; i < n; i++) {
      const producer = `prod${shard}${String(SEED).padStart(12, '0')}`.slice(0, 16);
      let entry = sent[shard];
      if (entry === undefined) sent[shard] = entry = { producer, count: 0 };
      const records = 1 + r.int(5);
      const lines = Array.from({ length: records }, (_, k) => encodeRecord({ time: Date.now(), level: 'info', message: `s${shard} r${entry.count + k + 1}` }));
      await client.sendCommand(['XADD', keys[shard]!, '*', FRAME_FIELD, encodeFrame({ producer, app: `app${shard}`, host: 'h', pid: 1, seq: entry.count + 1, count: records, dropped: 0 }, lines)]);
      entry.count += records;
      frames[shard]! += 1;
    }
  };

  // A second group on every shard that reads nothing (shard 1: a few), to give the gauges numbers to check.
  for (const key of keys) await client.sendCommand(['XGROUP', 'CREATE', key, 'audit', '0', 'MKSTREAM']);
  frames = [0, 0, 0];
  for (let shard = 0; shard < SHARDS; shard++) await send(shard, 2 + r.int(8) + shard * 10);
  const auditRead = 1 + r.int(frames[1]! - 1);
  await client.sendCommand(['XREADGROUP', 'GROUP', 'audit', 'auditor', 'COUNT', String(auditRead), 'STREAMS', keys[1]!, '>']);

  const url = shared.redis.url.replace('redis://', 'redis://srv:srv-pass@');
  server = await startServer({ REDIS_URL: url, LOG_DIR: logDir, LOG_CHANNEL: channel, LOG_SHARDS: String(SHARDS), TRIM_INTERVAL_MS: '200', CLAIM_INTERVAL_MS: '200' });
  const port = server.httpPort;
  const onDisk = (shard: number) => (readLogs(logDir).get(`app${shard}`) ?? []).length;
  await waitUntil('every shard written', async () => [0, 1, 2].every((shard) => onDisk(shard) === sent[shard]!.count), { timeoutMs: 20_000 });

  // Per shard, the gauges say that shard's numbers (the last shard to trim used to win).
  const gauge = (text: string, name: string, group: string, shard: number) => Number(new RegExp(`^${name}\\{group="${group}",shard="${shard}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  await waitUntil('gauges of every shard', async () => {
    const text = (await httpGet(port, '/metrics')).body;
    return [0, 1, 2].every((shard) => gauge(text, 'logger_group_lag', 'logger-server', shard) === 0 && !Number.isNaN(gauge(text, 'logger_group_lag', 'audit', shard)));
  });
  const metrics = (await httpGet(port, '/metrics')).body;
  for (let shard = 0; shard < SHARDS; shard++) {
    const read = shard === 1 ? auditRead : 0;
    expect([shard, gauge(metrics, 'logger_group_lag', 'audit', shard)]).toEqual([shard, frames[shard]! - read]);
    expect([shard, gauge(metrics, 'logger_group_pending', 'audit', shard)]).toEqual([shard, read]);
    expect([shard, gauge(metrics, 'logger_group_pending', 'logger-server', shard)]).toEqual([shard, 0]);
    expect([shard, gauge(metrics, 'logger_retention_blocked_by', 'audit', shard)]).toEqual([shard, 1]);
    expect([shard, gauge(metrics, 'logger_retention_blocked_by', 'logger-server', shard)]).toEqual([shard, 0]);
  }
  expect(metrics).not.toMatch(/^logger_group_lag\{group="[^"]*"\} /m); // every series has its shard
  expect(JSON.parse((await httpGet(port, '/healthz')).body)).toMatchObject({ status: 'ok', redis: 'ok', failingShards: [] });

  // The fault: shard 1's keys are taken from the server's user. Its loop fails (NOPERM); 0 and 2 go on.
  // New frames are sent once shard 1's reads fail: a shard whose commit fails holds every shard's
  // writing until it answers (their batches share the files), which is not what this test is about.
  await client.sendCommand(['ACL', 'SETUSER', 'srv', 'resetkeys', ...keyPatterns([0, 2])]);
  await waitUntil('healthz unready', async () => (await httpGet(port, '/healthz')).status === 503, { timeoutMs: 10_000 });
  const before = [0, 1, 2].map(onDisk);
  for (let shard = 0; shard < SHARDS; shard++) await send(shard, 3);
  // Steadily unready while the others write (it used to flap with whichever loop reported last).
  const seen: Healthz[] = [];
  for (let i = 0; i < 25; i++) {
    const reply = await httpGet(port, '/healthz');
    expect(reply.status).toBe(503);
    seen.push(JSON.parse(reply.body) as Healthz);
    await sleep(100);
  }
  for (const body of seen) {
    expect(body).toMatchObject({ status: 'unavailable', redis: 'failing' });
    expect(body.failingShards?.map((f) => f.shard)).toEqual([1]);
    expect(body.failingShards?.[0]?.error).toMatch(/NOPERM/);
  }
  expect((await httpGet(port, '/metrics')).body).toMatch(/^logger_ready 0$/m);
  await waitUntil('shards 0 and 2 written meanwhile', async () => [0, 2].every((shard) => onDisk(shard) === sent[shard]!.count), { output: () => server!.output() });
  expect(onDisk(1)).toBe(before[1]);

  // Shard 1 back: ready again, and its records land, each once; the group's loss report says none missing.
  await client.sendCommand(['ACL', 'SETUSER', 'srv', 'resetkeys', ...keyPatterns([0, 1, 2])]);
  await waitUntil('healthz ready again', async () => (await httpGet(port, '/healthz')).status === 200, { timeoutMs: 15_000 });
  expect(JSON.parse((await httpGet(port, '/healthz')).body)).toMatchObject({ status: 'ok', failingShards: [] });
  await waitUntil('shard 1 written', async () => onDisk(1) === sent[1]!.count, { timeoutMs: 15_000 });
  const logs = readLogs(logDir);
  for (let shard = 0; shard < SHARDS; shard++) expectExactlyOnce(logs.get(`app${shard}`) ?? [], sent[shard]!.producer, sent[shard]!.count);
  const stats = JSON.parse((await httpGet(port, '/stats')).body) as { totals: { missing: number; received: number } };
  expect(stats.totals).toMatchObject({ missing: 0, received: sent.reduce((sum, s) => sum + s.count, 0) });
}, 90_000);

it(`on a Redis Cluster: a master killed keeps /healthz unready naming its shards, the others write on; logctl reads every shard (seed ${SEED})`, async () => {
  const r = rng(SEED + 1);
  // No replicas: the killed master's slots stay down until it is started again (without its data: no persistence).
  const cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  const client = createRedisConnection({ clusterNodes: cluster.seeds });
  try {
    await client.connect();
    dir = tempDir('shards-cluster');
    const logDir = join(dir, 'log');
    const channel = `cshards${SEED}`;
    const keys = shardsOf(SHARDS).map((shard) => streamKey(channel, shard));
    const masters = await Promise.all(keys.map(async (key) => cluster.masterOf(await cluster.slotOf(key))));
    const victim = masters[r.int(SHARDS)]!;
    const down = [0, 1, 2].filter((shard) => masters[shard]!.id === victim.id);
    const up = [0, 1, 2].filter((shard) => !down.includes(shard));
    console.log(`cluster shards: masters ${masters.map((m) => m.port).join(',')}; killing ${victim.port} (shards ${down.join(',')})`);
    // No trimming: logctl tail reads the streams whole at the end (a stream fully acknowledged is trimmed to nothing).
    server = await startServer({ REDIS_CLUSTER_NODES: cluster.seeds.join(','), LOG_DIR: logDir, LOG_CHANNEL: channel, LOG_SHARDS: String(SHARDS), TRIM_INTERVAL_MS: '0' });
    const port = server.httpPort;
    const sent = [0, 0, 0];
    const send = async (shard: number, n: number) => {
      for (let i = 0; i < n; i++) {
        const lines = [encodeRecord({ time: Date.now(), level: 'info', message: `c${shard} r${sent[shard]! + 1}` })];
        await client.sendCommand([
          'XADD',
          keys[shard]!,
          '*',
          FRAME_FIELD,
          encodeFrame({ producer: `cprod${shard}`.padEnd(16, '0'), app: `app${shard}`, host: 'h', pid: 1, seq: sent[shard]! + 1, count: 1, dropped: 0 }, lines),
        ]);
        sent[shard]! += 1;
      }
    };
    const onDisk = (shard: number) => (readLogs(logDir).get(`app${shard}`) ?? []).length;
    for (const shard of up) await send(shard, 5 + r.int(10));
    await waitUntil('the live shards written', async () => up.every((shard) => onDisk(shard) === sent[shard]));

    await victim.server.kill();
    await waitUntil('healthz unready', async () => (await httpGet(port, '/healthz')).status === 503, { timeoutMs: 15_000 });
    for (const shard of up) await send(shard, 5);
    for (let i = 0; i < 15; i++) {
      const reply = await httpGet(port, '/healthz');
      expect(reply.status).toBe(503);
      expect((JSON.parse(reply.body) as Healthz).failingShards?.map((f) => f.shard)).toEqual(down);
      await sleep(100);
    }
    await waitUntil('the live shards written while the other is down', async () => up.every((shard) => onDisk(shard) === sent[shard]), { timeoutMs: 15_000 });

    // The master back (empty): the server makes its groups again; every shard is written.
    await victim.server.start();
    await cluster.waitHealthy(30_000);
    await waitUntil('healthz ready again', async () => (await httpGet(port, '/healthz')).status === 200, { timeoutMs: 30_000, output: () => server!.output() });
    for (const shard of [0, 1, 2]) await send(shard, 3);
    await waitUntil('every shard written', async () => [0, 1, 2].every((shard) => onDisk(shard) === sent[shard]), { timeoutMs: 20_000, output: () => server!.output() });
    const logs = readLogs(logDir);
    for (const shard of [0, 1, 2]) expectExactlyOnce(logs.get(`app${shard}`) ?? [], `cprod${shard}`.padEnd(16, '0'), sent[shard]!);

    // logctl on the cluster: tail reads every shard (polled: a cluster cannot XREAD keys of several slots at once), dead letters of every shard, check.
    const env = { PATH: process.env.PATH, REDIS_CLUSTER_NODES: cluster.seeds.join(','), LOG_SHARDS: String(SHARDS), LOG_CHANNEL: channel, LOG_DIR: logDir };
    const logctl = (...args: string[]) => spawnSync(process.execPath, [LOGCTL, ...args], { encoding: 'utf8', env });
    const tail = logctl('tail', '--no-follow', '--json');
    expect({ status: tail.status, stderr: tail.stderr }).toEqual({ status: 0, stderr: '' });
    const tailed = tail.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { message: string }).message);
    expect(tailed.sort()).toEqual([0, 1, 2].flatMap((shard) => Array.from({ length: sent[shard]! }, (_, i) => `c${shard} r${i + 1}`)).sort());
    await client.sendCommand(['XADD', keys[down[0]!]!, '*', FRAME_FIELD, 'not a frame']);
    await waitUntil('dead-lettered', async () => Number(await client.sendCommand(['XLEN', deadLetterKey(channel, down[0])])) === 1);
    const dead = logctl('dead', 'list', '--json');
    expect(JSON.parse(dead.stdout.trim())).toMatchObject({ id: expect.stringMatching(new RegExp(`^${down[0]}/\\d+-\\d+$`)) as unknown, shard: down[0], reason: 'FRAME_FORMAT' });
    const check = logctl('check');
    expect(check.stdout).toContain(`reachable, authenticated; LOG_SHARDS=3: ${keys.map((key) => `${key} exists`).join(', ')}`);
    expect(check.status).toBe(0);
  } finally {
    client.destroy();
    await cluster.dispose();
  }
}, 120_000);
