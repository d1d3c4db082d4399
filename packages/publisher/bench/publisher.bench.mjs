// The publisher's cost per log call against pino and winston, and records/s into Redis against a
// direct port of the Ruby set-up (await PUBLISH per record) and one XADD per record; then the
// matrix of issue #11: per loop shape and record shape, the publisher against pino side by side,
// and records/s into Redis with none dropped.
// Run: pnpm bench (or, after pnpm build: node packages/publisher/bench/publisher.bench.mjs [--quick]).
// --quick (or BENCH_QUICK=1): a tenth of the records, one round, an outage of 1,000,000 drops (20,000,000 in a full run): for CI and dev runs.
// Every contender runs in this one process, interleaved over ROUNDS rounds; medians are reported.
// BENCH_ONLY=signing runs only the signing section (signingKey on against off, side by side).
// BENCH_BASE_PUBLISHER=/tmp/base/packages/publisher/dist runs that build's publisher (the one
// before a change) in the matrix's rounds too, beside this one: before/after from one run.
// BENCH_ONLY=shapes runs only the matrix and prints it (BENCHMARKS.md is left as it is).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { median, record, table } from '../../../scripts/bench-report.mjs';
import { emptyLog, loops, matrixShapes } from './shapes.mjs';

const require = createRequire(import.meta.url);
const { createPublisher } = require('../dist');
const BASE_PUBLISHER = process.env.BENCH_BASE_PUBLISHER;
const baseCreatePublisher = BASE_PUBLISHER ? require(BASE_PUBLISHER).createPublisher : undefined;
/** The 1-minute load average (the machine is shared): written into the tables. */
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const { startRedis } = require('@log/test-kit');
const { createClient } = require('redis');
const pino = require('pino');
const winston = require('winston');

const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const N = Number(process.env.BENCH_RECORDS ?? (QUICK ? 20_000 : 200_000));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 5));
const NAIVE_N = Math.min(N, 20_000);
const root = join(import.meta.dirname, '..', '..', '..');

// A typical request log: a message and a handful of fields (about 170 bytes as JSON).
const fieldsFor = (i) => ({ userId: i, path: '/api/orders', method: 'POST', status: 201, ms: 12.5, region: 'ap-northeast-2' });

async function ours(url, round, signingKey) {
  const log = createPublisher('bench', { app: 'bench', url, host: 'benchhost', signingKey });
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

// The matrix (issue #11): loop shapes and record shapes, ours against pino in the same round.
const SHAPE_N = Number(process.env.BENCH_SHAPE_RECORDS ?? (QUICK ? 30_000 : 300_000));
const SHAPE_ROUNDS = Number(process.env.BENCH_SHAPE_ROUNDS ?? (QUICK ? 1 : 3));
const shapes = matrixShapes(SHAPE_N);

async function shapeOurs(url, shape, n, signingKey, create = createPublisher, options = {}) {
  const root = create('bench-shapes', { app: 'bench', url, host: 'benchhost', signingKey, ...options });
  await root.flush();
  const log = shape.child ? root.child(shape.child) : root;
  const { message, fields } = shape;
  const before = { sent: 0, dropped: 0, frames: 0, bytes: 0 };
  if (shape.again) {
    await loops[shape.loop](n, (i) => log.info(message, fields(i)));
    await log.flush();
    Object.assign(before, root.stats());
  }
  const start = process.hrtime.bigint();
  await loops[shape.loop](n, (i) => log.info(message, fields(i)));
  await log.flush();
  const ns = Number(process.hrtime.bigint() - start);
  const stats = root.stats();
  await root.close();
  return { ns, sent: stats.sent - before.sent, dropped: stats.dropped - before.dropped, frames: stats.frames - before.frames, bytes: stats.bytes - before.bytes };
}

/** The same loop calling a no-op with the same arguments: the part of a row no logger can save. */
async function shapeEmpty(shape, n) {
  const { message, fields } = shape;
  if (shape.again) await loops[shape.loop](n, (i) => emptyLog(message, fields(i)));
  const start = process.hrtime.bigint();
  await loops[shape.loop](n, (i) => emptyLog(message, fields(i)));
  return Number(process.hrtime.bigint() - start);
}

async function shapePino(shape, n) {
  const root = pino({ base: { pid: process.pid, hostname: 'benchhost' } }, pino.destination({ dest: '/dev/null', sync: true, minLength: 4096 }));
  const logger = shape.child ? root.child(shape.child) : root;
  const { message, fields } = shape;
  if (shape.again) {
    await loops[shape.loop](n, (i) => logger.info(fields(i), message));
    root.flush();
  }
  const start = process.hrtime.bigint();
  await loops[shape.loop](n, (i) => logger.info(fields(i), message));
  root.flush();
  return Number(process.hrtime.bigint() - start);
}

async function shapesSection(url) {
  const rows = [];
  for (const shape of shapes) {
    const n = shape.n ?? SHAPE_N;
    const ours = [];
    const theirs = [];
    const before = [];
    const empty = [];
    const bytes = [];
    let dropped = 0;
    let beforeDropped = 0;
    const loadAtStart = load();
    // Who goes first rotates by round: a run after another one finds memory the process has
    // already touched (a fresh megabyte costs ~10 ms of page faults here), pino needs none.
    const contenders = [
      async () => {
        const run = await shapeOurs(url, shape, n);
        // A record neither sent nor counted as dropped is lost: that fails the benchmark. A
        // counted drop (the buffer bound reached) fails the row's target.
        if (run.sent + run.dropped !== n) throw new Error(`${shape.name}: sent ${run.sent} + dropped ${run.dropped} of ${n}`);
        dropped += run.dropped;
        ours.push(run.ns);
        bytes.push(run.bytes);
      },
      async () => theirs.push(await shapePino(shape, n)),
      async () => empty.push(await shapeEmpty(shape, n)),
    ];
    if (baseCreatePublisher) {
      contenders.push(async () => {
        const run = await shapeOurs(url, shape, n, undefined, baseCreatePublisher);
        if (run.sent + run.dropped !== n) throw new Error(`${shape.name} (before): sent ${run.sent} + dropped ${run.dropped} of ${n}`);
        beforeDropped += run.dropped;
        before.push(run.ns);
      });
    }
    for (let round = 0; round < SHAPE_ROUNDS; round++) {
      for (let k = 0; k < contenders.length; k++) {
        await contenders[(round + k) % contenders.length]();
        await redis.flushAll();
      }
    }
    const oursUs = median(ours) / n / 1000;
    const pinoUs = median(theirs) / n / 1000;
    const ratio = oursUs / pinoUs;
    const emptyUs = median(empty) / n / 1000;
    const floor = emptyUs / pinoUs;
    const perSecond = rate(median(ours), n);
    // bytes of the frames Redis accepted (headers included) over the publisher's median run
    const megabytesPerSecond = median(bytes) / (median(ours) / 1e9) / 1e6;
    const rateTarget = shape.yields ? '>= 500,000' : '-';
    rows.push([
      shape.name,
      n.toLocaleString('en'),
      oursUs.toFixed(2),
      pinoUs.toFixed(2),
      ratio.toFixed(2),
      emptyUs.toFixed(2),
      floor.toFixed(2),
      // When the loop alone costs more than 0.7x pino, no logger (not even a no-op) meets 0.7x on it.
      ratio <= 0.7 ? 'met' : floor > 0.7 ? `unreachable: loop alone ${floor.toFixed(2)}x pino` : '**not met**',
      perSecond.toLocaleString('en'),
      megabytesPerSecond.toFixed(0),
      String(dropped),
      rateTarget,
      shape.yields ? (perSecond >= 500_000 && dropped === 0 ? 'met' : '**not met**') : '-',
      loadAtStart,
      ...(baseCreatePublisher ? [(median(before) / n / 1000).toFixed(2), (median(before) / median(theirs)).toFixed(2), rate(median(before), n).toLocaleString('en'), String(beforeDropped)] : []),
    ]);
    process.stderr.write(`shape ${shape.name}: ${oursUs.toFixed(2)} us vs pino ${pinoUs.toFixed(2)} (${ratio.toFixed(2)}), empty loop ${emptyUs.toFixed(2)}, ${perSecond}/s\n`);
  }
  return table(
    [
      'shape (default: 50-byte message, 5 fields)',
      'records',
      '@log/publisher µs per record',
      'pino µs per record',
      'ratio',
      'empty loop µs per record',
      'empty loop / pino',
      'target <= 0.7',
      'records/s into Redis',
      'MB/s into Redis',
      'dropped',
      'target',
      'met',
      'load (1 min) at the start',
      ...(baseCreatePublisher ? ['before: µs per record', 'before: ratio', 'before: records/s', 'before: dropped'] : []),
    ],
    rows,
  );
}

// Frame size (issue #11): how many records one XADD carries, cut by maxFrameRecords and
// maxFrameBytes, against the cost per record and records/s; the loop yields every 5000 calls.
const frameSizes = [
  { name: 'maxFrameRecords 10', options: { maxFrameRecords: 10 } },
  { name: 'maxFrameRecords 100', options: { maxFrameRecords: 100 } },
  { name: 'maxFrameRecords 1000', options: { maxFrameRecords: 1000 } },
  { name: 'maxFrameBytes 256 KiB', options: { maxFrameBytes: 256 * 1024 } },
  { name: 'default (10,000 records, 1 MiB)', options: {} },
  { name: 'maxFrameRecords 20,000, maxFrameBytes 2 MiB', options: { maxFrameRecords: 20_000, maxFrameBytes: 2 * 1024 * 1024 } },
];

async function framesSection(url) {
  const shape = shapes[2];
  const n = SHAPE_N;
  const runs = frameSizes.map(() => ({ ns: [], frames: [], dropped: 0 }));
  const loadAtStart = load();
  for (let round = 0; round < SHAPE_ROUNDS; round++) {
    // who goes first rotates by round, as in the matrix
    for (let k = 0; k < frameSizes.length; k++) {
      const index = (round + k) % frameSizes.length;
      const run = await shapeOurs(url, shape, n, undefined, createPublisher, frameSizes[index].options);
      if (run.sent + run.dropped !== n) throw new Error(`${frameSizes[index].name}: sent ${run.sent} + dropped ${run.dropped} of ${n}`);
      runs[index].ns.push(run.ns);
      runs[index].frames.push(run.frames);
      runs[index].dropped += run.dropped;
      await redis.flushAll();
    }
  }
  const defaultNs = median(runs[frameSizes.findIndex((f) => f.name.startsWith('default'))].ns);
  const rows = frameSizes.map((size, i) => {
    const ns = median(runs[i].ns);
    const frames = median(runs[i].frames);
    return [
      size.name,
      frames.toLocaleString('en'),
      Math.round(n / frames).toLocaleString('en'),
      (ns / n / 1000).toFixed(2),
      rate(ns, n).toLocaleString('en'),
      (ns / defaultNs).toFixed(2),
      String(runs[i].dropped),
    ];
  });
  return `**Frame size**: the loop "${shape.name}" (${n.toLocaleString('en')} records, ${SHAPE_ROUNDS === 1 ? 'once' : `${SHAPE_ROUNDS} rounds, who goes first rotating, medians`}) with frames cut smaller or larger than the default; load (1 min) at the start: ${loadAtStart}.\n\n${table(['frame limit', 'frames sent', 'records per frame', 'µs per record', 'records/s into Redis', 'cost / default', 'dropped'], rows)}`;
}

// Signing (issue #14): the same loops with signingKey on and off, interleaved in each round.
const SIGNING_KEY = `bench-key:${randomBytes(32).toString('base64')}`;

async function signingSection(url) {
  const contenders = [
    { name: `synchronous burst, ${N.toLocaleString('en')} records (~170 bytes, 6 fields)`, run: (key) => ours(url, 0, key).then((ns) => ({ ns, n: N, dropped: 0 })) },
    ...[shapes[2], shapes[6], shapes[7]].map((shape) => ({
      name: `${shape.name} (${(shape.n ?? SHAPE_N).toLocaleString('en')} records)`,
      run: async (key) => {
        const n = shape.n ?? SHAPE_N;
        const run = await shapeOurs(url, shape, n, key);
        if (run.sent + run.dropped !== n) throw new Error(`${shape.name}: sent ${run.sent} + dropped ${run.dropped} of ${n}`);
        return { ns: run.ns, n, dropped: run.dropped };
      },
    })),
  ];
  const rows = [];
  for (const contender of contenders) {
    const off = [];
    const on = [];
    let dropped = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // who goes first alternates by round
      for (const key of round % 2 === 0 ? [undefined, SIGNING_KEY] : [SIGNING_KEY, undefined]) {
        const run = await contender.run(key);
        (key === undefined ? off : on).push(run.ns / run.n / 1000);
        dropped += run.dropped;
        await redis.flushAll();
      }
    }
    const offUs = median(off);
    const onUs = median(on);
    rows.push([contender.name, offUs.toFixed(2), onUs.toFixed(2), (onUs - offUs).toFixed(2), (onUs / offUs).toFixed(2), String(dropped)]);
    process.stderr.write(`signing ${contender.name}: off ${offUs.toFixed(2)} us, on ${onUs.toFixed(2)} us\n`);
  }
  const body = `${QUICK ? '**Quick run** (--quick). ' : ''}Each row: the publisher with and without \`signingKey\` (HMAC-SHA256 over each frame's bytes, node:crypto), ${ROUNDS} rounds interleaved (who goes first alternates), medians; per record: the log calls plus flush() until Redis accepted every record. A local redis-server started by the benchmark.\n\n${table(
    ['loop (50-byte message, 5 fields unless said)', 'µs per record, unsigned', 'µs per record, signed', 'difference µs', 'ratio signed / unsigned', 'dropped (both)'],
    rows,
  )}`;
  console.log(body);
  record(root, 'publisher-signing', 'Publisher: cost of signing frames', `BENCH_ONLY=signing node packages/publisher/bench/publisher.bench.mjs${QUICK ? ' --quick' : ''}`, body);
}

const rate = (ns, n = N) => Math.round(n / (ns / 1e9));
const redis = await startRedis();
if (process.env.BENCH_ONLY === 'signing') {
  try {
    await signingSection(redis.url);
  } finally {
    await redis.dispose();
  }
  process.exit(0);
}
if (process.env.BENCH_ONLY === 'shapes') {
  try {
    console.log(await shapesSection(redis.url));
    console.log(await framesSection(redis.url));
  } finally {
    await redis.dispose();
  }
  process.exit(0);
}
const results = { ours: [], pino: [], winston: [], naive: [], xadd: [] };
let shapesTable;
let framesText;
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
  shapesTable = await shapesSection(redis.url);
  framesText = await framesSection(redis.url);
  await signingSection(redis.url);
} finally {
  await redis.dispose();
}

const perRecordUs = (ns, n = N) => ns / n / 1000;
const oursUs = perRecordUs(median(results.ours));
const pinoUs = perRecordUs(median(results.pino));
const winstonUs = perRecordUs(median(results.winston));
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
// The app logs until it has dropped this many records past its bound, for at most 60 s.
const OUTAGE_DROPS = Number(process.env.BENCH_OUTAGE_DROPS ?? (QUICK ? 1_000_000 : 20_000_000));
const OUTAGE_BUFFER = 64 * 1024 * 1024;
const outage = JSON.parse(
  execFileSync(process.execPath, [join(import.meta.dirname, '..', 'test', 'fixtures', 'outage-app.js'), 'redis://127.0.0.1:1', String(OUTAGE_BUFFER), String(OUTAGE_DROPS)], {
    encoding: 'utf8',
  }),
);
const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
const outageTable = table(
  [`outage: logging until ${OUTAGE_DROPS.toLocaleString('en')} records dropped (60 s at most), maxBufferBytes 64 MiB`, 'value'],
  [
    ['RSS before logging (MiB)', mib(outage.baselineRss)],
    ['RSS growth, max during the outage (MiB)', mib(outage.maxRss - outage.baselineRss)],
    ['growth over maxBufferBytes (MiB; target <= 30)', mib(outage.maxRss - outage.baselineRss - OUTAGE_BUFFER)],
    ['records logged / buffered / dropped (counted)', `${outage.stats.logged.toLocaleString('en')} / ${outage.stats.buffered.toLocaleString('en')} / ${outage.stats.dropped.toLocaleString('en')}`],
  ],
);

const shapesText = `**Matrix (issue #11)**: each row runs the publisher and pino ${SHAPE_ROUNDS === 1 ? 'once' : `${SHAPE_ROUNDS} times, interleaved (medians)`} in this process with the same loop and records. Publisher: the calls plus flush() until Redis accepted every record (so the sending is in it); pino 10: sync destination /dev/null, minLength 4096, its child() for bindings. "records/s into Redis" is the publisher's rate over the same run, and "dropped" the records it counted as dropped (its buffer bound, maxBufferBytes 64 MiB, reached) over all rounds: a row with drops does not meet the target, and its cost per record is then too low (a dropped call is cheap). A record neither sent nor counted fails the benchmark. Targets: <= 0.7x pino per record on every row; >= 500,000 records/s without drops where the app yields at least every 5000 calls. "empty loop" is the same loop in the same rounds calling a no-op with the same arguments (built the same way): the loop's own cost, in both loggers' numbers. Where it alone is over 0.7x pino, the 0.7x target cannot be met by any logger on that loop, and the row says so. "MB/s into Redis" is the frames' bytes Redis accepted per second: a row whose record is over 1 KB needs more than 500 MB/s for 500,000 records/s (2 KB: over 1 GB/s into one Redis), which is what keeps it from the records/s target.${baseCreatePublisher ? ' "before" is the build at `BENCH_BASE_PUBLISHER` (the publisher before this change) running the same loop in the same rounds, its ratio against the same pino runs.' : ''}\n\n${shapesTable}`;
const body = `${QUICK ? '**Quick run** (--quick). ' : ''}${N.toLocaleString('en')} records per contender per round, ${ROUNDS} rounds interleaved, medians. Redis: a local redis-server started by the benchmark.\n\n${costTable}\n\n${rateTable}\n\n${shapesText}\n\n${framesText}\n\n${outageTable}\n\nOnce the buffer is full, a log call is dropped before its record is serialized, so the calls in the outage row are cheap and the row's logged count is large.`;
console.log(body);
const baseEnv = BASE_PUBLISHER ? `BENCH_BASE_PUBLISHER=${BASE_PUBLISHER} ` : '';
record(root, 'publisher', 'Publisher: cost per record and throughput into Redis', `${baseEnv}node packages/publisher/bench/publisher.bench.mjs${QUICK ? ' --quick' : ''}`, body);
