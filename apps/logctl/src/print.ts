import { escapeUnsafeJson, quote, type Level, type LogRecord } from '@log/protocol';

const COLORS: Record<Level, string> = { trace: '\u001b[90m', debug: '\u001b[36m', info: '\u001b[32m', warn: '\u001b[33m', error: '\u001b[31m', fatal: '\u001b[35m' };
const RESET = '\u001b[0m';

/** A record as a flat JSON object, the shape the server writes to disk (own keys first, then the fields). */
export function recordObject(record: LogRecord): Record<string, unknown> {
  const out: Record<string, unknown> = { time: new Date(record.time).toISOString(), level: record.level };
  if (record.levelName !== undefined) out.levelName = record.levelName;
  Object.assign(out, { app: record.app, host: record.host, pid: record.pid, producer: record.producer, seq: record.seq, message: record.message });
  const fields = record.fields ?? (record.fieldsJson === undefined ? undefined : (JSON.parse(record.fieldsJson) as Record<string, unknown>));
  if (fields !== undefined) for (const key of Object.keys(fields)) out[key in out ? `fields.${key}` : key] = fields[key];
  if (record.error !== undefined) out.err = record.error;
  return out;
}

/**
 * One record as one line: JSON (`--json`), or `time LEVEL app/host message {fields}` for people,
 * colored by level on a terminal. Control characters are escaped either way (quote), so a record
 * cannot drive the operator's terminal (JSON escapes C0, escapeUnsafeJson the rest).
 */
export function formatRecord(record: LogRecord, options: { json: boolean; color: boolean }): string {
  if (options.json) return escapeUnsafeJson(JSON.stringify(recordObject(record)));
  const level = (record.levelName ?? record.level).toUpperCase().padEnd(5);
  const head = options.color ? COLORS[record.level] + level + RESET : level;
  const message = quote(record.message).slice(1, -1);
  const fields = record.fieldsJson ?? (record.fields === undefined ? '' : JSON.stringify(record.fields));
  let line = `${new Date(record.time).toISOString()} ${head} ${record.app}/${record.host} ${message}`;
  if (fields !== '' && fields !== '{}') line += ' ' + escapeUnsafeJson(fields);
  if (record.error !== undefined) line += ` err=${quote(`${record.error.name}: ${record.error.message}`)}`;
  return line;
}
