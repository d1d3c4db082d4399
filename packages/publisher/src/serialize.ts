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
 *
 * The common case is plain JSON.stringify, after the loop over the fields that proves it safe
 * (the one the fast path always had, now also going down nested objects and counting): for
 * nested fields that is about twice as fast as writing the JSON in JavaScript. Anything else
 * (Errors, BigInt, toJSON other than Date's, `__proto__`, a limit reached, a throwing getter)
 * takes one walk that writes the JSON text and checks the limits as it goes, puts placeholders
 * for circular references and throwing getters, writes Errors at any depth with their cause
 * chain and renames `__proto__` keys (those counted in `unserializable`).
 */
export function fieldsJson(fields: object, counters: SerializeCounters, keyBudget: number): string {
  walked.truncated = false;
  try {
    if (!Array.isArray(fields) && typeof (fields as { toJSON?: unknown }).toJSON !== 'function') {
      plainKeys = 0;
      plainBudget = keyBudget;
      if (isPlain(fields, 1)) {
        const json = JSON.stringify(fields);
        walked.keys = plainKeys;
        // `new Boolean(false)` as fields is no object to JSON.stringify: the walk wraps it
        if (json.charCodeAt(0) === 123 /* { */) return json;
      }
    }
  } catch {
    // a throwing getter: the walk replaces it
  }
  return walk(fields, counters, keyBudget);
}

let plainKeys = 0;
let plainBudget = 0;

/**
 * True when JSON.stringify writes the container (at `depth`) within the limits and the server
 * takes it as written: no Error (JSON.stringify writes `{}`), no BigInt (it throws), no toJSON
 * but Date's, no `__proto__` key. Counts its keys and elements into plainKeys, maybe a few more
 * than JSON.stringify writes (undefined values): the count only errs high. A cycle ends at the
 * depth limit.
 */
function isPlain(container: object, depth: number): boolean {
  if (Array.isArray(container)) {
    for (let i = 0; i < container.length; i++) {
      if (++plainKeys > plainBudget || !isPlainValue(container[i], depth)) return false;
    }
    return true;
  }
  for (const key in container) {
    if (++plainKeys > plainBudget || key === '__proto__' || !isPlainValue((container as Record<string, unknown>)[key], depth)) return false;
  }
  return true;
}

function isPlainValue(value: unknown, depth: number): boolean {
  if (typeof value === 'object' && value !== null) {
    if (value instanceof Date) return true;
    if (depth >= LIMITS.maxDepth || value instanceof Error || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
    return isPlain(value, depth + 1);
  }
  return typeof value !== 'bigint';
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
