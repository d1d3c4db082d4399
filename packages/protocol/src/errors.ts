import { quote } from './escape';

// Messages quote what came in cut short and escaped: they end up in dead letters and log lines,
// where a hostile name must not be a megabyte long or a terminal escape sequence.

/**
 * Every failure the protocol reports is a ProtocolError with a stable `code`.
 * Callers (the server's dead-letter path above all) branch on `code`, never on message text.
 */
export type ProtocolErrorCode = 'INVALID_NAME' | 'INVALID_UTF8' | 'FRAME_TOO_LARGE' | 'FRAME_FORMAT' | 'FRAME_VERSION' | 'RECORD_TOO_LARGE' | 'RECORD_INVALID' | 'BAD_SIGNATURE';

/**
 * Why an entry or record went to a channel's dead-letter stream (its `reason` field): a protocol
 * code when decoding refused it, or one of the server's: UNSAFE_PATH (its file cannot be opened
 * safely), MISSING_FRAME (an entry without a frame field), UNEXPECTED_FIELDS (fields beside the
 * frame), DELIVERY_LIMIT (delivered more than MAX_DELIVERIES times), INTERNAL (a bug: an error
 * that is none of these).
 */
export type DeadLetterReason = ProtocolErrorCode | 'UNSAFE_PATH' | 'MISSING_FRAME' | 'UNEXPECTED_FIELDS' | 'DELIVERY_LIMIT' | 'INTERNAL';

export interface ProtocolErrorContext {
  /** Redis stream entry id (or a description of the Pub/Sub message) the bytes came from. */
  entryId?: string;
  /** Index of the record inside its frame, when one record is at fault. */
  recordIndex?: number;
  cause?: unknown;
}

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly entryId: string | undefined;
  readonly recordIndex: number | undefined;

  constructor(code: ProtocolErrorCode, message: string, context: ProtocolErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.code = code;
    this.entryId = context.entryId;
    this.recordIndex = context.recordIndex;
  }
}

/** A name that would become a path segment or key (app, host, channel) is not acceptable. */
export class InvalidNameError extends ProtocolError {
  readonly kind: string;
  readonly value: string;
  constructor(kind: string, value: string, reason: string, context?: ProtocolErrorContext) {
    super('INVALID_NAME', `invalid ${kind} name ${quote(value.slice(0, 80))}: ${reason}`, context);
    this.kind = kind;
    this.value = value;
  }
}

/** The bytes are not valid UTF-8. */
export class InvalidUtf8Error extends ProtocolError {
  constructor(context?: ProtocolErrorContext) {
    super('INVALID_UTF8', 'payload is not valid UTF-8', context);
  }
}

/** A whole frame is larger than the configured maximum. */
export class FrameTooLargeError extends ProtocolError {
  readonly bytes: number;
  readonly limit: number;
  constructor(bytes: number, limit: number, context?: ProtocolErrorContext) {
    super('FRAME_TOO_LARGE', `frame of ${bytes} bytes exceeds the limit of ${limit} bytes`, context);
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** The frame's header or layout is broken: no magic, bad JSON, wrong record count. */
export class FrameFormatError extends ProtocolError {
  constructor(reason: string, context?: ProtocolErrorContext) {
    super('FRAME_FORMAT', `malformed frame: ${reason}`, context);
  }
}

/** The frame was written by a newer protocol version than this decoder knows. */
export class UnsupportedVersionError extends ProtocolError {
  readonly version: unknown;
  constructor(version: unknown, context?: ProtocolErrorContext) {
    super('FRAME_VERSION', `unsupported frame version ${quote(String(version).slice(0, 40))}`, context);
    this.version = version;
  }
}

/** One record inside a frame is larger than the configured maximum. */
export class RecordTooLargeError extends ProtocolError {
  readonly bytes: number;
  readonly limit: number;
  constructor(bytes: number, limit: number, context?: ProtocolErrorContext) {
    super('RECORD_TOO_LARGE', `record of ${bytes} bytes exceeds the limit of ${limit} bytes`, context);
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** One record is not a valid record: broken JSON, wrong types, too deep, too many keys, `__proto__`. */
export class RecordInvalidError extends ProtocolError {
  constructor(reason: string, context?: ProtocolErrorContext) {
    super('RECORD_INVALID', `invalid record: ${reason}`, context);
  }
}

/**
 * A server with signing keys refused a frame: unsigned (or not a frame at all), signed with a key
 * it does not know, a signature that does not match its bytes, or a key of another app.
 */
export class BadSignatureError extends ProtocolError {
  constructor(reason: string, context?: ProtocolErrorContext) {
    super('BAD_SIGNATURE', `bad signature: ${reason}`, context);
  }
}
