// logger-server throughput and latency. Run: pnpm bench (or, after pnpm build:
// node apps/logger-server/bench/server.bench.mjs). Starts its own redis-server and servers.
//  1. From a pre-filled stream to fsynced files: frames of 1000 records vs one record per entry,
//     and how READ_COUNT (entries per batch = per fsync) trades latency for throughput.
//  2. End to end: a publisher process logging flat out while the server runs.
//  3. Latency from the log call to the line in the file at a steady 20k records/s.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { median, record, table } from '../../../scripts/bench-report.mjs';

const require = createRequire(import.meta.url);
const { startRedis, tempDir, removeDir, freePort, sleep } = require('@log/test-kit');
const { encodeFrame, encodeRecord, streamKey } = require('@log/protocol');
const { createPublisher } = require('@log/publisher');
const { createClient } = require('redis');

const MAIN = join(import.meta.dirname, '..', 'dist', 'main.js');
const root = join(import.meta.dirname, '..', '..', '..');
const PREFILL = Number(process.env.BENCH_RECORDS ?? 500_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const fields = (i) => ({ userId: i, path: '/api/orders', method: 'POST', status: 201, ms: 12.5, region: 'ap-northeast-2' });

async function prefill(url, channel, records, perEntry) {
  const client = createClient({ url });
  await client.connect();
  const producer = 'bench000000000001';
  const pending = [];
  for (let seq = 1; seq <= records; seq += perEntry) {
    const count = Math.min(perEntry, records - seq + 1);
    const lines = [];
    for (let k = 0; k < count; k++) lines.push(encodeRecord({ time: Date.now(), level: 'info', message: 'request handled', fields: fields(seq + k) }));
    pending.push(client.xAdd(streamKey(channel), '*', { f: encodeFrame({ producer, seq, count, app: 'bench', host: 'benchhost', pid: 1, dropped: 0 }, lines) }));
    if (pending.length >= 200) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  client.destroy();
}

async function written(port) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    let sum = 0;
    for (const match of text.matchAll(/^logger_records_written_total\{[^}]*\} (\d+)/gm)) sum += Number(match[1]);
    return sum;
  } catch {
    return 0;
  }
}

/** Starts a server; `ready` is when it logged that its read loop runs (node and module loading are behind it). */
async function runServer(env) {
  const httpPort = await freePort();
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, HTTP_PORT: String(httpPort), LOG_CONSUMER: 'bench', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let ready;
  await new Promise((resolve) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (ready === undefined && out.includes('"logger server started"')) ready = process.hrtime.bigint();
      if (out.includes('"http listening"')) resolve();
    });
  });
  return { child, httpPort, ready, stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM'); }) };
}

/** Time until `records` are written: from the spawn (with start-up) and from the server's start line. */
async function timeToWrite(url, env, records) {
  const dir = tempDir('bench-server');
  const spawned = process.hrtime.bigint();
  const server = await runServer({ REDIS_URL: url, LOG_DIR: join(dir, 'log'), ...env });
  while ((await written(server.httpPort)) < records) await sleep(5);
  const end = process.hrtime.bigint();
  await server.stop();
  removeDir(dir);
  return { withStartup: Number(end - spawned), running: Number(end - server.ready) };
}

const redis = await startRedis();
const rate = (records, ns) => Math.round(records / (ns / 1e9));

// 1. pre-filled stream
const prefillRows = [];
const cases = [
  { name: 'frames of 1000 records, READ_COUNT 64', perEntry: 1000, readCount: '64', records: PREFILL },
  { name: 'frames of 1000 records, READ_COUNT 16 (default)', perEntry: 1000, readCount: '16', records: PREFILL },
  { name: 'frames of 1000 records, READ_COUNT 4', perEntry: 1000, readCount: '4', records: PREFILL },
  { name: 'frames of 1000 records, READ_COUNT 1 (one fsync per 1000)', perEntry: 1000, readCount: '1', records: PREFILL },
  { name: 'one record per entry, READ_COUNT 64', perEntry: 1, readCount: '64', records: Math.min(PREFILL, 100_000) },
  { name: 'one record per entry, READ_COUNT 500', perEntry: 1, readCount: '500', records: Math.min(PREFILL, 100_000) },
];
for (const c of cases) {
  const withStartup = [];
  const running = [];
  for (let round = 0; round < ROUNDS; round++) {
    await redis.flushAll();
    await prefill(redis.url, 'bench', c.records, c.perEntry);
    const time = await timeToWrite(redis.url, { LOG_CHANNEL: 'bench', READ_COUNT: c.readCount }, c.records);
    withStartup.push(time.withStartup);
    running.push(time.running);
  }
  prefillRows.push([c.name, c.records.toLocaleString('en'), rate(c.records, median(running)).toLocaleString('en'), rate(c.records, median(withStartup)).toLocaleString('en')]);
  process.stderr.write(`prefilled: ${c.name} done\n`);
}

// 2. end to end: a publisher in another process, logging flat out
const E2E = PREFILL;
const e2eTimes = [];
for (let round = 0; round < ROUNDS; round++) {
  await redis.flushAll();
  const dir = tempDir('bench-e2e');
  const server = await runServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CHANNEL: 'e2e' });
  const started = process.hrtime.bigint();
  const app = spawn(process.execPath, ['-e', `
    const { createPublisher } = require(${JSON.stringify(require.resolve('@log/publisher'))});
    const log = createPublisher('e2e', { app: 'e2e', url: ${JSON.stringify(redis.url)} });
    let i = 0;
    (function burst() {
      for (let k = 0; k < 5000 && i < ${E2E}; k++, i++) log.info('request handled', { userId: i, path: '/api/orders', method: 'POST', status: 201, ms: 12.5, region: 'ap-northeast-2' });
      if (i < ${E2E}) setImmediate(burst); else log.close(60000).then(() => process.exit(log.stats().sent === ${E2E} ? 0 : 1));
    })();
  `], { stdio: 'inherit' });
  while ((await written(server.httpPort)) < E2E) await sleep(5);
  e2eTimes.push(Number(process.hrtime.bigint() - started));
  await new Promise((resolve) => (app.exitCode !== null ? resolve() : app.once('exit', resolve)));
  await server.stop();
  removeDir(dir);
}
process.stderr.write('end to end done\n');

// 3. latency from the log call to the line in the file: at a steady 20k records/s (the target),
// and near capacity with different batch sizes (READ_COUNT = entries per fsync).
async function latencyRun({ perSecond, seconds, readCount }) {
  await redis.flushAll();
  const dir = tempDir('bench-latency');
  const server = await runServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CHANNEL: 'lat', READ_COUNT: String(readCount) });
  const log = createPublisher('lat', { app: 'lat', url: redis.url });
  const latencies = [];
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
      for (const line of lines) latencies.push(now - JSON.parse(line).sentAt);
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
  const ticker = setInterval(() => {
    for (let k = 0; k < perTick; k++) log.info('request handled', { sentAt: Date.now(), ...fields(sent++) });
  }, 10);
  await sleep(seconds * 1000);
  clearInterval(ticker);
  await log.close();
  while (latencies.length < sent) await sleep(20);
  clearInterval(tail);
  if (fd !== undefined) closeSync(fd);
  await server.stop();
  removeDir(dir);
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
  return { p50: pct(50), p99: pct(99), max: latencies[latencies.length - 1], records: latencies.length };
}

const SECONDS = 10;
const target = await latencyRun({ perSecond: 20_000, seconds: SECONDS, readCount: 16 });
process.stderr.write('latency at 20k done\n');
const tradeRows = [];
for (const readCount of [1, 16, 64]) {
  const run = await latencyRun({ perSecond: 100_000, seconds: 5, readCount });
  tradeRows.push([String(readCount), String(run.p50), String(run.p99), String(run.max), run.records.toLocaleString('en')]);
  process.stderr.write(`latency at 100k, READ_COUNT ${readCount} done\n`);
}
await redis.dispose();

const body = `Medians of ${ROUNDS} rounds. From a pre-filled stream: "records/s" counts from the server's "logger server started" line (its read loop is running) until /metrics shows every record written (fsynced); "with start-up" counts from spawning node, so module loading (~0.3 s) is in it. End to end counts from when the publisher process is spawned (the server already runs).

| from a pre-filled stream to fsynced files | records | records/s | records/s with start-up |
| --- | --- | --- | --- |
${prefillRows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

${table(['end to end', 'records', 'records/s'], [['publisher process logging flat out -> Redis -> server -> fsynced file', E2E.toLocaleString('en'), rate(E2E, median(e2eTimes)).toLocaleString('en')]])}

${table(['latency, log call -> line in the file, at 20,000 records/s for ' + SECONDS + ' s (READ_COUNT 16)', 'ms'], [['p50', String(target.p50)], ['p99', String(target.p99)], ['max', String(target.max)], ['records', target.records.toLocaleString('en')]])}

Batch size against latency near capacity: 100,000 records/s for 5 s (the publisher frames whatever each 10 ms tick logs, so an entry holds about 1,000 records), one fdatasync per batch of up to READ_COUNT entries.

${table(['READ_COUNT', 'p50 ms', 'p99 ms', 'max ms', 'records'], tradeRows)}`;
console.log(body);
record(root, 'server', 'Logger server: throughput and latency', 'pnpm bench (apps/logger-server/bench/server.bench.mjs)', body);
