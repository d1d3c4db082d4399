import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FRAME_FIELD, deadLetterKey, encodeFrame, encodeRecord, pubsubBridgeKeys, pubsubChannel, streamKey } from '@log/protocol';
import { removeDir, tempDir, waitUntil } from '@log/test-kit';
import { useRedis } from '../test/harness';
import { loadConfig } from './config';
import { DedupCache } from './dedup';
import type { ServerError } from './errors';
import { ShardedGroupState } from './group-state';
import { Health } from './health';
import { createMetrics } from './metrics';
import { PubSubConsumer } from './pubsub-consumer';
import { RecordWriter } from './record-writer';
import { LocalCheckpoints } from './recovery';
import { FileSink } from './sink';
import { StreamConsumer } from './stream-consumer';
import { startConsumer } from './transport';

// startConsumer wires the reader of LOG_TRANSPORT to its consumer and its dead letters: each
// transport, against a real redis-server, writes a good frame and dead-letters a bad one where
// that transport's reader puts them.

const shared = useRedis();

const record = (message: string) => encodeRecord({ time: Date.UTC(2026, 10, 25, 13), level: 'info', message });
const frame = (lines: string[]) => encodeFrame({ producer: 'p1', seq: 1, count: lines.length, app: 'shop', host: 'h', pid: 1, dropped: 0 }, lines);

/** The server's parts over a temporary LOG_DIR, and the consumer startConsumer makes of them for `transport`. */
async function started(channel: string, transport: string) {
  const dir = tempDir('transport');
  const config = loadConfig({ REDIS_URL: shared.redis.url, LOG_DIR: dir, LOG_CHANNEL: channel, LOG_GROUP: 'g', LOG_CONSUMER: 'c1', LOG_TRANSPORT: transport, READ_BLOCK_MS: '50', HTTP_PORT: 'off' });
  const metrics = createMetrics();
  const sink = new FileSink(dir);
  const group = new ShardedGroupState(shared.client, channel, 'g', 'c1', 1);
  await group.acquireLease();
  const failures: ServerError[] = [];
  const hooks = { rotate: () => true, rotationDue: () => false, archiveBackpressure: () => false, fail: (error: ServerError) => failures.push(error) };
  const parts = {
    writer: new RecordWriter(sink, new DedupCache(), metrics),
    sink,
    group,
    local: new LocalCheckpoints(sink.statePath('acknowledged-c1.json')),
    health: new Health(metrics),
    metrics,
    log: () => {},
    hooks,
  };
  const consumer = await startConsumer(config, parts);
  return { dir, sink, group, metrics, failures, consumer };
}

describe.each([['stream' as const], ['pubsub' as const], ['stream,pubsub' as const]])('startConsumer (LOG_TRANSPORT=%s)', (transport) => {
  it('starts the consumer of that transport, writing good frames and dead-lettering bad ones (with both, a Pub/Sub frame goes through the stream by the bridge)', async () => {
    const channel = `transport-${transport.replace(',', '-')}`;
    const { dir, sink, group, metrics, failures, consumer } = await started(channel, transport);
    const { lease } = pubsubBridgeKeys(channel);
    try {
      if (transport !== 'stream,pubsub') expect(consumer).toBeInstanceOf(transport === 'stream' ? StreamConsumer : PubSubConsumer);
      else await waitUntil('this server holds the bridge', async () => (await metrics.registry.getSingleMetricAsString('logger_pubsub_bridge_holder')).endsWith(' 1'));
      expect(consumer.uncommitted).toBe(false);
      const send = (payload: string) => (transport === 'stream' ? shared.client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: payload }) : shared.client.publish(pubsubChannel(channel), payload));
      await send(frame([record('kept'), '{broken', record('kept too')]));
      const file = join(dir, 'shop', 'shop.log');
      await waitUntil('the good records written', async () => existsSync(file) && readFileSync(file, 'utf8').split('\n').length === 3);
      await waitUntil('the bad frame dead-lettered', async () => ((await shared.client.xLen(deadLetterKey(channel))) ?? 0) === 1);
      const [dead] = (await shared.client.xRange(deadLetterKey(channel), '-', '+')) ?? [];
      expect(dead!.message).toMatchObject({ reason: 'RECORD_INVALID', payload: '{broken' });
      // both: the frame went through the stream (one entry), under the bridge's lease
      if (transport === 'stream,pubsub') {
        expect(await shared.client.xLen(streamKey(channel))).toBe(1);
        expect(await shared.client.get(lease)).not.toBeNull();
      }
      expect(failures).toEqual([]);
    } finally {
      await consumer.stop();
      await group.releaseLease();
      sink.close();
      removeDir(dir);
    }
    expect(await shared.client.get(lease)).toBeNull(); // stop() gives the bridge lease up
  });
});
