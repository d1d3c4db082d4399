// Where a server's memory goes while it runs: preload it into the server with
//   BENCH_SERVER_NODE_ARGS="--require $PWD/apps/logger-server/bench/memory-sampler.cjs"
// (BENCH_SERVER_ENV=MEMORY_SAMPLES_DIR=<dir> to choose the directory, /tmp by default), then
// `node apps/logger-server/bench/memory-report.mjs <dir>/memory-<pid>.jsonl` prints what the peak was made of.
// Every SAMPLE_MS (20 by default; later when the event loop is busy) and after every GC it writes one
// JSON line: process.memoryUsage() (heapTotal, heapUsed, external, arrayBuffers), the V8 spaces'
// committed sizes, VmRSS/VmHWM and the size of glibc's main heap ([heap], grown by brk) from /proc.
// Measuring only: reading /proc every 20 ms costs the server a little time.
'use strict';
const { openSync, readFileSync, writeSync } = require('node:fs');
const { join } = require('node:path');
const { PerformanceObserver, constants } = require('node:perf_hooks');
const v8 = require('node:v8');

const fd = openSync(join(process.env.MEMORY_SAMPLES_DIR || '/tmp', `memory-${process.pid}.jsonl`), 'w');
const started = Date.now();
const mib = (bytes) => Math.round(bytes / 104857.6) / 10;
const GC_KINDS = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};

function procStatus() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
  const brk = readFileSync('/proc/self/maps', 'utf8').match(/^([0-9a-f]+)-([0-9a-f]+) .*\[heap\]$/m);
  return { rss: mib(kib('VmRSS')), hwm: mib(kib('VmHWM')), fileRss: mib(kib('RssFile')), brkHeap: brk ? mib(parseInt(brk[2], 16) - parseInt(brk[1], 16)) : 0 };
}

function sample(gc) {
  const usage = process.memoryUsage();
  const spaces = {};
  for (const space of v8.getHeapSpaceStatistics()) if (space.physical_space_size > 0) spaces[space.space_name.replace(/_space$/, '')] = mib(space.physical_space_size);
  const line = {
    t: Date.now() - started,
    ...gc,
    heapTotal: mib(usage.heapTotal),
    heapUsed: mib(usage.heapUsed),
    external: mib(usage.external),
    arrayBuffers: mib(usage.arrayBuffers),
    ...procStatus(),
    spaces,
  };
  writeSync(fd, `${JSON.stringify(line)}\n`);
}

setInterval(sample, Number(process.env.SAMPLE_MS || 20)).unref();
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) sample({ gc: GC_KINDS[entry.detail?.kind] ?? String(entry.detail?.kind), gcMs: Math.round(entry.duration * 100) / 100 });
}).observe({ entryTypes: ['gc'] });
process.on('exit', () => sample({ exit: true }));
