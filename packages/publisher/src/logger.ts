import { LEVELS, LEVEL_VALUES, LIMITS, type Fields, type Level } from '@log/protocol';
import { PublisherCore, type PublisherStats } from './core';
import { resolveOptions, type PublisherOptions } from './options';
import { MAX_ERROR_KEYS, fieldsJson, safeString, serializeError, walked } from './serialize';

/** A log method: a message (or an Error) and optional fields. Never throws, never blocks. */
export type LogMethod = (message: string | Error, fields?: Fields) => void;

/** What createPublisher returns. */
export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
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
}

const noop: LogMethod = () => {};

// The part of a record line after the time, per level: built once, concatenated per call.
const LEVEL_PREFIX: Record<Level, string> = {
  debug: ',"l":"debug","m":',
  info: ',"l":"info","m":',
  warn: ',"l":"warn","m":',
  error: ',"l":"error","m":',
};

class PublisherLogger implements Logger {
  debug: LogMethod = noop;
  info: LogMethod = noop;
  warn: LogMethod = noop;
  error: LogMethod = noop;

  /** Inner JSON of the bound fields (no braces), '' when none: serialized once, at child(). */
  private readonly bindings: string;
  /**
   * Keys the bindings take of a record's LIMITS.maxKeys. At most maxKeys - MAX_ERROR_KEYS, so
   * an Error logged as the message always fits beside them.
   */
  private readonly bindingKeys: number;
  /** Whether the bindings were cut to the limits: every record of this logger counts as truncated. */
  private readonly bindingsTruncated: boolean;

  constructor(
    private readonly core: PublisherCore,
    bindings: string,
    bindingKeys: number,
    bindingsTruncated: boolean,
  ) {
    this.bindings = bindings;
    this.bindingKeys = bindingKeys;
    this.bindingsTruncated = bindingsTruncated;
    // Disabled levels stay the shared no-op: a filtered call costs one function call.
    const threshold = LEVEL_VALUES[core.options.level];
    for (const level of LEVELS) {
      if (LEVEL_VALUES[level] >= threshold) this[level] = this.method(LEVEL_PREFIX[level]);
    }
  }

  get producer(): string {
    return this.core.producer;
  }

  private method(prefix: string): LogMethod {
    return (message, fields) => this.write(prefix, message, fields);
  }

  /** The hot path: one line by concatenation, appended to the current frame. No I/O, no timer, no promise. */
  private write(prefix: string, message: string | Error, fields: Fields | undefined): void {
    const core = this.core;
    core.logged++;
    if (core.full()) {
      core.drop();
      return;
    }
    let error = '';
    let keyBudget = LIMITS.maxKeys - this.bindingKeys;
    let text: string;
    if (typeof message === 'string') text = message;
    else if (message instanceof Error) {
      text = safeString(message.message);
      error = ',"e":' + JSON.stringify(serializeError(message, core));
      keyBudget -= MAX_ERROR_KEYS;
    } else text = safeString(message);
    const time = Date.now();
    let truncated = this.bindingsTruncated;
    let line = '{"t":' + time + prefix + JSON.stringify(text);
    if (fields !== undefined && fields !== null && typeof fields === 'object') {
      const json = fieldsJson(fields, core, keyBudget);
      if (walked.truncated) truncated = true;
      if (this.bindings === '') line += ',"f":' + json;
      else line += json.length === 2 ? ',"f":{' + this.bindings + '}' : ',"f":{' + this.bindings + ',' + json.slice(1);
    } else if (this.bindings !== '') line += ',"f":{' + this.bindings + '}';
    line += error + '}';
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
    const json = fieldsJson(fields ?? {}, this.core, LIMITS.maxKeys - MAX_ERROR_KEYS - this.bindingKeys);
    const inner = json.slice(1, -1);
    const bindings = this.bindings === '' ? inner : inner === '' ? this.bindings : this.bindings + ',' + inner;
    return new PublisherLogger(this.core, bindings, this.bindingKeys + walked.keys, this.bindingsTruncated || walked.truncated);
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
  const root = new PublisherLogger(core, '', 0, false);
  return resolved.fields === undefined ? root : root.child(resolved.fields);
}
