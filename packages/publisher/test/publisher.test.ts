import { spawnSync } from 'node:child_process';
import { startRedis, sleep } from '@log/test-kit';
import { createClient } from 'redis';
import { createPublisher, InvalidOptionError, type PublisherError, type RecordsGivenUpError } from '../src';
import { readStream, redisAndPublishers } from './helpers';

const kit = redisAndPublishers('test');
const { loggers, channel, publisher } = kit;

describe('publisher against a real redis-server', () => {
  it('publishes records in frames that decode back, in order, with consecutive sequence numbers', async () => {
    const ch = channel();
    const log = publisher(ch);
    for (let i = 0; i < 2500; i++) log.info(`hello ${i}`, { i });
    await log.flush();
    const { records, headers } = await readStream(kit.redis.url, ch);
    expect(records).toHaveLength(2500);
    expect(headers.length).toBeLessThan(10); // framed, not one entry per record
    records.forEach((record, i) => {
      expect(record).toMatchObject({ app: 'shop', host: 'testhost', pid: process.pid, producer: log.producer, seq: i + 1, level: 'info', message: `hello ${i}`, fields: { i } });
    });
    expect(log.stats()).toMatchObject({ logged: 2500, sent: 2500, dropped: 0, buffered: 0 });
  });

  it('filters levels below the threshold, adds child bindings and static fields', async () => {
    const ch = channel();
    const log = publisher(ch, { level: 'warn', fields: { env: 'test' } });
    log.debug('no');
    log.info('no');
    log.warn('yes');
    const child = log.child({ requestId: 'r1' }).child({ user: 7 });
    child.error('child', { extra: true });
    child.info('no');
    await log.flush();
    const { records } = await readStream(kit.redis.url, ch);
    expect(records.map((r) => r.message)).toEqual(['yes', 'child']);
    expect(records[0]!.fields).toEqual({ env: 'test' });
    expect(records[1]!.fields).toEqual({ env: 'test', requestId: 'r1', user: 7, extra: true });
    expect(log.stats().logged).toBe(2);
  });

  it('serializes errors with their cause chain, and never throws on hostile values', async () => {
    const ch = channel();
    const log = publisher(ch);
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    const hostile = {
      big: 10n,
      circular,
      get boom(): never {
        throw new Error('getter');
      },
      [Symbol('hidden')]: 1,
      fn: () => 1,
    };
    expect(() => log.error(new Error('outer', { cause: new Error('inner') }))).not.toThrow();
    expect(() => log.info('hostile', hostile)).not.toThrow();
    expect(() => log.info('error field', { err: new TypeError('typed') })).not.toThrow();
    expect(() => log.info(42 as unknown as string)).not.toThrow();
    expect(() => log.info('parsed input', JSON.parse('{"body":{"__proto__":{"admin":true}}}'))).not.toThrow();
    await log.flush();
    const { records } = await readStream(kit.redis.url, ch);
    expect(records[0]!.error).toMatchObject({ name: 'Error', message: 'outer', cause: { name: 'Error', message: 'inner' } });
    expect(records[0]!.error!.stack).toContain('outer');
    expect(records[1]!.fields).toEqual({ big: '10', circular: { name: 'loop', self: '[Circular]' }, boom: '[Unreadable]' });
    expect(records[2]!.error).toMatchObject({ name: 'TypeError', message: 'typed' });
    expect(records[2]!.fields).toEqual({});
    expect(records[3]!.message).toBe('42');
    expect(records[4]!.fields).toEqual({ body: { '[__proto__]': { admin: true } } }); // renamed, so the server does not refuse it
    expect(log.stats().unserializable).toBeGreaterThanOrEqual(2);
  });

  it('truncates a record larger than maxRecordBytes and says so', async () => {
    const ch = channel();
    const log = publisher(ch, { maxRecordBytes: 4096 });
    log.info('x'.repeat(100_000), { big: 'y'.repeat(10_000) });
    await log.flush();
    const { records } = await readStream(kit.redis.url, ch);
    expect(records[0]!.message.length).toBeLessThan(4096);
    expect(records[0]!.fields).toMatchObject({ truncated: true });
    expect(log.stats().truncated).toBe(1);
  });

  it('refuses bad options at construction with every problem in one typed error', () => {
    let caught: unknown;
    try {
      createPublisher('logger', { app: '../../etc', transport: 'kafka' as 'stream', maxBufferBytes: -1, url: 'http://x' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidOptionError);
    expect(caught).toMatchObject({ code: 'INVALID_OPTION' });
    expect((caught as InvalidOptionError).problems).toHaveLength(4);
    expect(() => createPublisher('logger', undefined as never)).toThrow(InvalidOptionError);
    expect(() => createPublisher('log/ger', { app: 'shop' })).toThrow(/channel/);
    expect(() => createPublisher('logger', { app: 'shop', maxFrameBytes: 100, maxRecordBytes: 200 })).toThrow(/maxRecordBytes/);
  });

  it('takes clusterNodes, shards and waitReplicas from options or REDIS_CLUSTER_NODES / LOG_SHARDS, and refuses them where they do not apply', async () => {
    const saved = { nodes: process.env.REDIS_CLUSTER_NODES, shards: process.env.LOG_SHARDS };
    try {
      process.env.LOG_SHARDS = '4';
      const streams = new Set<string>();
      for (let i = 0; i < 40; i++) {
        const log = createPublisher('logger', { app: 'shop', url: kit.redis.url, flushOnExit: false });
        streams.add(log.stream!);
        await log.close(0);
      }
      // each picks one of the 4 shards' streams (40 of them all on one shard: one chance in 4^39)
      expect([...streams].every((stream) => /^log:\{logger:[0-3]\}$/.test(stream))).toBe(true);
      expect(streams.size).toBeGreaterThan(1);
      const one = createPublisher('logger', { app: 'shop', url: kit.redis.url, shards: 1, flushOnExit: false });
      expect(one.stream).toBe('log:{logger}');
      await one.close(0);
      process.env.LOG_SHARDS = 'many';
      process.env.REDIS_CLUSTER_NODES = 'redis://a:1,10.0.0.1:7000';
      expect(() => createPublisher('logger', { app: 'shop' })).toThrow(/LOG_SHARDS="many" must be a whole number >= 1[\s\S]*clusterNodes: "10.0.0.1:7000" is not a redis/);
      delete process.env.LOG_SHARDS;
      delete process.env.REDIS_CLUSTER_NODES;
      expect(() => createPublisher('logger', { app: 'shop', transport: 'pubsub', clusterNodes: ['redis://a:1'], shards: 2, waitReplicas: 1 })).toThrow(
        /clusterNodes applies to transport 'stream' only[\s\S]*shards applies[\s\S]*waitReplicas applies/,
      );
      expect(() => createPublisher('logger', { app: 'shop', waitReplicas: -1 })).toThrow(/waitReplicas must be a whole number >= 0/);
    } finally {
      for (const [name, value] of [
        ['REDIS_CLUSTER_NODES', saved.nodes],
        ['LOG_SHARDS', saved.shards],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('buffers while Redis is unreachable, drops past the bound with exact counts, and reports the drops', async () => {
    const ch = channel();
    const down = await startRedis();
    const url = down.url;
    await down.stop();
    const log = createPublisher(ch, { app: 'shop', url, host: 'testhost', maxBufferBytes: 64 * 1024, maxFrameBytes: 16 * 1024, maxRecordBytes: 1024 });
    loggers.push(log);
    const line = 'z'.repeat(100);
    for (let i = 0; i < 2000; i++) expect(() => log.info(line, { i })).not.toThrow();
    await sleep(50);
    const during = log.stats();
    expect(during.logged).toBe(2000);
    expect(during.sent).toBe(0);
    expect(during.dropped).toBeGreaterThan(0);
    expect(during.bufferedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(during.dropped + during.buffered).toBe(2000);
    await down.start();
    await log.flush();
    const after = log.stats();
    expect(after.sent).toBe(during.buffered);
    expect(after.sent + after.dropped).toBe(after.logged);
    const { records, headers } = await readStream(url, ch);
    expect(records).toHaveLength(after.sent);
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1)); // drops never take a sequence number
    expect(headers.reduce((sum, h) => sum + h.dropped, 0)).toBe(after.dropped);
    await down.dispose();
  }, 30_000);

  it('re-sends frames after Redis restarts; none are lost', async () => {
    const ch = channel();
    const aof = await startRedis({ appendOnly: true, args: ['--appendfsync', 'always'] });
    const log = createPublisher(ch, { app: 'shop', url: aof.url, host: 'testhost' });
    loggers.push(log);
    for (let i = 0; i < 1000; i++) log.info('before', { i });
    await log.flush();
    await aof.kill();
    for (let i = 0; i < 1000; i++) log.info('during', { i });
    await sleep(300);
    await aof.start();
    await log.flush();
    const { records } = await readStream(aof.url, ch);
    const seqs = new Set(records.map((r) => r.seq));
    for (let seq = 1; seq <= 2000; seq++) expect(seqs.has(seq)).toBe(true);
    expect(log.stats()).toMatchObject({ logged: 2000, sent: 2000, dropped: 0 });
    expect(log.stats().reconnects).toBeGreaterThan(0);
    await aof.dispose();
  }, 30_000);

  it('pubsub: publishes frames and counts records nobody heard', async () => {
    const ch = channel();
    const log = publisher(ch, { transport: 'pubsub' });
    log.info('unheard');
    await log.flush();
    expect(log.stats()).toMatchObject({ sent: 1, unheard: 1 });
    const subscriber = createClient({ url: kit.redis.url });
    await subscriber.connect();
    const heard: string[] = [];
    await subscriber.subscribe(ch, (message) => heard.push(message));
    log.info('heard');
    await log.flush();
    await sleep(100);
    expect(log.stats()).toMatchObject({ sent: 2, unheard: 1 });
    expect(heard).toHaveLength(1);
    expect(heard[0]).toContain('"m":"heard"');
    subscriber.destroy();
  });

  it('authenticates as an ACL user and applies the retention hint when asked', async () => {
    // logwriter may XADD and PUBLISH and nothing else (the default user stays open for the kit's probe)
    const acl = await startRedis({ args: ['--user', 'logwriter', 'on', '>s3cret', '~log:*', '&*', '+xadd', '+publish', '+ping', '+hello', '+client'] });
    const ch = channel();
    const [host, port] = acl.url.replace('redis://', '').split(':');
    const log = createPublisher(ch, { app: 'shop', url: `redis://logwriter:s3cret@${host}:${port}`, maxStreamLength: 10 });
    loggers.push(log);
    for (let i = 0; i < 300; i++) {
      log.info('capped', { i });
      await log.flush();
    }
    expect(log.stats()).toMatchObject({ sent: 300, sendErrors: 0 });
    const admin = createClient({ url: acl.url });
    await admin.connect();
    expect(await admin.xLen(`log:{${ch}}`)).toBeLessThan(300); // trimmed near 10 (approximately: whole macro nodes)
    admin.destroy();
    const reader = createClient({ url: `redis://logwriter:s3cret@${host}:${port}` });
    reader.on('error', () => {});
    await reader.connect();
    await expect(reader.sendCommand(['XLEN', `log:{${ch}}`])).rejects.toThrow(/NOPERM/);
    reader.destroy();
    await acl.dispose();
    expect(() => createPublisher(ch, { app: 'shop', transport: 'pubsub', maxStreamLength: 5 })).toThrow(/maxStreamLength/);
  }, 30_000);

  it('close() flushes, returns the same promise, and later calls are counted as dropped', async () => {
    const ch = channel();
    const log = publisher(ch);
    log.info('last words');
    const closing = log.close();
    expect(log.close()).toBe(closing);
    await closing;
    log.info('after close');
    expect(log.stats()).toMatchObject({ logged: 2, sent: 1, dropped: 1, buffered: 0 });
    const { records } = await readStream(kit.redis.url, ch);
    expect(records.map((r) => r.message)).toEqual(['last words']);
  });

  it('says once per outage that Redis is unreachable (onError, or stderr), and counts what close() gave up as dropped', async () => {
    const ch = channel();
    const down = await startRedis();
    const url = down.url;
    await down.stop();
    const errors: PublisherError[] = [];
    const log = createPublisher(ch, { app: 'shop', url, host: 'testhost', onError: (error) => errors.push(error) });
    loggers.push(log);
    for (let i = 0; i < 100; i++) log.info('while down', { i });
    await sleep(1500); // node-redis retries the connection several times meanwhile
    expect(errors.map((e) => e.code)).toEqual(['REDIS_UNREACHABLE']);
    expect(errors[0]!.message).toContain(`cannot reach Redis at ${url} (ECONNREFUSED)`);
    await down.start();
    await log.flush();
    expect(log.stats()).toMatchObject({ sent: 100, dropped: 0 });
    await down.stop(); // a second outage is said again
    for (let i = 0; i < 50; i++) log.info('second outage', { i });
    for (let i = 0; i < 100 && errors.length < 2; i++) await sleep(20);
    await log.close(200);
    expect(errors.map((e) => e.code)).toEqual(['REDIS_UNREACHABLE', 'REDIS_UNREACHABLE', 'RECORDS_GIVEN_UP']);
    expect((errors[2] as RecordsGivenUpError).records).toBe(50);
    expect(log.stats()).toMatchObject({ logged: 150, sent: 100, dropped: 50, buffered: 0 });
    await down.dispose();
  }, 30_000);

  it('writes the warning to stderr when no onError is given', async () => {
    const down = await startRedis();
    await down.stop();
    const script = `
      const { createPublisher } = require(${JSON.stringify(require.resolve('../dist'))});
      const log = createPublisher('c', { app: 'shop', url: ${JSON.stringify(down.url)} });
      log.info('x');
      setTimeout(() => log.close(100).then(() => process.exit(0)), 1000);`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(run.stderr.match(/@log\/publisher: cannot reach Redis/g)).toHaveLength(1);
    expect(run.stderr).toContain('@log/publisher: close(): 1 records were not accepted by Redis within 100 ms; they are counted as dropped');
    await down.dispose();
  }, 30_000);
});
