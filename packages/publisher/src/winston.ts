import { format } from 'node:util';
import type { Fields, Level } from '@log/protocol';
import TransportStream from 'winston-transport';
import { createPublisher, logNamed, type Logger } from './logger';
import type { PublisherOptions } from './options';

/** Options of RedisTransport: the publisher's options plus the channel and winston's own. */
export interface RedisTransportOptions extends PublisherOptions, Omit<TransportStream.TransportStreamOptions, 'level'> {
  /** Channel to publish to. @defaultValue 'logger' */
  channel?: string;
  /** winston level threshold of this transport (winston filters before calling log). */
  winstonLevel?: string;
}

/**
 * winston's level names (npm, syslog and cli sets) onto ours. A name that is not one of ours
 * travels beside the level as the record's levelName; an unknown name is info.
 */
const LEVEL_MAP: ReadonlyMap<string, Level> = new Map<string, Level>([
  ['emerg', 'fatal'],
  ['alert', 'fatal'],
  ['crit', 'fatal'],
  ['error', 'error'],
  ['warn', 'warn'],
  ['warning', 'warn'],
  ['notice', 'info'],
  ['info', 'info'],
  ['http', 'info'],
  ['help', 'info'],
  ['data', 'info'],
  ['prompt', 'info'],
  ['input', 'info'],
  ['verbose', 'debug'],
  ['debug', 'debug'],
  ['silly', 'trace'],
]);

const SPLAT = Symbol.for('splat');
/** winston's uncolored level (format.colorize() changes `info.level`, never this). */
const LEVEL = Symbol.for('level');

type Info = Record<string | symbol, unknown>;

/** The name an error's stack starts with (`TypeError: bad input\n    at ...`), when it has one. */
function nameFromStack(stack: string, message: string): string | undefined {
  const match = /^([A-Za-z_$][\w$]*): /.exec(stack);
  return match && stack.startsWith(match[0] + message) ? match[1] : undefined;
}

/**
 * The error winston hands over, in whichever of its shapes, as one error: `logger.error(err)`
 * (the info is the Error), `logger.error('msg', err)` (winston copies the error's message onto
 * the info's, its stack and cause beside it, and keeps the Error in the splat),
 * `logger.log({ level, message: err })`, and format.errors() output (message, stack and cause
 * copied onto a plain info). Returns the error and the message the record keeps.
 */
function errorOf(info: Info, message: unknown, splat: unknown): { error: object | undefined; text: string | undefined } {
  if (info instanceof Error) return { error: info, text: undefined };
  if (message instanceof Error) return { error: message, text: message.message };
  if (Array.isArray(splat)) {
    for (const item of splat as unknown[]) {
      if (!(item instanceof Error)) continue;
      // 'msg' + ' ' + err.message is winston's doing: the error carries its own message.
      const suffix = ' ' + item.message;
      const text = typeof message === 'string' && message.endsWith(suffix) ? message.slice(0, -suffix.length) : undefined;
      return { error: item, text };
    }
  }
  // format.errors(): a stack that starts as V8 writes an error's (`TypeError: <message>`); any
  // other `stack` is a caller's field.
  const stack = info.stack;
  const text = typeof message === 'string' ? message : '';
  const name = typeof stack === 'string' ? nameFromStack(stack, text) : undefined;
  if (name !== undefined) {
    const error: Record<string, unknown> = { name, message: text, stack };
    if (info.cause !== undefined) error.cause = info.cause;
    return { error, text };
  }
  return { error: undefined, text: undefined };
}

/**
 * A winston transport that publishes through @log/publisher. It passes winston's own
 * conformance suite (abstract-winston-transport). `logger.end()` waits for this transport's
 * flush, so exiting on winston's 'finish' loses nothing.
 *
 * @example
 * const logger = winston.createLogger({ transports: [new RedisTransport({ channel: 'logger', app: 'shop' })] });
 */
export class RedisTransport extends TransportStream {
  readonly publisher: Logger;

  constructor(options: RedisTransportOptions) {
    const { channel = 'logger', winstonLevel, format, silent, handleExceptions, handleRejections, ...publisherOptions } = options ?? ({} as RedisTransportOptions);
    super({ level: winstonLevel, format, silent, handleExceptions, handleRejections });
    // winston filters levels itself; the publisher takes everything it is handed.
    this.publisher = createPublisher(channel, { ...publisherOptions, level: 'trace' });
  }

  override log(info: Info, callback?: () => void): void {
    const name = String(info[LEVEL] ?? info.level);
    const level = LEVEL_MAP.get(name) ?? 'info';
    const { level: _level, message, stack: _stack, cause: _cause, [SPLAT]: splat, ...rest } = info as Info & { [SPLAT]?: unknown };
    const fields: Fields = rest;
    const { error, text: errorText } = errorOf(info, message, splat);
    // stack and cause stay fields only when they are not the error's (a caller's own field).
    if (error === undefined) {
      if (_stack !== undefined) fields.stack = _stack;
      if (_cause !== undefined) fields.cause = _cause;
    }
    let text = errorText ?? (typeof message === 'string' ? message : message instanceof Error ? message.message : (JSON.stringify(message) ?? ''));
    // winston leaves `logger.info('a %d', 1, { meta })` uninterpolated unless format.splat() is
    // used: do what format.splat() does (after it, no %-token is left and this changes nothing).
    if (Array.isArray(splat) && splat.length > 0) {
      const tokens = (text.match(/%[sdifjoOc]/g) ?? []).length;
      if (tokens > 0) text = format(text, ...(splat.slice(0, tokens) as unknown[]));
      for (let i = tokens; i < splat.length; i++) {
        const meta: unknown = splat[i];
        if (meta !== null && typeof meta === 'object' && !(meta instanceof Error)) Object.assign(fields, meta);
      }
    }
    if (error !== undefined) fields.err = error;
    logNamed(this.publisher, level, name === level ? undefined : name, text, fields);
    setImmediate(() => this.emit('logged', info));
    callback?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.publisher.flush().then(() => callback(), callback);
  }

  override close(): void {
    // Fire-and-forget by winston's contract (close returns nothing); close() never rejects.
    void this.publisher.close();
  }
}
