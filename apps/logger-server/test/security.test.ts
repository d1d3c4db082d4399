import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deadLetterKey, encodeFrame, streamKey } from '@log/protocol';
import { createPublisher, type PublisherError } from '@log/publisher';
import { removeDir, sleep, startRedis, tempDir, waitUntil, type RedisServer } from '@log/test-kit';
import { createClient, type RedisClientType } from 'redis';
import { expectExactlyOnce, httpGet, readLogs, startServer, waitForRecords, type ServerProcess } from './harness';

// The README's security section, run: its ACL lines applied as written, the pipeline working
// under those users and each user refused what it must not do; and the pipeline over TLS.

const README = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
const ACL_LINES = README.split('\n').filter((line) => line.startsWith('ACL SETUSER '));

let dir: string;
const cleanups: Array<() => unknown> = [];
beforeEach(() => {
  dir = tempDir('security');
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  removeDir(dir);
}, 30_000);

async function redisServer(options: Parameters<typeof startRedis>[0] = {}): Promise<RedisServer> {
  const redis = await startRedis(options);
  cleanups.push(() => redis.dispose());
  return redis;
}

async function client(url: string, options: Parameters<typeof createClient>[0] = {}): Promise<RedisClientType> {
  const c = createClient({ ...options, url }) as RedisClientType;
  c.on('error', () => {});
  await c.connect();
  cleanups.push(() => c.destroy());
  return c;
}

async function server(env: Record<string, string>): Promise<ServerProcess> {
  const s = await startServer({ LOG_DIR: join(dir, 'log'), LOG_CHANNEL: 'logger', TRIM_INTERVAL_MS: '200', CLAIM_INTERVAL_MS: '200', ...env });
  cleanups.push(() => s.stop());
  return s;
}

/** Words of a redis-cli line: split at spaces, a "quoted part" one word. */
const redisCliWords = (line: string) => [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);

const as = (url: string, user: string, password: string) => url.replace('redis://', `redis://${user}:${password}@`);

describe('the README’s ACL users', () => {
  it('are two lines in the README, for the publisher and the server', () => {
    expect(ACL_LINES.map((line) => line.split(' ')[2])).toEqual(['log-publisher', 'log-server']);
  });

  it('run the whole pipeline (write, dead letters, claim, trim, loss report), and refuse each user what it must not do', async () => {
    const redis = await redisServer();
    const admin = await client(redis.url);
    for (const line of ACL_LINES) expect(await admin.sendCommand(redisCliWords(line))).toBe('OK');
    // both transports: the Pub/Sub bridge (subscribe, barrier, lease, fenced XADD) runs under the server user too
    const s = await server({ REDIS_URL: as(redis.url, 'log-server', 'server-password'), LOG_TRANSPORT: 'stream,pubsub' });
    await waitUntil('the server holds the Pub/Sub bridge', async () => /^logger_pubsub_bridge_holder 1$/m.test((await httpGet(s.httpPort, '/metrics')).body), { timeoutMs: 15_000 });
    const log = createPublisher('logger', { app: 'shop', url: as(redis.url, 'log-publisher', 'publisher-password'), onError: () => {} });
    cleanups.push(() => log.close(1000));
    for (let i = 0; i < 2000; i++) log.info('under acl', { i });
    await log.flush();
    expect(log.stats()).toMatchObject({ sent: 2000, sendErrors: 0 });
    // a bad frame (only an admin could send it: the publisher never does) goes to the dead letters
    await admin.xAdd(streamKey('logger'), '*', { f: encodeFrame({ producer: 'bad', seq: 1, count: 1, app: 'shop', host: 'h', pid: 1, dropped: 0 }, ['{broken']) });
    // an existing publisher's PUBLISH, under the publisher user
    const rubyStyle = await client(as(redis.url, 'log-publisher', 'publisher-password'));
    expect(await rubyStyle.publish('logger', 'plain text under acl')).toBe(1);
    expect((await waitForRecords(join(dir, 'log'), 'legacy', 1)).map((r) => r.message)).toEqual(['plain text under acl']);
    const records = await waitForRecords(join(dir, 'log'), 'shop', 2000);
    expectExactlyOnce(records, log.producer, 2000);
    for (let i = 0; i < 100 && (await admin.xLen(deadLetterKey('logger'))) === 0; i++) await sleep(50);
    expect(await admin.xLen(deadLetterKey('logger'))).toBe(1);
    await sleep(1000); // claim and trim ran several times under the server user
    const report = JSON.parse((await httpGet(s.httpPort, '/stats')).body) as { totals: Record<string, number> };
    expect(report.totals).toMatchObject({ received: 2001, missing: 0, deadLettered: 1 });
    expect(s.output()).not.toMatch(/NOPERM|NOAUTH/);
    expect(readLogs(join(dir, 'log')).get('shop')).toHaveLength(2000);

    const publisherUser = await client(as(redis.url, 'log-publisher', 'publisher-password'));
    const stream = streamKey('logger');
    const refusedToPublisher: string[][] = [
      ['XRANGE', stream, '-', '+'],
      ['XREAD', 'STREAMS', stream, '0'],
      ['XLEN', stream],
      ['XDEL', stream, '0-1'],
      ['XTRIM', stream, 'MAXLEN', '0'],
      ['DEL', stream],
      ['XGROUP', 'CREATE', stream, 'mine', '0'],
      ['XREADGROUP', 'GROUP', 'logger-server', 'me', 'STREAMS', stream, '>'],
      ['HGETALL', `${stream}:logger-server:totals`],
      ['XADD', streamKey('other'), '*', 'f', 'x'],
      ['XADD', deadLetterKey('logger'), '*', 'f', 'x'],
      ['PUBLISH', 'other', 'x'],
      ['FLUSHALL'],
      ['CONFIG', 'GET', 'maxmemory'],
    ];
    for (const command of refusedToPublisher) await expect(publisherUser.sendCommand(command)).rejects.toThrow(/NOPERM/);
    const serverUser = await client(as(redis.url, 'log-server', 'server-password'));
    const refusedToServer: string[][] = [
      ['FLUSHALL'],
      ['CONFIG', 'GET', 'maxmemory'],
      ['KEYS', '*'],
      ['XADD', streamKey('other'), '*', 'f', 'x'],
      ['XRANGE', streamKey('other'), '-', '+'],
      ['DEL', stream],
      ['PUBLISH', 'other', 'x'],
    ];
    for (const command of refusedToServer) await expect(serverUser.sendCommand(command)).rejects.toThrow(/NOPERM/);
    // a clean stop releases the lease (DEL, the one key the selector lets it delete)
    await s.stop();
    expect(await s.exited).toBe(0);
    expect(await admin.keys('*:lease:*')).toEqual([]);
  }, 60_000);
});

describe('TLS', () => {
  it('the pipeline runs over rediss:// with the CA trusted; a server not trusting it exits 2 naming REDIS_URL and TLS, a publisher says so once', async () => {
    const redis = await redisServer({ tls: true });
    const tls = redis.tls!;
    const s = await server({ REDIS_URL: tls.url, NODE_EXTRA_CA_CERTS: tls.caFile });
    const log = createPublisher('logger', { app: 'shop', url: tls.url, redis: { socket: { tls: true, ca: readFileSync(tls.caFile) } } });
    cleanups.push(() => log.close(1000));
    for (let i = 0; i < 500; i++) log.info('over tls', { i });
    await log.flush();
    expectExactlyOnce(await waitForRecords(join(dir, 'log'), 'shop', 500), log.producer, 500);
    expect((await httpGet(s.httpPort, '/healthz')).status).toBe(200);

    const refused = await startServer({ LOG_DIR: join(dir, 'other'), LOG_CHANNEL: 'logger', REDIS_URL: tls.url, NODE_EXTRA_CA_CERTS: tls.wrongCaFile }, { waitReady: false });
    cleanups.push(() => refused.stop());
    expect(await refused.exited).toBe(2);
    expect(refused.output()).toContain(`logger-server: REDIS_URL: ${tls.url}: TLS: the server's certificate is not trusted (SELF_SIGNED_CERT_IN_CHAIN`);

    const errors: PublisherError[] = [];
    const untrusting = createPublisher('logger', { app: 'shop', url: tls.url, redis: { socket: { tls: true, ca: readFileSync(tls.wrongCaFile) } }, onError: (e) => errors.push(e) });
    untrusting.info('never sent');
    await sleep(1500);
    await untrusting.close(100);
    expect(errors.map((e) => e.code)).toEqual(['REDIS_UNREACHABLE', 'RECORDS_GIVEN_UP']);
    expect(errors[0]!.message).toContain('SELF_SIGNED_CERT_IN_CHAIN');
  }, 60_000);
});
