import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deadLetterKey, encodeFrame, encodeRecord, pubsubChannel } from '@log/protocol';
import { PubSubReader } from '@log/subscriber';
import { removeDir, tempDir, waitUntil } from '@log/test-kit';
import { useRedis } from '../test/harness';
import { loadConfig } from './config';
import { DeadLetters } from './dead-letters';
import { DedupCache } from './dedup';
import type { ServerError } from './errors';
import { GroupState } from './group-state';
import { createMetrics } from './metrics';
import { PubSubConsumer } from './pubsub-consumer';
import { RecordWriter } from './record-writer';
import { FileSink } from './sink';

// PubSubConsumer on its own, wired as server.ts wires it, against a real redis-server.

const shared = useRedis();
let n = 0;
const rigs: Array<{ stop(): Promise<void>; dir: string }> = [];
afterEach(async () => {
  for (const rig of rigs.splice(0)) {
    await rig.stop();
    removeDir(rig.dir);
  }
});

const frame = (producer: string, seq: number, lines: string[]) => encodeFrame({ producer, seq, count: lines.length, app: 'shop', host: 'h', pid: 1, dropped: 0 }, lines);
const record = (message: string) => encodeRecord({ time: Date.UTC(2026, 10, 25, 13), level: 'info', message });

/** A started consumer of `channel` as `consumer` of group g. */
async function rig(channel: string, consumer = 'c1') {
  const dir = tempDir('pubsub-consumer');
  const config = loadConfig({ REDIS_URL: shared.redis.url, LOG_DIR: dir, LOG_CHANNEL: channel, LOG_GROUP: 'g', LOG_CONSUMER: consumer, LOG_TRANSPORT: 'pubsub', HTTP_PORT: 'off' });
  const metrics = createMetrics();
  const sink = new FileSink(dir);
  const writer = new RecordWriter(sink, new DedupCache(), metrics);
  const group = new GroupState(shared.client, channel, 'g', consumer);
  await group.acquireLease();
  const reader = new PubSubReader({ url: config.redisUrl, channel });
  // Counts what the subscription delivered, so a test knows a message was heard.
  const heard = { count: 0 };
  const start = reader.start.bind(reader);
  reader.start = (onMessage, alsoChannels) =>
    start((message, channel) => {
      heard.count++;
      onMessage(message, channel);
    }, alsoChannels);
  const log = () => {};
  const deadLetters = new DeadLetters(sink.statePath(`dead-letters-${consumer}.jsonl`), (_entry, reason, detail, payload) => reader.deadLetter(reason, detail, payload), metrics, log);
  const failures: ServerError[] = [];
  const pubsub = new PubSubConsumer(config, reader, writer, deadLetters, group, metrics, log, { rotate: () => true, fail: (error) => failures.push(error) });
  await pubsub.start();
  let stopped = false;
  const rigged = {
    dir,
    heard,
    metrics,
    failures,
    pubsub,
    lines: (app: string) => {
      const path = join(dir, app, `${app}.log`);
      if (!existsSync(path)) return [];
      const lines = readFileSync(path, 'utf8').split('\n');
      lines.pop(); // after the last newline
      return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await pubsub.stop();
      await group.releaseLease();
      sink.close();
    },
  };
  rigs.push(rigged);
  return rigged;
}

const total = async (metric: { get(): Promise<{ values: Array<{ value: number }> }> }) => (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);

describe('PubSubConsumer', () => {
  it('writes our frames and what existing publishers send (text, JSON), counting the legacy messages', async () => {
    const channel = `ps${++n}`;
    const r = await rig(channel);
    await shared.client.publish(pubsubChannel(channel), frame('p1', 1, [record('framed 1'), record('framed 2')]));
    await shared.client.publish(pubsubChannel(channel), 'plain text from a Ruby publisher');
    await shared.client.publish(pubsubChannel(channel), JSON.stringify({ app: 'billing', message: 'json from an old app', orderId: 7 }));
    await waitUntil('every record written', async () => r.lines('shop').length === 2 && r.lines('legacy').length === 1 && r.lines('billing').length === 1);
    expect(r.lines('shop').map((line) => [line.message, line.producer, line.seq])).toEqual([
      ['framed 1', 'p1', 1],
      ['framed 2', 'p1', 2],
    ]);
    expect(r.lines('legacy')[0]).toMatchObject({ message: 'plain text from a Ruby publisher' });
    expect(r.lines('billing')[0]).toMatchObject({ message: 'json from an old app', orderId: 7 });
    expect(await total(r.metrics.legacyMessages)).toBe(2);
    expect(r.failures).toEqual([]);
  });

  it('dead-letters a bad record of a frame with its reason and keeps the good records around it', async () => {
    const channel = `ps${++n}`;
    const r = await rig(channel);
    await shared.client.publish(pubsubChannel(channel), frame('p1', 1, [record('good 1'), '{broken', record('good 3')]));
    await waitUntil('the good records written', async () => r.lines('shop').length === 2);
    await waitUntil('the dead letter stored', async () => (await shared.client.xLen(deadLetterKey(channel))) === 1);
    const [letter] = (await shared.client.xRange(deadLetterKey(channel), '-', '+')) ?? [];
    expect(letter?.message).toMatchObject({ entry: 'pubsub', reason: 'RECORD_INVALID', payload: '{broken' });
    expect(r.lines('shop').map((line) => line.seq)).toEqual([1, 3]);
  });

  it('two servers of a group hear the same frame: its records end up on one disk only', async () => {
    const channel = `ps${++n}`;
    const one = await rig(channel, 'c1');
    const two = await rig(channel, 'c2');
    const lines: string[] = [];
    for (let i = 1; i <= 20; i++) lines.push(record(`m${i}`));
    await shared.client.publish(pubsubChannel(channel), frame('p1', 1, lines));
    await waitUntil('both heard it', async () => one.heard.count === 1 && two.heard.count === 1);
    await one.stop();
    await two.stop();
    const seqs = [...one.lines('shop'), ...two.lines('shop')].map((line) => line.seq as number).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('stop() writes what was heard before it', async () => {
    const channel = `ps${++n}`;
    const r = await rig(channel);
    await shared.client.publish(pubsubChannel(channel), frame('p1', 1, [record('last words')]));
    // Heard, then stopped at once: written by the next 50 ms tick or by stop(), before stop() resolves.
    await waitUntil('heard', async () => r.heard.count === 1);
    await r.pubsub.stop();
    expect(r.lines('shop')[0]).toMatchObject({ message: 'last words', seq: 1 });
  });
});
