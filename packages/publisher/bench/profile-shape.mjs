// One row of the publisher's matrix (bench/shapes.mjs), for profiling and quick before/after
// checks on a shared machine: per round, the wall time per record (calls + flush until Redis
// accepted every record), the part of it spent in the loop itself, and the process's CPU time
// per record (user + system: what scheduling delays on a loaded machine do not inflate).
//   node --cpu-prof --cpu-prof-dir=/tmp/prof packages/publisher/bench/profile-shape.mjs <row> [rounds] [dist,...]
//   node packages/publisher/bench/profile-shape.mjs --top /tmp/prof/<file>.cpuprofile [lines]
// <row>: the row's index in the matrix (0 = synchronous burst). dist: builds of @log/publisher to
// run in turn in each round (default: this package's dist), e.g. main's build beside this one.
// PROFILE_RECORDS overrides the row's record count; PROFILE_PINO=1 runs pino in the rounds too.
// Each round also runs the loop calling a no-op ("empty loop"): the loop's own cost.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { emptyLog, loops, matrixShapes } from './shapes.mjs';

const require = createRequire(import.meta.url);

/** Self time per function of a V8 CPU profile, largest first. */
function top(file, lines) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const ticks = new Map();
  for (let i = 0; i < profile.samples.length; i++) ticks.set(profile.samples[i], (ticks.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const self = new Map();
  let total = 0;
  for (const node of profile.nodes) {
    const us = ticks.get(node.id) ?? 0;
    total += us;
    const frame = node.callFrame;
    const name = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + us);
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, lines);
  for (const [name, us] of rows) console.log(`${((100 * us) / total).toFixed(1).padStart(5)}% ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`);
}

if (process.argv[2] === '--top') {
  top(process.argv[3], Number(process.argv[4] ?? 20));
  process.exit(0);
}

const { startRedis } = require('@log/test-kit');
const pino = require('pino');
const shape = matrixShapes(300_000)[Number(process.argv[2] ?? 2)];
if (shape === undefined) throw new Error(`no row ${process.argv[2]}: 0 to ${matrixShapes(0).length - 1}`);
const rounds = Number(process.argv[3] ?? 3);
const dists = (process.argv[4] ?? join(import.meta.dirname, '..', 'dist')).split(',');
const n = Number(process.env.PROFILE_RECORDS ?? shape.n ?? 300_000);
const redis = await startRedis();
const perRecord = (value) => (value / n).toFixed(2);

try {
  console.log(`${shape.name}: ${n} records, ${rounds} rounds; load (1 min) ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
  for (let round = 0; round < rounds; round++) {
    // who goes first rotates by round: a later run finds memory the process has already touched
    for (let k = 0; k < dists.length; k++) {
      const dist = dists[(round + k) % dists.length];
      const root = require(dist).createPublisher('profile', { app: 'profile', url: redis.url, host: 'profilehost' });
      await root.flush();
      const log = shape.child ? root.child(shape.child) : root;
      if (shape.again) {
        // the row times a second run of the same logger (see shapes.mjs)
        await loops[shape.loop](n, (i) => log.info(shape.message, shape.fields(i)));
        await log.flush();
      }
      const cpu = process.cpuUsage();
      const start = process.hrtime.bigint();
      await loops[shape.loop](n, (i) => log.info(shape.message, shape.fields(i)));
      const looped = process.hrtime.bigint();
      await log.flush();
      const end = process.hrtime.bigint();
      const used = process.cpuUsage(cpu);
      const stats = root.stats();
      await root.close();
      await redis.flushAll();
      console.log(
        `${dist}: ${perRecord(Number(end - start) / 1000)} µs per record (loop ${perRecord(Number(looped - start) / 1000)}), cpu ${perRecord(used.user + used.system)} µs (system ${perRecord(used.system)}), sent ${stats.sent}, dropped ${stats.dropped}, frames ${stats.frames}`,
      );
    }
    {
      // the floor: the same loop calling a no-op (see emptyLog)
      if (shape.again) await loops[shape.loop](n, (i) => emptyLog(shape.message, shape.fields(i)));
      const start = process.hrtime.bigint();
      await loops[shape.loop](n, (i) => emptyLog(shape.message, shape.fields(i)));
      console.log(`empty loop: ${perRecord(Number(process.hrtime.bigint() - start) / 1000)} µs per record`);
    }
    if (process.env.PROFILE_PINO === '1') {
      const root = pino({ base: { pid: process.pid, hostname: 'profilehost' } }, pino.destination({ dest: '/dev/null', sync: true, minLength: 4096 }));
      const logger = shape.child ? root.child(shape.child) : root;
      if (shape.again) await loops[shape.loop](n, (i) => logger.info(shape.fields(i), shape.message));
      const cpu = process.cpuUsage();
      const start = process.hrtime.bigint();
      await loops[shape.loop](n, (i) => logger.info(shape.fields(i), shape.message));
      root.flush();
      const end = process.hrtime.bigint();
      const used = process.cpuUsage(cpu);
      console.log(`pino: ${perRecord(Number(end - start) / 1000)} µs per record, cpu ${perRecord(used.user + used.system)} µs`);
    }
  }
} finally {
  await redis.dispose();
}
