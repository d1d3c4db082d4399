import type { Level } from './levels';

/**
 * The fast path of record decoding, for the server's hot loop. Our publisher writes every record
 * line in one canonical shape:
 *
 *     {"t":<ms>,"l":"<level>","m":"<message>","f":{...}}
 *
 * For such a line, this scanner validates the fields object as JSON (with the same depth and
 * key limits and the same `__proto__` refusal as the full decoder) without building it, and
 * hands back its text, so the server can splice it into the line it writes instead of parsing
 * and stringifying it again. That saves most of the decoding garbage.
 *
 * It only ever says "yes, and here it is" or "not sure": anything else (an error object `e`,
 * whitespace, other key orders, escapes in keys, a reserved key, a limit reached, any JSON error,
 * a raw DEL, C1 control, U+2028 or U+2029 in a string) returns undefined, and the caller decodes the
 * line the full way, which also produces the error. So a line is never accepted here that the
 * full decoder would refuse, and the message and fields text it accepts can be written as they
 * are: nothing in them needs escaping on a line.
 */

/** Result of a successful scan; one shared object, valid until the next scan. */
export interface ScannedRecord {
  time: number;
  level: Level;
  message: string;
  /** The fields object's JSON text (`{...}`), validated; undefined when the line has no `f`. */
  fieldsJson: string | undefined;
}

const scanned: ScannedRecord = { time: 0, level: 'info', message: '', fieldsJson: undefined };

// Scanner state in module variables: no per-line allocation.
let src = '';
let pos = 0;
let keys = 0;
let maxKeys = 0;
let maxDepth = 0;
let sawEscape = false;

const QUOTE = 34;
const BACKSLASH = 92;

// The most frequent levels first. A line with a level name (`"n"`) is left to the full decoder.
const LEVEL_PREFIXES: ReadonlyArray<readonly [Level, string]> = [
  ['info', 'info","m":'],
  ['debug', 'debug","m":'],
  ['warn', 'warn","m":'],
  ['error', 'error","m":'],
  ['trace', 'trace","m":'],
  ['fatal', 'fatal","m":'],
];

/**
 * Scans a canonical record line. `reservedKeys` are top-level field names the caller cannot
 * splice (they would collide with its own keys): a line using one is left to the full decoder.
 */
export function scanCanonicalRecord(line: string, limits: { maxDepth: number; maxKeys: number }, reservedKeys: ReadonlyMap<number, readonly string[]>): ScannedRecord | undefined {
  src = line;
  pos = 0;
  keys = 0;
  maxKeys = limits.maxKeys;
  maxDepth = limits.maxDepth;
  const length = line.length;
  if (!line.startsWith('{"t":', 0)) return undefined;
  pos = 5;
  // time: a plain non-negative integer of at most 15 digits (always a safe integer)
  const timeStart = pos;
  let time = 0;
  for (let c = line.charCodeAt(pos); c >= 48 && c <= 57; c = line.charCodeAt(++pos)) time = time * 10 + (c - 48);
  const digits = pos - timeStart;
  if (digits === 0 || digits > 15 || (digits > 1 && line.charCodeAt(timeStart) === 48)) return undefined;
  if (!line.startsWith(',"l":"', pos)) return undefined;
  pos += 6;
  let level: Level | undefined;
  for (const [name, prefix] of LEVEL_PREFIXES) {
    if (line.startsWith(prefix, pos)) {
      level = name;
      pos += prefix.length;
      break;
    }
  }
  if (level === undefined || line.charCodeAt(pos) !== QUOTE) return undefined;
  const messageStart = pos;
  sawEscape = false;
  if (!scanString()) return undefined;
  const message = sawEscape ? (JSON.parse(line.slice(messageStart, pos)) as string) : line.slice(messageStart + 1, pos - 1);
  let fieldsJson: string | undefined;
  if (line.startsWith(',"f":', pos)) {
    pos += 5;
    const fieldsStart = pos;
    if (line.charCodeAt(pos) !== 123 || !scanObject(1, reservedKeys)) return undefined;
    fieldsJson = line.slice(fieldsStart, pos);
  }
  if (pos !== length - 1 || line.charCodeAt(pos) !== 125) return undefined;
  src = '';
  scanned.time = time;
  scanned.level = level;
  scanned.message = message;
  scanned.fieldsJson = fieldsJson;
  return scanned;
}

/** At a quote: skips a valid JSON string (no raw control characters, valid escapes) holding no character escapeUnsafeJson would escape. */
function scanString(): boolean {
  const s = src;
  const length = s.length;
  pos++;
  while (pos < length) {
    const c = s.charCodeAt(pos);
    if (c === QUOTE) {
      pos++;
      return true;
    }
    if (c < 0x20) return false;
    // DEL, C1 controls, U+2028, U+2029: valid JSON, but the writer would have to escape them;
    // rare enough to leave to the full path, so spliced text never needs escaping.
    if (c >= 0x7f && (c <= 0x9f || c === 0x2028 || c === 0x2029)) return false;
    if (c === BACKSLASH) {
      sawEscape = true;
      const e = s.charCodeAt(pos + 1);
      if (e === 117 /* u */) {
        for (let k = 2; k < 6; k++) if (!isHex(s.charCodeAt(pos + k))) return false;
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

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

const TOO_DEEP = -1;
const EMPTY = 0;
const ITEMS = 1;

/** At a container's opening bracket: steps past it, and past the closing one when it is empty. */
function enter(depth: number, close: number): number {
  if (depth > maxDepth) return TOO_DEEP;
  pos++;
  if (src.charCodeAt(pos) !== close) return ITEMS;
  pos++;
  return EMPTY;
}

/** Set by another(): whether the character after the last item was the closing bracket. */
let closedOk = false;
/** After an item: true at a comma (another item follows); otherwise false, with closedOk telling a proper end from garbage. */
function another(close: number): boolean {
  const c = src.charCodeAt(pos++);
  closedOk = c === close;
  return c === 44; /* , */
}

/** At `{`: an object whose keys need no escapes; `reserved` applies to this level only (the top). */
function scanObject(depth: number, reserved: ReadonlyMap<number, readonly string[]> | undefined): boolean {
  const state = enter(depth, 125);
  if (state !== ITEMS) return state === EMPTY;
  const s = src;
  do {
    if (s.charCodeAt(pos) !== QUOTE) return false;
    const keyStart = pos + 1;
    sawEscape = false;
    if (!scanString() || sawEscape) return false;
    const keyLength = pos - 1 - keyStart;
    if (keyLength === 9 && s.startsWith('__proto__', keyStart)) return false;
    if (reserved !== undefined) {
      const candidates = reserved.get(keyLength);
      if (candidates !== undefined) for (const key of candidates) if (s.startsWith(key, keyStart)) return false;
    }
    if (++keys > maxKeys || s.charCodeAt(pos) !== 58 /* : */) return false;
    pos++;
    if (!scanValue(depth)) return false;
  } while (another(125));
  return closedOk;
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
  const c = src.charCodeAt(pos);
  switch (c) {
    case QUOTE:
      return scanString();
    case 123:
      return scanObject(depth + 1, undefined);
    case 91:
      return scanArray(depth + 1);
    case 116:
      return literal('true');
    case 102:
      return literal('false');
    case 110:
      return literal('null');
    default:
      return c === 45 || (c >= 48 && c <= 57) ? scanNumber() : false;
  }
}

function literal(word: string): boolean {
  if (!src.startsWith(word, pos)) return false;
  pos += word.length;
  return true;
}

/** -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
function scanNumber(): boolean {
  const s = src;
  if (s.charCodeAt(pos) === 45) pos++;
  let c = s.charCodeAt(pos);
  if (c === 48) {
    c = s.charCodeAt(++pos);
  } else if (c >= 49 && c <= 57) {
    do c = s.charCodeAt(++pos);
    while (c >= 48 && c <= 57);
  } else {
    return false;
  }
  if (c === 46 /* . */) {
    c = s.charCodeAt(++pos);
    if (!(c >= 48 && c <= 57)) return false;
    do c = s.charCodeAt(++pos);
    while (c >= 48 && c <= 57);
  }
  if (c === 101 || c === 69 /* e E */) {
    c = s.charCodeAt(++pos);
    if (c === 43 || c === 45) c = s.charCodeAt(++pos);
    if (!(c >= 48 && c <= 57)) return false;
    do c = s.charCodeAt(++pos);
    while (c >= 48 && c <= 57);
  }
  return true;
}

/** Groups reserved key names by length, the form scanCanonicalRecord takes. */
export function reservedKeyMap(names: Iterable<string>): ReadonlyMap<number, readonly string[]> {
  const map = new Map<number, string[]>();
  for (const name of names) {
    const list = map.get(name.length) ?? [];
    list.push(name);
    map.set(name.length, list);
  }
  return map;
}
