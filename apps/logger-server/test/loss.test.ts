// The group's loss report and what keeps it true: restarts, several servers, dead letters, a
// consumer name taken twice, Redis out of memory, an fdatasync that fails. Each test compares the
// numbers the server reports with what was really sent and what is really on disk.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deadLetterKey, encodeFrame, encodeRecord, streamKey, type FrameHeader } from '@log/protocol';
import { createPublisher } from '@log/publisher';
import { removeDir, sleep, startFaultProxy, startRedis, tempDir } from '@log/test-kit';
import { createClient, type RedisClientType } from 'redis';
import { MAIN, countLines, expectExactlyOnce, httpGet, readLogs, startServer, useRedis, waitForRecords, type ServerProcess } from './harness';

const shared = useRedis();
let dir: string;
let channel: string;
let n = 0;
let servers: ServerProcess[] = [];
const publishers: Array<ReturnType<typeof createPublisher>> = [];

beforeEach(() => {
  dir = tempDir('loss');
  channel = `loss-${++n}`;
});
afterEach(async () => {
  await Promise.all(publishers.splice(0).map((log) => log.close(1000)));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  removeDir(dir);
});

function publisher(...args: Parameters<typeof createPublisher>) {
  const log = createPublisher(...args);
  publishers.push(log);
  return log;
}

async function server(env: Record<string, string> = {}, url = shared.redis.url) {
  const s = await startServer({ REDIS_URL: url, LOG_DIR: join(dir, 'log'), LOG_CHANNEL: channel, ...env });
  servers.push(s);
  return s;
}

interface Report {
  totals: { producers: number; received: number; duplicates: number; deadLettered: number; reportedDrops: number; missing: number };
  producers: Array<{ producer: string; app: string; host: string; received: number; duplicates: number; deadLettered: number; missing: number; highest: number }>;
}

async function stats(s: ServerProcess, query = ''): Promise<Report> {
  return JSON.parse((await httpGet(s.httpPort, `/stats${query}`)).body) as Report;
}

const header = (over: Partial<FrameHeader>): FrameHeader => ({ producer: 'raw01', seq: 1, count: 1, app: 'raw', host: 'h', pid: 1, dropped: 0, ...over });
const records = (from: number, count: number) => Array.from({ length: count }, (_, i) => encodeRecord({ time: Date.now(), level: 'info', message: `r${from + i}` }));

describe('the loss report', () => {
  it('counts no loss across a clean restart, a kill -9 and rotation: only what never arrived', async () => {
    const logDir = join(dir, 'log');
    let s = await server({ ROTATE_BYTES: '200000' });
    const log = publisher(channel, { app: 'shop', url: shared.redis.url });
    for (let i = 0; i < 6000; i++) log.info('before', { i });
    await log.flush();
    await waitForRecords(logDir, 'shop', 6000);
    await s.stop(); // closes every file for archiving: the old server counted what was in them as lost
    servers = [];
    s = await server({ ROTATE_BYTES: '200000' });
    for (let i = 0; i < 6000; i++) log.info('after a clean restart', { i });
    await log.flush();
    while (countLines(logDir, 'shop') < 9000) await sleep(5);
    await s.kill9();
    servers = [];
    s = await server({ ROTATE_BYTES: '200000' });
    await waitForRecords(logDir, 'shop', 12_000);
    expectExactlyOnce(readLogs(logDir).get('shop')!, log.producer, 12_000);
    const report = await stats(s);
    expect(report.totals).toMatchObject({ producers: 1, received: 12_000, missing: 0, deadLettered: 0 });
    expect(report.producers).toEqual([expect.objectContaining({ producer: log.producer, app: 'shop', received: 12_000, missing: 0, highest: 12_000 })]);
  }, 60_000);

  it('counts what really never arrived, and dead-lettered records as their own number, not as gaps', async () => {
    const s = await server();
    const key = streamKey(channel);
    await shared.client.xAdd(key, '*', { f: encodeFrame(header({ seq: 1, count: 10 }), records(1, 10)) });
    // seq 11-20 never sent: 10 missing
    const frame = records(21, 10);
    frame[4] = '{"t":1,"l":"info","m":"x","unknown":1}'; // seq 25: invalid, dead-lettered alone
    await shared.client.xAdd(key, '*', { f: encodeFrame(header({ seq: 21, count: 10, dropped: 3 }), frame) });
    await waitForRecords(join(dir, 'log'), 'raw', 19);
    await sleep(300);
    const report = await stats(s);
    expect(report.producers).toEqual([expect.objectContaining({ producer: 'raw01', received: 19, deadLettered: 1, missing: 10, highest: 30, reportedDrops: 3 })]);
    expect(report.totals).toMatchObject({ received: 19, deadLettered: 1, missing: 10, reportedDrops: 3 });
    expect((await httpGet(s.httpPort, '/metrics')).body).toMatch(/^logger_missing_records 10$/m);
    // the late frame arrives after all: the gap closes
    await shared.client.xAdd(key, '*', { f: encodeFrame(header({ seq: 11, count: 10 }), records(11, 10)) });
    await waitForRecords(join(dir, 'log'), 'raw', 29);
    await sleep(300);
    expect((await stats(s)).totals).toMatchObject({ received: 29, missing: 0, deadLettered: 1 });
  }, 30_000);

  it('is one report merged over every server of the group, and a record re-sent to another server is written once', async () => {
    const a = await server({ LOG_CONSUMER: 'a', LOG_DIR: join(dir, 'a'), READ_COUNT: '2' });
    const b = await server({ LOG_CONSUMER: 'b', LOG_DIR: join(dir, 'b'), READ_COUNT: '2' });
    const logs = [0, 1, 2].map((i) => publisher(channel, { app: 'many', url: shared.redis.url, maxFrameRecords: 100, host: `web${i}` }));
    for (let i = 0; i < 20_000; i++) {
      for (const log of logs) log.info('spread', { i });
      if (i % 500 === 0) await sleep(1);
    }
    await Promise.all(logs.map((log) => log.flush()));
    // A frame of producer 0 XADDed a second time (a publisher that retried after a lost reply):
    // whichever server reads it must not write it again.
    await shared.client.xAdd(streamKey(channel), '*', { f: encodeFrame({ producer: logs[0]!.producer, seq: 1, count: 3, app: 'many', host: 'web0', pid: 1, dropped: 0 }, records(1, 3)) });
    const all = () => [...(readLogs(join(dir, 'a')).get('many') ?? []), ...(readLogs(join(dir, 'b')).get('many') ?? [])];
    const deadline = Date.now() + 30_000;
    while (all().length < 60_000 && Date.now() < deadline) await sleep(50);
    await sleep(500);
    for (const log of logs) expectExactlyOnce(all(), log.producer, 20_000);
    expect((readLogs(join(dir, 'a')).get('many') ?? []).length).toBeGreaterThan(0);
    expect((readLogs(join(dir, 'b')).get('many') ?? []).length).toBeGreaterThan(0);
    const [fromA, fromB] = await Promise.all([stats(a), stats(b)]);
    expect(fromA.totals).toEqual(fromB.totals);
    expect(fromA.totals).toMatchObject({ producers: 3, received: 60_000, missing: 0, duplicates: 3 });
    // paginated: two pages of at most 2 producers
    const first = (await stats(a, '?limit=2')) as Report & { cursor?: number };
    const second = (await stats(a, `?cursor=${first.cursor}&limit=2`)) as Report & { cursor?: number };
    expect([...first.producers, ...second.producers].map((p) => p.producer).sort()).toEqual(logs.map((log) => log.producer).sort());
    expect(second.cursor).toBeUndefined();
  }, 60_000);
});

describe('a commit in doubt', () => {
  it('is committed when Redis comes back empty: the file holds the only copy, and it is written once', async () => {
    const own = await startRedis();
    // The server talks to Redis through a proxy that holds its commit (the EVALSHA of commit.lua)
    // unanswered: 'one' is written and fsynced, its acknowledgement in doubt.
    const proxy = await startFaultProxy(own.port);
    const commitSha = createHash('sha1')
      .update(readFileSync(join(__dirname, '..', 'lua', 'commit.lua'), 'utf8'))
      .digest('hex');
    try {
      const s = await server({}, `redis://127.0.0.1:${proxy.port}`);
      proxy.blackholeWhenSent(commitSha);
      const log = publisher(channel, { app: 'doubt', url: own.url });
      log.info('one');
      await log.flush();
      await waitForRecords(join(dir, 'log'), 'doubt', 1);
      for (let i = 0; i < 100 && proxy.mode !== 'blackhole'; i++) await sleep(50);
      expect(proxy.mode).toBe('blackhole');
      await own.kill();
      await own.start(); // empty: no stream, no group, no ledger
      proxy.setMode('pass');
      log.info('two');
      await log.flush();
      const records = await waitForRecords(join(dir, 'log'), 'doubt', 2);
      if (records.length < 2) throw new Error(`'two' never written; the server said:\n${s.output()}`);
      expect(s.output()).toMatch(/committing a batch failed; trying the same commit again/); // the commit really was in doubt
      expect(records.map((r) => r.message)).toEqual(['one', 'two']);
      await sleep(300);
      expect((await stats(s)).totals).toMatchObject({ received: 2, missing: 0 });
    } finally {
      await Promise.all(servers.splice(0).map((x) => x.stop()));
      await proxy.close();
      await own.dispose();
    }
  }, 40_000);
});

describe('a consumer name', () => {
  it("is refused to a second server while the first lives, with a clear message; a killed server's name is free at once", async () => {
    const first = await server({ LOG_CONSUMER: 'twin', LOG_DIR: join(dir, 'one') });
    const second = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: join(dir, 'two'), LOG_CHANNEL: channel, LOG_CONSUMER: 'twin' }, { waitReady: false });
    expect(await second.exited).toBe(2);
    expect(second.output()).toMatch(/LOG_CONSUMER=twin is held by another live server \(host [^,]+, pid \d+/);
    await first.kill9();
    servers = [];
    const third = await server({ LOG_CONSUMER: 'twin', LOG_DIR: join(dir, 'one') }); // same host, process gone: taken over
    expect((await httpGet(third.httpPort, '/healthz')).status).toBe(200);
  }, 40_000);
});

describe('Redis out of memory', () => {
  it('never wedges the pipeline: a dead letter Redis refuses is kept on disk, the batch is acknowledged, trimming frees memory', async () => {
    const own = await startRedis({ args: ['--maxmemory', '12mb', '--maxmemory-policy', 'noeviction'] });
    const oc = createClient({ url: own.url }) as RedisClientType;
    oc.on('error', () => {});
    await oc.connect();
    try {
      const key = streamKey(channel);
      await oc.sendCommand(['XGROUP', 'CREATE', key, 'logger-server', '0', 'MKSTREAM']);
      const bad = records(1, 50);
      bad[10] = '{broken json';
      await oc.xAdd(key, '*', { f: encodeFrame(header({ seq: 1, count: 50 }), bad) });
      let seq = 51;
      let refused = false;
      while (!refused) {
        try {
          await oc.xAdd(key, '*', {
            f: encodeFrame(
              header({ seq, count: 200 }),
              records(seq, 200).map((r) => r.replace('"m":"', `"m":"${'x'.repeat(200)}`)),
            ),
          });
          seq += 200;
        } catch (error) {
          expect(String(error)).toMatch(/OOM/);
          refused = true;
        }
      }
      const sent = seq - 1;
      // A server started on a full Redis: its first batch holds the bad record
      const s = await server({ TRIM_INTERVAL_MS: '200', READ_COUNT: '8' }, own.url);
      const logDir = join(dir, 'log');
      await waitForRecords(logDir, 'raw', sent - 1, 30_000);
      expect(countLines(logDir, 'raw')).toBe(sent - 1);
      // trimmed: Redis takes writes again, and the spooled dead letter moves into its stream
      const deadline = Date.now() + 20_000;
      let dead: unknown[] = [];
      while (Date.now() < deadline) {
        dead = (await oc.xRange(deadLetterKey(channel), '-', '+')) ?? [];
        if (dead.length > 0) break;
        await sleep(200);
      }
      expect(dead).toHaveLength(1);
      expect(s.output()).toMatch(/redis is out of memory: dead letters are kept on local disk/);
      expect((await httpGet(s.httpPort, '/metrics')).body).toMatch(/^logger_dead_letters_spooled 0$/m);
      expect((await stats(s)).totals).toMatchObject({ received: sent - 1, deadLettered: 1, missing: 0 });
      expect(await oc.xAdd(key, '*', { f: encodeFrame(header({ seq, count: 1 }), records(seq, 1)) })).toMatch(/^\d+-\d+$/);
    } finally {
      await Promise.all(servers.splice(0).map((x) => x.stop()));
      oc.destroy();
      await own.dispose();
    }
  }, 60_000);
});

/**
 * strace -f splits a call another thread's call interrupted into `<pid> name(args <unfinished ...>`
 * and `<pid> <... name resumed>) = result`: joined again, at the place the call returned (the
 * server's fdatasyncs run on libuv's threads beside its main thread).
 */
function joinResumed(lines: string[]): string[] {
  const unfinished = new Map<string, string>();
  const out: string[] = [];
  for (const line of lines) {
    const pid = line.split(' ', 1)[0]!;
    if (line.endsWith('<unfinished ...>')) unfinished.set(pid, line.slice(0, -'<unfinished ...>'.length).trimEnd());
    else {
      const resumed = /^\d+\s+<\.\.\. \w+ resumed>(.*)$/.exec(line);
      if (resumed && unfinished.has(pid)) {
        out.push(unfinished.get(pid)! + resumed[1]);
        unfinished.delete(pid);
      } else out.push(line);
    }
  }
  return out;
}

const hasStrace = (() => {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

// strace injects the failure into the real syscall: the only way to make fdatasync fail on a
// healthy disk. Debian's strace package; without it the test cannot run (said, not hidden).
(hasStrace ? describe : describe.skip)('an fdatasync that fails (EIO)', () => {
  it('stops the server; the restarted run cuts what was written after the last commit and fsyncs the rewrite before it acknowledges', async () => {
    const logDir = join(dir, 'log');
    const log = publisher(channel, { app: 'eio', url: shared.redis.url, maxFrameRecords: 100 });
    for (let i = 0; i < 3000; i++) log.info('record', { i });
    await log.flush();
    const env = {
      PATH: process.env.PATH,
      REDIS_URL: shared.redis.url,
      LOG_DIR: logDir,
      LOG_CHANNEL: channel,
      LOG_CONSUMER: 'eio',
      READ_COUNT: '1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    // The 5th fdatasync fails: four batches are committed, the fifth is written but not synced.
    // strace counts each thread's calls apart, and the server's fdatasyncs run on libuv's threads:
    // one thread, so that its 5th is the 5th batch's.
    const failing = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=fdatasync', '-e', 'inject=fdatasync:error=EIO:when=5', process.execPath, MAIN], {
      env: { ...env, UV_THREADPOOL_SIZE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    failing.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => failing.on('exit', resolve));
    expect(code).toBe(1);
    expect(out).toMatch(/"errorCode":"FSYNC_FAILED"/);
    const before = countLines(logDir, 'eio'); // includes the unsynced batch, in the page cache
    expect(before).toBe(500);

    // The restart, traced: which fdatasyncs and ftruncates happen before the first commit.
    const trace = join(dir, 'trace');
    const sha = createHash('sha1')
      .update(readFileSync(join(__dirname, '..', 'lua', 'commit.lua'), 'utf8'))
      .digest('hex');
    const restarted = spawn('strace', ['-f', '-qq', '-s', '128', '-o', trace, '-e', 'trace=fdatasync,ftruncate,write,writev', process.execPath, MAIN], {
      env: { ...env, HTTP_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await waitForRecords(logDir, 'eio', 3000, 30_000);
      await sleep(300);
    } finally {
      // SIGTERM to strace would detach and leave the server running: stop the server itself.
      const pid = Number(
        execFileSync('pgrep', ['-P', String(restarted.pid)])
          .toString()
          .trim()
          .split('\n')[0],
      );
      process.kill(pid, 'SIGTERM');
      await new Promise((resolve) => restarted.on('exit', resolve));
    }
    expectExactlyOnce(readLogs(logDir).get('eio')!, log.producer, 3000);
    const calls = joinResumed(readFileSync(trace, 'utf8').split('\n'));
    const firstCommit = calls.findIndex((line) => line.includes(sha));
    expect(firstCommit).toBeGreaterThan(0);
    const beforeCommit = calls.slice(0, firstCommit);
    expect(beforeCommit.some((line) => /ftruncate\(\d+, \d+\)\s+= 0/.test(line))).toBe(true); // the unsynced batch cut
    expect(beforeCommit.filter((line) => /fdatasync\(\d+\)\s+= 0/.test(line)).length).toBeGreaterThanOrEqual(2); // after the cut, and the rewrite
  }, 60_000);
});
