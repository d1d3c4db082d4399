import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { sleep, startRedis, startRedisCluster, waitUntil, type RedisServer } from '@log/test-kit';
import { shardsOf, streamKey } from './keys';
import { DEFAULT_REDIS_URL, resolveRedisUrl } from './redis-url';
import { LuaScript, createRedisClient, createRedisConnection } from './redis';

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

describe('createRedisConnection on a Redis Cluster', () => {
  it('routes each command to the master of its key (streams, XREADGROUP, scripts), with WAIT on a chosen key and scripts loaded on the node they run on', async () => {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    const connection = createRedisConnection({ clusterNodes: cluster.seeds.slice(0, 1) });
    try {
      await connection.connect();
      expect(connection.isReady).toBe(true);
      const keys = shardsOf(6).map((shard) => streamKey('routing', shard));
      const owners = new Set<string>();
      for (const key of keys) {
        owners.add((await cluster.masterOf(await cluster.slotOf(key))).id);
        await connection.sendCommand(['XGROUP', 'CREATE', key, 'g', '0', 'MKSTREAM']);
        await connection.sendCommand(['XADD', key, '*', 'f', key]);
        expect(await connection.sendCommand(['WAIT', '1', '5000'], undefined, key)).toBe(1);
        const read = (await connection.sendCommand(['XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '10', 'STREAMS', key, '>'])) as unknown;
        expect(JSON.stringify(read)).toContain(`"f","${key}"`);
      }
      expect(owners.size).toBeGreaterThan(1); // the keys really were on several masters
      const script = new LuaScript("return redis.call('XLEN', KEYS[1])");
      for (const key of keys) expect(await script.run<number>(connection, [key], [])).toBe(1);
    } finally {
      connection.destroy();
      await cluster.dispose();
    }
  }, 60_000);

  it('unref() lets a process end with the cluster connection open, also after a failover made it connect to a new master', async () => {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    const keys = shardsOf(6).map((shard) => streamKey('unref', shard));
    // A process as an app is: it connects, writes to every master, is told to go on (after the
    // failover), writes again (the moved slots through the new master) and then has nothing left to do.
    const app = (unref: boolean) => {
      const source = `
        const { createRedisConnection } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'redis.js'))});
        const keys = ${JSON.stringify(keys)};
        const connection = createRedisConnection({ clusterNodes: ${JSON.stringify(cluster.seeds.slice(0, 1))} });
        const write = async () => {
          for (const key of keys)
            for (let attempt = 0; ; attempt++) {
              try { await connection.sendCommand(['SET', key, 'x']); break; } catch (error) {
                if (attempt > 100) throw error;
                await new Promise((resolve) => setTimeout(resolve, 100));
              }
            }
        };
        // The app's own work holds the process while it writes (a publisher's flush holds a timer): the sockets do not.
        const hold = setInterval(() => {}, 1000);
        (async () => {
          await connection.connect();
          if (${unref}) connection.unref();
          await write();
          process.stdout.write('written\\n');
          process.stdin.once('data', async () => {
            process.stdin.destroy();
            await write();
            process.stdout.write('done\\n');
            clearInterval(hold);
          });
        })();`;
      const child = spawn(process.execPath, ['-e', source], { stdio: ['pipe', 'pipe', 'inherit'] });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, output: () => output, exited };
    };
    const unrefed = app(true);
    const control = app(false); // the same without unref(): it must still be running at the end
    try {
      await waitUntil('both written', async () => unrefed.output() === 'written\n' && control.output() === 'written\n', {
        timeoutMs: 20_000,
        output: () => `unref'd: ${JSON.stringify(unrefed.output())} ${String(unrefed.child.exitCode)}, control: ${JSON.stringify(control.output())}`,
      });
      await cluster.failover(await cluster.masterOf(await cluster.slotOf(keys[0]!)));
      unrefed.child.stdin.write('go\n');
      control.child.stdin.write('go\n');
      await waitUntil('both done', async () => unrefed.output().endsWith('done\n') && control.output().endsWith('done\n'), { timeoutMs: 30_000 });
      await waitUntil('the unref’d app ends by itself', async () => unrefed.child.exitCode !== null, { timeoutMs: 5000 });
      expect(await unrefed.exited).toBe(0);
      await sleep(500);
      expect(control.child.exitCode).toBeNull();
    } finally {
      unrefed.child.kill('SIGKILL');
      control.child.kill('SIGKILL');
      await cluster.dispose();
    }
  }, 90_000);
});
