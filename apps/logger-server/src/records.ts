import {
  BadSignatureError,
  DEFAULT_LIMITS,
  ProtocolError,
  RecordTooLargeError,
  decodeFrame,
  decodeRecord,
  decodeUtf8,
  isFrame,
  isLevel,
  isValidName,
  type DeadLetterReason,
  type DecodedFrame,
  type LogRecord,
  type SigningKeys,
} from '@log/protocol';
import { SPLICE_RESERVED } from './format';

/** A payload or record that cannot be stored: it goes to the dead-letter stream with the reason. */
export interface Rejected {
  /** Why, as a stable code (see DeadLetterReason of @log/protocol). */
  reason: DeadLetterReason;
  detail: string;
  /** The offending bytes (the whole payload, or the one record line). */
  payload: Buffer | undefined;
  /** The record's sequence number when it is one record of a frame: it counts as dead-lettered, not missing. */
  seq?: number;
}

/** Everything a frame or message yields: the records to store, what to dead-letter, drops the producer reported. */
export interface Decoded {
  /** All of one app: a frame's records carry its header's app, a legacy message yields one record. */
  records: LogRecord[];
  rejected: Rejected[];
  /** The frame's header, when the payload was one of our frames. */
  header: DecodedFrame['header'] | undefined;
}

/** A decoding error as a rejection: its code as the reason. */
export function rejection(error: unknown, payload: Buffer | undefined): Rejected {
  if (error instanceof ProtocolError) return { reason: error.code, detail: error.message, payload };
  return { reason: 'INTERNAL', detail: String(error), payload };
}

/**
 * Decodes one of our frames; a bad record is rejected alone, the good ones around it are kept.
 * With `keys` (LOG_SIGNING_KEYS), a frame not signed by a key of its app is rejected whole
 * (BAD_SIGNATURE), attributed to no producer: its header is not to be believed.
 */
export function decodeFramePayload(payload: Buffer, entryId: string, keys?: SigningKeys): Decoded {
  const decoded: Decoded = { records: [], rejected: [], header: undefined };
  let frame: DecodedFrame;
  try {
    frame = decodeFrame(payload, { entryId, keys });
  } catch (error) {
    decoded.rejected.push(rejection(error, payload));
    return decoded;
  }
  decoded.header = frame.header;
  const options = { entryId, spliceFields: SPLICE_RESERVED, receivedAt: Date.now() };
  for (let i = 0; i < frame.lines.length; i++) {
    try {
      decoded.records.push(decodeRecord(frame, i, options));
    } catch (error) {
      const line = frame.lines[i] ?? '';
      // A line that is not UTF-8 is still bytes: dead-lettered exactly as it came.
      decoded.rejected.push({ ...rejection(error, typeof line === 'string' ? Buffer.from(line, 'utf8') : Buffer.from(line)), seq: frame.header.seq + i });
    }
  }
  return decoded;
}

export const LEGACY_APP = 'legacy';

/**
 * A Pub/Sub message: one of our frames, or anything an existing publisher sends. A JSON object
 * keeps its keys as fields (message from `message` or `msg`, app from `app` when it is a valid
 * name); any other text becomes a record whose message is the text and whose app is `legacy`.
 * With `keys`, frames must be signed and plain messages are rejected (BAD_SIGNATURE).
 */
export function decodePubSubMessage(payload: Buffer, receivedAt: number, host: string, legacyProducer: string, legacySeq: () => number, keys?: SigningKeys): Decoded {
  if (isFrame(payload)) return decodeFramePayload(payload, 'pubsub', keys);
  // Text from existing publishers carries no signature: with keys, only signed frames are written.
  if (keys !== undefined)
    return {
      records: [],
      rejected: [rejection(new BadSignatureError('a plain Pub/Sub message (not a signed frame)', { entryId: 'pubsub' }), payload.subarray(0, DEFAULT_LIMITS.maxRecordBytes))],
      header: undefined,
    };
  if (payload.length > DEFAULT_LIMITS.maxRecordBytes) {
    const error = new RecordTooLargeError(payload.length, DEFAULT_LIMITS.maxRecordBytes, { entryId: 'pubsub' });
    return { records: [], rejected: [rejection(error, payload.subarray(0, 1024))], header: undefined };
  }
  let text: string;
  try {
    text = decodeUtf8(payload, { entryId: 'pubsub' });
  } catch (error) {
    return { records: [], rejected: [rejection(error, payload)], header: undefined };
  }
  const record: LogRecord = {
    time: receivedAt,
    level: 'info',
    message: text,
    app: LEGACY_APP,
    host,
    pid: 0,
    producer: legacyProducer,
    seq: legacySeq(),
  };
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        const fields: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(parsed)) {
          if (key === '__proto__') continue;
          fields[key] = value;
        }
        const message = fields.message ?? fields.msg;
        if (typeof message === 'string') {
          record.message = message;
          delete fields.message;
          delete fields.msg;
        } else record.message = '';
        if (isValidName(fields.app)) {
          record.app = fields.app;
          delete fields.app;
        }
        if (isLevel(fields.level)) {
          record.level = fields.level;
          delete fields.level;
        }
        record.fields = fields;
      }
    } catch {
      // not JSON after all: kept as plain text
    }
  }
  return { records: [record], rejected: [], header: undefined };
}
