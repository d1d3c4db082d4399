// Where a server's drain time goes, batch by batch: preload it into the server with
//   BENCH_SERVER_NODE_ARGS="--require $PWD/apps/logger-server/bench/batch-timer.cjs"
// (BENCH_SERVER_ENV=BATCH_TIMER_DIR=<dir> to choose the directory, /tmp by default). At exit the
// server writes <dir>/batch-timer-<pid>.txt: per batch (a RecordWriter.commit), the time of
//   read    StreamReader.read(), call to answer (it runs beside the batch before: read ahead)
//   work    RecordWriter.writeFrame summed over the batch (decode, validate, dedup, encode)
//   disk    FileSink.commit(): the lines written and fdatasynced (libuv's threads)
//   commit  StreamConsumer.settle(): the Redis commit (lua/commit.lua) after the fdatasync
// as sums and medians, and over the drain (first read to last commit) the event loop's
// utilization and the garbage collector's pauses. The stages overlap (two batches in hand), so
// the slowest chain of them is the bound: `work` alone on the event loop, `disk` + `commit` in
// turn per batch, `read` beside both.
// Measuring only: a performance.now() per frame costs the server a little time.
'use strict';
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { PerformanceObserver, performance } = require('node:perf_hooks');

const dist = join(__dirname, '..', 'dist');
const { RecordWriter } = require(join(dist, 'record-writer.js'));
const { FileSink } = require(join(dist, 'sink.js'));
const { StreamConsumer } = require(join(dist, 'stream-consumer.js'));
const { StreamReader } = require(require.resolve('@log/subscriber', { paths: [join(__dirname, '..')] }));

const batches = [];
const reads = [];
let work = 0;
let frames = 0;
let first;
let last;
let elu;
let eluAtLast;
let gcMs = 0;

/** Replaces an async method by one that records its duration with `done(ms, result)`. */
function timeAsync(proto, name, done) {
  const original = proto[name];
  proto[name] = function (...args) {
    const start = performance.now();
    if (first === undefined) {
      first = start;
      elu = performance.eventLoopUtilization();
    }
    const result = original.apply(this, args);
    result.then(
      (value) => done(performance.now() - start, value),
      () => undefined,
    );
    return result;
  };
}

// reads that found nothing (caught up: a blocking read) are left out
timeAsync(StreamReader.prototype, 'read', (ms, value) => {
  if (value.entries.length > 0) reads.push({ ms, entries: value.entries.length });
});
const writeFrame = RecordWriter.prototype.writeFrame;
RecordWriter.prototype.writeFrame = function (...args) {
  const start = performance.now();
  try {
    return writeFrame.apply(this, args);
  } finally {
    work += performance.now() - start;
    frames++;
  }
};
const writerCommit = RecordWriter.prototype.commit;
RecordWriter.prototype.commit = function (...args) {
  batches.push({ work, frames, disk: NaN, commit: NaN });
  work = 0;
  frames = 0;
  return writerCommit.apply(this, args);
};
// a batch's disk and commit times go to the oldest batch without them: batches are committed in order
timeAsync(FileSink.prototype, 'commit', (ms) => {
  const batch = batches.find((b) => Number.isNaN(b.disk));
  if (batch) batch.disk = ms;
});
timeAsync(StreamConsumer.prototype, 'settle', (ms) => {
  const batch = batches.find((b) => Number.isNaN(b.commit));
  if (batch) batch.commit = ms;
  last = performance.now();
  eluAtLast = performance.eventLoopUtilization(elu);
});
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if (first !== undefined) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });

function stats(values) {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return 'none';
  const sum = sorted.reduce((a, b) => a + b, 0);
  return `sum ${sum.toFixed(0)} ms, median ${sorted[sorted.length >> 1].toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms`;
}

process.on('exit', () => {
  if (first === undefined) return;
  const span = last - first;
  const utilization = eluAtLast?.utilization ?? NaN;
  const lines = [
    `drain: ${span.toFixed(0)} ms from the first read to the last commit, ${batches.length} batches, ${reads.reduce((n, r) => n + r.entries, 0)} entries read`,
    `event loop busy: ${(100 * utilization).toFixed(0)}% of the drain; GC pauses ${gcMs.toFixed(0)} ms`,
    `read   (${reads.length}): ${stats(reads.map((r) => r.ms))}`,
    `work   (${batches.length}): ${stats(batches.map((b) => b.work))}; frames per batch median ${batches.map((b) => b.frames).sort((a, b) => a - b)[batches.length >> 1] ?? 0}`,
    `disk   (${batches.length}): ${stats(batches.map((b) => b.disk))}`,
    `commit (${batches.length}): ${stats(batches.map((b) => b.commit))}`,
    `disk + commit per batch: ${stats(batches.map((b) => b.disk + b.commit))}`,
  ];
  writeFileSync(join(process.env.BATCH_TIMER_DIR || '/tmp', `batch-timer-${process.pid}.txt`), `${lines.join('\n')}\n`);
});
