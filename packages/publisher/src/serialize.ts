import type { SerializedError } from '@log/protocol';

/** Counters the serializer bumps instead of throwing into the app. */
export interface SerializeCounters {
  /** Values that could not be serialized as given (circular, BigInt, throwing getters) and were replaced. */
  unserializable: number;
}

const MAX_DEPTH = 10;
/** What an own `__proto__` key of a logged object is written as (the server refuses `__proto__`). */
export const PROTO_KEY_RENAMED = '[__proto__]';
const MAX_CAUSES = 5;

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
 * JSON text of a fields object. The fast path is plain JSON.stringify; objects holding an Error at
 * the top level, or that make JSON.stringify throw (circular, BigInt, throwing getters), take the
 * careful path, which never throws and counts what it had to replace. An Error nested deeper than
 * the top level is serialized by the fast path as `{}`: pass errors at the top level of fields.
 */
export function fieldsJson(fields: object, counters: SerializeCounters): string {
  try {
    for (const key in fields) {
      const value = (fields as Record<string, unknown>)[key];
      if (value instanceof Error) return carefulJson(fields, counters);
    }
    const json = JSON.stringify(fields);
    // An own "__proto__" key (from JSON.parse of someone's input) would get the whole record
    // dead-lettered by the server: the careful path renames it.
    if (json !== undefined && json.charCodeAt(0) === 123 /* { */ && !json.includes('"__proto__"')) return json;
  } catch {
    // fall through to the careful path
  }
  return carefulJson(fields, counters);
}

function carefulJson(fields: object, counters: SerializeCounters): string {
  const value = toJsonSafe(fields, counters, new WeakSet(), 0);
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? JSON.stringify(value)
    : JSON.stringify({ value });
}

function toJsonSafe(value: unknown, counters: SerializeCounters, seen: WeakSet<object>, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  const object = value as object;
  if (seen.has(object)) {
    counters.unserializable++;
    return '[Circular]';
  }
  if (depth >= MAX_DEPTH) {
    counters.unserializable++;
    return '[Too deep]';
  }
  if (object instanceof Error) return serializeError(object, counters);
  seen.add(object);
  try {
    const toJSON = (object as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return toJsonSafe(toJSON.call(object), counters, seen, depth + 1);
    if (Array.isArray(object)) return object.map((item) => toJsonSafe(item, counters, seen, depth + 1) ?? null);
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(object)) {
      let item: unknown;
      try {
        item = (object as Record<string, unknown>)[key];
      } catch {
        counters.unserializable++;
        item = '[Unreadable]';
      }
      const safe = toJsonSafe(item, counters, seen, depth + 1);
      if (safe === undefined) continue;
      if (key === '__proto__') {
        counters.unserializable++;
        out[PROTO_KEY_RENAMED] = safe;
      } else out[key] = safe;
    }
    return out;
  } catch {
    counters.unserializable++;
    return '[Unserializable]';
  } finally {
    seen.delete(object);
  }
}
