import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { streamKey } from '@log/protocol';
import { createPublisher } from '@log/publisher';
import { createClient } from 'redis';
import { archiveFile, archiveKey, manifestKey } from '@log/s3-archiver';
import { freePort, motoAvailable, removeDir, sleep, startRedis, startS3, startS3Pager, startTcpProxy, tempDir, within, type RedisServer, type S3Server, type TcpProxy } from '@log/test-kit';
import { MAIN, httpGet, readLogs, startServer, type ServerProcess } from './harness';

let redis: RedisServer;
let dir: string;
const cleanups: Array<() => Promise<unknown>> = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});
beforeEach(() => {
  dir = tempDir('archive');
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  removeDir(dir);
});

function s3Env(s3: { endpoint: string }) {
  return {
    S3_BUCKET: 'logs',
    S3_PREFIX: 'archive',
    S3_ENDPOINT: s3.endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  };
}

async function server(env: Record<string, string>): Promise<ServerProcess> {
  const s = await startServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CONSUMER: 'app1', ...env });
  cleanups.push(() => s.stop());
  return s;
}

async function s3Server(options: Parameters<typeof startS3>[0] = {}): Promise<{ s3: S3Server; client: S3Client }> {
  const s3 = await startS3({ buckets: ['logs'], ...options });
  const client = new S3Client({ ...s3.clientConfig, maxAttempts: 1 });
  cleanups.push(async () => {
    client.destroy();
    await s3.dispose();
  });
  return { s3, client };
}

interface Archived {
  /** Keys of the log objects (not the manifests). */
  keys: string[];
  records: Array<Record<string, unknown>>;
  /** Per log object: its records, its metadata, and its manifest (undefined when there is none). */
  objects: Array<{ key: string; records: Array<Record<string, unknown>>; metadata: Record<string, string>; manifest: Record<string, unknown> | undefined }>;
}

async function archivedRecords(client: S3Client): Promise<Archived> {
  const list = await client.send(new ListObjectsV2Command({ Bucket: 'logs', Prefix: 'archive/' }));
  const all = new Set((list.Contents ?? []).map((o) => o.Key!));
  const keys = [...all].filter((key) => key.endsWith('.jsonl.gz')).sort();
  const archived: Archived = { keys, records: [], objects: [] };
  for (const key of keys) {
    const object = await client.send(new GetObjectCommand({ Bucket: 'logs', Key: key }));
    const text = gunzipSync(Buffer.from(await object.Body!.transformToByteArray())).toString();
    const records = text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of records) archived.records.push(record);
    let manifest: Record<string, unknown> | undefined;
    if (all.has(manifestKey(key))) {
      const body = await client.send(new GetObjectCommand({ Bucket: 'logs', Key: manifestKey(key) }));
      manifest = JSON.parse(Buffer.from(await body.Body!.transformToByteArray()).toString());
    }
    archived.objects.push({ key, records, metadata: object.Metadata ?? {}, manifest });
  }
  return archived;
}

function closedFiles(app: string): string[] {
  try {
    return readdirSync(join(dir, 'log', app)).filter((name) => name.endsWith('.jsonl'));
  } catch {
    return [];
  }
}

/**
 * Waits until no closed file of `app` is left on disk and S3 plus the open file hold `total`
 * records, then asserts each sequence number 1..total is there exactly once.
 */
async function expectEverythingArchivedOnce(client: S3Client, app: string, total: number, timeoutMs = 60_000): Promise<void> {
  // S3 and the disk are read one after the other while files may still move from one to the
  // other: only two equal readings 300 ms apart, with no closed file waiting, count.
  const everything = async () => [...(await archivedRecords(client)).records, ...(readLogs(join(dir, 'log')).get(app) ?? [])].map((r) => r.seq as number).sort((a, b) => a - b);
  let seqs: number[] = [];
  await until(async () => {
    if (closedFiles(app).length > 0) return false;
    const first = await everything();
    if (first.length < total) return false;
    await sleep(300);
    seqs = await everything();
    return closedFiles(app).length === 0 && seqs.join() === first.join();
  }, timeoutMs);
  expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
}

async function until(what: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(100);
  }
}

interface PublishOptions {
  /** Flush (end a frame) after every this many records. */
  every: number;
  /** Pause after each flush, so the server reads separate batches (and rotates between them). */
  pauseMs?: number;
  /** The record's payload. @defaultValue 50 characters of padding */
  fields?: (i: number) => Record<string, unknown>;
  /** Called before record i is logged (to freeze S3 at a chosen moment, say). */
  before?: (i: number) => void;
}

/** Publishes `count` records of `app` to `channel` (seq 1..count), flushed; the publisher is closed by the test's cleanup. */
async function publish(channel: string, app: string, count: number, options: PublishOptions): Promise<void> {
  const log = createPublisher(channel, { app, url: redis.url });
  cleanups.push(() => log.close(1000));
  for (let i = 0; i < count; i++) {
    options.before?.(i);
    log.info('to archive', options.fields?.(i) ?? { i, pad: 'p'.repeat(50) });
    if (i % options.every === 0) {
      await log.flush();
      if (options.pauseMs) await sleep(options.pauseMs);
    }
  }
  await log.flush();
}

/** A server without S3 writes `count` records of `app` in several batches and stops: closed files (and manifests) stay on disk. */
async function firstRunWithoutS3(channel: string, app: string, count: number): Promise<void> {
  const first = await startServer({ REDIS_URL: redis.url, LOG_DIR: join(dir, 'log'), LOG_CONSUMER: 'app1', LOG_CHANNEL: channel, ROTATE_BYTES: '5000' });
  await publish(channel, app, count, { every: 50, pauseMs: 50 });
  await until(() => (readLogs(join(dir, 'log')).get(app)?.length ?? 0) >= count);
  await first.stop(); // closes the open file too
}

/** `logger-server archive [dir]`, the one-shot command: resolves with its exit code and output. */
function archiveCommand(env: Record<string, string>, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'archive', ...args], {
      env: { PATH: process.env.PATH, LOG_CONSUMER: 'app1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('logger-server archive [dir]', () => {
  it('uploads the closed files left in a directory with their manifests; with S3 away it keeps them and exits 1', async () => {
    const channel = `arch${++n}`;
    await firstRunWithoutS3(channel, 'left', 300);
    const names = closedFiles('left').sort();
    expect(names.length).toBeGreaterThanOrEqual(2);
    const logDir = join(dir, 'log');

    const missing = await archiveCommand({}, [logDir]);
    expect(missing.code).toBe(2);
    expect(missing.output).toMatch(/S3_BUCKET is not set/);

    const away = await archiveCommand(s3Env({ endpoint: `http://127.0.0.1:${await freePort()}` }), [logDir]);
    expect(away.code).toBe(1);
    expect(away.output).toMatch(/could not archive; the file is kept/);
    expect(closedFiles('left').sort()).toEqual(names);

    const { s3, client } = await s3Server();
    const done = await archiveCommand(s3Env(s3), [logDir]);
    expect(done.code).toBe(0);
    expect(done.output).toContain(`"archived":${names.length}`);
    expect(readdirSync(join(logDir, 'left'))).toEqual([]); // data files and manifests gone
    const { keys, records, objects } = await archivedRecords(client);
    expect(keys).toHaveLength(names.length);
    expect(records.map((r) => r.seq).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    for (const object of objects) expect(object.manifest).toMatchObject({ records: object.records.length, object: object.key });
  }, 90_000);
});

describe('rotation and archiving to S3', () => {
  it('rotates by size, uploads gzip objects under Hive-style keys, deletes files only after verification', async () => {
    const { s3, client } = await s3Server();
    const channel = `arch${++n}`;
    // small batches (no READ_BATCH_BYTES): files rotate between batches, so each batch ends one near 20 kB
    const s = await server({ LOG_CHANNEL: channel, ROTATE_BYTES: '20000', READ_BATCH_BYTES: '0', ...s3Env(s3) });
    await publish(channel, 'shop', 3000, { every: 100 });
    await expectEverythingArchivedOnce(client, 'shop', 3000);
    const { keys, objects } = await archivedRecords(client);
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const key of keys) expect(key).toMatch(/^archive\/shop\/dt=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/app1-\d{8}T\d{9}Z-[0-9a-f]{8}\.jsonl\.gz$/);
    // Each object has its summary in metadata and its manifest beside it, both true to its lines.
    for (const object of objects) {
      const objectSeqs = object.records.map((r) => r.seq as number);
      const times = object.records.map((r) => r.time as string).sort();
      expect(object.metadata).toMatchObject({ records: String(object.records.length), producers: '1', 'first-time': times[0], 'last-time': times[times.length - 1] });
      expect(object.manifest).toMatchObject({
        version: 1,
        app: 'shop',
        host: 'app1',
        object: object.key,
        records: object.records.length,
        firstTime: times[0],
        lastTime: times[times.length - 1],
        sha256: object.metadata.sha256,
        producers: [{ producer: object.records[0]!.producer, minSeq: objectSeqs.reduce((a, b) => Math.min(a, b)), maxSeq: objectSeqs.reduce((a, b) => Math.max(a, b)), records: objectSeqs.length }],
      });
    }
    expect(readdirSync(join(dir, 'log', 'shop')).filter((name) => name.endsWith('.manifest.json'))).toEqual([]);
    const metrics = (await httpGet(s.httpPort, '/metrics')).body;
    expect(metrics).toMatch(/logger_archive_uploads_total\{status="uploaded"\} [1-9]/);
    expect(metrics).toMatch(/logger_archive_backlog_files 0/);
    expect(Number(/logger_archive_compression_ratio ([\d.]+)/.exec(metrics)?.[1])).toBeGreaterThan(2);
    expect(JSON.parse((await httpGet(s.httpPort, '/healthz')).body)).toMatchObject({ status: 'ok', archive: 'ok' });
  }, 60_000);

  it('keeps writing while S3 refuses connections, and uploads everything once S3 is there', async () => {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const channel = `arch${++n}`;
    await server({ LOG_CHANNEL: channel, ROTATE_BYTES: '20000', ...s3Env({ endpoint }) });
    await publish(channel, 'late', 1000, { every: 200 });
    await until(() => closedFiles('late').length >= 1 && (readLogs(join(dir, 'log')).get('late')?.length ?? 0) >= 1000);
    const waiting = closedFiles('late');
    await sleep(1500); // the archiver tries and fails meanwhile
    expect(closedFiles('late')).toEqual(expect.arrayContaining(waiting)); // nothing deleted while S3 is away
    const { client } = await s3Server({ port });
    await expectEverythingArchivedOnce(client, 'late', 1000);
  }, 90_000);

  it('rides out an S3 that freezes (SIGSTOP) while files are uploaded: everything arrives, no multipart upload left behind', async () => {
    // moto lists multipart uploads; s3rver is the fallback where moto is not installed
    const { s3, client } = await s3Server(motoAvailable() ? { implementation: 'moto' } : {});
    const channel = `arch${++n}`;
    await server({ LOG_CHANNEL: channel, ROTATE_BYTES: '20000', ...s3Env(s3), AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey });
    await publish(channel, 'frozen', 2000, { every: 100, pauseMs: 20, before: (i) => i === 601 && s3.pause() });
    await sleep(1500);
    expect(closedFiles('frozen').length).toBeGreaterThan(0); // files waited for the frozen S3
    s3.resume();
    await expectEverythingArchivedOnce(client, 'frozen', 2000);
    if (s3.implementation === 'moto') {
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: 'logs' }));
      expect(uploads.Uploads ?? []).toEqual([]);
    }
  }, 90_000);

  it('stops reading from Redis while the backlog of unarchived files passes ARCHIVE_BACKLOG_BYTES, and catches up when S3 returns', async () => {
    const port = await freePort();
    const channel = `arch${++n}`;
    const s = await server({ LOG_CHANNEL: channel, ROTATE_BYTES: '5000', ARCHIVE_BACKLOG_BYTES: '20000', ...s3Env({ endpoint: `http://127.0.0.1:${port}` }) });
    // Small frames spread over a few seconds, so the server reads many batches and rotates between them.
    await publish(channel, 'held', 2000, { every: 20, pauseMs: 15, fields: (i) => ({ i, pad: 'p'.repeat(200) }) });
    await until(() => s.output().includes('pausing reads from redis'));
    await sleep(1000);
    // Paused: what is on disk stopped short, the rest waits in the stream, undelivered.
    const onDisk = readLogs(join(dir, 'log')).get('held')?.length ?? 0;
    expect(onDisk).toBeLessThan(2000);
    const client = createClient({ url: redis.url });
    await client.connect();
    cleanups.push(() => client.quit());
    const [group] = (await client.xInfoGroups(streamKey(channel))) as unknown as Array<Record<string, unknown>>;
    expect(Number(group!.lag)).toBeGreaterThan(0);
    expect(Number(group!.pending)).toBe(0); // nothing read and left unwritten
    // paused for the backlog (degraded), or S3 refused ARCHIVE_FAILING_AFTER attempts in a row by now (failing)
    expect(JSON.parse((await httpGet(s.httpPort, '/healthz')).body)).toMatchObject({ status: 'degraded', archive: expect.stringMatching(/^(degraded|failing)$/) });
    expect((await httpGet(s.httpPort, '/metrics')).body).toMatch(/logger_archive_backlog_bytes (2\d{4}|[3-9]\d{4})/);
    expect(readLogs(join(dir, 'log')).get('held')?.length ?? 0).toBe(onDisk); // still paused

    const { client: s3Client } = await s3Server({ port });
    await expectEverythingArchivedOnce(s3Client, 'held', 2000);
    expect(s.output()).toContain('archive backlog drained: reading again');
  }, 90_000);

  /** Opens a multipart upload at the key a server of LOG_CONSUMER `host` would archive an `app` file to; returns the key. */
  async function openUploadOf(client: S3Client, host: string, app = 'shop', prefix = 'archive'): Promise<string> {
    const key = archiveKey({ prefix, app, host, firstTime: Date.now() });
    await client.send(new CreateMultipartUploadCommand({ Bucket: 'logs', Key: key }));
    return key;
  }

  (motoAvailable() ? it : it.skip)(
    "aborts its own multipart uploads a killed run left open, and no one else's (not even a consumer whose name starts like its own)",
    async () => {
      // (s3rver does not list multipart uploads; moto does, and is installed on these machines)
      const { s3, client } = await s3Server({ implementation: 'moto' });
      const mine = await openUploadOf(client, 'app1');
      // app1-b's keys start "app1-b-...": another server sharing the bucket, not app1's
      const theirs = [await openUploadOf(client, 'app2'), await openUploadOf(client, 'app1-b'), await openUploadOf(client, 'app1', 'shop', 'archive/old')];
      const s = await server({ LOG_CHANNEL: `arch${++n}`, ARCHIVE_STALE_UPLOAD_SECONDS: '0', ...s3Env(s3), AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' });
      await until(async () => /logger_archive_stale_uploads_aborted_total [1-9]/.test((await httpGet(s.httpPort, '/metrics')).body));
      await sleep(300); // an abort of someone else's upload would show up by now
      expect((await openUploads(client)).sort()).toEqual([...theirs].sort());
      expect((await httpGet(s.httpPort, '/metrics')).body).toMatch(/logger_archive_stale_uploads_aborted_total 1\b/);
      expect(s.output()).toContain(mine);
    },
    30_000,
  );

  (motoAvailable() ? it : it.skip)(
    'sweeps every page of the incomplete multipart upload listing, not only the first',
    async () => {
      // S3 lists at most 1000 uploads a page; the pager in front of moto (which answers one page
      // whatever the number) cuts pages of 3, so a handful of uploads spans several pages.
      const { s3, client } = await s3Server({ implementation: 'moto' });
      const pager = await startS3Pager(s3.port, { maxUploads: 3 });
      cleanups.push(() => pager.close());
      const mine: string[] = [];
      const theirs: string[] = [];
      for (const app of ['a1', 'b2', 'c3', 'd4']) {
        mine.push(await openUploadOf(client, 'app1', app), await openUploadOf(client, 'app1', app));
        theirs.push(await openUploadOf(client, 'app1-b', app));
      }
      const s = await server({ LOG_CHANNEL: `arch${++n}`, ARCHIVE_STALE_UPLOAD_SECONDS: '0', ...s3Env({ endpoint: pager.endpoint }), AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' });
      await until(async () => (await openUploads(client)).length <= theirs.length || /could not list/.test(s.output()), 15_000).catch(() => {});
      expect((await openUploads(client)).sort()).toEqual([...theirs].sort());
      expect((await httpGet(s.httpPort, '/metrics')).body).toMatch(new RegExp(`logger_archive_stale_uploads_aborted_total ${mine.length}\\b`));
      expect(pager.listings).toBeGreaterThanOrEqual(4); // 12 uploads, 3 a page
    },
    30_000,
  );

  /**
   * moto (it lists multipart uploads and keeps versions; s3rver does neither) with versioning on,
   * a server with 5 MiB parts, and ~10 MiB of poorly compressible records, so the closed file's
   * gzip needs two parts. Resolves as soon as the multipart upload shows up.
   */
  async function multipartUnderWay(app: string, env: Record<string, string> = {}, endpoint?: (s3: S3Server) => Promise<string>) {
    const { s3, client } = await s3Server({ implementation: 'moto' });
    await client.send(new PutBucketVersioningCommand({ Bucket: 'logs', VersioningConfiguration: { Status: 'Enabled' } }));
    const serverEnv = {
      LOG_CHANNEL: `arch${++n}`,
      ROTATE_BYTES: String(9 * 1024 * 1024),
      S3_PART_SIZE: String(5 * 1024 * 1024),
      S3_GZIP_LEVEL: '1',
      ...s3Env({ endpoint: endpoint ? await endpoint(s3) : s3.endpoint }),
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
      ...env,
    };
    const s = await server(serverEnv);
    const total = 20_000;
    await publish(serverEnv.LOG_CHANNEL, app, total, { every: 1000, fields: (i) => ({ i, noise: randomBytes(360).toString('base64') }) });
    // Polled without pause: moto takes a part in well under a second.
    const deadline = Date.now() + 30_000;
    while ((await openUploads(client)).length === 0) {
      if (Date.now() > deadline) throw new Error(`no multipart upload started:\n${s.output()}`);
    }
    return { s3, client, s, total, serverEnv };
  }

  async function openUploads(client: S3Client): Promise<string[]> {
    return ((await client.send(new ListMultipartUploadsCommand({ Bucket: 'logs' }))).Uploads ?? []).map((upload) => upload.Key!);
  }

  /** Versioning keeps every write: one version per key means nothing was written twice. */
  async function expectOneVersionPerKey(client: S3Client): Promise<void> {
    const versions = await client.send(new ListObjectVersionsCommand({ Bucket: 'logs', Prefix: 'archive/' }));
    const perKey = new Map<string, number>();
    for (const version of versions.Versions ?? []) perKey.set(version.Key!, (perKey.get(version.Key!) ?? 0) + 1);
    expect(perKey.size).toBeGreaterThan(0);
    for (const [key, count] of perKey) expect([key, count]).toEqual([key, 1]);
    expect(versions.DeleteMarkers ?? []).toEqual([]);
  }

  (motoAvailable() ? it : it.skip)(
    'after kill -9 in the middle of a multipart upload, uploads the file once: one version per key, no parts left',
    async () => {
      // (moto only: see multipartUnderWay)
      const { s3, client, s: first, total, serverEnv } = await multipartUnderWay('big', { ARCHIVE_STALE_UPLOAD_SECONDS: '0' });
      s3.pause(); // freeze the upload in the middle, then kill the server
      await first.kill9();
      s3.resume();
      expect((await openUploads(client)).length).toBeGreaterThan(0);
      expect(closedFiles('big').length).toBeGreaterThan(0); // not deleted: never verified

      const second = await server(serverEnv);
      await expectEverythingArchivedOnce(client, 'big', total);
      await expectOneVersionPerKey(client);
      expect(await openUploads(client)).toEqual([]);
      expect((await httpGet(second.httpPort, '/metrics')).body).toMatch(/logger_archive_stale_uploads_aborted_total [1-9]/);
    },
    120_000,
  );

  (motoAvailable() ? it : it.skip)(
    'rides out an S3 frozen (SIGSTOP) in the middle of a multipart upload: nothing deleted meanwhile, uploaded once, no parts left',
    async () => {
      // (moto only: see multipartUnderWay)
      const { s3, client, total } = await multipartUnderWay('thaw');
      s3.pause();
      await sleep(3000);
      expect(closedFiles('thaw').length).toBeGreaterThan(0); // never deleted unverified
      s3.resume();
      await expectEverythingArchivedOnce(client, 'thaw', total);
      await expectOneVersionPerKey(client);
      await until(async () => (await openUploads(client)).length === 0, 20_000);
    },
    120_000,
  );

  (motoAvailable() ? it : it.skip)(
    'rides out a network partition to S3 in the middle of a multipart upload: no parts left behind, uploaded once',
    async () => {
      // (moto only: see multipartUnderWay.) The server reaches S3 through a proxy that can black-hole
      // the connection: unlike a frozen S3, which still reads the abort request when it wakes up, a
      // partition swallows lib-storage's abort too.
      let proxy: TcpProxy | undefined;
      const { client, s, total } = await multipartUnderWay('cut', { S3_IDLE_TIMEOUT_MS: '1500' }, async (s3) => {
        proxy = await startTcpProxy(s3.port);
        cleanups.push(() => proxy!.close());
        return proxy.endpoint;
      });
      proxy!.cut(); // the upload's requests time out, and its abort never arrives
      await until(() => /archiving failed; will retry/.test(s.output()), 20_000);
      await sleep(1000);
      expect((await openUploads(client)).length).toBeGreaterThan(0); // stranded for now
      expect(closedFiles('cut').length).toBeGreaterThan(0); // never deleted unverified
      proxy!.heal();
      await expectEverythingArchivedOnce(client, 'cut', total);
      expect(await openUploads(client)).toEqual([]);
      await expectOneVersionPerKey(client);
      const metrics = (await httpGet(s.httpPort, '/metrics')).body;
      expect(metrics).toMatch(/logger_archive_failures_total\{reason="UPLOAD_FAILED"\} [1-9]/);
      expect(metrics).toMatch(/logger_archive_stale_uploads_aborted_total [1-9]/); // the failed attempt's upload, aborted before the retry
    },
    120_000,
  );

  (motoAvailable() ? it : it.skip)(
    'on SIGTERM during an upload frozen part-way (partition), aborts it and exits 0 keeping the file; the next start archives it once',
    async () => {
      // S3_IDLE_TIMEOUT_MS stays at its 30 s default, past the 10 s drain deadline: only aborting
      // the upload lets the drain finish. (moto: s3rver would keep the half-sent PUT as an object.)
      const { s3, client } = await s3Server({ implementation: 'moto' });
      const proxy = await startTcpProxy(s3.port);
      cleanups.push(() => proxy.close());
      const channel = `arch${++n}`;
      const env = { LOG_CHANNEL: channel, ROTATE_BYTES: '200000', ...s3Env(s3), AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey };
      const first = await server({ ...env, S3_ENDPOINT: proxy.endpoint });
      const cut = proxy.cutAfter(64 * 1024); // the HEAD and 64 KiB of the first file's PUT get through
      await publish(channel, 'halted', 600, { every: 100, fields: (i) => ({ i, noise: randomBytes(300).toString('base64') }) });
      expect(await within(cut, 20_000)).toEqual({ value: undefined });
      await until(() => (readLogs(join(dir, 'log')).get('halted')?.length ?? 0) >= 600); // the rest in the open file
      const uploading = closedFiles('halted');
      expect(uploading).toHaveLength(1);
      first.child.kill('SIGTERM');
      expect(await within(first.exited, 15_000)).toEqual({ value: 0 });
      expect(first.output()).not.toMatch(/drain deadline passed/);
      const kept = closedFiles('halted');
      expect(kept).toEqual(expect.arrayContaining(uploading)); // never deleted: never verified
      // and no open file: the drain closed it (when the frozen file did not already hold all 600)
      expect(readdirSync(join(dir, 'log', 'halted')).filter((name) => name.endsWith('.log'))).toEqual([]);

      await server(env); // S3 healthy, no proxy
      await expectEverythingArchivedOnce(client, 'halted', 600);
      expect((await archivedRecords(client)).keys).toHaveLength(kept.length);
    },
    60_000,
  );

  it('after a crash between upload and delete, finds its own object and deletes the file; never overwrites another', async () => {
    const { s3, client } = await s3Server();
    const channel = `arch${++n}`;
    await firstRunWithoutS3(channel, 'crash', 300);
    const names = closedFiles('crash').sort();
    expect(names.length).toBeGreaterThanOrEqual(2);
    const keyOf = (name: string) => {
      const [stamp, unique] = name.replace('.jsonl', '').split('-') as [string, string];
      const t = Date.UTC(+stamp.slice(0, 4), +stamp.slice(4, 6) - 1, +stamp.slice(6, 8), +stamp.slice(9, 11), +stamp.slice(11, 13), +stamp.slice(13, 15), +stamp.slice(15, 18));
      return archiveKey({ prefix: 'archive', app: 'crash', host: 'app1', firstTime: t, unique });
    };
    // the "crash": the first file was uploaded, but not deleted
    await archiveFile(join(dir, 'log', 'crash', names[0]!), { client, bucket: 'logs', key: keyOf(names[0]!) });
    // someone else's object sits at the second file's key
    await client.send(new PutObjectCommand({ Bucket: 'logs', Key: keyOf(names[1]!), Body: 'not ours', Metadata: { sha256: 'other' } }));

    const s = await server({ LOG_CHANNEL: channel, ...s3Env(s3) });
    await until(() => closedFiles('crash').length === 1);
    expect(closedFiles('crash')).toEqual([names[1]]); // the conflicting file is kept
    const metrics = (await httpGet(s.httpPort, '/metrics')).body;
    expect(metrics).toMatch(/logger_archive_uploads_total\{status="exists"\} 1/);
    expect(metrics).toMatch(/logger_archive_failures_total\{reason="CONFLICT"\} 1/);
    const other = await client.send(new GetObjectCommand({ Bucket: 'logs', Key: keyOf(names[1]!) }));
    expect(await other.Body!.transformToString()).toBe('not ours'); // never overwritten
  }, 60_000);
});
