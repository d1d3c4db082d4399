import { FRAME_FIELD, decodeFrame, decodeRecord, streamKey, type LogRecord } from '@log/protocol';
import { startRedis, type RedisServer } from '@log/test-kit';
import { createClient } from 'redis';
import { startShop } from '../src/app';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});

async function recordsIn(channel: string): Promise<LogRecord[]> {
  const client = createClient({ url: redis.url });
  await client.connect();
  const entries = (await client.xRange(streamKey(channel), '-', '+')) ?? [];
  client.destroy();
  return entries.flatMap((entry) => {
    const frame = decodeFrame(String(entry.message[FRAME_FIELD]), { entryId: entry.id });
    return frame.lines.map((_, i) => decodeRecord(frame, i));
  });
}

describe('shop demo app', () => {
  it('logs every request through @log/publisher, errors with their cause', async () => {
    const shop = await startShop({ port: 0, channel: 'shop-test', redisUrl: redis.url });
    const base = `http://127.0.0.1:${shop.port}`;
    expect((await fetch(`${base}/products`)).status).toBe(200);
    expect((await fetch(`${base}/orders`, { method: 'POST' })).status).toBe(201);
    expect((await fetch(`${base}/fail`)).status).toBe(502);
    await shop.close();
    const records = await recordsIn('shop-test');
    expect(records.map((r) => r.message)).toEqual(['shop started', 'request', 'order placed', 'request', 'payment declined', 'request failed', 'shop stopped']);
    expect(records[1]).toMatchObject({ app: 'shop', fields: { service: 'shop', method: 'GET', path: '/products', status: 200 } });
    expect(records[4]!.error).toMatchObject({ message: 'payment declined', cause: { message: 'card expired' } });
  });
});
