import { escapeUnsafeJson, reservedKeyMap, type LogRecord } from '@log/protocol';

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
