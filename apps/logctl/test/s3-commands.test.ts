import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { archiveKey } from '@log/s3-archiver';
import { freePort, removeDir, startRedis, startS3, tempDir, type RedisServer, type S3Server } from '@log/test-kit';
import { logctl } from './helpers';

let redis: RedisServer;
let s3: S3Server;
let dir: string;

beforeAll(async () => {
  dir = tempDir('logctl-s3');
  [redis, s3] = await Promise.all([startRedis({ args: ['--user', 'ops', 'on', '>sesame', '~log:*', '+@all'] }), startS3()]);
});
afterAll(async () => {
  await Promise.all([redis.dispose(), s3.dispose()]);
  removeDir(dir);
});

const s3Env = (): Record<string, string> => ({
  S3_BUCKET: 'logs',
  S3_PREFIX: 'archive',
  S3_ENDPOINT: s3.endpoint,
  S3_FORCE_PATH_STYLE: 'true',
  AWS_REGION: s3.region,
  AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
});

const line = (time: number, message: string) => JSON.stringify({ time: new Date(time).toISOString(), level: 'info', app: 'shop', host: 'web1', pid: 1, producer: 'p', seq: 1, message }) + '\n';

describe('logctl archive', () => {
  it('lists, cats and greps archives by app and time range through their partitions', async () => {
    const client = new S3Client(s3.clientConfig);
    const h = (hour: number, minute = 0) => Date.UTC(2026, 10, 25, hour, minute);
    const put = async (app: string, first: number, lines: string) =>
      client.send(new PutObjectCommand({ Bucket: 'logs', Key: archiveKey({ prefix: 'archive', app, host: 'web1', firstTime: first, unique: 'u1' }), Body: gzipSync(lines) }));
    await put('shop', h(10, 5), line(h(10, 5), 'at ten') + line(h(10, 40), 'order 42 placed'));
    await put('shop', h(12, 0), line(h(12, 0), 'at noon') + line(h(12, 30), 'order 43 placed'));
    await put('billing', h(10, 0), line(h(10, 1), 'other app'));
    client.destroy();
    const env = s3Env();
    const ls = await logctl(env, ['archive', 'ls', '--app', 'shop', '--from', '2026-11-25T09:00Z', '--to', '2026-11-25T13:00Z', '--json']);
    expect(ls.code).toBe(0);
    expect(
      ls.out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { key: string }).key),
    ).toEqual(['archive/shop/dt=2026-11-25/hour=10/web1-20261125T100500000Z-u1.jsonl.gz', 'archive/shop/dt=2026-11-25/hour=12/web1-20261125T120000000Z-u1.jsonl.gz']);
    const onlyTen = await logctl(env, ['archive', 'ls', '--app', 'shop', '--from', '2026-11-25T10:00Z', '--to', '2026-11-25T11:00Z']);
    expect(onlyTen.out).toMatch(/^\s+\d+ {2}s3:\/\/logs\/archive\/shop\/dt=2026-11-25\/hour=10\/web1-20261125T100500000Z-u1\.jsonl\.gz\n$/);
    const cat = await logctl(env, ['archive', 'cat', '--app', 'shop', '--from', '2026-11-25T10:30Z', '--to', '2026-11-25T12:10Z']);
    expect(
      cat.out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { message: string }).message),
    ).toEqual(['order 42 placed', 'at noon']);
    const grep = await logctl(env, ['archive', 'grep', 'order \\d+ placed', '--app', 'shop', '--from', '2026-11-25T00:00Z', '--to', '2026-11-26T00:00Z']);
    expect(
      grep.out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { message: string }).message),
    ).toEqual(['order 42 placed', 'order 43 placed']);
    expect((await logctl(env, ['archive', 'grep', 'nothing like this', '--app', 'shop', '--from', '2026-11-25T00:00Z'])).code).toBe(1);
    expect((await logctl({}, ['archive', 'ls', '--app', 'shop'])).code).toBe(2);
  });
});

describe('logctl check', () => {
  it('says ok for a working set-up and names each problem on its own line otherwise', async () => {
    const logDir = join(dir, 'log');
    const good = await logctl({ ...s3Env(), REDIS_URL: redis.url.replace('redis://', 'redis://ops:sesame@'), LOG_DIR: logDir }, ['check']);
    expect(good.out.split('\n').filter((l) => l.startsWith('ok '))).toHaveLength(3);
    expect(good.code).toBe(0);

    const file = join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    const closedPort = await freePort();
    const bad = await logctl({ ...s3Env(), S3_BUCKET: 'no-such-bucket', REDIS_URL: `redis://127.0.0.1:${closedPort}`, LOG_DIR: join(file, 'log') }, ['check', '--json']);
    expect(bad.code).toBe(1);
    const outcomes = JSON.parse(bad.out) as Array<{ check: string; ok: boolean; detail: string }>;
    expect(outcomes.map((o) => [o.check, o.ok])).toEqual([
      ['redis', false],
      ['s3', false],
      ['log-dir', false],
    ]);
    expect(outcomes[0]!.detail).toContain('ECONNREFUSED');
    expect(outcomes[1]!.detail).toContain('no-such-bucket');
    expect(outcomes[2]!.detail).toContain('ENOTDIR');

    const noAuth = await logctl({ REDIS_URL: redis.url.replace('redis://', 'redis://ops:wrong@'), LOG_DIR: logDir }, ['check']);
    expect(noAuth.code).toBe(1);
    expect(noAuth.out).toMatch(/^PROBLEM redis: redis:\/\/\*\*\*@127\.0\.0\.1:\d+: .*(WRONGPASS|invalid).*check the user and password/m);
    expect(noAuth.out).not.toContain('wrong');
  });
});
