import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { crc32, createGzip } from 'node:zlib';
import { HeadObjectCommand, PutObjectCommand, type HeadObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ArchiveError } from './errors';

export interface ArchiveOptions {
  client: S3Client;
  bucket: string;
  key: string;
  /** gzip level 1 (fast) to 9 (small). @defaultValue 6 */
  gzipLevel?: number;
  /** Multipart part size in bytes (S3's minimum is 5 MiB). @defaultValue 8 MiB */
  partSize?: number;
  /** Parts uploaded at once; memory stays near partSize * queueSize. @defaultValue 4 */
  queueSize?: number;
  /** More object metadata (S3 limits all metadata to 2 KB); `sha256` and `raw-bytes` are always set. */
  metadata?: Record<string, string>;
  /**
   * Detail too long for metadata (per-producer sequence ranges, say): written after the object
   * is verified as JSON at manifestKey(key), with `object`, `sha256`, `rawBytes` and
   * `compressedBytes` added. Never overwritten either.
   */
  manifest?: Record<string, unknown>;
  /**
   * Stops the attempt (a shutdown, say): archiveFile rejects at once with ArchiveError ABORTED,
   * even while a request hangs on a frozen or partitioned connection. Its own requests are
   * cancelled; the upload's request, which lib-storage sends without a signal, is left to the
   * client to end (destroy() or its socket timeout). The local file is untouched. A multipart
   * upload already begun may stay open in S3 (its abort cannot be waited for); a later call
   * uploads the same key again.
   */
  signal?: AbortSignal;
}

export interface ArchiveResult {
  bucket: string;
  key: string;
  /** 'uploaded' now, or 'exists': the same content was already there (a crash after upload, before delete). */
  status: 'uploaded' | 'exists';
  /** Size of the local file. */
  bytes: number;
  /** Size of the gzip object in S3, as confirmed by HeadObject. */
  compressedBytes: number;
  /** SHA-256 (hex) of the local file's bytes, stored as object metadata `sha256`. */
  sha256: string;
  /** S3's own checksum of the object as HeadObject reported it (`CRC32 <base64>`, with `-<parts>` when composite), compared with the one computed while sending; undefined where the server keeps none. */
  s3Checksum: string | undefined;
  /** Key of the manifest object, when one was asked for. */
  manifestKey: string | undefined;
}

/** Where archiveFile puts a file's manifest: beside the object, `x.jsonl.gz` → `x.manifest.json`. */
export function manifestKey(key: string): string {
  return key.replace(/\.jsonl\.gz$/, '') + '.manifest.json';
}

// Large reads (1 MiB, not the default 64 KiB): fewer, bigger chunks for the hash and for gzip;
// in the archive benchmark this took archiveFile from about 110 to about 200 MB/s.
const READ_CHUNK = 1024 * 1024;

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The HTTP status of an S3 error (the SDK keeps it in $metadata), if it got that far. */
function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

async function head(client: S3Client, bucket: string, key: string, signal: AbortSignal | undefined): Promise<HeadObjectCommandOutput | undefined> {
  try {
    return await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }), { abortSignal: signal });
  } catch (error) {
    const status = httpStatus(error);
    if (status === 404 || (error as Error).name === 'NotFound' || (error as Error).name === 'NoSuchKey') return undefined;
    throw error;
  }
}

/**
 * Archives a closed log file: streams it through gzip into S3 (multipart for large files, memory
 * bounded by partSize x queueSize), then HeadObject must confirm the size that was sent and the
 * SHA-256 of the original bytes (object metadata). An object already at the key is never
 * overwritten: with the same SHA-256 it counts as done (`status: 'exists'`), with another it is a
 * CONFLICT. The request also carries If-None-Match: * where the server honours it.
 *
 * It never deletes or changes the local file: the caller deletes it after this resolves. Throws
 * ArchiveError; a failed multipart upload is aborted, leaving no parts behind. `options.signal`
 * stops it (ABORTED).
 */
export async function archiveFile(file: string, options: ArchiveOptions): Promise<ArchiveResult> {
  const { signal } = options;
  const context = { bucket: options.bucket, key: options.key, file };
  try {
    signal?.throwIfAborted();
    return await archiveOnce(file, options, context);
  } catch (cause) {
    // Whatever an abort made fail on the way (a request, the upload) is the abort: its cause is
    // what the abort raised, not the step's ArchiveError around it.
    if (!signal?.aborted) throw cause;
    throw new ArchiveError('ABORTED', 'archiving was aborted; the file is kept', { ...context, cause: cause instanceof ArchiveError ? cause.cause : cause });
  }
}

async function archiveOnce(file: string, options: ArchiveOptions, context: { bucket: string; key: string; file: string }): Promise<ArchiveResult> {
  const { client, bucket, key, signal } = options;
  let bytes: number;
  let sha256: string;
  try {
    bytes = (await stat(file)).size;
    sha256 = await sha256Of(file);
  } catch (cause) {
    throw new ArchiveError('READ_FAILED', 'cannot read the file to archive', { ...context, cause });
  }
  let existing;
  try {
    existing = await head(client, bucket, key, signal);
  } catch (cause) {
    throw new ArchiveError('UPLOAD_FAILED', 'cannot check whether the object exists', { ...context, cause });
  }
  if (existing) {
    if (existing.Metadata?.sha256 === sha256) {
      const result: ArchiveResult = {
        bucket,
        key,
        status: 'exists',
        bytes,
        compressedBytes: existing.ContentLength ?? 0,
        sha256,
        s3Checksum: describeChecksum(existing),
        manifestKey: undefined,
      };
      if (options.manifest) result.manifestKey = await putManifest(options, result, context);
      return result;
    }
    throw new ArchiveError('CONFLICT', `an object with other content (sha256 ${existing.Metadata?.sha256 ?? 'unknown'}) is already at the key`, context);
  }

  const partSize = options.partSize ?? 8 * 1024 * 1024;
  // CRC32 of what is sent, whole and per part (lib-storage cuts parts of exactly partSize), to
  // compare with the checksum S3 computed on receipt: full-object or composite.
  const crc = new SentChecksum(partSize);
  const gzip = createGzip({ level: options.gzipLevel ?? 6 });
  gzip.on('data', (chunk: Buffer) => crc.update(chunk));
  const source = createReadStream(file, { highWaterMark: READ_CHUNK });
  source.on('error', (error) => gzip.destroy(error));
  source.pipe(gzip);
  const upload = new Upload({
    client,
    params: {
      Bucket: bucket,
      Key: key,
      Body: gzip,
      ContentType: 'application/x-ndjson',
      ContentEncoding: 'gzip',
      IfNoneMatch: '*',
      ChecksumAlgorithm: 'CRC32',
      Metadata: { ...options.metadata, sha256, 'raw-bytes': String(bytes) },
    },
    partSize,
    queueSize: options.queueSize ?? 4,
    leavePartsOnError: false,
  });
  // lib-storage gives its own requests no signal: Upload.abort() makes done() reject at once, and
  // the request left hanging ends with the client (or its socket timeout).
  const abortUpload = () => void upload.abort();
  signal?.addEventListener('abort', abortUpload, { once: true });
  try {
    signal?.throwIfAborted(); // aborted before the listener was there
    await upload.done();
  } catch (cause) {
    source.destroy();
    if (httpStatus(cause) === 412) throw new ArchiveError('CONFLICT', 'an object appeared at the key during the upload', { ...context, cause });
    throw new ArchiveError('UPLOAD_FAILED', 'upload failed', { ...context, cause });
  } finally {
    signal?.removeEventListener('abort', abortUpload);
  }
  let uploaded;
  try {
    uploaded = await head(client, bucket, key, signal);
  } catch (cause) {
    throw new ArchiveError('VERIFY_FAILED', 'cannot read back the uploaded object', { ...context, cause });
  }
  if (!uploaded) throw new ArchiveError('VERIFY_FAILED', 'uploaded object cannot be found', context);
  const compressedBytes = crc.bytes;
  if (uploaded.ContentLength !== compressedBytes) {
    throw new ArchiveError('VERIFY_FAILED', `object holds ${uploaded.ContentLength} bytes, ${compressedBytes} were sent`, context);
  }
  if (uploaded.Metadata?.sha256 !== sha256) {
    throw new ArchiveError('VERIFY_FAILED', `object's sha256 metadata is ${uploaded.Metadata?.sha256 ?? 'missing'}, expected ${sha256}`, context);
  }
  const mismatch = crc.mismatch(uploaded);
  if (mismatch) throw new ArchiveError('VERIFY_FAILED', mismatch, context);
  const result: ArchiveResult = { bucket, key, status: 'uploaded', bytes, compressedBytes, sha256, s3Checksum: describeChecksum(uploaded), manifestKey: undefined };
  if (options.manifest) result.manifestKey = await putManifest(options, result, context);
  return result;
}

/** Writes the manifest beside a verified object; one already there for the same data counts as done. */
async function putManifest(options: ArchiveOptions, result: ArchiveResult, context: { bucket: string; key: string; file: string }): Promise<string> {
  const key = manifestKey(result.key);
  const where = { ...context, key };
  try {
    const existing = await head(options.client, options.bucket, key, options.signal);
    if (existing) {
      if (existing.Metadata?.['data-sha256'] === result.sha256) return key;
      throw new ArchiveError('CONFLICT', `a manifest for other data (sha256 ${existing.Metadata?.['data-sha256'] ?? 'unknown'}) is already at the key`, where);
    }
    const body = JSON.stringify({ ...options.manifest, object: result.key, sha256: result.sha256, rawBytes: result.bytes, compressedBytes: result.compressedBytes });
    await options.client.send(
      new PutObjectCommand({
        Bucket: options.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/json',
        IfNoneMatch: '*',
        ChecksumAlgorithm: 'CRC32',
        Metadata: { 'data-sha256': result.sha256 },
      }),
      { abortSignal: options.signal },
    );
    return key;
  } catch (cause) {
    if (cause instanceof ArchiveError) throw cause;
    if (httpStatus(cause) === 412) throw new ArchiveError('CONFLICT', 'a manifest appeared at the key during the upload', { ...where, cause });
    throw new ArchiveError('UPLOAD_FAILED', 'manifest upload failed', { ...where, cause });
  }
}

function describeChecksum(head: HeadObjectCommandOutput): string | undefined {
  return head.ChecksumCRC32 === undefined ? undefined : `CRC32 ${head.ChecksumCRC32}`;
}

/** CRC32 of the bytes sent, as S3 reports it: of the whole object, or of the parts' CRC32s ("composite", with a -N suffix). */
class SentChecksum {
  bytes = 0;
  private whole = 0;
  private part = 0;
  private partBytes = 0;
  private readonly partCrcs: Buffer[] = [];

  constructor(private readonly partSize: number) {}

  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.whole = crc32(chunk, this.whole);
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(chunk.length - offset, this.partSize - this.partBytes);
      this.part = crc32(chunk.subarray(offset, offset + take), this.part);
      this.partBytes += take;
      offset += take;
      if (this.partBytes === this.partSize) this.endPart();
    }
  }

  private endPart(): void {
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(this.part >>> 0);
    this.partCrcs.push(crc);
    this.part = 0;
    this.partBytes = 0;
  }

  /**
   * Why the object's checksum disagrees with what was sent, or undefined (also when S3 reports
   * none). S3 reports the CRC32 of the whole object or, for a composite multipart checksum, the
   * CRC32 of the parts' CRC32s with a `-<parts>` suffix (moto leaves the suffix off).
   */
  mismatch(head: HeadObjectCommandOutput): string | undefined {
    const reported = head.ChecksumCRC32;
    if (reported === undefined) return undefined;
    if (this.partBytes > 0 || this.partCrcs.length === 0) this.endPart();
    const whole = toBase64(this.whole);
    const composite = toBase64(crc32(Buffer.concat(this.partCrcs)));
    const accepted = [whole, composite, `${composite}-${this.partCrcs.length}`];
    return accepted.includes(reported) ? undefined : `object's CRC32 is ${reported}, the bytes sent have ${whole} (whole) or ${accepted[2]} (composite)`;
  }
}

function toBase64(crc: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(crc >>> 0);
  return bytes.toString('base64');
}
