import { FRAME_FIELD, streamKey } from '@log/protocol';
import { createRedisClient } from '@log/protocol/redis';
import { startRedis, waitUntil, type RedisServer } from '@log/test-kit';
import { PubSubReader, StreamReader, SubscriberError } from '../src';

// Every Redis failure of the readers comes out as a SubscriberError with code REDIS, the key and
// the node-redis error kept as `cause`: against a real redis-server that is stopped under them.

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});

/** Runs `call` and returns what it rejected with (fails the test when it resolves). */
async function failure(call: () => Promise<unknown>): Promise<SubscriberError> {
  const outcome = await call().then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(SubscriberError);
  return outcome as SubscriberError;
}

it('StreamReader: read, ack, ackOwned, ownership, claimIdle, trim and deadLetter reject with SubscriberError when Redis is down', async () => {
  const channel = 'down';
  const client = createRedisClient({ url: redis.url });
  await client.connect();
  await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: 'frame-1' });
  client.destroy();
  // Without the offline queue a command fails at once while Redis is away instead of waiting for it.
  const reader = new StreamReader({ url: redis.url, channel, consumer: 'c1', blockMs: 100, redis: { disableOfflineQueue: true, socket: { reconnectStrategy: 50 } } });
  await reader.start();
  const { entries } = await reader.read();
  expect(entries).toHaveLength(1);
  const id = entries[0]!.id;

  await redis.stop();
  try {
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['read', () => reader.read()],
      ['ack', () => reader.ack([id])],
      ['ackOwned', () => reader.ackOwned([id])],
      ['ownership', () => reader.ownership([id])],
      ['claimIdle', () => reader.claimIdle(0)],
      ['trim', () => reader.trim()],
      ['deadLetter', () => reader.deadLetter(id, 'FRAME_FORMAT', 'malformed frame', Buffer.from('x'))],
    ];
    for (const [name, call] of calls) {
      const error = await failure(call);
      expect({ name, code: error.code, key: error.key, errorName: error.name }).toEqual({ name, code: 'REDIS', key: streamKey(channel), errorName: 'SubscriberError' });
      expect(error.cause).toBeInstanceOf(Error);
    }
  } finally {
    await redis.start();
  }
  // Back up (empty: no persistence): the same reader makes its group again and reads on.
  await waitUntil('the reader reconnected and made its group again', () =>
    reader.ensureGroup().then(
      () => true,
      () => false,
    ),
  );
  expect((await reader.read()).entries).toEqual([]);
  await reader.close();
});

it('StreamReader.start and PubSubReader.start and deadLetter reject with SubscriberError when Redis is not there', async () => {
  await redis.stop();
  try {
    const options = { url: redis.url, channel: 'gone', redis: { disableOfflineQueue: true, socket: { reconnectStrategy: false as const } } };
    const stream = new StreamReader({ ...options, consumer: 'c1' });
    const startError = await failure(() => stream.start());
    expect(startError.code).toBe('REDIS');
    expect(startError.cause).toMatchObject({ code: 'ECONNREFUSED' });
    await stream.close();

    const pubsub = new PubSubReader(options);
    expect((await failure(() => pubsub.start(() => {}))).code).toBe('REDIS');
    const dead = await failure(() => pubsub.deadLetter('FRAME_FORMAT', 'malformed frame', undefined));
    expect(dead.code).toBe('REDIS');
    expect(dead.key).toBe('log:{gone}:dead');
    expect(dead.cause).toMatchObject({ code: 'ECONNREFUSED' });
    await pubsub.close();
  } finally {
    await redis.start();
  }
});
