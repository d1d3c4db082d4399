import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createPublisher } from '@log/publisher';
import { motoAvailable, removeDir, sleep, startRedis, startS3, tempDir, type RedisServer, type S3Server } from '@log/test-kit';
import { createClient } from 'redis';
import { ENV_KEYS } from '../src/config';
import { MAIN, httpGet, startServer, type ServerProcess } from './harness';

// Wrong settings and services that are down at start: the server says what is wrong, naming the
// setting, and never hangs silently.

let dir: string;
const cleanups: Array<() => unknown> = [];
beforeEach(() => {
  dir = tempDir('startup');
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  removeDir(dir);
}, 30_000);

async function launch(env: Record<string, string>): Promise<ServerProcess> {
  const s = await startServer({ LOG_DIR: join(dir, 'log'), HTTP_PORT: '0', ...env }, { waitReady: false });
  cleanups.push(() => s.stop());
  return s;
}

/** The port the server's HTTP listens on, from its "http listening" line. */
async function httpPortOf(s: ServerProcess): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = /"http listening","port":(\d+)/.exec(s.output())?.[1];
    if (port !== undefined) return Number(port);
    await sleep(25);
  }
  throw new Error(`no http listening line:\n${s.output()}`);
}

async function redisServer(): Promise<RedisServer> {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  return redis;
}

describe('logger-server --help', () => {
  it('prints the usage and every setting, and exits 0', () => {
    const run = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^usage: logger-server/);
    for (const key of ENV_KEYS) expect(run.stdout).toContain(`  ${key} `);
  });
});

describe('Redis at start', () => {
  it('down: HTTP answers 503 with the reason, said once, and the server starts when Redis comes', async () => {
    const redis = await redisServer();
    await redis.stop();
    const s = await launch({ REDIS_URL: redis.url });
    const port = await httpPortOf(s);
    let health = { status: 0, body: '' };
    for (let i = 0; i < 100 && !health.body.includes('ECONNREFUSED'); i++) {
      health = await httpGet(port, '/healthz');
      await sleep(50);
    }
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'starting', redis: 'failing', lastError: `REDIS_URL ${redis.url}: connection refused (ECONNREFUSED)` });
    await sleep(3000); // several retries
    expect(s.output().match(/redis is not reachable/g)).toHaveLength(1);
    await redis.start();
    for (let i = 0; i < 400 && !s.output().includes('"logger server started"'); i++) await sleep(50);
    expect(s.output()).toContain('"redis reachable again"');
    expect((await httpGet(port, '/healthz')).status).toBe(200);
  }, 60_000);

  it('wanting a password: exits 2 naming REDIS_URL and NOAUTH; a wrong password: WRONGPASS', async () => {
    const redis = await redisServer();
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.configSet('requirepass', 'secret');
    admin.destroy();
    cleanups.push(async () => {
      const client = createClient({ url: redis.url.replace('//', '//:secret@') });
      await client.connect();
      await client.configSet('requirepass', '');
      client.destroy();
    });
    const none = await launch({ REDIS_URL: redis.url });
    expect(await none.exited).toBe(2);
    expect(none.output()).toContain(`logger-server: REDIS_URL: ${redis.url}: authentication failed: NOAUTH`);
    const wrong = await launch({ REDIS_URL: redis.url.replace('//', '//:nope@') });
    expect(await wrong.exited).toBe(2);
    expect(wrong.output()).toContain(`logger-server: REDIS_URL: ${redis.url.replace('//', '//***@')}: authentication failed: WRONGPASS`);
    expect(wrong.output()).not.toContain('nope');
  }, 30_000);

  it('not Redis (an HTTP server): exits 2 naming REDIS_URL', async () => {
    const web = createServer((_req, res) => res.end('<html>hello</html>'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => web.close(resolve)));
    const url = `redis://127.0.0.1:${(web.address() as AddressInfo).port}`;
    const s = await launch({ REDIS_URL: url });
    expect(await s.exited).toBe(2);
    expect(s.output()).toContain(`logger-server: REDIS_URL: ${url}: not a Redis server`);
  }, 30_000);

  it('a port out of range: the configuration check says so, not a bare "Invalid URL"', async () => {
    const s = await launch({ REDIS_URL: 'redis://127.0.0.1:99999' });
    expect(await s.exited).toBe(2);
    expect(s.output()).toContain('logger-server: REDIS_URL="redis://127.0.0.1:99999": port 99999 is out of range (1 to 65535)');
  });
});

describe('HTTP_PORT in use', () => {
  it('exits 2 naming HTTP_PORT and the port', async () => {
    const redis = await redisServer();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '0.0.0.0', resolve));
    cleanups.push(() => new Promise((resolve) => holder.close(resolve)));
    const port = (holder.address() as AddressInfo).port;
    const s = await launch({ REDIS_URL: redis.url, HTTP_PORT: String(port) });
    expect(await s.exited).toBe(2);
    expect(s.output()).toContain(`logger-server: HTTP_PORT ${port}: address in use`);
  }, 30_000);
});

/** A server archiving to `s3` (bucket `logs` unless `env` says otherwise), started and stopped with the test. */
async function archivingServer(redis: RedisServer, s3: S3Server, env: Record<string, string> = {}): Promise<ServerProcess> {
  const s = await startServer({
    REDIS_URL: redis.url,
    LOG_DIR: join(dir, 'log'),
    S3_BUCKET: 'logs',
    S3_ENDPOINT: s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
    ...env,
  });
  cleanups.push(() => s.stop());
  return s;
}

describe('S3 at start and while running', () => {
  it('a missing bucket is said at once with S3’s code, and /healthz says archive failing with it', async () => {
    const redis = await redisServer();
    const s3 = await startS3({ buckets: ['logs'] });
    cleanups.push(() => s3.stop());
    const s = await archivingServer(redis, s3, { S3_BUCKET: 'no-such-bucket' });
    let health: Record<string, unknown> = {};
    for (let i = 0; i < 200 && health.archive !== 'failing'; i++) {
      health = JSON.parse((await httpGet(s.httpPort, '/healthz')).body) as Record<string, unknown>;
      await sleep(50);
    }
    expect(health).toMatchObject({ status: 'degraded', archive: 'failing', archiveError: expect.stringMatching(/^S3: NoSuchBucket: /) });
    expect(s.output()).toContain('"S3 is not usable: closed files stay on disk and are retried"');
  }, 30_000);

  it('wrong credentials are said at once with S3’s code (moto checking keys; s3rver where moto is missing checks none)', async () => {
    const redis = await redisServer();
    const moto = motoAvailable();
    const s3 = await startS3(moto ? { implementation: 'moto', refuseCredentials: true } : { buckets: [] });
    cleanups.push(() => s3.stop());
    const s = await archivingServer(redis, s3, { AWS_ACCESS_KEY_ID: 'AKIAWRONGWRONGWRONG', AWS_SECRET_ACCESS_KEY: 'wrong' });
    let health: Record<string, unknown> = {};
    for (let i = 0; i < 200 && health.archive !== 'failing'; i++) {
      health = JSON.parse((await httpGet(s.httpPort, '/healthz')).body) as Record<string, unknown>;
      await sleep(50);
    }
    expect(health).toMatchObject({ status: 'degraded', archive: 'failing', archiveError: expect.stringMatching(moto ? /^S3: InvalidAccessKeyId: / : /^S3: NoSuchBucket: /) });
  }, 30_000);

  it('uploads failing in a row mark archive failing after ARCHIVE_FAILING_AFTER attempts, not hours later', async () => {
    const redis = await redisServer();
    const s3 = await startS3({ buckets: ['logs'] });
    cleanups.push(() => s3.stop());
    const s = await archivingServer(redis, s3, { ROTATE_SECONDS: '1', ARCHIVE_FAILING_AFTER: '2', S3_IDLE_TIMEOUT_MS: '2000' });
    const healthz = async () => JSON.parse((await httpGet(s.httpPort, '/healthz')).body) as Record<string, unknown>;
    for (let i = 0; i < 100 && (await healthz()).archive !== 'ok'; i++) await sleep(50);
    expect(await healthz()).toMatchObject({ status: 'ok', archive: 'ok' });
    await s3.stop();
    const log = createPublisher('logger', { app: 'shop', url: redis.url });
    log.info('to be archived');
    await log.close();
    let health: Record<string, unknown> = {};
    for (let i = 0; i < 400 && health.archive !== 'failing'; i++) {
      health = await healthz();
      await sleep(50);
    }
    expect(health).toMatchObject({ status: 'degraded', archive: 'failing', archiveError: expect.stringMatching(/^S3: /) });
    await s3.start();
    for (let i = 0; i < 600 && health.archive !== 'ok'; i++) {
      health = await healthz();
      await sleep(50);
    }
    expect(health).toMatchObject({ archive: 'ok' });
  }, 60_000);
});
