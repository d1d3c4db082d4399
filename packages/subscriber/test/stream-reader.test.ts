import { FRAME_FIELD, deadLetterKey, streamKey } from '@log/protocol';
import { sleep, startRedis, type RedisServer } from '@log/test-kit';
import { createClient, type RedisClientType } from 'redis';
import { PubSubReader, StreamReader } from '../src';

let redis: RedisServer;
let client: RedisClientType;
let n = 0;
const readers: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  redis = await startRedis();
  client = createClient({ url: redis.url }) as RedisClientType;
  client.on('error', () => {});
  await client.connect();
});
afterEach(async () => {
  await Promise.all(readers.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  client.destroy();
  await redis.dispose();
});

function reader(channel: string, consumer = 'c1', count = 100) {
  const r = new StreamReader({ url: redis.url, channel, consumer, count, blockMs: 100 });
  readers.push(r);
  return r;
}

describe('StreamReader', () => {
  it('reads entries published before it started, as raw bytes, and acks them', async () => {
    const channel = `s${++n}`;
    await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: 'frame-1' });
    await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: 'frame-2', extra: 'x' });
    await client.xAdd(streamKey(channel), '*', { other: 'only' });
    const r = reader(channel);
    await r.start();
    const { entries, fresh } = await r.read();
    expect(fresh).toBe(true);
    expect(entries.map((e) => e.frame?.toString())).toEqual(['frame-1', 'frame-2', undefined]);
    expect(entries[1]!.otherFields).toEqual(['extra']);
    expect(entries[2]!.otherFields).toEqual(['other']);
    expect(Buffer.isBuffer(entries[0]!.frame)).toBe(true);
    await r.ack(entries.map((e) => e.id));
    const pending = (await client.sendCommand(['XPENDING', streamKey(channel), 'logger-server'])) as unknown[];
    expect(pending[0]).toBe(0);
  });

  it('with batchBytes, cuts batches by bytes: reads small entries on, sized by the bytes left, and large ones a few at a time', async () => {
    const channel = `s${++n}`;
    for (let i = 0; i < 47; i++) await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: `${'x'.repeat(99)}${i % 10}` }); // 100 + 1 bytes each
    const r = new StreamReader({ url: redis.url, channel, consumer: 'c1', count: 4, blockMs: 100, batchBytes: 1000 });
    readers.push(r);
    await r.start();
    // the first batch: one entry (sizes unknown yet), then further reads of as many as the bytes left
    // hold (899 / 101: 8), then one (91 bytes left, at least 1): 10 entries, 1010 bytes, in stream order
    const first = await r.read();
    expect(first.entries).toHaveLength(10);
    expect(first.fresh).toBe(true);
    const ids = first.entries.map((e) => e.id);
    expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
    // then a read of 4 (count; 1000 bytes would hold 9), 5, 1: 10 again; caught up, the last read comes
    // back short and the batch ends there (47 - 40 = 7)
    const sizes = [first.entries.length];
    for (let i = 0; i < 4; i++) sizes.push((await r.read()).entries.length);
    expect(sizes).toEqual([10, 10, 10, 10, 7]);
    // entries of 401 bytes: 1000 bytes hold 2 of them, so a batch is 2 + 1 (never count's 4 in one read)
    const large = `s${++n}`;
    for (let i = 0; i < 10; i++) await client.xAdd(streamKey(large), '*', { [FRAME_FIELD]: 'y'.repeat(400) });
    const l = new StreamReader({ url: redis.url, channel: large, consumer: 'c1', count: 4, blockMs: 100, batchBytes: 1000 });
    readers.push(l);
    await l.start();
    const largeSizes: number[] = [];
    for (let i = 0; i < 4; i++) largeSizes.push((await l.read()).entries.length);
    expect(largeSizes).toEqual([3, 3, 3, 1]);
    // without batchBytes one read is one XREADGROUP
    const plain = reader(`s${++n}`, 'c1', 4);
    for (let i = 0; i < 10; i++) await client.xAdd(streamKey(`s${n}`), '*', { [FRAME_FIELD]: 'y' });
    await plain.start();
    expect((await plain.read()).entries).toHaveLength(4);
  });

  it('says when new entries came back short, and readNow takes what arrived since without blocking', async () => {
    const channel = `s${++n}`;
    for (let i = 0; i < 3; i++) await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: `a${i}` });
    const r = new StreamReader({ url: redis.url, channel, consumer: 'c1', count: 4, blockMs: 2000 });
    readers.push(r);
    await r.start();
    const first = await r.read();
    expect(first.entries.map((e) => e.frame?.toString())).toEqual(['a0', 'a1', 'a2']);
    expect(first.short).toBe(true);
    for (let i = 0; i < 5; i++) await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: `b${i}` });
    // sized like read(): 4 at most, the stream not caught up yet
    const now = await r.readNow();
    expect(now.entries.map((e) => e.frame?.toString())).toEqual(['b0', 'b1', 'b2', 'b3']);
    expect(now).toMatchObject({ fresh: true, short: false });
    const started = Date.now();
    expect((await r.readNow()).entries.map((e) => e.frame?.toString())).toEqual(['b4']);
    const empty = await r.readNow();
    expect(empty).toMatchObject({ entries: [], short: true });
    expect(Date.now() - started).toBeLessThan(1500); // never blocked (a read would wait 2000 ms here)
    // while its pending entries are to be replayed, readNow reads nothing: read() replays them first
    r.replayPending();
    expect((await r.readNow()).entries).toEqual([]);
    const replay = await r.read();
    expect(replay).toMatchObject({ fresh: false, short: false });
    expect(replay.entries).toHaveLength(4);
  });

  it('after a restart under the same name, returns its unacknowledged entries first', async () => {
    const channel = `s${++n}`;
    for (let i = 0; i < 5; i++) await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: `f${i}` });
    const first = reader(channel, 'c1', 3);
    await first.start();
    const { entries: batch } = await first.read();
    expect(batch).toHaveLength(3);
    await first.ack([batch[0]!.id]);
    await first.close();
    const again = reader(channel, 'c1', 3);
    await again.start();
    const replay = await again.read();
    expect(replay.fresh).toBe(false);
    expect(replay.entries.map((e) => e.frame?.toString())).toEqual(['f1', 'f2']);
    const fresh = await again.read();
    expect(fresh.fresh).toBe(true);
    expect(fresh.entries.map((e) => e.frame?.toString())).toEqual(['f3', 'f4']);
    expect((await again.read()).entries).toEqual([]);
  });

  it('recreates a vanished stream and group instead of failing (NOGROUP)', async () => {
    const channel = `s${++n}`;
    const r = reader(channel);
    await r.start();
    await client.del(streamKey(channel));
    expect((await r.read()).entries).toEqual([]);
    await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: 'after' });
    let { entries } = await r.read();
    if (entries.length === 0) ({ entries } = await r.read());
    expect(entries.map((e) => e.frame?.toString())).toEqual(['after']);
  });

  it('copies a bad entry to the dead-letter stream with its reason', async () => {
    const channel = `s${++n}`;
    const r = reader(channel);
    await r.start();
    await r.deadLetter('1-1', 'FRAME_FORMAT', 'malformed frame: missing frame magic', Buffer.from([0xff, 0x00]));
    const dead = await client.xRange(deadLetterKey(channel), '-', '+');
    expect(dead?.[0]?.message).toMatchObject({ entry: '1-1', reason: 'FRAME_FORMAT', detail: 'malformed frame: missing frame magic' });
  });

  it('refuses hostile names and reports a closed reader with a typed error', async () => {
    expect(() => new StreamReader({ url: redis.url, channel: '../x', consumer: 'c' })).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
    expect(() => new StreamReader({ url: redis.url, channel: 'ok', consumer: 'a b' })).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
    const r = reader(`s${++n}`);
    await r.start();
    const closing = r.close();
    expect(r.close()).toBe(closing);
    await expect(r.read()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('StreamReader with waitReplicas', () => {
  it('returns entries only once a replica has their delivery; fewer replicas in time: REPLICAS_BEHIND, and the next read returns the same entries', async () => {
    const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(redis.port)] });
    const replicaClient = createClient({ url: replica.url });
    replicaClient.on('error', () => {});
    try {
      await replicaClient.connect();
      for (let tries = 0; !(await replicaClient.info('replication')).includes('master_link_status:up'); tries++) {
        if (tries > 100) throw new Error('the replica did not connect to its master');
        await sleep(100);
      }
      const channel = `s${++n}`;
      const r = new StreamReader({ url: redis.url, channel, consumer: 'c1', count: 100, blockMs: 100, waitReplicas: 1 });
      readers.push(r);
      await r.start();
      const add = async (text: string) => String(await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: text }));
      const first = [await add('a'), await add('b')];
      expect((await r.read()).entries.map((e) => e.id)).toEqual(first);

      replica.pause(); // the replica stops acknowledging: a delivery now lives on the master alone
      const second = [await add('c'), await add('d'), await add('e')];
      await expect(r.read()).rejects.toMatchObject({ code: 'REPLICAS_BEHIND', key: streamKey(channel) });
      // the entries are pending to this consumer, not handed out to anyone else
      expect(Number(((await client.sendCommand(['XPENDING', streamKey(channel), 'logger-server'])) as unknown[])[0])).toBe(first.length + second.length);
      replica.resume();
      const again = await r.read();
      expect(again.entries.map((e) => e.id)).toEqual([...first, ...second]); // replayed: first were never acknowledged
      expect(again.fresh).toBe(false);
    } finally {
      replicaClient.destroy();
      await replica.dispose();
    }
  });
});

describe('StreamReader across consumers', () => {
  it('claims entries another consumer left pending too long, and tells which entries it still owns', async () => {
    const channel = `s${++n}`;
    for (let i = 0; i < 4; i++) await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: `f${i}` });
    const dead = reader(channel, 'dead');
    await dead.start();
    const { entries: held } = await dead.read();
    expect(held).toHaveLength(4);
    const alive = reader(channel, 'alive');
    await alive.start();
    expect(await alive.claimIdle(60_000)).toEqual([]); // not idle long enough yet
    await sleep(150);
    const claimed = await alive.claimIdle(100);
    expect(claimed.map((e) => e.frame?.toString())).toEqual(['f0', 'f1', 'f2', 'f3']);
    // the dead consumer lost them: it must not write them
    expect((await dead.ownership(held.map((e) => e.id))).size).toBe(0);
    const owned = await alive.ownership(claimed.map((e) => e.id));
    expect([...owned.values()]).toEqual([2, 2, 2, 2]); // delivered twice: once to each
    // acknowledging: the dead consumer learns it lost them all, the living one acks them
    expect(await dead.ackOwned(held.map((e) => e.id))).toEqual(held.map((e) => e.id));
    expect(await alive.ackOwned(claimed.slice(0, 3).map((e) => e.id))).toEqual([]);
    const pending = (await client.sendCommand(['XPENDING', streamKey(channel), 'logger-server'])) as unknown[];
    expect(pending[0]).toBe(1);
  });

  it('trims only below what every group still needs', async () => {
    const channel = `s${++n}`;
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push(await client.xAdd(streamKey(channel), '*', { [FRAME_FIELD]: `f${i}` }));
    const fast = new StreamReader({ url: redis.url, channel, group: 'fast', consumer: 'c', count: 300, blockMs: 100 });
    const slow = new StreamReader({ url: redis.url, channel, group: 'slow', consumer: 'c', count: 100, blockMs: 100 });
    readers.push(fast, slow);
    await fast.start();
    await slow.start();
    await fast.ack((await fast.read()).entries.map((e) => e.id));
    const { entries: slowBatch } = await slow.read(); // 100 read, not acknowledged
    let result = await fast.trim();
    expect(result.minId).toBe(ids[0]); // slow's oldest pending entry blocks trimming
    expect(await client.xLen(streamKey(channel))).toBe(300);
    await slow.ack(slowBatch.map((e) => e.id));
    result = await fast.trim();
    expect(result.groups.find((g) => g.name === 'slow')).toMatchObject({ pending: 0, lag: 200 });
    const remaining = (await client.xRange(streamKey(channel), '-', '+')) ?? [];
    // approximate trimming removes whole macro nodes only: never an unread entry, maybe fewer read ones
    expect(remaining.map((e) => e.id)).toEqual(ids.slice(300 - remaining.length));
    expect(remaining.length).toBeGreaterThanOrEqual(200);
  });
});

describe('PubSubReader', () => {
  it('delivers messages as bytes and resubscribes after Redis restarts, counting the outage', async () => {
    const own = await startRedis();
    const publisher = createClient({ url: own.url }).on('error', () => {});
    await publisher.connect();
    const heard: Buffer[] = [];
    const r = new PubSubReader({ url: own.url, channel: 'logger' });
    readers.push(r);
    await r.start((message) => heard.push(message));
    await publisher.publish('logger', Buffer.from([0xff, 0x41]));
    await own.kill();
    await own.start();
    for (let i = 0; i < 100 && (await publisher.publish('logger', 'after').catch(() => 0)) === 0; i++) await sleep(50);
    await sleep(100);
    expect(heard[0]).toEqual(Buffer.from([0xff, 0x41]));
    expect(heard.some((m) => m.toString() === 'after')).toBe(true);
    expect(r.disconnects).toBeGreaterThan(0);
    publisher.destroy();
    await r.close();
    await own.dispose();
  }, 30_000);
});
