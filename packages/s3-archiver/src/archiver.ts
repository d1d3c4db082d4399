import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createGzip } from 'node:zlib';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
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
  /** Object metadata (S3 limits all metadata to 2 KB). */
  metadata?: Record<string, string>;
}

export interface ArchiveResult {
  bucket: string;
  key: string;
  /** Size of the local file. */
  bytes: number;
  /** Size of the gzip object in S3, as confirmed by HeadObject. */
  compressedBytes: number;
}

/**
 * Streams a closed log file through gzip into S3 (multipart for large files, memory bounded by
 * partSize x queueSize), then confirms with HeadObject that the object exists with the size
 * that was sent. It never deletes or changes the local file: the caller deletes it after this
 * resolves. Throws ArchiveError; a failed multipart upload is aborted, leaving no parts behind.
 */
export async function archiveFile(file: string, options: ArchiveOptions): Promise<ArchiveResult> {
  const { client, bucket, key } = options;
  const context = { bucket, key, file };
  let bytes: number;
  try {
    bytes = (await stat(file)).size;
  } catch (cause) {
    throw new ArchiveError('READ_FAILED', 'cannot read the file to archive', { ...context, cause });
  }
  let compressedBytes = 0;
  const gzip = createGzip({ level: options.gzipLevel ?? 6 });
  gzip.on('data', (chunk: Buffer) => {
    compressedBytes += chunk.length;
  });
  const source = createReadStream(file);
  source.on('error', (error) => gzip.destroy(error));
  source.pipe(gzip);
  const upload = new Upload({
    client,
    params: { Bucket: bucket, Key: key, Body: gzip, ContentType: 'application/x-ndjson', ContentEncoding: 'gzip', Metadata: options.metadata },
    partSize: options.partSize ?? 8 * 1024 * 1024,
    queueSize: options.queueSize ?? 4,
    leavePartsOnError: false,
  });
  try {
    await upload.done();
  } catch (cause) {
    source.destroy();
    throw new ArchiveError('UPLOAD_FAILED', 'upload failed', { ...context, cause });
  }
  let head;
  try {
    head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (cause) {
    throw new ArchiveError('VERIFY_FAILED', 'uploaded object cannot be found', { ...context, cause });
  }
  if (head.ContentLength !== compressedBytes) {
    throw new ArchiveError('VERIFY_FAILED', `object holds ${head.ContentLength} bytes, ${compressedBytes} were sent`, context);
  }
  return { bucket, key, bytes, compressedBytes };
}
