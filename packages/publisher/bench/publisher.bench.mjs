// The publisher's cost per log call against pino and winston, and records/s into Redis against a
// direct port of the Ruby set-up (await PUBLISH per record) and one XADD per record.
// Run: pnpm bench (or, after pnpm build: node packages/publisher/bench/publisher.bench.mjs).
// Every contender runs in this one process, interleaved over ROUNDS rounds; medians are reported.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { median, record, table } from '../../../scripts/bench-report.mjs';

const require = createRequire(import.meta.url);
const { createPublisher } = require('../dist');
const { startRedis } = require('@log/test-kit');
const { createClient } = require('redis');
const pino = require('pino');
const winston = require('winston');

const N = Number(process.env.BENCH_RECORDS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const NAIVE_N = Math.min(N, 20_000);
const root = join(import.meta.dirname, '..', '..', '..');

// A typical request log: a message and a handful of fields (about 170 bytes as JSON).
const fieldsFor = (i) => ({ userId: i, path: '/api/orders', method: 'POST', status: 201, ms: 12.5, region: 'ap-northeast-2' });

async function ours(url, round) {
  const log = createPublisher('bench', { app: 'bench', url, host: 'benchhost' });
  await log.flush();
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) log.info('request handled', fieldsFor(i));
  await log.flush();
  const ns = Number(process.hrtime.bigint() - start);
  const stats = log.stats();
  await log.close();
  if (stats.sent !== N) throw new Error(`round ${round}: sent ${stats.sent} of ${N} (dropped ${stats.dropped})`);
  return ns;
}

async function pinoSync() {
  const logger = pino({ base: { pid: process.pid, hostname: 'benchhost' } }, pino.destination({ dest: '/dev/null', sync: true, minLength: 4096 }));
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) logger.info(fieldsFor(i), 'request handled');
  logger.flush();
  return Number(process.hrtime.bigint() - start);
}

async function winstonFile() {
  const logger = winston.createLogger({ format: winston.format.json(), transports: [new winston.transports.File({ filename: '/dev/null' })] });
  const finished = new Promise((resolve) => logger.on('finish', resolve));
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) logger.info('request handled', fieldsFor(i));
  logger.end();
  await finished;
  return Number(process.hrtime.bigint() - start);
}

async function naivePublish(url) {
  const client = createClient({ url });
  await client.connect();
  const start = process.hrtime.bigint();
  for (let i = 0; i < NAIVE_N; i++) {
    await client.publish('bench-naive', JSON.stringify({ time: Date.now(), level: 'info', message: 'request handled', ...fieldsFor(i) }));
  }
  const ns = Number(process.hrtime.bigint() - start);
  client.destroy();
  return ns;
}

async function xaddPerRecord(url) {
  const client = createClient({ url });
  await client.connect();
  const start = process.hrtime.bigint();
  const inFlight = new Set();
  for (let i = 0; i < N; i++) {
    const p = client.xAdd('bench-xadd', '*', { r: JSON.stringify({ time: Date.now(), level: 'info', message: 'request handled', ...fieldsFor(i) }) });
    inFlight.add(p);
    p.then(() => inFlight.delete(p));
    if (inFlight.size >= 1000) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const ns = Number(process.hrtime.bigint() - start);
  await client.del('bench-xadd');
  client.destroy();
  return ns;
}

const redis = await startRedis();
const results = { ours: [], pino: [], winston: [], naive: [], xadd: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    results.ours.push(await ours(redis.url, round));
    results.pino.push(await pinoSync());
    results.winston.push(await winstonFile());
    results.naive.push(await naivePublish(redis.url));
    results.xadd.push(await xaddPerRecord(redis.url));
    await redis.flushAll();
    process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
} finally {
  await redis.dispose();
}

const perRecordUs = (ns, n = N) => ns / n / 1000;
const oursUs = perRecordUs(median(results.ours));
const pinoUs = perRecordUs(median(results.pino));
const winstonUs = perRecordUs(median(results.winston));
const rate = (ns, n = N) => Math.round(n / (ns / 1e9));
const costTable = table(
  ['logger (one call = one ~170-byte record)', 'µs per record (median)', 'ratio to pino'],
  [
    ['@log/publisher: log calls + flush until Redis accepted them', oursUs.toFixed(2), (oursUs / pinoUs).toFixed(2)],
    ['pino 10, destination /dev/null, sync, minLength 4096', pinoUs.toFixed(2), '1.00'],
    ['winston 3, File transport to /dev/null (until finish)', winstonUs.toFixed(2), (winstonUs / pinoUs).toFixed(2)],
  ],
);
const rateTable = table(
  ['into Redis', 'records/s (median)', 'ratio to naive'],
  [
    ['@log/publisher (frames, XADD)', rate(median(results.ours)).toLocaleString('en'), (rate(median(results.ours)) / rate(median(results.naive), NAIVE_N)).toFixed(1)],
    ['one XADD per record, 1000 in flight', rate(median(results.xadd)).toLocaleString('en'), (rate(median(results.xadd)) / rate(median(results.naive), NAIVE_N)).toFixed(1)],
    [`naive port: await PUBLISH per record (${NAIVE_N.toLocaleString('en')} records)`, rate(median(results.naive), NAIVE_N).toLocaleString('en'), '1.0'],
  ],
);
// Memory during an outage: an app logging flat out into a Redis that is not there.
const OUTAGE_SECONDS = Number(process.env.BENCH_OUTAGE_SECONDS ?? 60);
const OUTAGE_BUFFER = 64 * 1024 * 1024;
const outage = JSON.parse(
  execFileSync(process.execPath, [join(import.meta.dirname, '..', 'test', 'fixtures', 'outage-app.js'), 'redis://127.0.0.1:1', String(OUTAGE_BUFFER), String(OUTAGE_SECONDS)], {
    encoding: 'utf8',
  }),
);
const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
const outageTable = table(
  ['outage of ' + OUTAGE_SECONDS + ' s, maxBufferBytes 64 MiB', 'value'],
  [
    ['RSS before logging (MiB)', mib(outage.baselineRss)],
    ['RSS growth, max during the outage (MiB)', mib(outage.maxRss - outage.baselineRss)],
    ['growth over maxBufferBytes (MiB; target <= 30)', mib(outage.maxRss - outage.baselineRss - OUTAGE_BUFFER)],
    ['records logged / buffered / dropped (counted)', `${outage.stats.logged.toLocaleString('en')} / ${outage.stats.buffered.toLocaleString('en')} / ${outage.stats.dropped.toLocaleString('en')}`],
  ],
);

const body = `${N.toLocaleString('en')} records per contender per round, ${ROUNDS} rounds interleaved, medians. Redis: a local redis-server started by the benchmark.\n\n${costTable}\n\n${rateTable}\n\n${outageTable}\n\nOnce the buffer is full, a log call is dropped before its record is serialized, so the calls in the outage row are cheap and the row's logged count is large.`;
console.log(body);
record(root, 'publisher', 'Publisher: cost per record and throughput into Redis', 'pnpm bench (packages/publisher/bench/publisher.bench.mjs)', body);
