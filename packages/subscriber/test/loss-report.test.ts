import { groupStateKeys, shardsOf } from '@log/protocol';
import { startRedis, type RedisServer } from '@log/test-kit';
import { createClient, type RedisClientType } from 'redis';
import { LossReportReader } from '../src';

let redis: RedisServer;
let client: RedisClientType;

beforeAll(async () => {
  redis = await startRedis();
  client = createClient({ url: redis.url }) as RedisClientType;
  client.on('error', () => {});
  await client.connect();
});
afterAll(async () => {
  client.destroy();
  await redis.dispose();
});

describe('LossReportReader', () => {
  it('pages over shards give every origin once, in the full report order, also when origins committed in one batch tie at a shard cut', async () => {
    // Origins of one batch share its commit time: shard 0 holds four tied ones, so any page's
    // window into shard 0 cuts through the tie.
    const channel = 'ties';
    const origins: Array<[shard: number, origin: string, lastSeen: number]> = [
      [0, 'p1/shop/h', 1000],
      [0, 'p2/shop/h', 1000],
      [0, 'p3/shop/h', 1000],
      [0, 'p4/shop/h', 1000],
      [1, 'p5/shop/h', 2000],
      [1, 'p6/shop/h', 1000],
    ];
    for (const [shard, origin, lastSeen] of origins) {
      const keys = groupStateKeys(channel, 'logger-server', shardsOf(2)[shard]);
      await client.zAdd(keys.producers, { score: lastSeen, value: origin });
      await client.hSet(keys.producer(origin), { producer: origin.split('/')[0]!, app: 'shop', host: 'h', received: '1', lastSeen: String(lastSeen) });
    }
    const reader = new LossReportReader(client, channel, 'logger-server', 2);
    const full = (await reader.report(0, 100)).producers.map((row) => row.producer);
    expect(full).toHaveLength(origins.length);
    expect(full[0]).toBe('p5');
    for (const limit of [1, 2, 3, 4]) {
      const paged: string[] = [];
      for (let cursor: number | undefined = 0; cursor !== undefined;) {
        const page = await reader.report(cursor, limit);
        expect(page.producers.length).toBeLessThanOrEqual(limit);
        for (const row of page.producers) paged.push(row.producer);
        cursor = page.cursor;
      }
      expect({ limit, paged }).toEqual({ limit, paged: full });
    }
  });
});
