import { isAscii, isUtf8 } from 'node:buffer';
import {
  BadSignatureError,
  FrameFormatError,
  FrameTooLargeError,
  InvalidUtf8Error,
  ProtocolError,
  RecordInvalidError,
  RecordTooLargeError,
  UnsupportedVersionError,
  type ProtocolErrorContext,
} from './errors';
import { LEVELS, isLevel, type Level } from './levels';
import { escapeUnsafeJson, quote } from './escape';
import { LIMITS, type Limits } from './limits';
import { assertValidName, nameProblem } from './names';
import type { LogRecord, WireRecord } from './record';
import { SCANNED_LEVELS, scanCanonicalBytes } from './scan';
import { isSigned, verifySignature, withoutSignature, type SigningKey, type SigningKeys } from './signing';

/**
 * Frame layout (version 1), one Redis stream entry field or one Pub/Sub message:
 *
 *     @log1 {"p":"<producer>","s":<first seq>,"n":<count>,"a":"<app>","h":"<host>","i":<pid>,"d":<dropped>}\n
 *     {"t":<ms>,"l":"<level>","n":"<level name>","m":"<message>","f":{...},"e":{...}}\n
 *     ... exactly <count> record lines ...
 *
 * Record i has sequence number s + i, so every record stays addressable for dedup and gap
 * counting. `d` is how many records the producer dropped (buffer full, oversize) since its
 * previous frame: a gap the producer knows about. JSON never holds a raw newline, so '\n'
 * separates records safely.
 */
export const FRAME_MAGIC = '@log1 ';

/** Header of a frame: who produced the records and which sequence numbers they carry. */
export interface FrameHeader {
  producer: string;
  /** Sequence number of the first record in the frame: at least 1, and seq + count - 1 is a safe integer. */
  seq: number;
  /** Number of records in the frame: exactly its record lines. */
  count: number;
  app: string;
  host: string;
  /** At most LIMITS.maxPid. */
  pid: number;
  /** Records the producer dropped since its previous frame, at most LIMITS.maxDropped. */
  dropped: number;
}

/** @deprecated the same object as LIMITS, kept for callers written before it. */
export const DEFAULT_LIMITS = LIMITS;

function withDefaults(limits: Partial<Limits> | undefined): Limits {
  return limits === undefined ? LIMITS : { ...LIMITS, ...limits };
}

/** A frame whose header is valid; its records are decoded one by one with decodeRecord. */
export interface DecodedFrame {
  header: FrameHeader;
  /**
   * The raw record lines, `header.count` of them. A line that is not valid UTF-8 is kept as its
   * bytes (decodeRecord refuses it with INVALID_UTF8; its neighbours decode as usual).
   */
  lines: Array<string | Uint8Array>;
}

export function encodeFrameHeader(header: FrameHeader): string {
  // One key and its value a line, as the header reads on the wire.
  // prettier-ignore
  return (
    FRAME_MAGIC +
    '{"p":' + JSON.stringify(header.producer) +
    ',"s":' + header.seq +
    ',"n":' + header.count +
    ',"a":' + JSON.stringify(header.app) +
    ',"h":' + JSON.stringify(header.host) +
    ',"i":' + header.pid +
    ',"d":' + header.dropped +
    '}'
  );
}

/** Encodes one record line. The publisher builds the same line by concatenation on its hot path. */
export function encodeRecord(record: WireRecord): string {
  let line = '{"t":' + record.time + ',"l":"' + record.level + '"';
  if (record.levelName !== undefined) line += ',"n":' + JSON.stringify(record.levelName);
  line += ',"m":' + JSON.stringify(record.message);
  if (record.fields !== undefined) line += ',"f":' + JSON.stringify(record.fields);
  if (record.error !== undefined) line += ',"e":' + JSON.stringify(record.error);
  return line + '}';
}

/** Joins a header and record lines into a frame. `header.count` must equal `lines.length`. */
export function encodeFrame(header: FrameHeader, lines: readonly string[]): string {
  if (header.count !== lines.length) {
    throw new FrameFormatError(`header count ${header.count} but ${lines.length} lines`);
  }
  return lines.length === 0 ? encodeFrameHeader(header) : encodeFrameHeader(header) + '\n' + lines.join('\n');
}

// ignoreBOM keeps a leading U+FEFF: stripping it would make a line decoded on its own (see
// splitUtf8Lines) differ from the same line decoded inside its whole frame.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** True when the payload starts with the frame magic or a signature line (as opposed to a legacy Pub/Sub message). */
export function isFrame(data: string | Uint8Array): boolean {
  if (isSigned(data)) return true;
  if (typeof data === 'string') return data.startsWith(FRAME_MAGIC);
  if (data.length < FRAME_MAGIC.length) return false;
  for (let i = 0; i < FRAME_MAGIC.length; i++) if (data[i] !== FRAME_MAGIC.charCodeAt(i)) return false;
  return true;
}

export interface DecodeFrameOptions {
  limits?: Partial<Limits>;
  entryId?: string;
  /**
   * When given, the frame must be signed by one of these keys, for its header's app
   * (BadSignatureError otherwise). Without, a signature line is skipped unchecked.
   */
  keys?: SigningKeys;
}

/** Decodes bytes from Redis into text, refusing invalid UTF-8 instead of replacing it. */
export function decodeUtf8(data: Uint8Array, context?: ProtocolErrorContext): string {
  try {
    return utf8.decode(data);
  } catch (cause) {
    throw new InvalidUtf8Error({ ...context, cause });
  }
}

/**
 * Decodes a frame's header and splits its record lines (after checking its signature, with `keys`).
 * Never throws anything but a ProtocolError, whatever the input.
 */
export function decodeFrame(data: string | Uint8Array, options: DecodeFrameOptions = {}): DecodedFrame {
  const limits = withDefaults(options.limits);
  const context = options.entryId === undefined ? {} : { entryId: options.entryId };
  const bytes = typeof data === 'string' ? byteLengthAtLeast(data, limits.maxFrameBytes) : data.length;
  if (bytes > limits.maxFrameBytes) throw new FrameTooLargeError(bytes, limits.maxFrameBytes, context);
  let signer: SigningKey | undefined;
  if (options.keys === undefined) data = withoutSignature(data);
  else ({ frame: data, key: signer } = verifySignature(data, options.keys, context));
  const lines = typeof data === 'string' ? data.split('\n') : isUtf8(data) ? splitValidLines(data) : splitUtf8Lines(data);
  const head = lines.shift() as string | Uint8Array; // a split always yields at least one element
  // Bad bytes in the header leave no one to attribute the records to: the whole frame goes.
  const headerText = typeof head === 'string' ? head : decodeUtf8(head, context);
  if (!headerText.startsWith(FRAME_MAGIC)) {
    if (headerText.startsWith('@log')) throw new UnsupportedVersionError(headerText.slice(4, headerText.indexOf(' ')), context);
    throw new FrameFormatError('missing frame magic', context);
  }
  const header = parseHeader(headerText.slice(FRAME_MAGIC.length), limits, context);
  // A key signs for one app: a leaked or shared key of shop cannot add records of billing.
  if (signer !== undefined && signer.app !== header.app) throw new BadSignatureError(`key ${signer.id} signs for app ${signer.app ?? '?'}, not ${header.app}`, context);
  if (lines.length !== header.count) {
    throw new FrameFormatError(`header announces ${header.count} records, frame holds ${lines.length}`, context);
  }
  return { header, lines };
}

/** Bytes decoded per toString call: a string this size is made in the young generation, a frame-sized one (~1 MiB) would not be. */
const DECODE_CHUNK = 64 * 1024;

/**
 * The lines of a payload that is valid UTF-8, decoded a chunk of whole lines at a time. One string
 * of the whole frame would be about ten times slower: V8 makes a string that large in its
 * large-object space, and splitting it keeps it alive through every line. ASCII (the usual case)
 * decodes as latin1, byte for character. Same lines as decoding the whole and splitting it.
 */
function splitValidLines(data: Uint8Array): string[] {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const encoding = isAscii(bytes) ? 'latin1' : 'utf8';
  const length = bytes.length;
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    let end = length;
    if (length - start > DECODE_CHUNK) {
      end = bytes.lastIndexOf(0x0a, start + DECODE_CHUNK);
      if (end < start) end = bytes.indexOf(0x0a, start + DECODE_CHUNK);
      if (end === -1) end = length;
    }
    const parts = bytes.toString(encoding, start, end).split('\n');
    for (let i = 0; i < parts.length; i++) lines.push(parts[i] as string);
    if (end >= length) return lines;
    start = end + 1;
  }
}

function utf8OrUndefined(data: Uint8Array): string | undefined {
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}

/**
 * The lines of a payload that is not valid UTF-8 as a whole, each decoded on its own; a line
 * that is not valid UTF-8 stays bytes, for decodeRecord to refuse alone. Splitting the bytes is
 * safe: '\n' (0x0A) never occurs inside a multi-byte UTF-8 sequence.
 */
function splitUtf8Lines(data: Uint8Array): Array<string | Uint8Array> {
  const lines: Array<string | Uint8Array> = [];
  let start = 0;
  for (;;) {
    const end = data.indexOf(0x0a, start);
    const bytes = data.subarray(start, end === -1 ? data.length : end);
    lines.push(utf8OrUndefined(bytes) ?? bytes);
    if (end === -1) return lines;
    start = end + 1;
  }
}

function parseHeader(text: string, limits: Limits, context: ProtocolErrorContext): FrameHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new FrameFormatError('header is not JSON', { ...context, cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new FrameFormatError('header is not an object', context);
  }
  const h = raw as Record<string, unknown>;
  for (const key of Object.keys(h)) {
    if (!HEADER_KEYS.has(key)) throw new FrameFormatError(`unknown header key ${quote(key.slice(0, 40))}`, context);
  }
  try {
    const count = requireInteger(h.n, 'count', 0, Number.MAX_SAFE_INTEGER, context);
    const seq = requireInteger(h.s, 'seq', 1, Number.MAX_SAFE_INTEGER, context);
    // Record i has seq s + i: the last one must stay an exact integer, or two records would
    // share a number (and a gap counter would jump by 9e15).
    if (count > 0 && seq > Number.MAX_SAFE_INTEGER - (count - 1)) {
      throw new FrameFormatError(`header seq ${seq} + count ${count} runs past 2^53 - 1`, context);
    }
    return {
      producer: assertValidName('producer', h.p, context),
      seq,
      count,
      app: assertValidName('app', h.a, context),
      host: assertValidName('host', h.h, context),
      pid: requireInteger(h.i, 'pid', 0, limits.maxPid, context),
      dropped: requireInteger(h.d, 'dropped', 0, limits.maxDropped, context),
    };
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    throw new FrameFormatError('bad header', { ...context, cause: error });
  }
}

const HEADER_KEYS = new Set(['p', 's', 'n', 'a', 'h', 'i', 'd']);

function requireInteger(value: unknown, what: string, min: number, max: number, context: ProtocolErrorContext): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new FrameFormatError(`header ${what} must be an integer from ${min} to ${max}`, context);
  }
  return value;
}

const RECORD_KEYS = new Set(['t', 'l', 'n', 'm', 'f', 'e']);
/** String.prototype.isWellFormed (ES2024, in Node 20; not in this project's ES2022 lib): no lone surrogate. */
const isWellFormed = (text: string): boolean => (text as unknown as { isWellFormed(): boolean }).isWellFormed();

export interface DecodeRecordOptions {
  limits?: Partial<Limits>;
  entryId?: string;
  /**
   * For a writer on a hot path: a record line in the publisher's canonical shape is validated
   * without building its fields, which come back as JSON text in `fieldsJson`. Top-level field
   * names in this map (from reservedKeyMap) make a line take the full path instead, so the
   * writer can still rename them. Any line the fast path is unsure of takes the full path,
   * with the same checks and errors.
   */
  spliceFields?: ReadonlyMap<number, readonly string[]>;
  /**
   * When the record arrived (ms since the epoch), default now: a record time outside
   * [LIMITS.minTime, receivedAt + LIMITS.maxFutureMs] is replaced by it (see LogRecord.originalTime).
   * A server decoding a frame passes one value for all its records.
   */
  receivedAt?: number;
}

/**
 * Decodes record `index` of a frame into a fully addressed record.
 * Never throws anything but a ProtocolError (RecordTooLargeError, RecordInvalidError, InvalidUtf8Error).
 */
export function decodeRecord(frame: DecodedFrame, index: number, options: DecodeRecordOptions = {}): LogRecord {
  const limits = withDefaults(options.limits);
  const line = frame.lines[index];
  const { header } = frame;
  // A string with a lone surrogate takes the full path: it would not survive the trip to UTF-8.
  if (options.spliceFields !== undefined && typeof line === 'string' && line.length * 3 <= limits.maxRecordBytes && isWellFormed(line)) {
    const bytes = Buffer.from(line, 'utf8');
    const fast = scanCanonicalBytes(bytes, 0, bytes.length, limits, options.spliceFields);
    const text = fast === undefined ? '' : bytes.toString('utf8', fast.messageStart, fast.messageEnd);
    const message = fast?.messageEscaped ? (JSON.parse(text) as string) : text.slice(1, -1);
    // An escape may stand for a character a line must not hold raw (\u2028): such a message takes
    // the full path, whose record the writer escapes whole (fieldsJson promises it need not).
    if (fast !== undefined && (!fast.messageEscaped || escapeUnsafeJson(message) === message)) {
      const record = addressed({ time: fast.time, level: SCANNED_LEVELS[fast.level] as Level, message }, header, index, limits, options.receivedAt);
      if (fast.fieldsStart !== -1) record.fieldsJson = bytes.toString('utf8', fast.fieldsStart, fast.fieldsEnd);
      return record;
    }
  }
  const context: ProtocolErrorContext = { recordIndex: index };
  if (options.entryId !== undefined) context.entryId = options.entryId;
  if (line === undefined) throw new RecordInvalidError(`no record at index ${index}`, context);
  const wire = parseWireRecord(typeof line === 'string' ? line : decodeUtf8(line, context), limits, context);
  const record = addressed(wire, header, index, limits, options.receivedAt);
  if (wire.levelName !== undefined) record.levelName = wire.levelName;
  if (wire.fields !== undefined) record.fields = wire.fields;
  if (wire.error !== undefined) record.error = wire.error;
  return record;
}

function addressed(wire: { time: number; level: WireRecord['level']; message: string }, header: FrameHeader, index: number, limits: Limits, receivedAt = Date.now()): LogRecord {
  const record: LogRecord = {
    time: wire.time,
    level: wire.level,
    message: wire.message,
    app: header.app,
    host: header.host,
    pid: header.pid,
    producer: header.producer,
    seq: header.seq + index,
  };
  // A wrong clock or a hostile producer must not choose a file's name or its place in time
  // (closed files are named by their first record's time, and dates past year 275760 throw).
  const time = wire.time;
  if (!Number.isInteger(time) || time < limits.minTime || time > receivedAt + limits.maxFutureMs) {
    record.time = receivedAt;
    record.originalTime = time;
  }
  return record;
}

/** Parses and validates one record line. Exported for the server's single-record paths. */
export function parseWireRecord(line: string, limits: Limits, context: ProtocolErrorContext = {}): WireRecord {
  const bytes = byteLengthAtLeast(line, limits.maxRecordBytes);
  if (bytes > limits.maxRecordBytes) throw new RecordTooLargeError(bytes, limits.maxRecordBytes, context);
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (cause) {
    throw new RecordInvalidError('not JSON', { ...context, cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new RecordInvalidError('not a JSON object', context);
  }
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (!RECORD_KEYS.has(key)) throw new RecordInvalidError(`unknown key ${quote(key.slice(0, 40))}`, context);
  }
  const { t, l, n, m, f, e } = r;
  // Any number is taken: decodeRecord replaces one outside the accepted window, and keeps it.
  if (typeof t !== 'number') throw new RecordInvalidError('time (t) must be a number of milliseconds', context);
  if (!isLevel(l)) throw new RecordInvalidError(`level (l) must be one of ${LEVELS.join(', ')}`, context);
  if (typeof m !== 'string') throw new RecordInvalidError('message (m) must be a string', context);
  const record: WireRecord = { time: t, level: l, message: m };
  if (n !== undefined) {
    const problem = nameProblem(n);
    if (problem !== undefined) throw new RecordInvalidError(`level name (n) ${problem}`, context);
    record.levelName = n as string;
  }
  let keys = 0;
  if (f !== undefined) {
    if (!isPlainObject(f)) throw new RecordInvalidError('fields (f) must be an object', context);
    keys += checkShape(f, 1, limits, context);
    record.fields = f;
  }
  if (e !== undefined) {
    if (!isPlainObject(e) || typeof e.message !== 'string') {
      throw new RecordInvalidError('error (e) must be an object with a message', context);
    }
    keys += checkShape(e, 1, limits, context);
    record.error = e as unknown as WireRecord['error'];
  }
  if (keys > limits.maxKeys) throw new RecordInvalidError(`more than ${limits.maxKeys} keys`, context);
  return record;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Walks a parsed JSON value: refuses depth and `__proto__` keys, returns how many keys and elements it holds. */
function checkShape(value: object, depth: number, limits: Limits, context: ProtocolErrorContext): number {
  if (depth > limits.maxDepth) throw new RecordInvalidError(`nested deeper than ${limits.maxDepth}`, context);
  let count = 0;
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) {
      count++;
      if (typeof item === 'object' && item !== null) count += checkShape(item, depth + 1, limits, context);
      if (count > limits.maxKeys) break;
    }
    return count;
  }
  for (const key in value) {
    // JSON.parse makes `__proto__` an own key; copying it into an object later would change
    // that object's prototype, so it is refused here, once, for every consumer.
    if (key === '__proto__') throw new RecordInvalidError('key "__proto__" is not allowed', context);
    count++;
    const item = (value as Record<string, unknown>)[key];
    if (typeof item === 'object' && item !== null) count += checkShape(item, depth + 1, limits, context);
    if (count > limits.maxKeys) break;
  }
  return count;
}

/**
 * UTF-8 length of `text`, computed exactly only when it matters: a string of n UTF-16 units
 * takes between n and 3n bytes, so short strings are answered without scanning.
 */
export function byteLengthAtLeast(text: string, limit: number): number {
  if (text.length * 3 <= limit) return text.length;
  return Buffer.byteLength(text, 'utf8');
}

/**
 * A frame's header and where its record lines are, for a reader that works on the bytes: line i
 * is [starts[i], ends[i]) of the frame (without its newline). The arrays are reused by the next
 * call: read them before decoding another frame.
 */
export interface FrameLayout {
  header: FrameHeader;
  /** The frame without its signature line: the bytes `starts` and `ends` point into. */
  data: Buffer;
  starts: number[];
  ends: number[];
}

const layout: FrameLayout = { header: undefined as unknown as FrameHeader, data: Buffer.alloc(0), starts: [], ends: [] };

/**
 * decodeFrame without decoding the records: the same checks (size, header, count) and the same
 * errors, and the lines' places instead of their text. Returns undefined when the frame is not
 * valid UTF-8 as a whole: decodeFrame then tells which lines are bad, one by one.
 * Never throws anything but a ProtocolError.
 */
export function decodeFrameLayout(payload: Buffer, options: DecodeFrameOptions = {}): FrameLayout | undefined {
  const limits = withDefaults(options.limits);
  const context = options.entryId === undefined ? {} : { entryId: options.entryId };
  if (payload.length > limits.maxFrameBytes) throw new FrameTooLargeError(payload.length, limits.maxFrameBytes, context);
  let signer: SigningKey | undefined;
  let frame: Uint8Array = payload;
  if (options.keys === undefined) frame = withoutSignature(payload);
  else ({ frame, key: signer } = verifySignature(payload, options.keys, context));
  const data = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (!isUtf8(data)) return undefined;
  let newline = data.indexOf(0x0a);
  const headerText = data.toString('utf8', 0, newline === -1 ? data.length : newline);
  if (!headerText.startsWith(FRAME_MAGIC)) {
    if (headerText.startsWith('@log')) throw new UnsupportedVersionError(headerText.slice(4, headerText.indexOf(' ')), context);
    throw new FrameFormatError('missing frame magic', context);
  }
  const header = parseHeader(headerText.slice(FRAME_MAGIC.length), limits, context);
  if (signer !== undefined && signer.app !== header.app) throw new BadSignatureError(`key ${signer.id} signs for app ${signer.app ?? '?'}, not ${header.app}`, context);
  const { starts, ends } = layout;
  starts.length = 0;
  ends.length = 0;
  while (newline !== -1) {
    // more lines than announced: stop counting, the frame is refused below
    if (starts.length > header.count) break;
    const start = newline + 1;
    newline = data.indexOf(0x0a, start);
    starts.push(start);
    ends.push(newline === -1 ? data.length : newline);
  }
  if (starts.length !== header.count) {
    let held = starts.length;
    while (newline !== -1) {
      newline = data.indexOf(0x0a, newline + 1);
      held++;
    }
    throw new FrameFormatError(`header announces ${header.count} records, frame holds ${held}`, context);
  }
  layout.header = header;
  layout.data = data;
  return layout;
}
