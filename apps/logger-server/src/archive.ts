import { readdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Backoff, isValidName, sleep, type BackoffOptions } from '@log/protocol';
import { ArchiveError, archiveFile, archiveKey, type ArchiveErrorCode } from '@log/s3-archiver';
import type { ServerConfig } from './config';
import { describeError, type ServerLog } from './log';
import type { Metrics } from './metrics';
import { closedNameOfManifest, manifestPathOf, parseClosedName, readManifest, type ClosedFile } from './closed-file';
import { syncDirectory } from './sink';

/** Waits between attempts of the archive loop: from 500 ms, doubling up to a minute, with jitter. */
const ARCHIVE_RETRY: BackoffOptions = { initialMs: 500, maxMs: 60_000 };
/** Waits between the attempts of one file in `logger-server archive`: 200 ms, doubling (bounded by the attempts), with jitter. */
const ARCHIVE_ONCE_RETRY: BackoffOptions = { initialMs: 200 };

/**
 * Why an archive attempt failed (the `reason` label of logger_archive_failures_total): the
 * archiver's code, or INTERNAL for an error that is not an ArchiveError (a bug, a local file error).
 */
export type ArchiveFailureReason = ArchiveErrorCode | 'INTERNAL';

/** A file `logger-server archive` left on disk, and why: a failure reason, or NOT_TRIED after an earlier file failed every attempt. */
export interface NotArchived {
  file: string;
  code: ArchiveFailureReason | 'NOT_TRIED';
  message: string;
}

interface Queued extends ClosedFile {
  bytes: number;
  closedAt: number;
}

/**
 * The closed files on disk are the archive queue: found by a scan at start (so a restart, even
 * after kill -9, resumes them) and added as the server rotates. One upload at a time, oldest
 * first; a file is deleted only after archiveFile confirmed size and checksum. Failures are
 * retried with exponential backoff and jitter, forever, deleting nothing; a CONFLICT (another
 * object at the key) is reported and the file kept.
 */
export class ArchiveQueue {
  private readonly queue: Queued[] = [];
  /** Sum of the queued files' bytes, kept as they come and go: read on every batch of the server's loop. */
  private queuedBytes = 0;
  private readonly conflicts = new Set<string>();
  private readonly client: S3Client;
  private running = false;
  /** Aborted by stop(): an upload in flight, a sweep or a backoff wait end at once instead of holding up the drain. */
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Failed attempts since the last success, and the last one's reason (`S3: <code>: <message>`). */
  private consecutiveFailures = 0;
  private lastFailure: string | undefined;
  /** The backlog passed ARCHIVE_BACKLOG_BYTES at the last paused() (reads pause). */
  private backpressured = false;
  /** Why the start-up check of the bucket failed, until an upload or a later check succeeds. */
  private checkFailure: string | undefined;

  constructor(
    private readonly config: Readonly<ServerConfig> & { s3: NonNullable<ServerConfig['s3']> },
    private readonly metrics: Metrics,
    private readonly log: ServerLog,
  ) {
    this.client = new S3Client({
      region: config.s3.region,
      endpoint: config.s3.endpoint,
      forcePathStyle: config.s3.forcePathStyle,
      maxAttempts: 2,
      // A frozen or half-open S3 connection must fail the attempt (and be retried), not hang it:
      // socketTimeout fails a request idle that long. (requestTimeout only logs a warning in this
      // SDK unless throwOnRequestTimeout is set, and it would also cut a slow but moving upload.)
      requestHandler: { socketTimeout: config.s3.idleTimeoutMs, connectionTimeout: 5_000 },
    });
  }

  /** Queues every closed file under LOG_DIR/<app>/. */
  scan(): void {
    let apps: string[] = [];
    try {
      apps = readdirSync(this.config.logDir);
    } catch {
      return;
    }
    for (const app of apps) {
      if (!isValidName(app)) continue;
      const dir = join(this.config.logDir, app);
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      const present = new Set(names);
      for (const name of names.sort()) {
        const file = parseClosedName(app, dir, name);
        if (file) this.add(file);
        // A manifest whose data file is gone: a crash between writing it and the rename, or after
        // archiving deleted the data file and before the manifest.
        const manifestOf = closedNameOfManifest(name);
        if (manifestOf !== undefined && !present.has(manifestOf)) removeQuietly(join(dir, name));
      }
    }
    if (this.queue.length > 0) this.log('info', 'closed files waiting for archiving', { files: this.queue.length });
  }

  add(file: ClosedFile): void {
    let bytes = 0;
    let closedAt = Date.now();
    try {
      const stat = statSync(file.path);
      bytes = stat.size;
      closedAt = stat.mtimeMs;
    } catch {
      return;
    }
    this.queue.push({ ...file, bytes, closedAt });
    this.queuedBytes += bytes;
    this.updateBacklog();
    this.wake?.();
  }

  get backlogBytes(): number {
    return this.queuedBytes;
  }

  /** Age of the oldest file not yet archived, in seconds (0 when none waits). */
  get oldestAgeSeconds(): number {
    const oldest = this.queue[0];
    return oldest ? Math.max(0, (Date.now() - oldest.closedAt) / 1000) : 0;
  }

  /**
   * True while the closed files waiting pass ARCHIVE_BACKLOG_BYTES: the server pauses reading
   * (entries wait safely in Redis). Said in the log when it changes.
   */
  paused(): boolean {
    const over = this.queuedBytes > this.config.s3.backlogBytes;
    if (over !== this.backpressured) {
      this.backpressured = over;
      this.log(over ? 'warn' : 'info', over ? 'archive backlog over ARCHIVE_BACKLOG_BYTES: pausing reads from redis' : 'archive backlog drained: reading again', {
        backlogBytes: this.queuedBytes,
      });
    }
    return over;
  }

  /**
   * 'failing' (with S3's reason) when the start-up check failed or the last ARCHIVE_FAILING_AFTER
   * attempts did; 'degraded' when the oldest closed file waits longer than ARCHIVE_STALE_SECONDS
   * or reads are paused for the backlog; else 'ok'.
   */
  health(): { state: 'ok' | 'degraded' | 'failing'; reason?: string } {
    const failing = this.consecutiveFailures >= this.config.s3.failingAfter ? this.lastFailure : this.checkFailure;
    if (failing !== undefined) return { state: 'failing', reason: failing };
    return { state: this.oldestAgeSeconds > this.config.s3.staleSeconds || this.backpressured ? 'degraded' : 'ok' };
  }

  /**
   * Checks the bucket and credentials once (a one-key listing under S3_PREFIX, within
   * S3_IDLE_TIMEOUT_MS): a wrong key, a missing bucket or an unreachable endpoint is said at once,
   * naming S3's own code, instead of at the first rotation. Never throws: archiving retries anyway.
   */
  async check(): Promise<string | undefined> {
    try {
      await this.client.send(new ListObjectsV2Command({ Bucket: this.config.s3.bucket, Prefix: `${this.config.s3.prefix}/`, MaxKeys: 1 }), { abortSignal: this.stopping.signal });
      this.checkFailure = undefined;
    } catch (error) {
      this.checkFailure = s3Reason(error);
      this.log('error', 'S3 is not usable: closed files stay on disk and are retried', {
        reason: this.checkFailure,
        bucket: this.config.s3.bucket,
        endpoint: this.config.s3.endpoint ?? 'AWS',
        ...describeError(error),
      });
    }
    return this.checkFailure;
  }

  start(): void {
    this.running = true;
    this.loop = this.sweepStaleUploads(Date.now() - this.config.s3.staleUploadSeconds * 1000).then(() => this.run());
  }

  /**
   * Aborts this server's incomplete multipart uploads started before `cutoffMs` (S3's clock).
   * A server killed during an upload leaves one open (parts stored, no object): swept at start,
   * those older than ARCHIVE_STALE_UPLOAD_SECONDS. An upload whose abort failed too (S3 frozen
   * past S3_IDLE_TIMEOUT_MS) is left open as well: swept, all of this server's, before the
   * retry, since this server runs one upload at a time and none is in progress then. Only keys
   * this server makes (see isOwnKey), so another server's upload is never touched; every page of
   * the listing (S3 lists at most 1000 uploads a page). Best effort: resolves false when S3
   * could not be asked (a lifecycle rule is the backstop).
   */
  private async sweepStaleUploads(cutoffMs: number): Promise<boolean> {
    const bucket = this.config.s3.bucket;
    const prefix = this.config.s3.prefix ? `${this.config.s3.prefix}/` : '';
    try {
      let marker: { KeyMarker?: string; UploadIdMarker?: string } = {};
      for (;;) {
        const abortSignal = this.stopping.signal;
        const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, ...marker }), { abortSignal });
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId || !this.isOwnKey(upload.Key)) continue;
          if ((upload.Initiated?.getTime() ?? 0) > cutoffMs) continue;
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }), { abortSignal });
          this.metrics.archiveStaleUploadsAborted.inc();
          this.log('info', 'aborted an incomplete multipart upload left by a killed run or a failed attempt', { key: upload.Key });
        }
        // The markers name the last upload listed, so the uploads aborted on this page do not shift the next one.
        if (!page.IsTruncated || page.NextKeyMarker === undefined) return true;
        marker = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
      }
    } catch (error) {
      if (!this.stopping.signal.aborted) this.log('warn', 'could not list incomplete multipart uploads', describeError(error));
      return false;
    }
  }

  /** The object key of a closed file: archiveKey under S3_PREFIX, with LOG_CONSUMER as the host. */
  private keyOf(file: Pick<ClosedFile, 'app' | 'firstTime' | 'unique'>): string {
    return archiveKey({ prefix: this.config.s3.prefix, app: file.app, host: this.config.consumer, firstTime: file.firstTime, unique: file.unique });
  }

  /**
   * Whether this server can have made `key`: keyOf a closed file's name. Matching the whole
   * shape, not a piece of it, because LOG_CONSUMER names are free-form: consumer `app1` must not
   * take `.../app1-b-<time>-<unique>.jsonl.gz` (consumer `app1-b`) nor a key under another prefix.
   */
  private isOwnKey(key: string): boolean {
    const parts = key.split('/'); // ...prefix, app, dt=, hour=, name
    const host = `${this.config.consumer}-`;
    const name = parts[parts.length - 1] ?? '';
    const app = parts[parts.length - 4];
    if (app === undefined || !name.startsWith(host) || !name.endsWith('.gz') || !isValidName(app)) return false;
    const closed = parseClosedName(app, '', name.slice(host.length, -'.gz'.length));
    return closed !== undefined && this.keyOf(closed) === key;
  }

  /**
   * One pass for `logger-server archive`: every queued file is archived, each failure retried
   * up to `attempts` times with backoff; after a file failed every attempt the rest are not
   * tried. Resolves with what stayed behind (never deleted).
   */
  async archiveAll(attempts: number): Promise<{ archived: number; failed: NotArchived[] }> {
    await this.sweepStaleUploads(Date.now() - this.config.s3.staleUploadSeconds * 1000);
    let archived = 0;
    const failed: NotArchived[] = [];
    let unreachable = false;
    for (const file of [...this.queue]) {
      if (unreachable) {
        failed.push({ file: file.path, code: 'NOT_TRIED', message: 'skipped: an earlier file failed every attempt' });
        continue;
      }
      const backoff = new Backoff(ARCHIVE_ONCE_RETRY);
      for (let attempt = 1; ; attempt++) {
        try {
          if (attempt > 1) await this.sweepStaleUploads(Number.POSITIVE_INFINITY); // as in run()
          await this.archive(file);
          archived++;
          break;
        } catch (error) {
          const code = this.countFailure(error);
          if (code === 'CONFLICT' || attempt >= attempts) {
            failed.push({ file: file.path, code, message: (error as Error).message });
            this.log('error', 'could not archive; the file is kept', { file: file.path, attempts: attempt, ...describeError(error) });
            // A conflict is this file's alone; anything else (S3 away, refusing) would fail the rest too.
            unreachable = code !== 'CONFLICT';
            break;
          }
          await backoff.wait(this.stopping.signal);
        }
      }
    }
    this.client.destroy();
    return { archived, failed };
  }

  /**
   * Ends the archive loop at once: an upload in flight is aborted (S3 may be frozen or
   * partitioned for up to S3_IDLE_TIMEOUT_MS, longer than the server's drain deadline), its
   * file kept for the next start, which uploads it again under the same key.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    this.wake?.();
    await this.loop;
    // Also ends the request an aborted upload left hanging on its socket.
    this.client.destroy();
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(ARCHIVE_RETRY);
    let sweepFirst = false;
    while (this.running) {
      const file = this.queue.find((f) => !this.conflicts.has(f.path));
      if (!file) {
        const wake = new AbortController();
        this.wake = () => wake.abort();
        await sleep(1000, wake.signal);
        this.wake = undefined;
        continue;
      }
      try {
        // A failed attempt may have left its multipart upload open (when the abort failed too).
        if (sweepFirst) sweepFirst = !(await this.sweepStaleUploads(Number.POSITIVE_INFINITY));
        await this.archive(file);
        backoff.reset();
        this.consecutiveFailures = 0;
        this.checkFailure = undefined;
      } catch (error) {
        if (error instanceof ArchiveError && error.code === 'ABORTED') {
          this.log('info', 'archiving interrupted by the shutdown; the file is kept and archived after the next start', { file: file.path });
          break;
        }
        const reason = this.countFailure(error);
        if (reason !== 'CONFLICT') {
          this.consecutiveFailures++;
          this.lastFailure = s3Reason(error);
        }
        if (reason === 'CONFLICT') {
          sweepFirst = false;
          this.conflicts.add(file.path);
          this.log('error', 'archive conflict: another object is at the key; the file is kept', { file: file.path, ...describeError(error) });
          continue;
        }
        sweepFirst = true;
        this.log('warn', 'archiving failed; will retry', { file: file.path, retryInMs: backoff.delayMs, ...describeError(error) });
        await backoff.wait(this.stopping.signal);
      }
      this.updateBacklog();
    }
  }

  private async archive(file: Queued): Promise<void> {
    const key = this.keyOf(file);
    const manifestPath = manifestPathOf(file.path);
    const manifest = readManifest(manifestPath);
    const metadata: Record<string, string> = { app: file.app, host: this.config.consumer, 'first-time': new Date(file.firstTime).toISOString() };
    if (manifest) {
      metadata.records = String(manifest.records);
      metadata.producers = String(manifest.producers.length);
      if (manifest.firstTime) metadata['first-time'] = manifest.firstTime;
      if (manifest.lastTime) metadata['last-time'] = manifest.lastTime;
    } else {
      this.log('warn', 'closed file has no readable manifest; archiving it without one', { file: file.path, manifest: manifestPath });
    }
    const result = await archiveFile(file.path, {
      client: this.client,
      bucket: this.config.s3.bucket,
      key,
      gzipLevel: this.config.s3.gzipLevel,
      partSize: this.config.s3.partSize,
      metadata,
      manifest: manifest ? { ...manifest, host: this.config.consumer } : undefined,
      signal: this.stopping.signal,
    });
    // Verified: only now may the local copy go (the data file first: a manifest left alone is swept at the next scan).
    removeQuietly(file.path);
    removeQuietly(manifestPath);
    syncDirectory(dirname(file.path));
    this.queue.splice(this.queue.indexOf(file), 1);
    this.queuedBytes -= file.bytes;
    this.metrics.archiveUploads.inc({ status: result.status });
    this.metrics.archiveBytesIn.inc(result.bytes);
    this.metrics.archiveBytesOut.inc(result.compressedBytes);
    if (result.compressedBytes > 0) this.metrics.archiveCompressionRatio.set(result.bytes / result.compressedBytes);
    this.metrics.archiveLastSuccess.set(Date.now() / 1000);
    this.log('info', 'archived', { file: file.path, key, status: result.status, bytes: result.bytes, compressedBytes: result.compressedBytes });
  }

  /** Counts a failed attempt under its reason (an ArchiveError code, or INTERNAL) and returns the reason. */
  private countFailure(error: unknown): ArchiveFailureReason {
    const reason = error instanceof ArchiveError ? error.code : 'INTERNAL';
    this.metrics.archiveFailures.inc({ reason });
    return reason;
  }

  private updateBacklog(): void {
    this.metrics.archiveBacklogFiles.set(this.queue.length);
    this.metrics.archiveBacklogBytes.set(this.backlogBytes);
    this.metrics.archiveBacklogOldestSeconds.set(this.oldestAgeSeconds);
  }
}

/**
 * `S3: <S3's error code>: <message>` for an S3 failure, however deep the SDK's error sits (an
 * ArchiveError keeps it as its cause); the HTTP status where S3 sent no code (a HEAD has no body).
 */
export function s3Reason(error: unknown): string {
  let sdk: unknown = error;
  while (sdk instanceof ArchiveError && sdk.cause !== undefined) sdk = sdk.cause;
  if (!(sdk instanceof Error)) return `S3: ${String(sdk)}`;
  const status = (sdk as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const code = (sdk as { Code?: string }).Code ?? (sdk.name !== 'Error' && sdk.name !== 'UnknownError' ? sdk.name : undefined) ?? (sdk as NodeJS.ErrnoException).code;
  const what = code ?? (status !== undefined ? `HTTP ${status}` : 'error');
  return `S3: ${what}: ${sdk.message}`;
}

/** Unlinks a file; one already gone (another run archived it meanwhile) is fine, any other error throws. */
function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
