import { PubSubReader, StreamReader } from '@log/subscriber';
import type { ServerConfig } from './config';
import { DeadLetters } from './dead-letters';
import type { GroupState } from './group-state';
import type { Health } from './health';
import type { ServerLog } from './log';
import type { Metrics } from './metrics';
import { PubSubConsumer } from './pubsub-consumer';
import type { RecordWriter } from './record-writer';
import type { LocalCheckpoints } from './recovery';
import type { FileSink } from './sink';
import { StreamConsumer, type ConsumerHooks } from './stream-consumer';

/** What a consumer is built from: the server's shared parts. */
export interface ConsumerParts {
  writer: RecordWriter;
  sink: FileSink;
  group: GroupState;
  local: LocalCheckpoints;
  health: Health;
  metrics: Metrics;
  log: ServerLog;
  hooks: ConsumerHooks;
}

/**
 * Connects the reader of LOG_TRANSPORT and starts its consumer: the consumer group's stream
 * (with claims, trimming and the commit) or Pub/Sub. Dead letters Redis cannot take (out of
 * memory) are spooled in LOG_DIR/.state/dead-letters-<consumer>.jsonl either way.
 */
export async function startConsumer(config: Readonly<ServerConfig>, parts: ConsumerParts): Promise<StreamConsumer | PubSubConsumer> {
  const { writer, sink, group, local, health, metrics, log, hooks } = parts;
  const spool = sink.statePath(`dead-letters-${config.consumer}.jsonl`);
  if (config.transport === 'stream') {
    const { redisUrl: url, channel, consumer, readCount: count, readBlockMs: blockMs, readBatchBytes: batchBytes } = config;
    const reader = new StreamReader({ url, channel, group: config.group, consumer, count, blockMs, batchBytes });
    await reader.start();
    const deadLetters = new DeadLetters(spool, (entry, reason, detail, payload) => reader.deadLetter(entry, reason, detail, payload), metrics, log);
    const stream = new StreamConsumer(config, reader, writer, deadLetters, sink, group, local, health, metrics, log, hooks);
    stream.start();
    return stream;
  }
  const reader = new PubSubReader({ url: config.redisUrl, channel: config.channel });
  const deadLetters = new DeadLetters(spool, (_entry, reason, detail, payload) => reader.deadLetter(reason, detail, payload), metrics, log);
  const pubsub = new PubSubConsumer(config, reader, writer, deadLetters, group, metrics, log, hooks);
  await pubsub.start();
  return pubsub;
}
