import { shardsOf } from '@log/protocol';
import { PubSubReader, StreamReader } from '@log/subscriber';
import type { ServerConfig } from './config';
import { DeadLetters } from './dead-letters';
import type { ShardedGroupState } from './group-state';
import type { Health } from './health';
import type { ServerLog } from './log';
import type { Metrics } from './metrics';
import { PubSubBridge } from './pubsub-bridge';
import { PubSubConsumer } from './pubsub-consumer';
import type { RecordWriter } from './record-writer';
import type { LocalCheckpoints } from './recovery';
import type { FileSink } from './sink';
import { BatchLock, StreamConsumer, type ConsumerHooks } from './stream-consumer';

/** What a consumer is built from: the server's shared parts. */
export interface ConsumerParts {
  writer: RecordWriter;
  sink: FileSink;
  group: ShardedGroupState;
  local: LocalCheckpoints;
  health: Health;
  metrics: Metrics;
  log: ServerLog;
  hooks: ConsumerHooks;
}

/** What the server runs: one consumer writing files, maybe with the Pub/Sub bridge beside it. */
export interface Consumer {
  /** True while a batch is queued or written but not committed: files are not rotated then. */
  readonly uncommitted: boolean;
  /** Resolves when the consumer has ended (after stop(), or on a fatal error). */
  readonly done: Promise<void>;
  /** Stops reading and resolves when what is in hand is written. */
  stop(): Promise<void>;
}

/**
 * The stream consumer and the Pub/Sub bridge (LOG_TRANSPORT=stream,pubsub). Only the consumer
 * writes files (the bridge writes into the stream), so rotation waits on its batch alone.
 */
class BridgedStream implements Consumer {
  constructor(
    private readonly stream: Consumer,
    private readonly bridge: PubSubBridge,
  ) {}

  get uncommitted(): boolean {
    return this.stream.uncommitted;
  }

  get done(): Promise<void> {
    return this.stream.done;
  }

  /** The bridge first: what it holds goes into the stream, and its lease to a standby at once. */
  async stop(): Promise<void> {
    await this.bridge.stop();
    await this.stream.stop();
  }
}

/**
 * The consumers of a sharded channel's streams, one per shard (LOG_SHARDS), run as one: each
 * reads, claims, trims and dead-letters its own shard and commits to it; they write in turn
 * (BatchLock), so rotation waits for no shard's batch in hand (uncommitted).
 */
export class ShardedConsumer implements Consumer {
  constructor(readonly shards: readonly StreamConsumer[]) {}

  start(): void {
    for (const shard of this.shards) shard.start();
  }

  /** True while any shard has a batch written but not committed: files are not rotated then. */
  get uncommitted(): boolean {
    return this.shards.some((shard) => shard.uncommitted);
  }

  /** Stops every shard's reading; resolves when each has committed its batch in hand. */
  async stop(): Promise<void> {
    await Promise.all(this.shards.map((shard) => shard.stop()));
  }

  /** Resolves when every shard's loop has ended. */
  get done(): Promise<void> {
    return Promise.all(this.shards.map((shard) => shard.done)).then(() => undefined);
  }
}

/**
 * Connects the reader of LOG_TRANSPORT and starts its consumer: the consumer group's stream
 * (with claims, trimming and the commit; one per shard of a sharded channel), Pub/Sub, or the
 * stream with the Pub/Sub bridge. Dead letters Redis cannot take (out of memory) are spooled in
 * LOG_DIR/.state/dead-letters-<consumer>.jsonl (-<consumer>.<shard>.jsonl for a shard, and
 * -<consumer>-bridge.jsonl for the bridge's).
 */
export async function startConsumer(config: Readonly<ServerConfig>, parts: ConsumerParts): Promise<Consumer> {
  const { writer, sink, group, local, health, metrics, log, hooks } = parts;
  if (config.transport === 'stream') {
    const { redisUrl: url, clusterNodes, channel, consumer, readCount: count, readBlockMs: blockMs, readBatchBytes: batchBytes } = config;
    const shards = shardsOf(config.shards);
    const lock = shards.length > 1 ? new BatchLock() : undefined;
    const consumers: StreamConsumer[] = [];
    for (const [i, shard] of shards.entries()) {
      const reader = new StreamReader({ url, clusterNodes, channel, shard, group: config.group, consumer, count, blockMs, batchBytes, waitReplicas: config.waitReplicas });
      await reader.start();
      const spool = sink.statePath(shard === undefined ? `dead-letters-${consumer}.jsonl` : `dead-letters-${consumer}.${shard}.jsonl`);
      const deadLetters = new DeadLetters(spool, (entry, reason, detail, payload) => reader.deadLetter(entry, reason, detail, payload), metrics, log);
      consumers.push(new StreamConsumer(config, reader, writer, deadLetters, sink, group.shards[i]!, local, health.shard(i), metrics, log, hooks, lock));
    }
    const stream = consumers.length === 1 ? consumers[0]! : new ShardedConsumer(consumers);
    stream.start();
    if (!config.pubsubBridge) return stream;
    const bridge = new PubSubBridge(config, sink.statePath(`dead-letters-${config.consumer}-bridge.jsonl`), metrics, log);
    await bridge.start();
    return new BridgedStream(stream, bridge);
  }
  const spool = sink.statePath(`dead-letters-${config.consumer}.jsonl`);
  const reader = new PubSubReader({ url: config.redisUrl, channel: config.channel });
  const deadLetters = new DeadLetters(spool, (_entry, reason, detail, payload) => reader.deadLetter(reason, detail, payload), metrics, log);
  const pubsub = new PubSubConsumer(config, reader, writer, deadLetters, group.shards[0]!, metrics, log, hooks);
  await pubsub.start();
  return pubsub;
}
