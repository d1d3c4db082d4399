/** Codes of the archiver's errors (ABORTED: the caller's AbortSignal stopped it). */
export type ArchiveErrorCode = 'UPLOAD_FAILED' | 'VERIFY_FAILED' | 'CONFLICT' | 'READ_FAILED' | 'ABORTED';

/** An archive attempt failed; the local file is untouched. */
export class ArchiveError extends Error {
  readonly code: ArchiveErrorCode;
  readonly bucket: string;
  readonly key: string;
  readonly file: string;
  constructor(code: ArchiveErrorCode, message: string, context: { bucket: string; key: string; file: string; cause?: unknown }) {
    super(`${message} (file ${context.file} -> s3://${context.bucket}/${context.key})`, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'ArchiveError';
    this.code = code;
    this.bucket = context.bucket;
    this.key = context.key;
    this.file = context.file;
  }
}
