import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { FRAME_FIELD, deadLetterKey, encodeFrame, encodeRecord, streamKey } from '@log/protocol';
import { StreamReader } from '@log/subscriber';
import { removeDir, sleep, startRedis, tempDir, waitUntil, type RedisServer } from '@log/test-kit';
import { createRedisClient } from '@log/protocol/redis';
import type { RedisClientType } from 'redis';
import { useRedis } from '../test/harness';
import { loadConfig } from './config';
import { DeadLetters } from './dead-letters';
import { DedupCache } from './dedup';
import type { ServerError } from './errors';
import { GroupState } from './group-state';
import { Health } from './health';
import { createMetrics } from './metrics';
import { RecordWriter } from './record-writer';
import { LocalCheckpoints } from './recovery';
import { FileSink } from './sink';
import { StreamConsumer } from './stream-consumer';

// StreamConsumer on its own, wired as server.ts wires it, against a real redis-server.

const shared = useRedis();
let n = 0;
const rigs: Array<{ stop(): Promise<void> }> = [];
afterEach(async () => {
  for (const rig of rigs.splice(0)) await rig.stop();
});

const frame = (producer: string, seq: number, messages: string[]) =>
  encodeFrame(
    { producer, seq, count: messages.length, app: 'shop', host: 'h', pid: 1, dropped: 0 },
    messages.map((message) => encodeRecord({ time: Date.UTC(2026, 10, 25, 13), level: 'info', message })),
  );

/** A consumer of a fresh channel as consumer c1 of group g, and what it writes to. */
async function rig(env: Record<string, string> = {}, redis: { readonly redis: RedisServer; readonly client: RedisClientType } = shared) {
  const channel = `sc${++n}`;
  const dir = tempDir('stream-consumer');
  const config = loadConfig({
    REDIS_URL: redis.redis.url,
    LOG_DIR: dir,
    LOG_CHANNEL: channel,
    LOG_GROUP: 'g',
    LOG_CONSUMER: 'c1',
    READ_BLOCK_MS: '50',
    TRIM_INTERVAL_MS: '0',
    HTTP_PORT: 'off',
    ...env,
  });
  const metrics = createMetrics();
  const sink = new FileSink(dir);
  const writer = new RecordWriter(sink, new DedupCache(), metrics);
  const group = new GroupState(redis.client, channel, 'g', 'c1');
  await group.acquireLease();
  const reader = new StreamReader({ url: config.redisUrl, channel, group: 'g', consumer: 'c1', count: config.readCount, blockMs: config.readBlockMs });
  await reader.start();
  const health = new Health(metrics);
  const log = () => {};
  const deadLetters = new DeadLetters(sink.statePath('dead-letters-c1.jsonl'), (entry, reason, detail, payload) => reader.deadLetter(entry, reason, detail, payload), metrics, log);
  const failures: ServerError[] = [];
  const control = { backpressure: false };
  const consumer = new StreamConsumer(config, reader, writer, deadLetters, sink, group, new LocalCheckpoints(sink.statePath('acknowledged-c1.json')), health, metrics, log, {
    rotate: () => true,
    rotationDue: () => false,
    archiveBackpressure: () => control.backpressure,
    fail: (error) => failures.push(error),
  });
  let stopped = false;
  const rigged = {
    channel,
    key: streamKey(channel),
    dir,
    metrics,
    health,
    failures,
    control,
    consumer,
    messages: () =>
      existsSync(join(dir, 'shop', 'shop.log'))
        ? readFileSync(join(dir, 'shop', 'shop.log'), 'utf8')
            .trim()
            .split('\n')
            .map((line) => (JSON.parse(line) as { message: string }).message)
        : [],
    pending: async () => Number(((await shared.client.sendCommand(['XPENDING', streamKey(channel), 'g'])) as unknown[])[0]),
    deadReasons: async () => ((await shared.client.xRange(deadLetterKey(channel), '-', '+')) ?? []).map((entry) => entry.message.reason),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await consumer.stop();
      await group.releaseLease().catch(() => undefined); // a test's own Redis may be gone
      sink.close();
      removeDir(dir);
    },
  };
  rigs.push(rigged);
  return rigged;
}

const counter = async (metric: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }, labels: Record<string, string> = {}) =>
  (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value)).reduce((sum, v) => sum + v.value, 0);

describe('StreamConsumer', () => {
  it('writes the records of the frames in the stream, fsynced, and acknowledges their entries', async () => {
    const r = await rig();
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 1, ['a', 'b']) });
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 3, ['c']) });
    r.consumer.start();
    await waitUntil('3 records written', async () => r.messages().length === 3);
    await waitUntil('both entries acknowledged', async () => (await counter(r.metrics.entriesAcked)) === 2);
    expect(r.messages()).toEqual(['a', 'b', 'c']);
    expect(await r.pending()).toBe(0);
    expect(r.health.redisOk).toBe(true);
    // A frame sent again (a publisher that lost Redis's reply) is acknowledged and not written twice.
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 3, ['c']) });
    await waitUntil('the repeated entry acknowledged', async () => (await counter(r.metrics.entriesAcked)) === 3);
    expect(r.messages()).toEqual(['a', 'b', 'c']);
    expect(r.failures).toEqual([]);
  });

  it('dead-letters bad entries with their reason, acknowledges them, and keeps the good records beside them', async () => {
    const r = await rig();
    await shared.client.xAdd(r.key, '*', { other: 'x' }); // no frame
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 1, ['a']), extra: 'y' }); // a field beside the frame
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: 'not a frame' });
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p2', 1, ['good']) });
    r.consumer.start();
    await waitUntil('every entry acknowledged', async () => (await counter(r.metrics.entriesAcked)) === 4);
    expect(r.messages()).toEqual(['good']);
    expect((await r.deadReasons()).sort()).toEqual(['FRAME_FORMAT', 'MISSING_FRAME', 'UNEXPECTED_FIELDS']);
    expect(await counter(r.metrics.deadLetters, { reason: 'MISSING_FRAME' })).toBe(1);
    expect(await r.pending()).toBe(0);
  });

  it('dead-letters an entry delivered more than MAX_DELIVERIES times instead of writing it again', async () => {
    const r = await rig({ MAX_DELIVERIES: '2' });
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 1, ['poison']) });
    // Read by c1 three times (a server that crashed on it each time): its delivery count is 3.
    await shared.client.sendCommand(['XREADGROUP', 'GROUP', 'g', 'c1', 'STREAMS', r.key, '>']);
    for (let i = 0; i < 2; i++) await shared.client.sendCommand(['XREADGROUP', 'GROUP', 'g', 'c1', 'STREAMS', r.key, '0']);
    r.consumer.start();
    await waitUntil('the entry acknowledged', async () => (await counter(r.metrics.entriesAcked)) === 1);
    expect(await r.deadReasons()).toEqual(['DELIVERY_LIMIT']);
    expect(r.messages()).toEqual([]);
  });

  it('claims the entries another consumer read and left idle, and writes them', async () => {
    const r = await rig({ CLAIM_IDLE_MS: '100', CLAIM_INTERVAL_MS: '100' });
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 1, ['left by c2']) });
    await shared.client.sendCommand(['XREADGROUP', 'GROUP', 'g', 'c2', 'STREAMS', r.key, '>']); // c2 reads it, then dies
    r.consumer.start();
    await waitUntil('the entry claimed and written', async () => r.messages().length === 1);
    await waitUntil('acknowledged', async () => (await r.pending()) === 0);
    expect(r.messages()).toEqual(['left by c2']);
    expect(await counter(r.metrics.claimedEntries)).toBe(1);
  });

  it('reads nothing while the archive backlog holds it back, and goes on when it drains', async () => {
    const r = await rig();
    r.control.backpressure = true;
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 1, ['waited']) });
    r.consumer.start();
    await sleep(700); // more than one pause of the loop
    expect(r.messages()).toEqual([]);
    const [info] = (await shared.client.xInfoGroups(r.key)) as unknown as Array<Record<string, unknown>>;
    expect(String(info?.['last-delivered-id'])).toBe('0-0'); // not even read
    r.control.backpressure = false;
    await waitUntil('written after the backlog drained', async () => r.messages().length === 1);
  });

  it('stop() resolves with everything read committed, and the consumer reads no more', async () => {
    const r = await rig();
    r.consumer.start();
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 1, ['before stop']) });
    await waitUntil('written', async () => r.messages().length === 1);
    await r.consumer.stop();
    expect(await r.pending()).toBe(0);
    await shared.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 2, ['after stop']) });
    await sleep(200);
    expect(r.messages()).toEqual(['before stop']);
  });

  it('while Redis is down: unhealthy, errors counted, retried with backoff; when it is back (empty) it reads and writes again', async () => {
    const own = { redis: await startRedis(), client: undefined as unknown as RedisClientType };
    own.client = createRedisClient({ url: own.redis.url });
    await own.client.connect();
    try {
      const r = await rig({}, own);
      r.consumer.start();
      await own.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 1, ['before']) });
      await waitUntil('written', async () => r.messages().length === 1);
      await own.redis.stop();
      await waitUntil('unhealthy', async () => !r.health.redisOk);
      await waitUntil('errors counted', async () => (await counter(r.metrics.redisErrors)) >= 2);
      await own.redis.start(); // empty: no persistence, the stream and group are gone
      await waitUntil('the client is back', () =>
        own.client.ping().then(
          () => true,
          () => false,
        ),
      );
      await waitUntil('the group made again by the reader', async () => (await own.client.exists(r.key)) === 1);
      await own.client.xAdd(r.key, '*', { [FRAME_FIELD]: frame('p1', 2, ['after']) });
      await waitUntil('written after the outage', async () => r.messages().length === 2);
      expect(r.messages()).toEqual(['before', 'after']);
      expect(r.health.redisOk).toBe(true);
      expect(r.failures).toEqual([]);
      await r.stop();
    } finally {
      own.client.destroy();
      await own.redis.dispose();
    }
  }, 30_000);
});
