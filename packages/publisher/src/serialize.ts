import { LIMITS, type SerializedError } from '@log/protocol';

/** Counters the serializer bumps instead of throwing into the app. */
export interface SerializeCounters {
  /** Values that could not be serialized as given (circular, BigInt, throwing getters) and were replaced. */
  unserializable: number;
}

/** What an own `__proto__` key of a logged object is written as (the server refuses `__proto__`). */
export const PROTO_KEY_RENAMED = '[__proto__]';
const MAX_CAUSES = 5;
/** Most keys serializeError writes: name, message, stack, code and cause on each level of the chain. */
export const MAX_ERROR_KEYS = 5 * (MAX_CAUSES + 1);

/** An Error as plain data: name, message, stack, code and the cause chain (bounded). */
export function serializeError(error: Error, counters: SerializeCounters, depth = 0): SerializedError {
  const out: SerializedError = { name: readString(error, 'name', 'Error'), message: readString(error, 'message', '') };
  const stack = readString(error, 'stack', '');
  if (stack) out.stack = stack;
  try {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = code;
    const cause = (error as { cause?: unknown }).cause;
    if (cause !== undefined) {
      if (cause instanceof Error && depth < MAX_CAUSES) out.cause = serializeError(cause, counters, depth + 1);
      else if (!(cause instanceof Error)) out.cause = safeString(cause);
    }
  } catch {
    counters.unserializable++;
  }
  return out;
}

function readString(source: object, key: string, fallback: string): string {
  try {
    const value = (source as Record<string, unknown>)[key];
    return typeof value === 'string' ? value : fallback;
  } catch {
    return fallback;
  }
}

/** String(value) that never throws (a hostile toString gets a placeholder). */
export function safeString(value: unknown): string {
  try {
    return typeof value === 'symbol' ? value.toString() : String(value);
  } catch {
    return '[unprintable]';
  }
}

/**
 * What the last fieldsJson call used: `keys` (object keys and array elements over all levels, as
 * the server counts them against LIMITS.maxKeys) and whether it `truncated` something to stay
 * within LIMITS. One shared object, read right after the call: the hot path allocates nothing.
 */
export const walked = { keys: 0, truncated: false };

/**
 * JSON object text of a fields object, within LIMITS.maxDepth and `keyBudget` keys: what lies
 * deeper is replaced by a placeholder string, and past the budget an array or object ends with
 * one placeholder item, so the server never refuses the record (see `walked`). Never throws.
 * `bindings` (the inner JSON of a child logger's fields, '' when none) opens the object: they
 * are written once per record, never joined to the fields' text afterwards.
 *
 * The common case (strings, finite numbers, booleans, null, Dates, plain objects and arrays of
 * them) is written in one pass that also proves it plain: what JSON.stringify would write, about
 * 1.6x faster than JSON.stringify after a walk proving the value safe for it (most of a log
 * call's cost, in the profiles of issue #11). Anything else (Errors, BigInt, toJSON other than
 * Date's, boxed primitives, `__proto__`, a limit reached, a throwing getter) takes one walk that
 * writes the JSON text and checks the limits as it goes, puts placeholders for circular
 * references and throwing getters, writes Errors at any depth with their cause chain and
 * renames `__proto__` keys (those counted in `unserializable`).
 */
export function fieldsJson(fields: object, counters: SerializeCounters, keyBudget: number, bindings = ''): string {
  walked.truncated = false;
  // A getter may log, and so come back here: the outer call's count is kept on the stack.
  const outerKeys = plainKeys;
  const outerBudget = plainBudget;
  let json: string | undefined;
  try {
    if (!Array.isArray(fields)) {
      plainKeys = 0;
      plainBudget = keyBudget;
      json = plainObject(fields, 1, '{' + bindings, bindings === '');
      walked.keys = plainKeys;
    }
  } catch {
    json = undefined; // a throwing getter: the walk replaces it
  }
  plainKeys = outerKeys;
  plainBudget = outerBudget;
  if (json !== undefined) return json;
  const walkedJson = walk(fields, counters, keyBudget);
  if (bindings === '') return walkedJson;
  return walkedJson.length === 2 ? '{' + bindings + '}' : '{' + bindings + ',' + walkedJson.slice(1);
}

let plainKeys = 0;
let plainBudget = 0;

/** Characters JSON.stringify escapes in a string: C0 controls, quote, backslash, and surrogates (a lone one is escaped). */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;
/** Up to this length a string is checked by a loop over its characters; longer ones by the regex (native, no per-call setup). */
const SHORT_STRING = 64;

/** JSON.stringify(text): the text between quotes when nothing in it needs an escape (most messages and values). */
export function jsonString(text: string): string {
  const n = text.length;
  if (n > SHORT_STRING) return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : '"' + text + '"';
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(text);
  }
  return '"' + text + '"';
}

/** What plainValue returns for what JSON.stringify leaves out of an object: no JSON text is empty. */
const OMIT = '';

/**
 * JSON of a plain value inside a container at depth - 1, or undefined when the value is not
 * plain (the walk then writes the whole fields object); OMIT for undefined, functions, symbols.
 */
function plainValue(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
      return jsonString(value);
    case 'number':
      return Number.isFinite(value) ? '' + value : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (value instanceof Date) return JSON.stringify(value);
      if (depth >= LIMITS.maxDepth) return undefined;
      return Array.isArray(value) ? plainArray(value, depth + 1) : plainObject(value, depth + 1, '{', true);
    case 'bigint':
      return undefined;
    default:
      return OMIT;
  }
}

/**
 * `open` followed by the object's own enumerable keys as JSON.stringify writes them (`first`:
 * whether `open` ends where the first key goes, or a comma is needed), or undefined when the
 * object is not plain: an Error (JSON.stringify writes `{}`), a toJSON, a boxed primitive, a
 * `__proto__` key, or more keys than the budget left. Counts the keys written into plainKeys.
 */
function plainObject(object: object, depth: number, open: string, first: boolean): string | undefined {
  if (object instanceof Error || typeof (object as { toJSON?: unknown }).toJSON === 'function') return undefined;
  if (object instanceof Number || object instanceof String || object instanceof Boolean) return undefined;
  let out = open;
  let empty = first;
  // Object.keys: the own enumerable string keys, in JSON.stringify's order. for-in (no array)
  // was no faster on small objects and slower on objects of many keys added one by one, which
  // V8 keeps as hash tables: its for-in checks each key again.
  const keys = Object.keys(object);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const text = plainValue((object as Record<string, unknown>)[key], depth);
    if (text === OMIT) continue;
    const names = text === undefined || ++plainKeys > plainBudget ? undefined : keyNames(key);
    if (names === undefined) return undefined;
    // one concatenation per member: the key's text (and its comma) comes whole from the cache
    out += (empty ? names.bare : names.comma) + text;
    empty = false;
  }
  return out + '}';
}

/** A key's JSON text before its value: `"key":`, and the same after a comma. */
interface KeyNames {
  bare: string;
  comma: string;
}
/**
 * Key texts already quoted: an app logs the same few keys again and again, and quoting one (a
 * scan of its characters, two concatenations) was a third of a member's cost with 20 fields.
 * Bounded: full, it is emptied and fills again, so keys made from data (ids as keys) hold no
 * memory past the bound and cannot keep the keys an app logs all the time out for good.
 */
const KEY_NAMES = new Map<string, KeyNames>();
const MAX_KEY_NAMES = 1024;
const MAX_CACHED_KEY_LENGTH = 64;

/** The key's texts, or undefined for `__proto__` (the walk renames it). */
function keyNames(key: string): KeyNames | undefined {
  let names = KEY_NAMES.get(key);
  if (names === undefined) {
    if (key === '__proto__') return undefined;
    const bare = jsonString(key) + ':';
    names = { bare, comma: ',' + bare };
    if (key.length <= MAX_CACHED_KEY_LENGTH) {
      if (KEY_NAMES.size >= MAX_KEY_NAMES) KEY_NAMES.clear();
      KEY_NAMES.set(key, names);
    }
  }
  return names;
}

function plainArray(array: unknown[], depth: number): string | undefined {
  const n = array.length;
  if ((plainKeys += n) > plainBudget) return undefined;
  let out = '[';
  for (let i = 0; i < n; i++) {
    const text = plainValue(array[i], depth);
    if (text === undefined) return undefined;
    out += (i > 0 ? ',' : '') + (text === OMIT ? 'null' : text);
  }
  return out + ']';
}

// The walk's state lives in module variables, like the protocol's scanner: no allocation per call.
let budget = 0;
let cut = false;
let counted: SerializeCounters = { unserializable: 0 };
/** Containers being written, outermost first: one met again is a circular reference. At most maxDepth long. */
const ancestors: object[] = [];
const DEPTH_PLACEHOLDER = `"[truncated: depth > ${LIMITS.maxDepth}]"`;

function walk(fields: object, counters: SerializeCounters, keyBudget: number): string {
  // A getter or toJSON may log, and so walk again inside this walk: the outer state comes back after.
  const outer = { budget, cut, counted, ancestors: ancestors.length };
  budget = keyBudget;
  cut = false;
  counted = counters;
  let json: string;
  try {
    let top: unknown = fields;
    const toJSON = (fields as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') top = toJSON.call(fields, '');
    else if (top instanceof Number || top instanceof String || top instanceof Boolean) top = top.valueOf();
    if (typeof top === 'object' && top !== null && !Array.isArray(top)) {
      // The fields object itself, Error or not, gives its own keys: fields are a bag of keys.
      ancestors.push(top);
      json = writeObject(top, 1);
    } else if (budget > 0) {
      // An array, or a toJSON that returned no object: kept under `value`, nested one level.
      budget--;
      json = '{"value":' + (writeValue(top, 2, 'value') ?? 'null') + '}';
    } else {
      cut = true;
      json = '{}';
    }
  } catch {
    counters.unserializable++;
    json = '{}';
  }
  walked.keys = keyBudget - budget;
  walked.truncated = cut;
  ancestors.length = outer.ancestors;
  budget = outer.budget;
  cut = outer.cut;
  counted = outer.counted;
  return json;
}

/** JSON text of a value inside a container at depth - 1; undefined where JSON.stringify omits it. */
function writeValue(value: unknown, depth: number, key: string | number): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      counted.unserializable++;
      return '"' + value.toString() + '"';
    case 'object':
      return value === null ? 'null' : writeContainer(value, depth, key);
    default:
      return undefined; // undefined, functions and symbols, as JSON.stringify
  }
}

function writeContainer(object: object, depth: number, key: string | number): string | undefined {
  let target: unknown = object;
  try {
    if (object instanceof Error) target = serializeError(object, counted);
    else if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
      target = (object as { toJSON(key: string): unknown }).toJSON(String(key));
      if (typeof target !== 'object' || target === null) return writeValue(target, depth, key);
    } else if (object instanceof Number || object instanceof String || object instanceof Boolean) {
      return writeValue(object.valueOf(), depth, key);
    }
  } catch {
    counted.unserializable++;
    return '"[Unserializable]"';
  }
  const container = target as object;
  if (ancestors.includes(container)) {
    counted.unserializable++;
    return '"[Circular]"';
  }
  if (depth > LIMITS.maxDepth) {
    cut = true;
    return DEPTH_PLACEHOLDER;
  }
  ancestors.push(container);
  try {
    return Array.isArray(container) ? writeArray(container, depth) : writeObject(container, depth);
  } catch {
    counted.unserializable++;
    return '"[Unserializable]"';
  } finally {
    ancestors.pop();
  }
}

/**
 * Takes one key or element of `remaining` from the budget: undefined when it may be written;
 * otherwise the container ends here, with '' when the budget is spent or, when it allows only
 * this one and more remain, a placeholder item in its place saying how many were left out.
 */
function take(remaining: number, inObject: boolean): string | undefined {
  if (budget <= 0) {
    cut = true;
    return '';
  }
  if (budget === 1 && remaining > 1) {
    budget = 0;
    cut = true;
    return inObject ? `"[truncated]":"[truncated: ${remaining} more keys]"` : `"[truncated: ${remaining} more items]"`;
  }
  budget--;
  return undefined;
}

/** Ends a container (`out` is its text so far) that take() cut short. */
function closeCut(out: string, last: string, close: string): string {
  return (last === '' ? out : out + (out.length > 1 ? ',' : '') + last) + close;
}

function writeObject(object: object, depth: number): string {
  const keys = Object.keys(object);
  const n = keys.length;
  let out = '{';
  for (let i = 0; i < n; i++) {
    const last = take(n - i, true);
    if (last !== undefined) return closeCut(out, last, '}');
    const key = keys[i] as string;
    let item: unknown;
    try {
      item = (object as Record<string, unknown>)[key];
    } catch {
      counted.unserializable++;
      item = '[Unreadable]';
    }
    const text = writeValue(item, depth + 1, key);
    if (text === undefined) {
      budget++; // left out, as JSON.stringify leaves undefined out
      continue;
    }
    let name = key;
    if (key === '__proto__') {
      counted.unserializable++;
      name = PROTO_KEY_RENAMED;
    }
    out += (out.length > 1 ? ',' : '') + JSON.stringify(name) + ':' + text;
  }
  return out + '}';
}

function writeArray(array: unknown[], depth: number): string {
  const n = array.length;
  let out = '[';
  for (let i = 0; i < n; i++) {
    const last = take(n - i, false);
    if (last !== undefined) return closeCut(out, last, ']');
    out += (i > 0 ? ',' : '') + (writeValue(array[i], depth + 1, i) ?? 'null');
  }
  return out + ']';
}
