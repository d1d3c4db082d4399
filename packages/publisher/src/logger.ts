import { LEVELS, LEVEL_VALUES, type Fields, type Level } from '@log/protocol';
import { PublisherCore, type PublisherStats } from './core';
import { resolveOptions, type PublisherOptions } from './options';
import { fieldsJson, safeString, serializeError } from './serialize';

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

  constructor(
    private readonly core: PublisherCore,
    bindings: string,
  ) {
    this.bindings = bindings;
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
    let text: string;
    if (typeof message === 'string') text = message;
    else if (message instanceof Error) {
      text = safeString(message.message);
      error = ',"e":' + JSON.stringify(serializeError(message, core));
    } else text = safeString(message);
    const time = Date.now();
    let line = '{"t":' + time + prefix + JSON.stringify(text);
    if (fields !== undefined && fields !== null && typeof fields === 'object') {
      const json = fieldsJson(fields, core);
      if (this.bindings === '') line += ',"f":' + json;
      else line += json.length === 2 ? ',"f":{' + this.bindings + '}' : ',"f":{' + this.bindings + ',' + json.slice(1);
    } else if (this.bindings !== '') line += ',"f":{' + this.bindings + '}';
    line += error + '}';
    if (line.length > core.options.maxRecordBytes && Buffer.byteLength(line) > core.options.maxRecordBytes) {
      line = this.truncate(time, prefix, text, line.length);
    }
    core.append(line);
  }

  /** A record over maxRecordBytes keeps its time, level and the head of its message; its fields say what was cut. */
  private truncate(time: number, prefix: string, text: string, originalLength: number): string {
    this.core.truncated++;
    const room = Math.max(0, Math.floor(this.core.options.maxRecordBytes / 4) - 200);
    return (
      '{"t":' + time + prefix + JSON.stringify(text.slice(0, room)) +
      ',"f":{"truncated":true,"originalLength":' + originalLength + '}}'
    );
  }

  child(fields: Fields): Logger {
    const json = fieldsJson(fields ?? {}, this.core);
    const inner = json.slice(1, -1);
    const bindings = this.bindings === '' ? inner : inner === '' ? this.bindings : this.bindings + ',' + inner;
    return new PublisherLogger(this.core, bindings);
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
  const root = new PublisherLogger(core, '');
  return resolved.fields === undefined ? root : root.child(resolved.fields);
}
