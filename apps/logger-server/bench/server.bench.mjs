// logger-server throughput, latency and restart. Run: pnpm bench (or, after pnpm build:
// node apps/logger-server/bench/server.bench.mjs). Starts its own redis-server and servers.
// BENCH_ONLY=throughput runs 1-3 only, BENCH_ONLY=restart 4 only; BENCH_ROUNDS (default 3).
//  1. From a pre-filled stream to fsynced files: frames of 1000 records vs one record per entry,
//     and how READ_COUNT (entries per batch = per fsync) trades latency for throughput.
//  2. End to end: a publisher process logging flat out while the server runs.
//  3. Latency from the log call to the line in the file at a steady 20k records/s.
//  4. Restart after kill -9 against the open file's size (1, 16, 64 MiB; BENCH_RESTART_MIB),
//     one producer and 1,000 interleaved: time to "logger server started" and peak RSS.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { median, record, table } from '../../../scripts/bench-report.mjs';

const require = createRequire(import.meta.url);
const { startRedis, tempDir, removeDir, freePort, sleep } = require('@log/test-kit');
const { DEFAULT_GROUP, encodeFrame, encodeRecord, groupStateKeys, streamKey } = require('@log/protocol');
const { createPublisher } = require('@log/publisher');
const { createClient } = require('redis');

const MAIN = join(import.meta.dirname, '..', 'dist', 'main.js');
const root = join(import.meta.dirname, '..', '..', '..');
const PREFILL = Number(process.env.BENCH_RECORDS ?? 500_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Sections to run: BENCH_ONLY=throughput (1-3) or BENCH_ONLY=restart (4); both by default. */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'throughput,restart').split(',').map((s) => s.trim()));
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
  return {
    child,
    httpPort,
    ready,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
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

async function throughputSection() {
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

  const body = `Medians of ${ROUNDS} rounds. From a pre-filled stream: "records/s" counts from the server's "logger server started" line (its read loop is running) until /metrics shows every record written (fsynced); "with start-up" counts from spawning node, so module loading (~0.3 s) is in it. End to end counts from when the publisher process is spawned (the server already runs).

| from a pre-filled stream to fsynced files | records | records/s | records/s with start-up |
| --- | --- | --- | --- |
${prefillRows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

${table(['end to end', 'records', 'records/s'], [['publisher process logging flat out -> Redis -> server -> fsynced file', E2E.toLocaleString('en'), rate(E2E, median(e2eTimes)).toLocaleString('en')]])}

${table(
  ['latency, log call -> line in the file, at 20,000 records/s for ' + SECONDS + ' s (READ_COUNT 16)', 'ms'],
  [
    ['p50', String(target.p50)],
    ['p99', String(target.p99)],
    ['max', String(target.max)],
    ['records', target.records.toLocaleString('en')],
  ],
)}

Batch size against latency near capacity: 100,000 records/s for 5 s (the publisher frames whatever each 10 ms tick logs, so an entry holds about 1,000 records), one fdatasync per batch of up to READ_COUNT entries.

${table(['READ_COUNT', 'p50 ms', 'p99 ms', 'max ms', 'records'], tradeRows)}`;
  console.log(body);
  record(root, 'server', 'Logger server: throughput and latency', 'pnpm bench (apps/logger-server/bench/server.bench.mjs)', body);
}

// 4. Restart after kill -9 against the size of the open file. A server writes a pre-filled stream
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
      slowest: Math.max(...rounds.map((r) => r.listening)),
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
      result.listening < 2e9 ? 'yes' : '**no**',
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
  const body = `Medians of ${ROUNDS} rounds. Each round: a server writes a pre-filled stream into one open file (ROTATE_BYTES 1 GiB, so it does not rotate) until the file has the size and every entry is acknowledged (its checkpoint in Redis = the file's size, nothing pending), is killed with SIGKILL, and a new server with the same LOG_DIR and LOG_CONSUMER is spawned and timed. Times count from the spawn, so node's start-up and module loading are in them (the first row: a restart with no open file); "after module loading" counts from the server's "configuration" line (its first, once its modules are loaded) to "started": connecting to Redis, the lease, the checkpoints and the recovery of the file, without node's start-up. "CPU ms" is the user + system time the restarted server had used at "started" (/proc/<pid>/stat, 10 ms ticks): it does not grow when other processes take the 2 cores, the wall times do. Load average (1 min) when the section started: ${loadBefore.toFixed(1)}, when it ended: ${loadavg()[0].toFixed(1)}. Peak RSS is the kernel's high-water mark (/proc/<pid>/status VmHWM) read when the "logger server started" line arrives, so it covers recovery; "over no file" subtracts the first row (which varies by a few MiB from run to run). Records and bytes cut come from the "recovered an open file" line; nothing is cut because the file was acknowledged to its end when the server was killed. The file was just written, so it is read from the page cache (a restart after kill -9, not after a reboot). Target (issue "Recovery that cannot crash-loop"): resumes in well under 2 s ("< 2 s" counts to "http listening"), and without holding the file in memory: the RSS growth over no file stays well below the file's size ("growth < file / 4", with the growth as a share of the file), and does not follow the file's size (the last line).

${table(['open file at kill -9', 'MiB', 'records recovered', 'bytes cut', 'ms to "started"', 'ms to "http listening"', 'slowest round, ms to "http listening"', 'ms after module loading to "started"', 'CPU ms to "started"', '< 2 s (median)', 'peak RSS MiB (VmHWM)', 'over no file MiB', 'growth < file / 4'], rows)}

${slope}`;
  console.log(body);
  const settings = ['BENCH_ONLY', 'BENCH_ROUNDS', 'BENCH_RESTART_MIB', 'BENCH_RESTART_CHECK_MIB', 'BENCH_RESTART_NODE_ARGS']
    .filter((key) => process.env[key])
    .map((key) => `${key}=${JSON.stringify(process.env[key]).replace(/^"([\w.,-]*)"$/, '$1')} `)
    .join('');
  const command = process.env.BENCH_ONLY ? `${settings}node apps/logger-server/bench/server.bench.mjs` : `${settings}pnpm bench (apps/logger-server/bench/server.bench.mjs)`;
  record(root, 'server-restart', "Logger server: restart after kill -9 against the open file's size", command, body);
}

try {
  if (ONLY.has('throughput')) await throughputSection();
  if (ONLY.has('restart')) await restartSection();
} finally {
  await redis.dispose();
}
