// Archive throughput: archiveFile (hash + gzip + multipart upload to a local s3rver + verify)
// against Node's zlib gzip alone on the same file, at levels 1 and 6, in one run.
// Run: pnpm bench (or, after pnpm build: node packages/s3-archiver/bench/archive.bench.mjs).
import { createReadStream, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { median, record, table } from '../../../scripts/bench-report.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const require = createRequire(import.meta.url);
const { archiveFile, archiveKey } = require('../dist');
const { startS3, tempDir, removeDir } = require('@log/test-kit');
const { S3Client } = require('@aws-sdk/client-s3');

const MB = Number(process.env.BENCH_ARCHIVE_MB ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const root = join(import.meta.dirname, '..', '..', '..');

// A realistic log file: the logger server's own line format, varied values.
const dir = tempDir('bench-archive');
const file = join(dir, 'bench.jsonl');
const lines = [];
let bytes = 0;
for (let i = 0; bytes < MB * 1024 * 1024; i++) {
  const line =
    JSON.stringify({
      time: new Date(1764000000000 + i * 7).toISOString(),
      level: i % 50 === 0 ? 'error' : 'info',
      app: 'shop',
      host: 'web1',
      pid: 4101,
      producer: '02c25e30f65edcf0',
      seq: i + 1,
      message: i % 3 === 0 ? 'request' : 'order placed',
      method: 'POST',
      path: `/api/orders/${i % 977}`,
      status: i % 50 === 0 ? 502 : 201,
      ms: Math.round(Math.random() * 5000) / 100,
      userId: (i * 7919) % 100003,
    }) + '\n';
  lines.push(line);
  bytes += line.length;
}
writeFileSync(file, lines.join(''));
lines.length = 0;

async function zlibAlone(level) {
  const start = process.hrtime.bigint();
  await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), createGzip({ level }), new Writable({ write: (_chunk, _encoding, done) => done() }));
  return Number(process.hrtime.bigint() - start);
}

const s3 = await startS3({ buckets: ['logs'] });
const client = new S3Client({ ...s3.clientConfig, maxAttempts: 1 });
let n = 0;
async function archive(level) {
  const key = archiveKey({ prefix: 'bench', app: 'shop', host: 'web1', firstTime: Date.now(), unique: (++n).toString(16).padStart(8, '0') });
  const start = process.hrtime.bigint();
  const result = await archiveFile(file, { client, bucket: 'logs', key, gzipLevel: level });
  return { ns: Number(process.hrtime.bigint() - start), ratio: result.bytes / result.compressedBytes };
}

const results = {};
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const level of [1, 6]) {
      (results[`zlib${level}`] ??= []).push(await zlibAlone(level));
      const a = await archive(level);
      (results[`archive${level}`] ??= []).push(a.ns);
      results[`ratio${level}`] = a.ratio;
    }
    process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
} finally {
  client.destroy();
  await s3.dispose();
  removeDir(dir);
}

const mbps = (ns) => bytes / 1024 / 1024 / (ns / 1e9);
const rows = [];
for (const level of [1, 6]) {
  const zlib = mbps(median(results[`zlib${level}`]));
  const arch = mbps(median(results[`archive${level}`]));
  rows.push([`gzip level ${level}`, zlib.toFixed(0), arch.toFixed(0), (arch / zlib).toFixed(2), results[`ratio${level}`].toFixed(1)]);
}
const body = `A ${MB} MiB JSON-lines file in the server's format, ${ROUNDS} rounds, medians. archiveFile = SHA-256 pass + gzip + CRC32 of what is sent + multipart upload to a local s3rver (another process on this machine) + HeadObject verification.\n\n${table(['', 'zlib gzip alone, MB/s of raw logs', 'archiveFile, MB/s', 'ratio (target >= 0.5 at level 1)', 'compression'], rows)}`;
console.log(body);
record(root, 'archive', 'S3 archiver: throughput against zlib alone', 'pnpm bench (packages/s3-archiver/bench/archive.bench.mjs)', body);
