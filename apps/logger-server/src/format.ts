import { SCANNED_LEVELS, escapeUnsafeJson, reservedKeyMap, type FrameHeader, type LogRecord, type ScannedBytes } from '@log/protocol';

/**
 * Keys every line has (err only when the record carries an error, originalTime only when the
 * producer's time was outside the accepted window, levelName only when the producer named its
 * level otherwise). A field with one of these names is written as `fields.<name>`.
 */
export const OWN_KEYS: ReadonlySet<string> = new Set(['time', 'originalTime', 'level', 'levelName', 'app', 'host', 'pid', 'producer', 'seq', 'message', 'err']);
export const COLLISION_PREFIX = 'fields.';
/** OWN_KEYS for decodeRecord's spliceFields: fields named like them take the full decoding path and get renamed. */
export const SPLICE_RESERVED = reservedKeyMap(OWN_KEYS);

/**
 * One record as one JSON line, flat like pino and winston write: own keys first, then the
 * caller's fields. Every control character (C0, DEL, C1) and U+2028/U+2029 is escaped, so one
 * record is always exactly one line and no escape sequence reaches the file raw. app, host and
 * producer are validated names (no character needs escaping), so they are concatenated as is.
 */
export function formatLine(record: LogRecord): string {
  let line = '{"time":"' + isoTime(record.time) + '"';
  // JSON.stringify: a time that is not a finite number (1e400 parses as Infinity) is written null.
  if (record.originalTime !== undefined) line += ',"originalTime":' + JSON.stringify(record.originalTime);
  line += ',"level":"' + record.level;
  // A producer's own level name (winston's verbose): a validated name, nothing in it to escape.
  if (record.levelName !== undefined) line += '","levelName":"' + record.levelName;
  line +=
    '","app":"' + record.app + '","host":"' + record.host + '","pid":' + record.pid + ',"producer":"' + record.producer + '","seq":' + record.seq + ',"message":' + JSON.stringify(record.message);
  const fieldsJson = record.fieldsJson;
  // Fields the decoder validated without parsing (none is an own key): spliced in as they came.
  if (fieldsJson !== undefined && fieldsJson.length > 2) line += ',' + fieldsJson.slice(1, -1);
  const fields = record.fields;
  if (fields !== undefined) {
    let collides = false;
    for (const key in fields) {
      if (OWN_KEYS.has(key)) {
        collides = true;
        break;
      }
    }
    if (!collides) {
      // The common case: one stringify for all fields, spliced in without its braces.
      const json = JSON.stringify(fields);
      if (json.length > 2) line += ',' + json.slice(1, -1);
    } else {
      for (const key in fields) {
        const value = JSON.stringify(fields[key]);
        if (value === undefined) continue;
        line += ',' + JSON.stringify(OWN_KEYS.has(key) ? COLLISION_PREFIX + key : key) + ':' + value;
      }
    }
  }
  if (record.error !== undefined) line += ',"err":' + JSON.stringify(record.error);
  // JSON.stringify leaves DEL, C1 controls, U+2028 and U+2029 raw. A record with spliced fields
  // has none (the decoder's scanner leaves such records to the full path): the hot path skips
  // the check, which costs more than formatting an ASCII line (and twice that for other text).
  return (fieldsJson === undefined ? escapeUnsafeJson(line) : line) + '}\n';
}

// Records of one frame mostly share their millisecond: the last conversion is reused.
let lastMs = -1;
let lastIso = '';

function isoTime(ms: number): string {
  if (ms === lastMs) return lastIso;
  // The decoder keeps times inside its window; a record built elsewhere must still not throw
  // (toISOString throws RangeError past year 275760).
  const date = new Date(ms);
  lastIso = Number.isNaN(date.getTime()) ? new Date(0).toISOString() : date.toISOString();
  lastMs = ms;
  return lastIso;
}

const TIME_KEY = Buffer.from('{"time":"', 'latin1');
const MESSAGE_KEY = Buffer.from(',"message":', 'latin1');
/** Longest ISO time (a six-digit year) plus the longest decimal seq and the newline. */
const VARIABLE_BYTES = 27 + 16 + 1;

let lastIsoMs = -1;
let lastIsoBytes = Buffer.alloc(0);

/**
 * formatLine for a record the byte scanner accepted (scanCanonicalBytes), encoded in place: the
 * same line, with the message and the fields' bytes copied from the frame as they came (a
 * message with escapes keeps them: it parses to the same string, and an escaped U+2028 stays
 * escaped). One per origin; the part of the line that is the same for every record of its frames
 * is encoded once.
 */
export class LineEncoder {
  /** Per level: `","level":"<level>","app":"<app>","host":"<host>","pid":<pid>,"producer":"<producer>","seq":` */
  private readonly middles: Buffer[];

  readonly pid: number;

  constructor(header: Pick<FrameHeader, 'app' | 'host' | 'pid' | 'producer'>) {
    this.pid = header.pid;
    const middle = '","app":"' + header.app + '","host":"' + header.host + '","pid":' + header.pid + ',"producer":"' + header.producer + '","seq":';
    this.middles = SCANNED_LEVELS.map((level) => Buffer.from('","level":"' + level + middle, 'latin1'));
  }

  /** Most bytes encode() writes for this scanned line. */
  size(scanned: ScannedBytes): number {
    return (
      TIME_KEY.length +
      (this.middles[scanned.level] as Buffer).length +
      MESSAGE_KEY.length +
      (scanned.messageEnd - scanned.messageStart) +
      (scanned.fieldsEnd - scanned.fieldsStart) +
      2 +
      VARIABLE_BYTES
    );
  }

  /** Writes the line (with its newline) into `target` from `at`; returns where it ends. `time` must be one formatLine keeps (inside the decoder's window). */
  encode(target: Buffer, at: number, data: Buffer, scanned: ScannedBytes, seq: number): number {
    at = put(target, at, TIME_KEY);
    if (scanned.time !== lastIsoMs) {
      lastIsoBytes = Buffer.from(new Date(scanned.time).toISOString(), 'latin1');
      lastIsoMs = scanned.time;
    }
    at = put(target, at, lastIsoBytes);
    at = put(target, at, this.middles[scanned.level] as Buffer);
    at = putInteger(target, at, seq);
    at = put(target, at, MESSAGE_KEY);
    at = copyRange(target, at, data, scanned.messageStart, scanned.messageEnd);
    if (scanned.fieldsEnd - scanned.fieldsStart > 2) {
      target[at++] = 44; // ,
      // the fields without their opening brace: their closing brace closes the line
      at = copyRange(target, at, data, scanned.fieldsStart + 1, scanned.fieldsEnd);
    } else target[at++] = 125; // }
    target[at++] = 10;
    return at;
  }
}

/** Copies a constant: a byte loop when short, cheaper than a native call for a few dozen bytes. */
function put(target: Buffer, at: number, bytes: Buffer): number {
  const n = bytes.length;
  if (n > 32) target.set(bytes, at);
  else for (let i = 0; i < n; i++) target[at + i] = bytes[i]!;
  return at + n;
}

/**
 * Copies [start, end) of `data`. A record's message and fields are a few hundred bytes: a byte
 * loop, where Buffer.copy of part of a buffer makes a view object per call and costs more than
 * the copy itself; a long range takes the native copy.
 */
function copyRange(target: Buffer, at: number, data: Buffer, start: number, end: number): number {
  if (end - start > 1024) return at + data.copy(target, at, start, end);
  for (let i = start; i < end; i++) target[at++] = data[i]!;
  return at;
}

/** Writes a non-negative safe integer in decimal. */
function putInteger(target: Buffer, at: number, value: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  let rest = value;
  for (let i = digits - 1; i >= 0; i--) {
    const next = Math.floor(rest / 10);
    target[at + i] = 48 + (rest - next * 10);
    rest = next;
  }
  return at + digits;
}
