import { pubsubChannel } from '@log/protocol';
import { createClient, type RedisClientOptions, type RedisClientType } from 'redis';

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
 */
export class PubSubReader {
  readonly channel: string;
  private readonly client: RedisClientType;
  private closing: Promise<void> | undefined;
  /** Times the subscription was lost; messages published meanwhile were not heard. */
  disconnects = 0;
  lastError: unknown;

  constructor(options: PubSubReaderOptions) {
    this.channel = pubsubChannel(options.channel);
    this.client = createClient({ ...options.redis, url: options.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' }) as RedisClientType;
    this.client.on('error', (error: unknown) => {
      this.lastError = error;
    });
    this.client.on('reconnecting', () => {
      this.disconnects++;
    });
  }

  /** Connects and subscribes; `onMessage` gets each message's bytes. */
  async start(onMessage: (message: Buffer) => void): Promise<void> {
    await this.client.connect();
    await this.client.subscribe(this.channel, (message: Buffer) => onMessage(message), true);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        this.client.destroy();
      } catch {
        // already closed
      }
    })();
    return this.closing;
  }
}
