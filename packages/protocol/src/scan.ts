import type { Level } from './levels';

/**
 * The fast path of record decoding, for the server's hot loop, on the line's UTF-8 bytes. Our
 * publisher writes every record line in one canonical shape:
 *
 *     {"t":<ms>,"l":"<level>","m":"<message>","f":{...}}
 *
 * For such a line, this scanner validates the fields object as JSON (with the same depth and
 * key limits and the same `__proto__` refusal as the full decoder) without building it, and
 * hands back where its text is, so the server can copy it into the line it writes instead of
 * parsing and stringifying it again: no string and no object is made for such a record.
 *
 * It only ever says "yes, and here it is" or "not sure": anything else (an error object `e`,
 * whitespace, other key orders, escapes in keys, a reserved key, a limit reached, any JSON error,
 * a raw DEL, C1 control, U+2028 or U+2029 in a string) returns undefined, and the caller decodes the
 * line the full way, which also produces the error. So a line is never accepted here that the
 * full decoder would refuse, and the message and fields text it accepts can be written as they
 * are: nothing in them needs escaping on a line.
 */

// Scanner state in module variables: no per-line allocation.
let pos = 0;
let keys = 0;
let maxKeys = 0;
let maxDepth = 0;
let sawEscape = false;
/** Set by another(): whether the character after the last item was the closing bracket. */
let closedOk = false;

const QUOTE = 34;
const BACKSLASH = 92;
const TOO_DEEP = -1;
const EMPTY = 0;
const ITEMS = 1;

// The most frequent levels first. A line with a level name (`"n"`) is left to the full decoder.
const LEVEL_PREFIXES: ReadonlyArray<readonly [Level, string]> = [
  ['info', 'info","m":'],
  ['debug', 'debug","m":'],
  ['warn', 'warn","m":'],
  ['error', 'error","m":'],
  ['trace', 'trace","m":'],
  ['fatal', 'fatal","m":'],
];

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/**
 * Where scanCanonicalBytes found a line's parts, as byte offsets into the buffer it scanned;
 * one shared object, valid until the next scan.
 */
export interface ScannedBytes {
  time: number;
  /** Index of the level in LEVEL_PREFIXES' order: see SCANNED_LEVELS. */
  level: number;
  /** The message as it came, quotes and escapes included: `"..."` at [messageStart, messageEnd). */
  messageStart: number;
  messageEnd: number;
  /** Whether the message holds escapes (its text is then JSON.parse of its bytes). */
  messageEscaped: boolean;
  /** The fields object `{...}` at [fieldsStart, fieldsEnd); both -1 when the line has no `f`. */
  fieldsStart: number;
  fieldsEnd: number;
}

/** The levels ScannedBytes.level indexes. */
export const SCANNED_LEVELS: readonly Level[] = LEVEL_PREFIXES.map(([level]) => level);

const scannedBytes: ScannedBytes = { time: 0, level: 0, messageStart: 0, messageEnd: 0, messageEscaped: false, fieldsStart: -1, fieldsEnd: -1 };
const LEVEL_PREFIX_BYTES: readonly Buffer[] = LEVEL_PREFIXES.map(([, prefix]) => Buffer.from(prefix, 'latin1'));
const LINE_START = Buffer.from('{"t":', 'latin1');
const LEVEL_KEY = Buffer.from(',"l":"', 'latin1');
const FIELDS_KEY = Buffer.from(',"f":', 'latin1');
const PROTO_KEY = Buffer.from('__proto__', 'latin1');
const TRUE = Buffer.from('true', 'latin1');
const FALSE = Buffer.from('false', 'latin1');
const NULL = Buffer.from('null', 'latin1');

let bytes: Uint8Array = new Uint8Array(0);
let end = 0;

/**
 * Scans a canonical record line, [start, stop) of `data`, which must be valid UTF-8 (a frame
 * checked whole with isUtf8). `reservedKeys` are top-level field names the caller cannot splice
 * (they would collide with its own keys): a line using one is left to the full decoder. Accepted
 * text holds no raw DEL, C1 control (UTF-8 C2 80-9F), U+2028 or U+2029 (E2 80 A8-A9), so it
 * needs no escaping on a line; every escape it holds is valid JSON and can be copied as it is
 * (it parses to the same string).
 */
export function scanCanonicalBytes(
  data: Uint8Array,
  start: number,
  stop: number,
  limits: { maxDepth: number; maxKeys: number },
  reservedKeys: ReadonlyMap<number, readonly string[]>,
): ScannedBytes | undefined {
  bytes = data;
  end = stop;
  pos = start;
  keys = 0;
  maxKeys = limits.maxKeys;
  maxDepth = limits.maxDepth;
  const result = scanLine(reservedKeys);
  bytes = EMPTY_BYTES;
  return result;
}

const EMPTY_BYTES = new Uint8Array(0);

function scanLine(reservedKeys: ReadonlyMap<number, readonly string[]>): ScannedBytes | undefined {
  const b = bytes;
  if (!bytesAt(LINE_START)) return undefined;
  const timeStart = pos;
  let time = 0;
  for (let c = pos < end ? b[pos]! : -1; c >= 48 && c <= 57; c = ++pos < end ? b[pos]! : -1) time = time * 10 + (c - 48);
  const digits = pos - timeStart;
  if (digits === 0 || digits > 15 || (digits > 1 && b[timeStart] === 48)) return undefined;
  if (!bytesAt(LEVEL_KEY)) return undefined;
  let level = -1;
  for (let i = 0; i < LEVEL_PREFIX_BYTES.length; i++) {
    if (bytesAt(LEVEL_PREFIX_BYTES[i]!)) {
      level = i;
      break;
    }
  }
  if (level === -1 || pos >= end || b[pos] !== QUOTE) return undefined;
  const messageStart = pos;
  sawEscape = false;
  if (!scanString()) return undefined;
  const messageEnd = pos;
  const messageEscaped = sawEscape;
  let fieldsStart = -1;
  let fieldsEnd = -1;
  if (bytesAt(FIELDS_KEY)) {
    fieldsStart = pos;
    if (pos >= end || b[pos] !== 123 || !scanObject(1, reservedKeys)) return undefined;
    fieldsEnd = pos;
  }
  if (pos !== end - 1 || b[pos] !== 125) return undefined;
  const out = scannedBytes;
  out.time = time;
  out.level = level;
  out.messageStart = messageStart;
  out.messageEnd = messageEnd;
  out.messageEscaped = messageEscaped;
  out.fieldsStart = fieldsStart;
  out.fieldsEnd = fieldsEnd;
  return out;
}

/** True, and steps past it, when `word` (ASCII) is at pos. */
function bytesAt(word: Uint8Array): boolean {
  const n = word.length;
  if (pos + n > end) return false;
  const b = bytes;
  for (let i = 0; i < n; i++) if (b[pos + i] !== word[i]) return false;
  pos += n;
  return true;
}

/** At a quote: skips a valid JSON string (no raw control characters, valid escapes) holding no character escapeUnsafeJson would escape. */
function scanString(): boolean {
  const b = bytes;
  const stop = end;
  pos++;
  while (pos < stop) {
    const c = b[pos]!;
    if (c === QUOTE) {
      pos++;
      return true;
    }
    if (c < 0x20 || c === 0x7f) return false;
    if (c >= 0x80) {
      // C1 controls are C2 80-9F; U+2028 and U+2029 are E2 80 A8 and E2 80 A9 (the data is valid UTF-8).
      if (c === 0xc2 && b[pos + 1]! <= 0x9f) return false;
      if (c === 0xe2 && b[pos + 1] === 0x80 && (b[pos + 2] === 0xa8 || b[pos + 2] === 0xa9)) return false;
      pos++;
      continue;
    }
    if (c === BACKSLASH) {
      sawEscape = true;
      const e = b[pos + 1];
      if (e === 117 /* u */) {
        if (pos + 6 > stop) return false;
        for (let k = 2; k < 6; k++) if (!isHex(b[pos + k]!)) return false;
        pos += 6;
        continue;
      }
      // " \ / b f n r t
      if (e !== QUOTE && e !== BACKSLASH && e !== 47 && e !== 98 && e !== 102 && e !== 110 && e !== 114 && e !== 116) return false;
      pos += 2;
      continue;
    }
    pos++;
  }
  return false;
}

/** At a container's opening bracket: steps past it, and past the closing one when it is empty. */
function enter(depth: number, close: number): number {
  if (depth > maxDepth) return TOO_DEEP;
  pos++;
  if (pos >= end || bytes[pos] !== close) return ITEMS;
  pos++;
  return EMPTY;
}

/** After an item: true at a comma (another item follows); otherwise false, with closedOk telling a proper end from garbage. */
function another(close: number): boolean {
  const c = pos < end ? bytes[pos++]! : -1;
  closedOk = c === close;
  return c === 44;
}

/** At `{`: an object whose keys need no escapes; `reserved` applies to this level only (the top). */
function scanObject(depth: number, reserved: ReadonlyMap<number, readonly string[]> | undefined): boolean {
  const state = enter(depth, 125);
  if (state !== ITEMS) return state === EMPTY;
  const b = bytes;
  do {
    if (pos >= end || b[pos] !== QUOTE) return false;
    const keyStart = pos + 1;
    sawEscape = false;
    if (!scanString() || sawEscape) return false;
    const keyLength = pos - 1 - keyStart;
    if (keyLength === 9 && sameBytes(keyStart, PROTO_KEY)) return false;
    if (reserved !== undefined) {
      // Reserved names are ASCII: a key is one of them only with as many bytes as characters.
      const candidates = reserved.get(keyLength);
      if (candidates !== undefined) for (const key of candidates) if (sameAscii(keyStart, key)) return false;
    }
    if (++keys > maxKeys || pos >= end || b[pos] !== 58 /* : */) return false;
    pos++;
    if (!scanValue(depth)) return false;
  } while (another(125));
  return closedOk;
}

function sameBytes(at: number, word: Uint8Array): boolean {
  for (let i = 0; i < word.length; i++) if (bytes[at + i] !== word[i]) return false;
  return true;
}

function sameAscii(at: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) if (bytes[at + i] !== word.charCodeAt(i)) return false;
  return true;
}

function scanArray(depth: number): boolean {
  const state = enter(depth, 93);
  if (state !== ITEMS) return state === EMPTY;
  do {
    if (++keys > maxKeys || !scanValue(depth)) return false;
  } while (another(93));
  return closedOk;
}

/** A value inside a container at `depth`: nested containers sit one level deeper. */
function scanValue(depth: number): boolean {
  const c = pos < end ? bytes[pos]! : -1;
  switch (c) {
    case QUOTE:
      return scanString();
    case 123:
      return scanObject(depth + 1, undefined);
    case 91:
      return scanArray(depth + 1);
    case 116:
      return bytesAt(TRUE);
    case 102:
      return bytesAt(FALSE);
    case 110:
      return bytesAt(NULL);
    default:
      return c === 45 || (c >= 48 && c <= 57) ? scanNumber() : false;
  }
}

/** The byte at `i` of the line, -1 past its end. */
function at(i: number): number {
  return i < end ? bytes[i]! : -1;
}

/** -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
function scanNumber(): boolean {
  if (at(pos) === 45) pos++;
  let c = at(pos);
  if (c === 48) {
    c = at(++pos);
  } else if (c >= 49 && c <= 57) {
    do c = at(++pos);
    while (c >= 48 && c <= 57);
  } else {
    return false;
  }
  if (c === 46) {
    c = at(++pos);
    if (!(c >= 48 && c <= 57)) return false;
    do c = at(++pos);
    while (c >= 48 && c <= 57);
  }
  if (c === 101 || c === 69) {
    c = at(++pos);
    if (c === 43 || c === 45) c = at(++pos);
    if (!(c >= 48 && c <= 57)) return false;
    do c = at(++pos);
    while (c >= 48 && c <= 57);
  }
  return true;
}

/** Groups reserved key names by length, the form scanCanonicalBytes takes. */
export function reservedKeyMap(names: Iterable<string>): ReadonlyMap<number, readonly string[]> {
  const map = new Map<number, string[]>();
  for (const name of names) {
    const list = map.get(name.length) ?? [];
    list.push(name);
    map.set(name.length, list);
  }
  return map;
}
