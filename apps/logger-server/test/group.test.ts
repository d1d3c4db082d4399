import { join } from 'node:path';
import { deadLetterKey, encodeFrame, encodeRecord, streamKey } from '@log/protocol';
import { createPublisher } from '@log/publisher';
import { removeDir, sleep, tempDir } from '@log/test-kit';
import { httpGet, readLogs, startServer, useRedis, waitForRecords, type ServerProcess } from './harness';

const shared = useRedis();
let dir: string;
const servers: ServerProcess[] = [];
let n = 0;

beforeEach(() => {
  dir = tempDir('group');
});
const publishers: Array<ReturnType<typeof createPublisher>> = [];
function publisher(...args: Parameters<typeof createPublisher>) {
  const log = createPublisher(...args);
  publishers.push(log);
  return log;
}

afterEach(async () => {
  await Promise.all(publishers.splice(0).map((log) => log.close(1000)));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  removeDir(dir);
});

async function server(name: string, env: Record<string, string>) {
  const s = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: join(dir, name), LOG_CONSUMER: name, ...env });
  servers.push(s);
  return s;
}

describe('several logger servers in one group', () => {
  it('when one is frozen (SIGSTOP) mid-run, the other claims its entries: nothing lost, nothing doubled', async () => {
    const channel = `grp${++n}`;
    // A long blocking read, so app1 is surely waiting inside XREADGROUP when it is frozen below.
    const env = { LOG_CHANNEL: channel, READ_COUNT: '2', CLAIM_IDLE_MS: '1000', CLAIM_INTERVAL_MS: '200', READ_BLOCK_MS: '5000' };
    const app1 = await server('app1', env);
    await server('app2', env);
    const log = publisher(channel, { app: 'shared', url: shared.redis.url, maxFrameRecords: 50 });
    const total = 30_000;
    const countAll = () => (readLogs(join(dir, 'app1')).get('shared')?.length ?? 0) + (readLogs(join(dir, 'app2')).get('shared')?.length ?? 0);
    for (let i = 0; i < total; i++) {
      log.info('shared', { i });
      if (i === total / 3) {
        await log.flush();
        for (let t = 0; t < 100 && countAll() < i + 1; t++) await sleep(50);
        await sleep(100); // both servers idle, blocked in XREADGROUP
        // Frozen while blocked: Redis keeps handing it new entries, which stay pending under its name.
        app1.child.kill('SIGSTOP');
      }
      if (i === total / 3 + 2000) {
        await log.flush();
        await sleep(50); // well before CLAIM_IDLE_MS: nobody has claimed them yet
        const frozenHolds = (await shared.client.sendCommand(['XPENDING', streamKey(channel), 'logger-server', '-', '+', '100', 'app1'])) as unknown[];
        expect(frozenHolds.length).toBeGreaterThan(0);
      }
      if (i % 1000 === 0) await sleep(1);
    }
    await log.flush();
    for (let t = 0; t < 300 && countAll() < total; t++) await sleep(100);
    expect(countAll()).toBe(total); // app2 alone finished the job, claimed entries included
    app1.child.kill('SIGCONT');
    await sleep(1500); // app1 wakes up with its old batch: it must see the entries are no longer its own
    const seqs = [...(readLogs(join(dir, 'app1')).get('shared') ?? []), ...(readLogs(join(dir, 'app2')).get('shared') ?? [])].map((r) => r.seq as number);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs.length).toBe(total);
    const metrics = (await httpGet(servers[1]!.httpPort, '/metrics')).body;
    expect(metrics).toMatch(/logger_claimed_entries_total [1-9]/);
    await log.close();
  }, 60_000);

  it('dead-letters an entry delivered more than MAX_DELIVERIES times instead of looping on it', async () => {
    const channel = `grp${++n}`;
    const key = streamKey(channel);
    await shared.client.sendCommand(['XGROUP', 'CREATE', key, 'logger-server', '0', 'MKSTREAM']);
    const frame = encodeFrame({ producer: 'poison01', seq: 1, count: 1, app: 'poison', host: 'h', pid: 1, dropped: 0 }, [encodeRecord({ time: 1, level: 'info', message: 'again and again' })]);
    const id = await shared.client.xAdd(key, '*', { f: frame });
    // a crashing consumer: read it, never ack, five times
    await shared.client.sendCommand(['XREADGROUP', 'GROUP', 'logger-server', 'crashy', 'STREAMS', key, '>']);
    for (let i = 0; i < 4; i++) await shared.client.sendCommand(['XCLAIM', key, 'logger-server', 'crashy', '0', id]);
    await sleep(20);
    await server('app1', { LOG_CHANNEL: channel, CLAIM_IDLE_MS: '10', CLAIM_INTERVAL_MS: '100', MAX_DELIVERIES: '3' });
    for (let t = 0; t < 50 && ((await shared.client.xLen(deadLetterKey(channel))) ?? 0) === 0; t++) await sleep(100);
    const dead = (await shared.client.xRange(deadLetterKey(channel), '-', '+')) ?? [];
    expect(dead.map((d) => [d.message.entry, d.message.reason])).toEqual([[id, 'DELIVERY_LIMIT']]);
    expect(readLogs(join(dir, 'app1')).get('poison')).toBeUndefined();
    const pending = (await shared.client.sendCommand(['XPENDING', key, 'logger-server'])) as unknown[];
    expect(pending[0]).toBe(0);
  }, 30_000);

  it('trims the stream once every group has acknowledged, and never past a lagging group', async () => {
    const channel = `grp${++n}`;
    const key = streamKey(channel);
    await shared.client.sendCommand(['XGROUP', 'CREATE', key, 'audit', '0', 'MKSTREAM']); // a group that reads nothing
    const s = await server('app1', { LOG_CHANNEL: channel, TRIM_INTERVAL_MS: '200' });
    const log = publisher(channel, { app: 'trim', url: shared.redis.url, maxFrameRecords: 1 });
    for (let i = 0; i < 400; i++) {
      log.info('entry', { i });
      await log.flush(); // one entry per record
    }
    await waitForRecords(join(dir, 'app1'), 'trim', 400);
    await sleep(600);
    expect(await shared.client.xLen(key)).toBe(400); // audit has not read anything: nothing may go
    const metrics = (await httpGet(s.httpPort, '/metrics')).body;
    expect(metrics).toMatch(/logger_group_lag\{group="audit"\} 400/);
    expect(metrics).toMatch(/logger_retention_blocked_by\{group="audit"\} 1/);
    await shared.client.sendCommand(['XGROUP', 'DESTROY', key, 'audit']);
    for (let t = 0; t < 30 && (await shared.client.xLen(key)) >= 400; t++) await sleep(100);
    expect(await shared.client.xLen(key)).toBeLessThan(400);
    await log.close();
  }, 30_000);
});
