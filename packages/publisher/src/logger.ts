import { LEVELS, LEVEL_VALUES, LIMITS, isValidName, type Fields, type Level, type SerializedError } from '@log/protocol';
import { PublisherCore, type PublisherStats } from './core';
import { resolveOptions, type PublisherOptions } from './options';
import type { Redactor } from './redact';
import { MAX_ERROR_KEYS, fieldsJson, jsonString, safeString, serializeError, walked, type SerializeCounters } from './serialize';

/**
 * A log method, in our call shape or pino's. An Error as the message, as the fields, or as the
 * field `err` (an Error, or an object with a string message and stack) becomes the record's
 * error (`err` on disk). Never throws, never blocks.
 */
export interface LogMethod {
  /** `log.info('order placed', { orderId: 1 })`, `log.error(err)`, `log.error('payment failed', err)` */
  (message: string | Error, fields?: Fields | Error): void;
  /** pino's shape: `log.info({ orderId: 1 }, 'order placed')`, `log.error(err, 'payment failed')`, `log.info({ err }, 'retrying')` */
  (fields: Fields | Error, message?: string): void;
}

/** What createPublisher returns. */
export interface Logger {
  trace: LogMethod;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  fatal: LogMethod;
  /** A logger that adds `fields` to every record; it shares the parent's buffer and connection. */
  child(fields: Fields): Logger;
  /** Resolves when everything logged before the call has been accepted by Redis. */
  flush(): Promise<void>;
  /** Flushes (waiting at most `timeoutMs`, default 5000), then disconnects. Same promise every call. */
  close(timeoutMs?: number): Promise<void>;
  /** Counters: logged = sent + dropped + buffered. */
  stats(): PublisherStats;
  /** Random id of this publisher instance, written with every record. */
  readonly producer: string;
  /** The stream this publisher XADDs to (its shard's, with `shards` > 1); undefined with transport 'pubsub'. */
  readonly stream: string | undefined;
}

const noop: LogMethod = () => {};
/** Longest message a logger remembers the JSON text of (see PublisherLogger.lastMessage). */
const MAX_REMEMBERED_MESSAGE = 4096;

/** The part of a record line after the time, for a level and maybe the producer's own name of it. */
function levelPrefix(level: Level, levelName?: string): string {
  return ',"l":"' + level + (levelName === undefined ? '"' : '","n":"' + levelName + '"') + ',"m":';
}

// Built once, concatenated per call.
const LEVEL_PREFIX = Object.fromEntries(LEVELS.map((level) => [level, levelPrefix(level)])) as Record<Level, string>;
/** Prefixes of named levels the transports met (a logger's configured level names: few). */
const NAMED_PREFIX = new Map<string, string>();
const MAX_NAMED_PREFIXES = 256;

/** The value of an own-or-inherited `err` field when it is an error, else undefined. Never throws. */
function errField(fields: object): object | undefined {
  try {
    const err = (fields as { err?: unknown }).err;
    if (err === undefined || err === null || typeof err !== 'object') return undefined;
    if (err instanceof Error) return err;
    const like = err as { message?: unknown; stack?: unknown };
    return typeof like.message === 'string' && typeof like.stack === 'string' ? err : undefined;
  } catch {
    return undefined;
  }
}

/** A copy of `fields` without `err` (null prototype: an own `__proto__` key stays a key). */
function withoutErr(fields: object, counters: SerializeCounters): Fields {
  const out = Object.create(null) as Fields;
  for (const key of Object.keys(fields)) {
    if (key === 'err') continue;
    try {
      out[key] = (fields as Fields)[key];
    } catch {
      counters.unserializable++;
      out[key] = '[Unreadable]';
    }
  }
  return out;
}

/** `,"e":{...}`: an Error, or an error-like object (pino's serialized `{ type, message, stack }`). */
function errorJson(error: object, counters: SerializeCounters): string {
  const serialized: SerializedError = serializeError(error as Error, counters);
  if (!(error instanceof Error) && serialized.name === 'Error') {
    const type = (error as { type?: unknown }).type;
    if (typeof type === 'string' && type !== '') serialized.name = type;
  }
  return ',"e":' + JSON.stringify(serialized);
}

class PublisherLogger implements Logger {
  trace: LogMethod = noop;
  debug: LogMethod = noop;
  info: LogMethod = noop;
  warn: LogMethod = noop;
  error: LogMethod = noop;
  fatal: LogMethod = noop;

  /** Inner JSON of the bound fields (no braces), '' when none: serialized once, at child(). */
  private readonly bindings: string;
  /**
   * Keys the bindings take of a record's LIMITS.maxKeys. At most maxKeys - MAX_ERROR_KEYS, so
   * an Error logged as the message always fits beside them.
   */
  private readonly bindingKeys: number;
  /** Whether the bindings were cut to the limits: every record of this logger counts as truncated. */
  private readonly bindingsTruncated: boolean;
  /** `,"e":{...}` of an `err` bound by child(), '' when none: the error of records that have none of their own. */
  private readonly boundError: string;
  private readonly redactor: Redactor | undefined;
  private readonly threshold: number;
  /**
   * The last message and its JSON text: a call site in a loop logs the same message again and
   * again, and quoting it scans every character (~80 ns for 50). Only messages up to
   * MAX_REMEMBERED_MESSAGE units are kept, so a huge one is not held after its call.
   */
  private lastMessage = '';
  private lastMessageJson = '""';

  constructor(
    private readonly core: PublisherCore,
    bindings: string,
    bindingKeys: number,
    bindingsTruncated: boolean,
    boundError: string,
  ) {
    this.bindings = bindings;
    this.bindingKeys = bindingKeys;
    this.bindingsTruncated = bindingsTruncated;
    this.boundError = boundError;
    this.redactor = core.options.redactor;
    // Disabled levels stay the shared no-op: a filtered call costs one function call.
    this.threshold = LEVEL_VALUES[core.options.level];
    for (const level of LEVELS) {
      if (LEVEL_VALUES[level] >= this.threshold) this[level] = this.method(LEVEL_PREFIX[level]);
    }
  }

  get producer(): string {
    return this.core.producer;
  }

  get stream(): string | undefined {
    return this.core.options.transport === 'stream' ? this.core.target : undefined;
  }

  private method(prefix: string): LogMethod {
    return (first: unknown, second?: unknown) => this.write(prefix, first, second);
  }

  /** For the transports: a record at `level` that keeps the producer's own name of it, and maybe its time. */
  logNamed(level: Level, levelName: string | undefined, first: unknown, second: unknown, time: number | undefined): void {
    if (LEVEL_VALUES[level] < this.threshold) return;
    if (levelName === undefined || levelName === level || !isValidName(levelName)) {
      this.write(LEVEL_PREFIX[level], first, second, time);
      return;
    }
    const key = level + ' ' + levelName;
    let prefix = NAMED_PREFIX.get(key);
    if (prefix === undefined) {
      prefix = levelPrefix(level, levelName);
      if (NAMED_PREFIX.size < MAX_NAMED_PREFIXES) NAMED_PREFIX.set(key, prefix);
    }
    this.write(prefix, first, second, time);
  }

  /**
   * The hot path: one line by concatenation, appended to the current frame. No I/O, no timer, no promise; without redact
   * and `err`, no allocation but the line's parts.
   */
  private write(prefix: string, first: unknown, second: unknown, at?: number): void {
    const core = this.core;
    core.logged++;
    if (core.full()) {
      core.drop();
      return;
    }
    // The call shapes: (message, fields), (Error, fields), (Error, message), (fields, message).
    let text: string;
    let fields: unknown;
    let err: object | undefined;
    if (typeof first === 'string') {
      text = first;
      fields = second;
    } else if (first instanceof Error) {
      err = first;
      if (typeof second === 'string') text = second;
      else {
        text = safeString(first.message);
        fields = second;
      }
    } else if (typeof first === 'object' && first !== null) {
      fields = first;
      text = typeof second === 'string' ? second : second === undefined ? '' : safeString(second);
    } else {
      text = safeString(first);
      fields = second;
    }
    if (typeof fields === 'object' && fields !== null) {
      if (fields instanceof Error && err === undefined) {
        err = fields;
        fields = undefined;
      } else {
        if (this.redactor !== undefined) fields = this.redactor.apply(fields);
        const candidate = err === undefined ? errField(fields as object) : undefined;
        if (candidate !== undefined) {
          err = candidate;
          fields = withoutErr(fields as object, core);
        }
      }
    }
    let keyBudget = LIMITS.maxKeys - this.bindingKeys;
    let error = this.boundError;
    if (err !== undefined) error = errorJson(err, core);
    if (error !== '') keyBudget -= MAX_ERROR_KEYS;
    // A transport's own time (pino's) is a whole number of ms: it cannot break the line.
    const time = at ?? Date.now();
    let truncated = this.bindingsTruncated;
    let message = this.lastMessageJson;
    if (text !== this.lastMessage) {
      message = jsonString(text);
      if (text.length <= MAX_REMEMBERED_MESSAGE) {
        this.lastMessage = text;
        this.lastMessageJson = message;
      }
    }
    let line: string;
    if (fields !== undefined && fields !== null && typeof fields === 'object') {
      const json = fieldsJson(fields, core, keyBudget, this.bindings);
      if (walked.truncated) truncated = true;
      line = '{"t":' + time + prefix + message + ',"f":' + json + error + '}';
    } else if (this.bindings !== '') line = '{"t":' + time + prefix + message + ',"f":{' + this.bindings + '}' + error + '}';
    else line = '{"t":' + time + prefix + message + error + '}';
    // A UTF-16 unit takes up to 3 bytes: only a line that long can be over, and only then is it measured.
    if (line.length * 3 > core.options.maxRecordBytes && Buffer.byteLength(line) > core.options.maxRecordBytes) {
      line = this.truncate(time, prefix, text, line.length);
      truncated = true;
    }
    if (truncated) core.truncated++;
    core.append(line);
  }

  /** A record over maxRecordBytes keeps its time, level and the head of its message; its fields say what was cut. */
  private truncate(time: number, prefix: string, text: string, originalLength: number): string {
    const fields = ',"f":{"truncated":true,"originalLength":' + originalLength + '}}';
    const room = this.core.options.maxRecordBytes - Buffer.byteLength('{"t":' + time + prefix + fields);
    // JSON can take 6 bytes for one UTF-16 unit (\u0001): halve the head until it fits.
    let length = Math.max(0, Math.floor(room / 4));
    let head = JSON.stringify(text.slice(0, length));
    while (length > 0 && Buffer.byteLength(head) > room) {
      length >>= 1;
      head = JSON.stringify(text.slice(0, length));
    }
    return '{"t":' + time + prefix + head + fields;
  }

  child(fields: Fields): Logger {
    let bound: object = fields ?? {};
    let boundError = this.boundError;
    if (typeof bound === 'object') {
      if (this.redactor !== undefined) bound = this.redactor.apply(bound);
      const err = errField(bound);
      if (err !== undefined) {
        boundError = errorJson(err, this.core);
        bound = withoutErr(bound, this.core);
      }
    }
    const json = fieldsJson(bound, this.core, LIMITS.maxKeys - MAX_ERROR_KEYS - this.bindingKeys);
    const inner = json.slice(1, -1);
    const bindings = this.bindings === '' ? inner : inner === '' ? this.bindings : this.bindings + ',' + inner;
    return new PublisherLogger(this.core, bindings, this.bindingKeys + walked.keys, this.bindingsTruncated || walked.truncated, boundError);
  }

  flush(): Promise<void> {
    return this.core.flush();
  }

  close(timeoutMs = 5000): Promise<void> {
    return this.core.close(timeoutMs);
  }

  stats(): PublisherStats {
    return this.core.stats();
  }
}

/**
 * Creates a logger that publishes to `channel` (a Redis Stream by default, Pub/Sub on request).
 * Throws InvalidOptionError at once for bad options; after that, nothing it does throws.
 *
 * @example
 * const log = createPublisher('logger', { app: 'shop' });
 * log.info('order placed', { orderId: 42 });
 * await log.close();
 */
export function createPublisher(channel: string, options: PublisherOptions): Logger {
  const resolved = resolveOptions(channel, options);
  const core = new PublisherCore(resolved);
  const root = new PublisherLogger(core, '', 0, false, '');
  return resolved.fields === undefined ? root : root.child(resolved.fields);
}

/**
 * For the winston and pino transports (not exported by the package): logs at `level`, keeping
 * the producer's own name of it (winston's verbose) in the record when it differs, and the
 * producer's `time` (an integer, ms since the epoch) when given.
 */
export function logNamed(logger: Logger, level: Level, levelName: string | undefined, first: unknown, second?: unknown, time?: number): void {
  if (logger instanceof PublisherLogger) logger.logNamed(level, levelName, first, second, time);
  else (logger[level] as (first: unknown, second?: unknown) => void)(first, second);
}
