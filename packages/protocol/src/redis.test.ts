import { startRedis, type RedisServer } from '@log/test-kit';
import { DEFAULT_REDIS_URL, resolveRedisUrl } from './redis-url';
import { LuaScript, createRedisClient } from './redis';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.dispose();
});

describe('resolveRedisUrl', () => {
  const saved = process.env.REDIS_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = saved;
  });

  it('takes the URL given, then REDIS_URL, then the default', () => {
    process.env.REDIS_URL = 'redis://from-env:1';
    expect(resolveRedisUrl('redis://given:2')).toBe('redis://given:2');
    expect(resolveRedisUrl()).toBe('redis://from-env:1');
    delete process.env.REDIS_URL;
    expect(resolveRedisUrl()).toBe(DEFAULT_REDIS_URL);
    expect(DEFAULT_REDIS_URL).toBe('redis://127.0.0.1:6379');
  });
});

describe('createRedisClient', () => {
  it('connects to the URL given and hands connection errors to the listener instead of crashing', async () => {
    const client = createRedisClient({ url: redis.url });
    await client.connect();
    expect(await client.ping()).toBe('PONG');
    client.destroy();

    const errors: unknown[] = [];
    // A port nobody listens on: node-redis emits 'error' on each failed attempt.
    const down = createRedisClient({ url: 'redis://127.0.0.1:1', socket: { reconnectStrategy: false } }, (error) => errors.push(error));
    await expect(down.connect()).rejects.toThrow();
    expect(errors.length).toBeGreaterThan(0);
  });
});

describe('LuaScript', () => {
  it('loads itself after NOSCRIPT and then runs by its digest', async () => {
    const client = createRedisClient({ url: redis.url });
    await client.connect();
    try {
      const script = new LuaScript("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1]) .. ARGV[2]");
      await client.sendCommand(['SCRIPT', 'FLUSH']);
      expect(await script.run<string>(client, ['lua:k'], ['a', 7])).toBe('a7');
      expect(await client.sendCommand(['SCRIPT', 'EXISTS', script.sha])).toEqual([1]);
      await client.sendCommand(['SCRIPT', 'FLUSH']); // a Redis restarted empty
      expect(await script.run<string>(client, ['lua:k'], ['b', 8])).toBe('b8');
    } finally {
      client.destroy();
    }
  });

  it('rejects with what Redis answered for a failing script', async () => {
    const client = createRedisClient({ url: redis.url });
    await client.connect();
    try {
      await expect(new LuaScript("return redis.call('NOSUCHCOMMAND')").run(client, [], [])).rejects.toThrow(/Unknown Redis command|unknown command/i);
    } finally {
      client.destroy();
    }
  });
});
