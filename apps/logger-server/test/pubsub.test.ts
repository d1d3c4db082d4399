import { join } from 'node:path';
import { createPublisher } from '@log/publisher';
import { removeDir, sleep, startRedis, tempDir, type RedisServer } from '@log/test-kit';
import { deadLetterKey } from '@log/protocol';
import { RESP_TYPES, createClient } from 'redis';
import { expectExactlyOnce, httpGet, startServer, waitForRecords, type ServerProcess } from './harness';

let redis: RedisServer;
let dir: string;
let server: ServerProcess;

beforeAll(async () => {
  redis = await startRedis();
  dir = tempDir('pubsub');
  server = await startServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_TRANSPORT: 'pubsub' });
});
afterAll(async () => {
  await server.stop();
  await redis.dispose();
  removeDir(dir);
});

describe('LOG_TRANSPORT=pubsub', () => {
  it('writes what existing publishers send: plain text, JSON objects and invalid bytes, never silently dropped', async () => {
    const client = createClient({ url: redis.url }).on('error', () => {});
    await client.connect();
    expect(await client.publish('logger', 'plain text from redis-cli')).toBe(1);
    await client.publish('logger', JSON.stringify({ message: 'from ruby', app: 'billing', level: 'warn', user: 3 }));
    await client.publish('logger', JSON.stringify({ msg: 'hostile app', app: '../../etc' }));
    await client.publish('logger', 'line one\nline two\u001b[2J');
    await client.publish('logger', Buffer.from([0xff, 0xfe, 0x41]));
    await client.publish('logger', 'x'.repeat(300 * 1024));
    const legacy = await waitForRecords(join(dir, 'log'), 'legacy', 3);
    expect(legacy.map((r) => r.message)).toEqual(['plain text from redis-cli', 'hostile app', 'line one\nline two\u001b[2J']);
    expect(legacy[1]).toMatchObject({ 'fields.app': '../../etc' });
    const billing = await waitForRecords(join(dir, 'log'), 'billing', 1);
    expect(billing[0]).toMatchObject({ message: 'from ruby', level: 'warn', user: 3 });
    await sleep(200);
    const metrics = (await httpGet(server.httpPort, '/metrics')).body;
    expect(metrics).toMatch(/logger_dead_letters_total\{reason="INVALID_UTF8"\} 1/);
    expect(metrics).toMatch(/logger_dead_letters_total\{reason="RECORD_TOO_LARGE"\} 1/);
    // stored like the stream transport's: reason, detail and the bytes as they came
    const raw = (await client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).sendCommand(['XRANGE', deadLetterKey('logger'), '-', '+'])) as Array<[Buffer, Buffer[]]>;
    const dead = raw.map(([, fields]) => Object.fromEntries(fields.flatMap((v, i) => (i % 2 === 0 ? [[String(v), fields[i + 1]!]] : []))) as Record<string, Buffer>);
    expect(dead.map((d) => [String(d.entry), String(d.reason)])).toEqual([
      ['pubsub', 'INVALID_UTF8'],
      ['pubsub', 'RECORD_TOO_LARGE'],
    ]);
    expect(dead[0]!.payload).toEqual(Buffer.from([0xff, 0xfe, 0x41]));
    expect(String(dead[1]!.payload)).toBe('x'.repeat(1024)); // an oversized message keeps its first KiB as evidence
    client.destroy();
  }, 30_000);

  it('writes our publisher frames and counts gaps in their sequence numbers', async () => {
    const log = createPublisher('logger', { app: 'shop', url: redis.url, transport: 'pubsub' });
    try {
      for (let i = 0; i < 3000; i++) log.info('via pubsub', { i });
      await log.flush();
      const records = await waitForRecords(join(dir, 'log'), 'shop', 3000);
      expectExactlyOnce(records, log.producer, 3000);
      const stats = JSON.parse((await httpGet(server.httpPort, '/stats')).body);
      expect(stats.producers.find((p: { producer: string }) => p.producer === log.producer)).toMatchObject({ received: 3000, missing: 0 });
    } finally {
      await log.close();
    }
  }, 30_000);
});
