import { deadLetterKey, pubsubChannel, type DeadLetterReason } from '@log/protocol';
import { createRedisClient } from '@log/protocol/redis';
import type { RedisClientOptions, RedisClientType } from 'redis';
import { deadLetterCommand } from './dead-letter';
import { SubscriberError } from './errors';

export interface PubSubReaderOptions {
  /** Redis URL. @defaultValue process.env.REDIS_URL, then 'redis://127.0.0.1:6379' */
  url?: string;
  channel: string;
  redis?: Omit<RedisClientOptions, 'url'>;
}

/**
 * Subscribes to a channel (at-most-once: what is published while this reader is not connected is
 * gone; our frames' sequence numbers let the server count it). Messages arrive as raw bytes.
 * node-redis resubscribes by itself after a reconnect; `disconnects` counts the windows of loss.
 * A subscribed connection cannot run other commands, so dead letters go over a second one,
 * opened the first time one is needed.
 */
export class PubSubReader {
  readonly channel: string;
  /** Where deadLetter() stores refused messages: the channel's dead-letter stream, as in stream mode. */
  readonly deadLetterKey: string;
  private readonly client: RedisClientType;
  private readonly options: PubSubReaderOptions;
  private writer: Promise<RedisClientType> | undefined;
  private closing: Promise<void> | undefined;
  /** Times the subscription was lost; messages published meanwhile were not heard. */
  disconnects = 0;

  constructor(options: PubSubReaderOptions) {
    this.options = options;
    this.channel = pubsubChannel(options.channel);
    this.deadLetterKey = deadLetterKey(options.channel);
    this.client = this.newClient();
    this.client.on('reconnecting', () => {
      this.disconnects++;
    });
  }

  /**
   * Connects and subscribes; `onMessage` gets each message's bytes and its channel. `alsoChannels`
   * are subscribed on the same connection: Redis delivers one connection's messages in the order
   * it published them, whatever their channel, so a message of one's own on such a channel is a
   * barrier (everything heard before it was published before it).
   */
  async start(onMessage: (message: Buffer, channel: string) => void, alsoChannels: readonly string[] = []): Promise<void> {
    const channels = [this.channel, ...alsoChannels];
    try {
      await this.client.connect();
      await this.client.subscribe(channels, (message: Buffer, channel: Buffer) => onMessage(message, String(channel)), true);
    } catch (error) {
      throw new SubscriberError('REDIS', `SUBSCRIBE to ${channels.join(', ')} failed`, { key: this.channel, cause: error });
    }
  }

  /** Stores a message the server refused (entry `pubsub`), with the reason. Rejects when Redis cannot take it. */
  async deadLetter(reason: DeadLetterReason, detail: string, payload: Buffer | undefined): Promise<void> {
    if (this.closing) throw new SubscriberError('CLOSED', 'reader is closed', { key: this.deadLetterKey });
    this.writer ??= (async () => {
      const writer = this.newClient();
      await writer.connect();
      return writer;
    })();
    try {
      const writer = await this.writer.catch((error: unknown) => {
        this.writer = undefined; // the next dead letter tries a new connection
        throw error;
      });
      await writer.sendCommand(deadLetterCommand(this.deadLetterKey, 'pubsub', reason, detail, payload));
    } catch (error) {
      throw new SubscriberError('REDIS', `XADD to ${this.deadLetterKey} failed`, { key: this.deadLetterKey, cause: error });
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const writer = this.writer;
      for (const client of [this.client, writer ? await writer.catch(() => undefined) : undefined]) {
        try {
          client?.destroy();
        } catch {
          // already closed
        }
      }
    })();
    return this.closing;
  }

  private newClient(): RedisClientType {
    return createRedisClient({ ...this.options.redis, url: this.options.url });
  }
}
