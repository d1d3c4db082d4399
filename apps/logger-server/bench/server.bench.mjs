// logger-server throughput, latency, memory and restart. Run: pnpm bench (or, after pnpm build:
// node apps/logger-server/bench/server.bench.mjs [--quick]). Starts its own redis-server and servers.
// BENCH_ONLY=throughput runs 1-4 only, BENCH_ONLY=restart 5 only, BENCH_ONLY=signing 6 only; BENCH_ROUNDS (default 3, 1 with --quick).
// --quick (or BENCH_QUICK=1): a tenth of the records, one round: for CI and dev runs; the full run
// is what BENCHMARKS.md records.
//  1. From a pre-filled stream until every entry is acknowledged, frames of 1 to 10,000 records,
//     1 and 100 producers, against a naive raw consumer (naive-consumer.mjs) on the same stream
//     in the same round: XREADGROUP COUNT 500, write the raw bytes, fdatasync, XACK, one batch at a time.
//     Where a drain's time goes, batch by batch: batch-timer.cjs (BENCH_SERVER_NODE_ARGS="--require ...").
//  2. Memory: the server's peak RSS draining a backlog of 2M records, against a tenth of it, each
//     in every round (memory-sampler.cjs breaks a peak down: BENCH_SERVER_NODE_ARGS="--require ...").
//  3. End to end: a publisher process logging flat out while the server runs.
//  4. Latency from the log call to the line in the file at 20k and 100k records/s.
//  5. Restart after kill -9 against the open file's size (1, 16, 64 MiB; BENCH_RESTART_MIB),
//     one producer and 1,000 interleaved: time to "logger server started" and peak RSS.
//  6. Signing (BENCH_ONLY=signing): the same records in signed frames drained by a server with
//     LOG_SIGNING_KEYS, against unsigned frames drained by a server without, in the same round.
// Servers of sections 1-4: BENCH_SERVER_NODE_ARGS: more node arguments, BENCH_SERVER_ENV=NAME=value...: more environment, BENCH_SERVER_STDOUT=<dir>: keep their stdout.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { median, record, table } from '../../../scripts/bench-report.mjs';
import { lineSeen, runServer, written } from './server-process.mjs';

const require = createRequire(import.meta.url);
const { startRedis, tempDir, removeDir, sleep } = require('@log/test-kit');
const { DEFAULT_GROUP, encodeFrame, encodeRecord, groupStateKeys, parseSigningKey, signFrame, streamKey } = require('@log/protocol');
const { createPublisher } = require('@log/publisher');
const { createClient } = require('redis');

const MAIN = join(import.meta.dirname, '..', 'dist', 'main.js');
const NAIVE = join(import.meta.dirname, 'naive-consumer.mjs');
const root = join(import.meta.dirname, '..', '..', '..');
const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const SCALE = QUICK ? 0.1 : 1;
/** Records per matrix row with frames of 100 records or more; rows of 1 and 10 records per entry take a fifth. */
const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000 * SCALE);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
/** Sections to run: BENCH_ONLY=throughput (1-4), restart (5), signing (6); all by default. */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'throughput,restart,signing').split(',').map((s) => s.trim()));
/** Matrix rows to run, as <records per entry>x<producers> (BENCH_MATRIX=1000x1,10000x100); all by default. */
const MATRIX = process.env.BENCH_MATRIX ? new Set(process.env.BENCH_MATRIX.split(',').map((s) => s.trim())) : undefined;
/** Throughput parts to run: matrix, memory, e2e, latency (BENCH_PARTS=matrix); all by default. */
const PARTS = new Set((process.env.BENCH_PARTS ?? 'matrix,memory,e2e,latency').split(',').map((s) => s.trim()));
/**
 * Another build of the server (its dist/main.js) to drain the same stream in the same rounds, in
 * its own group: BENCH_BASE_MAIN=/tmp/base/apps/logger-server/dist/main.js measures a change
 * side by side with what it changed (a column "before" in the matrix; not recorded).
 */
const BASE_MAIN = process.env.BENCH_BASE_MAIN;
/** Extra node arguments for the servers the throughput section starts (BENCH_SERVER_NODE_ARGS=--cpu-prof for a profile). */
const SERVER_NODE_ARGS = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
/**
 * Node arguments for the matrix's and memory part's drains by the BENCH_BASE_MAIN build (default:
 * BENCH_SERVER_NODE_ARGS; empty: none): with BENCH_BASE_MAIN set to this very build, they compare
 * node flags side by side.
 */
const BASE_NODE_ARGS = process.env.BENCH_BASE_NODE_ARGS === undefined ? SERVER_NODE_ARGS : process.env.BENCH_BASE_NODE_ARGS.split(' ').filter(Boolean);
/** NAME=value pairs, space-separated, for the environment of the servers the throughput section starts (BENCH_SERVER_ENV=MALLOC_ARENA_MAX=2). */
const envPairs = (text) =>
  Object.fromEntries(
    (text ?? '')
      .split(' ')
      .filter(Boolean)
      .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  );
const SERVER_ENV = envPairs(process.env.BENCH_SERVER_ENV);
/** The same for the drains by the BENCH_BASE_MAIN build (default: BENCH_SERVER_ENV), as BENCH_BASE_NODE_ARGS is for node arguments. */
const BASE_ENV = process.env.BENCH_BASE_ENV === undefined ? SERVER_ENV : envPairs(process.env.BENCH_BASE_ENV);
const fields = (i) => ({ userId: i, path: '/api/orders', method: 'POST', status: 201, ms: 12.5, region: 'ap-northeast-2' });
const met = (ok) => (ok ? 'met' : '**not met**');

/**
 * XADDs `records` records in frames of `perEntry`, `producers` producers taking turns (their
 * frames interleave in the stream, each producer's in order). Returns the last entry's id.
 */
async function prefill(url, channel, records, perEntry, producers = 1, signingKey = undefined) {
  const client = connected(url);
  await client.connect();
  const next = new Array(producers).fill(1);
  const pending = [];
  let last;
  let bytes = 0;
  for (let done = 0, turn = 0; done < records; turn++) {
    const p = turn % producers;
    const count = Math.min(perEntry, records - done);
    const seq = next[p];
    const lines = [];
    for (let k = 0; k < count; k++) lines.push(encodeRecord({ time: Date.now(), level: 'info', message: 'request handled', fields: fields(seq + k) }));
    const producer = (p + 1).toString(16).padStart(16, '0');
    const unsigned = encodeFrame({ producer, seq, count, app: 'bench', host: 'benchhost', pid: 1, dropped: 0 }, lines);
    const frame = signingKey === undefined ? unsigned : signFrame(signingKey, unsigned);
    pending.push(client.xAdd(streamKey(channel), '*', { f: frame }));
    next[p] += count;
    done += count;
    bytes += frame.length;
    // at most 200 entries or 32 MB in flight
    if (pending.length >= 200 || bytes > 32e6) {
      last = (await Promise.all(pending.splice(0))).pop();
      bytes = 0;
    }
  }
  if (pending.length > 0) last = (await Promise.all(pending)).pop();
  client.destroy();
  return last;
}

/** kB fields of /proc/<pid>/status (VmHWM, VmRSS) in MiB. */
function procMemory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
    return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
  } catch {
    return { hwm: NaN, rss: NaN };
  }
}

/** Waits until `group` has read up to `lastId` and acknowledged everything; returns when (hrtime ns). */
async function drained(client, key, group, lastId) {
  for (;;) {
    const groups = await client.sendCommand(['XINFO', 'GROUPS', key]);
    for (const raw of groups) {
      const info = raw instanceof Map ? Object.fromEntries(raw) : raw;
      if (Array.isArray(raw)) for (let i = 0; i + 1 < raw.length; i += 2) info[String(raw[i])] = raw[i + 1];
      if (String(info.name) === group && String(info['last-delivered-id']) === lastId && Number(info.pending) === 0) return process.hrtime.bigint();
    }
    await sleep(5);
  }
}

/** A client whose connection errors fail the command that meets them (an unheard 'error' would end the benchmark). */
function connected(url) {
  const client = createClient({ url });
  client.on('error', (error) => process.stderr.write(`redis client: ${error.message}\n`));
  return client;
}

const redis = await startRedis();
const rate = (records, ns) => Math.round(records / (ns / 1e9));
const mib = (n) => n.toFixed(1);

async function createGroup(key, group) {
  const client = connected(redis.url);
  await client.connect();
  await client.sendCommand(['XGROUP', 'CREATE', key, group, '0']);
  client.destroy();
}

/** One drain of the pre-filled stream by the server (group logger-server unless env says): ns from its start line until all acknowledged, and its peak RSS. */
async function serverDrain(key, lastId, env = {}, main = MAIN, nodeArgs = SERVER_NODE_ARGS, extraEnv = SERVER_ENV) {
  const dir = tempDir('bench-server');
  const client = connected(redis.url);
  await client.connect();
  if (process.env.BENCH_REDIS_STATS) {
    await client.sendCommand(['CONFIG', 'RESETSTAT']);
    await client.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '2000']);
    await client.sendCommand(['SLOWLOG', 'RESET']);
  }
  const server = await runServer({ ...extraEnv, REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CHANNEL: 'bench', ...env }, main, nodeArgs);
  const end = await drained(client, key, env.LOG_GROUP ?? DEFAULT_GROUP, lastId);
  const memory = procMemory(server.child.pid);
  // BENCH_REDIS_STATS=1: where Redis spent its time during the drain (microseconds per command)
  if (process.env.BENCH_REDIS_STATS) {
    process.stderr.write(`${await client.sendCommand(['INFO', 'commandstats'])}\n`);
    for (const [, , us, args] of await client.sendCommand(['SLOWLOG', 'GET', '20'])) process.stderr.write(`slow ${us} us: ${args.slice(0, 4).join(' ').slice(0, 80)}\n`);
  }
  await server.stop();
  client.destroy();
  removeDir(dir);
  return { ns: Number(end - server.ready), hwm: memory.hwm };
}

/** One drain of the same stream by the naive consumer (its own group): ns from its "ready" line until all acknowledged. */
async function naiveDrain(key, lastId, entries) {
  const dir = tempDir('bench-naive');
  const client = connected(redis.url);
  await client.connect();
  if (process.env.BENCH_REDIS_STATS) await client.sendCommand(['CONFIG', 'RESETSTAT']);
  const child = spawn(process.execPath, [NAIVE, redis.url, key, 'naive', join(dir, 'naive.log'), String(entries)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await lineSeen(child, 'ready');
  child.stdout.resume();
  const end = await drained(client, key, 'naive', lastId);
  const memory = procMemory(child.pid);
  if (process.env.BENCH_REDIS_STATS) process.stderr.write(`naive consumer:\n${await client.sendCommand(['INFO', 'commandstats'])}\n`);
  await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
  client.destroy();
  removeDir(dir);
  return { ns: Number(end - ready), hwm: memory.hwm };
}

async function throughputSection() {
  const loadBefore = loadavg()[0];
  // 1. the matrix: pre-filled stream, server against the naive consumer in the same round
  const key = streamKey('bench');
  const matrixRows = [];
  for (const perEntry of [1, 10, 100, 1000, 5000, 10000]) {
    for (const producers of [1, 100]) {
      if (!PARTS.has('matrix') || (MATRIX && !MATRIX.has(`${perEntry}x${producers}`))) continue;
      const records = perEntry < 100 ? Math.round(RECORDS / 5) : RECORDS;
      const rowLoad = loadavg()[0];
      const entries = Math.ceil(records / perEntry);
      const ours = [];
      const naive = [];
      const base = [];
      const oursHwm = [];
      for (let round = 0, failures = 0; round < ROUNDS; round++) {
        await redis.flushAll();
        let lastId;
        try {
          lastId = await prefill(redis.url, 'bench', records, perEntry, producers);
        } catch (error) {
          // a connection lost while pre-filling: the round starts again (twice at most)
          if (++failures > 2) throw error;
          process.stderr.write(`prefill failed (${error.message}); again\n`);
          round--;
          continue;
        }
        // Both groups exist before either reads: the server trims only what every group has
        // acknowledged, so the naive consumer's entries stay when the server goes first.
        await createGroup(key, 'naive');
        await createGroup(key, DEFAULT_GROUP);
        if (BASE_MAIN) await createGroup(key, 'base');
        // Both read the same entries (two groups); who goes first alternates by round.
        const runs = [
          async () => naive.push((await naiveDrain(key, lastId, entries)).ns),
          async () => {
            const r = await serverDrain(key, lastId);
            ours.push(r.ns);
            oursHwm.push(r.hwm);
          },
        ];
        if (BASE_MAIN) runs.push(async () => base.push((await serverDrain(key, lastId, { LOG_GROUP: 'base', LOG_CONSUMER: 'base' }, BASE_MAIN, BASE_NODE_ARGS, BASE_ENV)).ns));
        // who goes first rotates by round
        for (let k = 0; k < round % runs.length; k++) runs.push(runs.shift());
        for (const run of runs) await run();
      }
      const oursRate = rate(records, median(ours));
      const naiveRate = rate(records, median(naive));
      const ratio = oursRate / naiveRate;
      const target = perEntry >= 100 ? 1.5 : 1.0;
      matrixRows.push([
        String(perEntry),
        String(producers),
        records.toLocaleString('en'),
        oursRate.toLocaleString('en'),
        naiveRate.toLocaleString('en'),
        ratio.toFixed(2),
        `>= ${target.toFixed(1)}`,
        met(ratio >= target),
        mib(median(oursHwm)),
        rowLoad.toFixed(1),
      ]);
      if (BASE_MAIN) matrixRows.at(-1).push(rate(records, median(base)).toLocaleString('en'), (rate(records, median(base)) / naiveRate).toFixed(2));
      const baseNote = BASE_MAIN ? `; before: ${rate(records, median(base))} (${(rate(records, median(base)) / naiveRate).toFixed(2)})` : '';
      process.stderr.write(`matrix: ${perEntry} per entry, ${producers} producers: ${oursRate} vs naive ${naiveRate} (${ratio.toFixed(2)})${baseNote}\n`);
    }
  }

  // 2. memory: the peak RSS draining a backlog of 2M records against a tenth of it (frames of 1000).
  // The peak swings by 10-20 MiB from run to run (when the garbage collector runs), so each
  // backlog is drained in every round (with BENCH_BASE_MAIN, by both builds, who goes first alternating).
  const memoryRows = [];
  const memoryPeaks = {};
  for (const backlog of PARTS.has('memory') ? [Math.round(200_000 * SCALE), Math.round(2_000_000 * SCALE)] : []) {
    const ours = { hwm: [], ns: [] };
    const before = { hwm: [], ns: [] };
    for (let round = 0; round < ROUNDS; round++) {
      await redis.flushAll();
      const lastId = await prefill(redis.url, 'bench', backlog, 1000);
      await createGroup(key, DEFAULT_GROUP);
      if (BASE_MAIN) await createGroup(key, 'base');
      const runs = [
        async () => {
          const r = await serverDrain(key, lastId);
          ours.hwm.push(r.hwm);
          ours.ns.push(r.ns);
        },
      ];
      if (BASE_MAIN) {
        runs.push(async () => {
          const r = await serverDrain(key, lastId, { LOG_GROUP: 'base', LOG_CONSUMER: 'base' }, BASE_MAIN, BASE_NODE_ARGS, BASE_ENV);
          before.hwm.push(r.hwm);
          before.ns.push(r.ns);
        });
        if (round % 2 === 1) runs.reverse();
      }
      for (const run of runs) await run();
    }
    memoryPeaks[backlog] = { ours: median(ours.hwm), before: BASE_MAIN ? median(before.hwm) : undefined };
    const row = [backlog.toLocaleString('en'), mib(median(ours.hwm)), ours.hwm.map(mib).join(', '), rate(backlog, median(ours.ns)).toLocaleString('en')];
    if (BASE_MAIN) row.push(mib(median(before.hwm)), before.hwm.map(mib).join(', '), rate(backlog, median(before.ns)).toLocaleString('en'));
    memoryRows.push(row);
    process.stderr.write(`memory: backlog ${backlog}: ${ours.hwm.map(mib).join(', ')} MiB${BASE_MAIN ? ` (before: ${before.hwm.map(mib).join(', ')})` : ''}\n`);
  }
  await redis.flushAll();
  const [small, large] = Object.keys(memoryPeaks)
    .map(Number)
    .sort((a, b) => a - b);
  const memoryOk = large !== undefined && memoryPeaks[large].ours - memoryPeaks[small].ours < 32;

  // 3. end to end: a publisher in another process, logging flat out (yielding every 5000 calls)
  const E2E = Math.round(500_000 * SCALE);
  const e2eTimes = [];
  const e2eBaseTimes = [];
  // With BENCH_BASE_MAIN each round runs both servers, one after the other, who goes first alternating.
  const e2eRuns = [];
  for (let round = 0; round < (PARTS.has('e2e') ? ROUNDS : 0); round++) {
    const pair = [{ main: MAIN, times: e2eTimes }, ...(BASE_MAIN ? [{ main: BASE_MAIN, times: e2eBaseTimes }] : [])];
    if (round % 2 === 1) pair.reverse();
    e2eRuns.push(...pair);
  }
  for (const { main, times: e2eRoundTimes } of e2eRuns) {
    await redis.flushAll();
    const dir = tempDir('bench-e2e');
    const server = await runServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CHANNEL: 'e2e' }, main);
    const started = process.hrtime.bigint();
    const app = spawn(
      process.execPath,
      [
        '-e',
        `
      const { createPublisher } = require(${JSON.stringify(require.resolve('@log/publisher'))});
      const log = createPublisher('e2e', { app: 'e2e', url: ${JSON.stringify(redis.url)} });
      let i = 0;
      (function burst() {
        for (let k = 0; k < 5000 && i < ${E2E}; k++, i++) log.info('request handled', { userId: i, path: '/api/orders', method: 'POST', status: 201, ms: 12.5, region: 'ap-northeast-2' });
        if (i < ${E2E}) setImmediate(burst); else log.close(60000).then(() => process.exit(log.stats().sent === ${E2E} ? 0 : 1));
      })();
    `,
      ],
      { stdio: 'inherit' },
    );
    let published;
    app.once('exit', () => (published = process.hrtime.bigint() - started));
    // Every 50 ms, not faster: rendering /metrics takes the server's time (at 5 ms it cut this row by half).
    while ((await written(server.httpPort)) < E2E) await sleep(50);
    e2eRoundTimes.push(Number(process.hrtime.bigint() - started));
    await new Promise((resolve) => (app.exitCode !== null ? resolve() : app.once('exit', resolve)));
    process.stderr.write(
      `end to end round (${main === MAIN ? 'this build' : 'before'}): publisher closed after ${Number(published ?? 0n) / 1e6} ms, all written after ${e2eRoundTimes.at(-1) / 1e6} ms\n`,
    );
    await server.stop();
    removeDir(dir);
  }
  const e2eRate = rate(E2E, median(e2eTimes));
  const e2eBaseRate = BASE_MAIN && e2eBaseTimes.length > 0 ? rate(E2E, median(e2eBaseTimes)) : undefined;
  process.stderr.write(`end to end done: ${e2eRate}${e2eBaseRate === undefined ? '' : ` (before: ${e2eBaseRate})`}\n`);

  // 4. latency from the log call to the line in the file, READ_COUNT 16 (the default)
  const LATENCY_WARMUP_MS = 1000;
  async function latencyRun({ perSecond, seconds, readCount, main = MAIN }) {
    await redis.flushAll();
    const dir = tempDir('bench-latency');
    const server = await runServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CHANNEL: 'lat', READ_COUNT: String(readCount) }, main);
    const log = createPublisher('lat', { app: 'lat', url: redis.url });
    const latencies = [];
    // The first LATENCY_WARMUP_MS at the rate are logged and written but not counted: the
    // server's and the publisher's code is compiled by then, and their connections are up.
    const measureFrom = Date.now() + LATENCY_WARMUP_MS;
    let warmup = 0;
    // BENCH_LATENCY_TRACE=<dir>: every record's send time and latency, a file per rate, to see where the tail sits
    const trace = process.env.BENCH_LATENCY_TRACE ? [] : undefined;
    const file = join(dir, 'log', 'lat', 'lat.log');
    // Follows the file like tail -F: the descriptor keeps reading a file the server rotated away
    // (renamed), drained to its end before the new one is opened.
    let fd;
    let offset = 0;
    let rest = '';
    const buffer = Buffer.alloc(1 << 20);
    const drain = () => {
      let n;
      while ((n = readSync(fd, buffer, 0, buffer.length, offset)) > 0) {
        offset += n;
        const lines = (rest + buffer.toString('utf8', 0, n)).split('\n');
        rest = lines.pop();
        const now = Date.now();
        for (const line of lines) {
          // the field's digits, not JSON.parse of the whole line: the tail shares this process with the publisher
          const at = line.indexOf('"sentAt":');
          const sentAt = at < 0 ? JSON.parse(line).sentAt : Number.parseInt(line.slice(at + 9, at + 24), 10);
          if (sentAt < measureFrom) {
            warmup++;
            continue;
          }
          latencies.push(now - sentAt);
          if (trace) trace.push(`${sentAt} ${now - sentAt}`);
        }
      }
    };
    const tail = setInterval(() => {
      if (fd === undefined) {
        if (!existsSync(file)) return;
        fd = openSync(file, 'r');
      }
      drain();
      if (existsSync(file) && statSync(file).ino !== fstatSync(fd).ino) {
        drain();
        closeSync(fd);
        fd = openSync(file, 'r');
        offset = 0;
        rest = '';
      }
    }, 1);
    let sent = 0;
    const perTick = perSecond / 100;
    let warm = 0;
    const ticker = setInterval(() => {
      for (let k = 0; k < perTick; k++) {
        const sentAt = Date.now();
        if (sentAt < measureFrom) warm++;
        else sent++;
        log.info('request handled', { sentAt, ...fields(sent + warm) });
      }
    }, 10);
    await sleep(LATENCY_WARMUP_MS + seconds * 1000);
    clearInterval(ticker);
    await log.close();
    while (latencies.length < sent || warmup < warm) await sleep(20);
    clearInterval(tail);
    if (fd !== undefined) closeSync(fd);
    await server.stop();
    removeDir(dir);
    if (trace) writeFileSync(join(process.env.BENCH_LATENCY_TRACE, `latency-${perSecond}${main === MAIN ? '' : '-before'}.txt`), `${trace.join('\n')}\n`);
    latencies.sort((a, b) => a - b);
    const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
    return { p50: pct(50), p99: pct(99), max: latencies[latencies.length - 1], records: latencies.length };
  }

  const SECONDS = QUICK ? 2 : 10;
  const latencyRows = [];
  for (const perSecond of PARTS.has('latency') ? [20_000, 100_000] : []) {
    // with BENCH_BASE_MAIN, the server before this change first, then this one, at the same rate
    const before = BASE_MAIN ? await latencyRun({ perSecond, seconds: SECONDS, readCount: 16, main: BASE_MAIN }) : undefined;
    const run = await latencyRun({ perSecond, seconds: SECONDS, readCount: 16 });
    const target = perSecond === 100_000 ? 'p99 <= 20' : '-';
    latencyRows.push([perSecond.toLocaleString('en'), String(run.p50), String(run.p99), String(run.max), run.records.toLocaleString('en'), target, perSecond === 100_000 ? met(run.p99 <= 20) : '-']);
    if (before) latencyRows.at(-1).push(String(before.p50), String(before.p99), before.records.toLocaleString('en'));
    process.stderr.write(`latency at ${perSecond} done: p50 ${run.p50} p99 ${run.p99}${before ? ` (before: p50 ${before.p50} p99 ${before.p99})` : ''}\n`);
  }

  const body = `${QUICK ? '**Quick run** (--quick: a tenth of the records, one round). ' : ''}Matrix, memory and end to end: medians of ${ROUNDS} rounds; latency: one run each. Load average (1 min, \`/proc/loadavg\`) when the section started: ${loadBefore.toFixed(1)}, when it ended: ${loadavg()[0].toFixed(1)} (the machine is shared: other sessions' tests and benchmarks ran on the same 2 cores).

**Matrix.** Each round pre-fills a stream with the records in frames of the given size (with 100 producers their frames interleave, each producer's in order), then drains it twice, through two consumer groups: the server (READ_COUNT 16, the default) and the naive raw consumer (\`apps/logger-server/bench/naive-consumer.mjs\`: XREADGROUP COUNT 500 as raw bytes, write the entries' bytes, fdatasync, XACK, one batch at a time, no decoding); who goes first alternates by round. Each is a process of its own and is timed from its ready line (the server's "logger server started", after node and module loading) until XINFO GROUPS shows its group has read the last entry and has nothing pending. The server does what the naive one does not: it validates and decodes every record, drops duplicates, and writes each as a flat JSON line with its own keys (about 1.5x the bytes). Peak RSS: the server's VmHWM at the end of the drain. Target (issue #11): >= 1.5x the naive consumer for frames of 100 records or more, >= 1.0x below.

${table(['records per entry', 'producers', 'records', 'server records/s', 'naive records/s', 'ratio', 'target', 'met', 'server peak RSS MiB', 'load (1 min) at the start', ...(BASE_MAIN ? ['before: records/s', 'before: ratio'] : [])], matrixRows)}${BASE_MAIN ? `\n\n"before" is the build at \`BENCH_BASE_MAIN\` (the server before this change) draining the same stream in the same rounds, in a group of its own (three drains per round, order rotating).` : ''}

**Memory.** The server's peak RSS (VmHWM) draining a backlog pre-filled in frames of 1000 records, each backlog drained once per round${BASE_MAIN ? ' by each build (who goes first alternating)' : ''}; target: bounded by READ_COUNT x frame size whatever the backlog (growth of the median from the small to the large backlog under 32 MiB: ${met(memoryOk)}). The peak moves by 10-20 MiB from run to run: most of it is node's code (~45 MiB), V8's heap (~50 MiB, 32 of it the young generation) and Buffers of Redis replies already dead that wait for the garbage collector (up to ~60 MiB); \`apps/logger-server/bench/memory-sampler.cjs\` shows what each peak is made of.

${table(['backlog (records)', 'server peak RSS MiB (median)', 'each round', 'records/s', ...(BASE_MAIN ? ['before: peak RSS MiB', 'before: each round', 'before: records/s'] : [])], memoryRows)}

**End to end.** A publisher process logging flat out (yielding with setImmediate every 5000 calls) while the server runs; counted from the publisher's spawn until /metrics shows every record written (fsynced).

${table(['end to end', 'records', 'records/s', 'target', 'met', ...(e2eBaseRate === undefined ? [] : ['before: records/s'])], [['publisher process -> Redis -> server -> fsynced file', E2E.toLocaleString('en'), e2eRate.toLocaleString('en'), '>= 300,000', met(e2eRate >= 300_000), ...(e2eBaseRate === undefined ? [] : [e2eBaseRate.toLocaleString('en')])]])}

**Latency**, log call -> line in the file (read back by a tail in the benchmark's process, which takes each line's \`sentAt\` field by its digits), ${SECONDS} s at a steady rate (a tick every 10 ms logs a hundredth of the rate) after ${LATENCY_WARMUP_MS / 1000} s at the same rate that is written but not counted (the server's first batches compile its code and open the file: 300-700 ms each, measured in its first second), READ_COUNT 16. "records" is how many were counted: the publisher and the tail share the benchmark's process, and a rate that process could not keep up shows as fewer records than rate x seconds.

${table(['records/s', 'p50 ms', 'p99 ms', 'max ms', 'records', 'target', 'met', ...(BASE_MAIN ? ['before: p50 ms', 'before: p99 ms', 'before: records'] : [])], latencyRows)}${BASE_MAIN ? '\n\n"before": the build at `BENCH_BASE_MAIN` at the same rate, run right before this one (end to end: each round runs both, who goes first alternating).' : ''}`;
  console.log(body);
  // A partial run (some rows or parts) is printed, not recorded over the full tables.
  if (MATRIX || process.env.BENCH_PARTS || SERVER_NODE_ARGS.length > 0 || Object.keys(SERVER_ENV).length > 0) return;
  const base = BASE_MAIN ? `BENCH_BASE_MAIN=${BASE_MAIN} ` : '';
  const command = process.env.BENCH_ONLY
    ? `${base}BENCH_ONLY=${process.env.BENCH_ONLY} node apps/logger-server/bench/server.bench.mjs`
    : `${base}pnpm bench (apps/logger-server/bench/server.bench.mjs)`;
  record(root, 'server', 'Logger server: throughput against a naive consumer, memory, end to end, latency', `${command}${QUICK ? ' --quick' : ''}`, body);
}

// 5. Restart after kill -9 against the size of the open file. A server writes a pre-filled stream
// into one open file (ROTATE_BYTES far above the target, so it never rotates) until the file has
// the target size and every entry is acknowledged (checkpoint = file size, nothing pending), is
// killed with SIGKILL, and a new server with the same LOG_DIR and LOG_CONSUMER is timed: from its
// spawn to "logger server started" (recovery is before it) and "http listening". Peak RSS is the
// kernel's high-water mark (VmHWM) read when the start line arrives: recovery is behind it.
const MiB = 1024 * 1024;
const RESTART_CONSUMER = 'bench-restart';
const RESTART_CHANNEL = 'restart';
const RESTART_APP = 'bench';
const restartEnv = () => ({ REDIS_URL: redis.url, LOG_CHANNEL: RESTART_CHANNEL, LOG_CONSUMER: RESTART_CONSUMER, ROTATE_BYTES: String(1024 * MiB) });
const producerId = (p) => (p + 1).toString(16).padStart(16, '0');
// What format.ts writes for one of these records, to know how many records make the target size
// (an estimate: the file's real size decides, and a short file gets more records).
const restartLine = (producer, seq) =>
  `{"time":"2026-01-01T00:00:00.000Z","level":"info","app":"${RESTART_APP}","host":"benchhost","pid":1,"producer":"${producer}","seq":${seq},"message":"request handled",${JSON.stringify(fields(seq)).slice(1, -1)}}\n`
    .length;

/**
 * XADDs frames until they hold about `bytes` of lines: `producers` producers taking turns, a
 * frame of `perEntry` records each turn (1000 producers, one record per entry: the records of the
 * producers interleave in the file). `next` holds each producer's next sequence number.
 */
async function prefillBytes(client, bytes, producers, perEntry, next) {
  let estimate = 0;
  let records = 0;
  const pending = [];
  for (let turn = 0; estimate < bytes; turn++) {
    const p = turn % producers;
    const producer = producerId(p);
    const seq = next[p];
    const lines = [];
    for (let k = 0; k < perEntry && estimate < bytes; k++) {
      lines.push(encodeRecord({ time: Date.now(), level: 'info', message: 'request handled', fields: fields(seq + k) }));
      estimate += restartLine(producer, seq + k);
    }
    next[p] += lines.length;
    records += lines.length;
    pending.push(client.xAdd(streamKey(RESTART_CHANNEL), '*', { f: encodeFrame({ producer, seq, count: lines.length, app: RESTART_APP, host: 'benchhost', pid: 1, dropped: 0 }, lines) }));
    if (pending.length >= 500) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  return records;
}

const fileSize = (path) => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

/** CPU time (user + system) a process has used, in ms (clock ticks of 10 ms). */
function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14 and 15 of stat)
  } catch {
    return NaN;
  }
}

/**
 * Spawns a server and times its start: `started` and `listening` in ns from the spawn, VmHWM
 * read as each line arrives, and the "recovered an open file" line's fields.
 */
function timedStart(env, nodeArgs = []) {
  const spawned = process.hrtime.bigint();
  const child = spawn(process.execPath, [...nodeArgs, MAIN], { env: { PATH: process.env.PATH, HTTP_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const result = { child, port: undefined, recovered: undefined, configured: undefined, started: undefined, listening: undefined, hwmStarted: NaN, cpuStarted: NaN };
    let rest = '';
    child.once('exit', (code, signal) => reject(new Error(`server exited during start (${code ?? signal})`)));
    child.stdout.on('data', (d) => {
      const now = process.hrtime.bigint();
      const lines = (rest + d).split('\n');
      rest = lines.pop();
      for (const line of lines) {
        if (result.configured === undefined && line.includes('"configuration"'))
          result.configured = Number(now - spawned); // modules are loaded
        else if (line.includes('"recovered an open file"')) result.recovered = JSON.parse(line);
        else if (result.started === undefined && line.includes('"logger server started"')) {
          result.started = Number(now - spawned);
          result.hwmStarted = procMemory(child.pid).hwm;
          result.cpuStarted = cpuMs(child.pid);
        } else if (line.includes('"http listening"')) {
          result.listening = Number(now - spawned);
          result.port = JSON.parse(line).port;
          child.removeAllListeners('exit');
          resolve(result);
        }
      }
    });
  });
}

const killed = (child) =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve); // reaped: the restarted server sees the lease's pid is gone
    child.kill('SIGKILL');
  });

/** One round: fill an open file to `bytes` (0: none), kill -9 its server, time a restart. */
async function restartRound({ bytes, producers, perEntry }, nodeArgs = []) {
  await redis.flushAll();
  const dir = tempDir('bench-restart');
  const env = { ...restartEnv(), LOG_DIR: join(dir, 'log'), READ_COUNT: perEntry === 1 ? '500' : '16' };
  const file = join(dir, 'log', RESTART_APP, `${RESTART_APP}.log`);
  const client = createClient({ url: redis.url });
  await client.connect();
  const keys = groupStateKeys(RESTART_CHANNEL, DEFAULT_GROUP);
  const next = new Array(producers).fill(1);
  let records = bytes > 0 ? await prefillBytes(client, bytes, producers, perEntry, next) : 0;
  const first = await timedStart(env);
  const fillStarted = Date.now();
  for (;;) {
    await sleep(20);
    if (Date.now() - fillStarted > 300_000) throw new Error(`the open file did not reach ${bytes} bytes in 300 s`);
    if (bytes === 0) break;
    const checkpoint = String((await client.hGet(keys.checkpoints, `${RESTART_CONSUMER}/${RESTART_APP}`)) ?? '0').split(' ');
    const size = fileSize(file);
    const pending = (await client.xPending(streamKey(RESTART_CHANNEL), DEFAULT_GROUP)).pending;
    if (pending !== 0 || Number(checkpoint[0]) !== size || (await written(first.port)) < records) continue;
    if (size >= bytes) break;
    records += await prefillBytes(client, bytes - size, producers, perEntry, next); // the estimate fell short
  }
  const size = fileSize(file);
  await killed(first.child);
  const restart = await timedStart(env, nodeArgs);
  if (nodeArgs.length > 0) {
    await sleep(500); // main.ts handles SIGTERM (drain, then exit: the profile is written) only from just after "http listening"
    const [code, signal] = await new Promise((resolve) => {
      restart.child.once('exit', (...exit) => resolve(exit));
      restart.child.kill('SIGTERM');
    });
    process.stderr.write(`restarted server (${nodeArgs.join(' ')}) pid ${restart.child.pid} exited with ${code ?? signal}\n`);
  } else await killed(restart.child);
  await client.quit();
  removeDir(dir);
  return { size, records, ...restart, afterLoading: restart.started - restart.configured };
}

async function restartSection() {
  const sizes = (process.env.BENCH_RESTART_MIB ?? '1,16,64').split(',').map(Number);
  // A file 4x the default ROTATE_BYTES, one producer: does memory follow the file's size?
  const check = Number(process.env.BENCH_RESTART_CHECK_MIB ?? 256);
  // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": node options of the restarted server (stopped with SIGTERM then, so a profile is written).
  const nodeArgs = (process.env.BENCH_RESTART_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const cases = [{ name: 'none (empty LOG_DIR)', bytes: 0, producers: 1, perEntry: 1000 }];
  for (const mib of sizes) {
    cases.push({ name: `${mib} MiB, 1 producer (frames of 1000)`, bytes: mib * MiB, producers: 1, perEntry: 1000 });
    cases.push({ name: `${mib} MiB, 1,000 producers (interleaved, 1 record per entry)`, bytes: mib * MiB, producers: 1000, perEntry: 1 });
  }
  if (check > 0) cases.push({ name: `${check} MiB, 1 producer (memory check, beyond ROTATE_BYTES)`, bytes: check * MiB, producers: 1, perEntry: 1000 });
  const loadBefore = loadavg()[0];
  const rows = [];
  const growthOf = new Map();
  let baseline;
  const ms = (ns) => Math.round(ns / 1e6);
  for (const c of cases) {
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) rounds.push(await restartRound(c, nodeArgs));
    const m = (key) => median(rounds.map((r) => r[key]));
    const last = rounds[rounds.length - 1];
    const result = {
      cpu: m('cpuStarted'),
      started: m('started'),
      listening: m('listening'),
      slowest: rounds.reduce((slowest, r) => Math.max(slowest, r.started), 0),
      afterLoading: m('afterLoading'),
      hwm: m('hwmStarted'),
      size: m('size'),
    };
    baseline ??= result;
    const growth = result.hwm - baseline.hwm;
    if (c.producers === 1 && c.bytes > 0) growthOf.set(c.bytes / MiB, growth);
    rows.push([
      c.name,
      (result.size / MiB).toFixed(1),
      (last.recovered?.records ?? 0).toLocaleString('en'),
      (last.recovered?.cut ?? 0).toLocaleString('en'),
      ms(result.started).toLocaleString('en'),
      ms(result.listening).toLocaleString('en'),
      ms(result.slowest).toLocaleString('en'),
      ms(result.afterLoading).toLocaleString('en'),
      result.cpu.toLocaleString('en'),
      result.started < 2e9 ? 'yes' : '**no**',
      result.hwm.toFixed(1),
      c.bytes === 0 ? '-' : growth.toFixed(1),
      c.bytes === 0 ? '-' : `${growth < result.size / MiB / 4 ? 'yes' : 'no'} (${Math.round((100 * growth) / (result.size / MiB))}%)`,
    ]);
    process.stderr.write(`restart: ${c.name} done (${rounds.map((r) => ms(r.started)).join(', ')} ms to started; VmHWM ${rounds.map((r) => r.hwmStarted.toFixed(1)).join(', ')} MiB)\n`);
  }
  const mibs = [...growthOf.keys()].sort((a, b) => a - b);
  const small = mibs.find((mib) => mib >= 16) ?? mibs[0];
  const large = mibs[mibs.length - 1];
  const slope =
    small !== undefined && large > small
      ? `From ${small} MiB to ${large} MiB (one producer) the peak RSS growth went from ${growthOf.get(small).toFixed(1)} to ${growthOf.get(large).toFixed(1)} MiB: ${(growthOf.get(large) - growthOf.get(small)).toFixed(1)} MiB for ${large - small} MiB more file.`
      : '';
  const body = `Medians of ${ROUNDS} rounds. Each round: a server writes a pre-filled stream into one open file (ROTATE_BYTES 1 GiB, so it does not rotate) until the file has the size and every entry is acknowledged (its checkpoint in Redis = the file's size, nothing pending), is killed with SIGKILL, and a new server with the same LOG_DIR and LOG_CONSUMER is spawned and timed. Times count from the spawn, so node's start-up and module loading are in them (the first row: a restart with no open file); "after module loading" counts from the server's "configuration" line (its first, once its modules are loaded) to "started": connecting to Redis, the lease, the checkpoints and the recovery of the file, without node's start-up. "CPU ms" is the user + system time the restarted server had used at "started" (/proc/<pid>/stat, 10 ms ticks): it does not grow when other processes take the 2 cores, the wall times do. Load average (1 min) when the section started: ${loadBefore.toFixed(1)}, when it ended: ${loadavg()[0].toFixed(1)}. Peak RSS is the kernel's high-water mark (/proc/<pid>/status VmHWM) read when the "logger server started" line arrives, so it covers recovery; "over no file" subtracts the first row (which varies by a few MiB from run to run). Records and bytes cut come from the "recovered an open file" line; nothing is cut because the file was acknowledged to its end when the server was killed. The file was just written, so it is read from the page cache (a restart after kill -9, not after a reboot). Target (issue "Recovery that cannot crash-loop"): resumes in well under 2 s ("< 2 s" counts to "started": HTTP listens first, before Redis and recovery, so it no longer marks the resume), and without holding the file in memory: the RSS growth over no file stays well below the file's size ("growth < file / 4", with the growth as a share of the file), and does not follow the file's size (the last line).

${table(['open file at kill -9', 'MiB', 'records recovered', 'bytes cut', 'ms to "started"', 'ms to "http listening"', 'slowest round, ms to "started"', 'ms after module loading to "started"', 'CPU ms to "started"', '< 2 s (median)', 'peak RSS MiB (VmHWM)', 'over no file MiB', 'growth < file / 4'], rows)}

${slope}`;
  console.log(body);
  const settings = ['BENCH_ONLY', 'BENCH_ROUNDS', 'BENCH_RESTART_MIB', 'BENCH_RESTART_CHECK_MIB', 'BENCH_RESTART_NODE_ARGS']
    .filter((key) => process.env[key])
    .map((key) => `${key}=${JSON.stringify(process.env[key]).replace(/^"([\w.,-]*)"$/, '$1')} `)
    .join('');
  const command = process.env.BENCH_ONLY ? `${settings}node apps/logger-server/bench/server.bench.mjs` : `${settings}pnpm bench (apps/logger-server/bench/server.bench.mjs)`;
  record(root, 'server-restart', "Logger server: restart after kill -9 against the open file's size", command, body);
}

// 6. Signing: two streams pre-filled with the same records in frames of 1000, one signed; each
// round drains both under a fresh group (trimming off, so every round reads everything), the
// signed one by a server with LOG_SIGNING_KEYS, the other by a server without; who goes first
// alternates. Every record must be written: a refused frame would make the signed rate a lie.
async function signingSection() {
  const records = Number(process.env.BENCH_SIGNING_RECORDS ?? 1_000_000 * SCALE);
  const secret = randomBytes(32).toString('base64');
  const key = parseSigningKey(`bench=bench-key:${secret}`);
  const runs = {
    unsigned: { channel: 'benchplain', env: {}, rates: [] },
    signed: { channel: 'benchsigned', env: { LOG_SIGNING_KEYS: `bench=bench-key:${secret}` }, rates: [] },
  };
  for (const [name, run] of Object.entries(runs)) run.lastId = await prefill(redis.url, run.channel, records, 1000, 1, name === 'signed' ? key : undefined);
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of round % 2 === 0 ? ['unsigned', 'signed'] : ['signed', 'unsigned']) {
      const run = runs[name];
      const group = `signing-${round}`;
      const dir = tempDir('bench-signing');
      const client = connected(redis.url);
      await client.connect();
      const server = await runServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CHANNEL: run.channel, LOG_GROUP: group, TRIM_INTERVAL_MS: '0', ...run.env });
      const end = await drained(client, streamKey(run.channel), group, run.lastId);
      const writtenRecords = await written(server.httpPort);
      await server.stop();
      client.destroy();
      removeDir(dir);
      if (writtenRecords !== records) throw new Error(`signing bench: the ${name} server wrote ${writtenRecords} of ${records} records`);
      run.rates.push(rate(records, Number(end - server.ready)));
      process.stderr.write(`signing round ${round + 1}: ${name} ${run.rates.at(-1)} records/s\n`);
    }
  }
  // In this process, without Redis or the disk: the server's decode of a frame (decodeFramePayload,
  // as the read loop calls it) with and without verifying, on the same frames, interleaved.
  const { decodeFramePayload } = require('../dist/records');
  const { keys: ring } = require('@log/protocol').SigningKeys.parse(`bench=bench-key:${secret}`);
  const frames = [];
  for (let f = 0; f < 200; f++) {
    const lines = [];
    for (let k = 0; k < 1000; k++) lines.push(encodeRecord({ time: Date.now(), level: 'info', message: 'request handled', fields: fields(f * 1000 + k) }));
    const unsigned = Buffer.from(encodeFrame({ producer: '00000000000000aa', seq: f * 1000 + 1, count: 1000, app: 'bench', host: 'benchhost', pid: 1, dropped: 0 }, lines));
    frames.push({ unsigned, signed: signFrame(key, unsigned) });
  }
  const decodeRounds = { unsigned: [], signed: [] };
  for (let round = 0; round < 2 * ROUNDS + 1; round++) {
    for (const name of round % 2 === 0 ? ['unsigned', 'signed'] : ['signed', 'unsigned']) {
      const start = process.hrtime.bigint();
      let decoded = 0;
      for (const frame of frames) decoded += decodeFramePayload(frame[name], '1-1', name === 'signed' ? ring : undefined).records.length;
      if (decoded !== 200_000) throw new Error(`signing bench: decoded ${decoded} of 200,000 ${name} records`);
      decodeRounds[name].push(Number(process.hrtime.bigint() - start) / 200_000 / 1000);
    }
  }
  const decodeOff = median(decodeRounds.unsigned);
  const decodeOn = median(decodeRounds.signed);
  const off = median(runs.unsigned.rates);
  const on = median(runs.signed.rates);
  const body = `${QUICK ? '**Quick run** (--quick). ' : ''}${records.toLocaleString('en')} records (~170 bytes, frames of 1000) pre-filled in two streams, one of them signed; ${ROUNDS} rounds, each draining both (a fresh group each, trimming off; who goes first alternates), medians. Timed from the server's "logger server started" until its group has read the last entry and has nothing pending; every record written (checked on /metrics).

${table(
  ['server', 'records/s (median)', 'rounds', 'ratio to unsigned'],
  [
    ['unsigned frames, no LOG_SIGNING_KEYS', off.toLocaleString('en'), runs.unsigned.rates.map((r) => r.toLocaleString('en')).join(' / '), '1.00'],
    ['signed frames, LOG_SIGNING_KEYS (every frame verified)', on.toLocaleString('en'), runs.signed.rates.map((r) => r.toLocaleString('en')).join(' / '), (on / off).toFixed(2)],
  ],
)}

The decode alone, in the benchmark's process (the server's \`decodeFramePayload\` on 200 frames of 1000 records, ${2 * ROUNDS + 1} rounds interleaved, medians): what verifying adds per record, without the disk, Redis or a second process sharing the cores.

${table(
  ['decode', 'µs per record (median)', 'ratio'],
  [
    ['unsigned frame, no keys', decodeOff.toFixed(3), '1.00'],
    ['signed frame, verified (HMAC-SHA256 of the frame, key and app checked)', decodeOn.toFixed(3), (decodeOn / decodeOff).toFixed(2)],
  ],
)}`;
  console.log(body);
  record(root, 'server-signing', 'Logger server: cost of verifying signed frames', `BENCH_ONLY=signing node apps/logger-server/bench/server.bench.mjs${QUICK ? ' --quick' : ''}`, body);
}

try {
  if (ONLY.has('throughput')) await throughputSection();
  if (ONLY.has('restart')) await restartSection();
  if (ONLY.has('signing')) await signingSection();
} finally {
  await redis.dispose();
}
