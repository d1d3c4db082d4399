import type { Level } from './levels';

/** An Error as it travels: enough to print it and to follow its `cause` chain. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  code?: string | number;
  cause?: SerializedError | string;
  [key: string]: unknown;
}

/** Caller-supplied structured fields of a record. Values are JSON values. */
export type Fields = Record<string, unknown>;

/** One record as it travels inside a frame (app, host, pid and producer live in the frame header). */
export interface WireRecord {
  /** Milliseconds since the Unix epoch, taken at the log call. */
  time: number;
  level: Level;
  /**
   * The producer's own name of the level, only when it has another (winston's verbose, http,
   * silly; a pino custom level): a valid name (see names.ts). Wire key `n`.
   */
  levelName?: string;
  message: string;
  fields?: Fields;
  error?: SerializedError;
}

/** A fully addressed record: what the server writes, one JSON line per record. */
export interface LogRecord extends WireRecord {
  app: string;
  host: string;
  pid: number;
  /** Random id of the publisher instance that produced the record. */
  producer: string;
  /** Per-producer sequence number: consecutive from 1, so gaps and duplicates are countable. */
  seq: number;
  /**
   * Only when the producer's time was not an integer inside [LIMITS.minTime, receive time +
   * LIMITS.maxFutureMs]: that time, as sent; `time` is then the receive time.
   */
  originalTime?: number;
  /**
   * Only from decodeRecord with `spliceFields`: the fields as validated JSON object text, in
   * place of `fields` (never both), for a writer that splices them into its own line. When it is
   * set, neither it nor `message` holds a raw DEL, C1 control, U+2028 or U+2029 (a record with
   * one takes the full path), so the spliced line needs no escapeUnsafeJson.
   */
  fieldsJson?: string;
}
