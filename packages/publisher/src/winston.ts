import { format } from 'node:util';
import type { Fields, Level } from '@log/protocol';
import TransportStream from 'winston-transport';
import { createPublisher, type Logger } from './logger';
import type { PublisherOptions } from './options';

/** Options of RedisTransport: the publisher's options plus the channel and winston's own. */
export interface RedisTransportOptions extends PublisherOptions, Omit<TransportStream.TransportStreamOptions, 'level'> {
  /** Channel to publish to. @defaultValue 'logger' */
  channel?: string;
  /** winston level threshold of this transport (winston filters before calling log). */
  winstonLevel?: string;
}

// winston's npm levels onto ours: anything chattier than debug is debug, http is info.
const LEVEL_MAP: Record<string, Level> = {
  error: 'error',
  warn: 'warn',
  info: 'info',
  http: 'info',
  verbose: 'debug',
  debug: 'debug',
  silly: 'debug',
};

const SPLAT = Symbol.for('splat');

/**
 * A winston transport that publishes through @log/publisher.
 * `logger.end()` waits for this transport's flush, so exiting on winston's 'finish' loses nothing.
 *
 * @example
 * const logger = winston.createLogger({ transports: [new RedisTransport({ channel: 'logger', app: 'shop' })] });
 */
export class RedisTransport extends TransportStream {
  readonly publisher: Logger;

  constructor(options: RedisTransportOptions) {
    const { channel = 'logger', winstonLevel, format, silent, handleExceptions, handleRejections, ...publisherOptions } = options;
    super({ level: winstonLevel, format, silent, handleExceptions, handleRejections });
    // winston filters levels itself; the publisher takes everything it is handed.
    this.publisher = createPublisher(channel, { ...publisherOptions, level: 'debug' });
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    const level = LEVEL_MAP[String(info.level)] ?? 'info';
    const { level: _level, message, stack, [SPLAT]: splat, ...rest } = info as Record<string, unknown> & { [SPLAT]?: unknown };
    const fields: Fields = rest;
    let text = typeof message === 'string' ? message : (JSON.stringify(message) ?? '');
    // winston leaves `logger.info('a %d', 1, { meta })` uninterpolated unless format.splat() is
    // used: do what format.splat() does (after it, no %-token is left and this changes nothing).
    if (Array.isArray(splat) && splat.length > 0) {
      const tokens = (text.match(/%[sdifjoOc]/g) ?? []).length;
      if (tokens > 0) text = format(text, ...(splat.slice(0, tokens) as unknown[]));
      for (const meta of splat.slice(tokens)) {
        if (meta !== null && typeof meta === 'object' && !(meta instanceof Error)) Object.assign(fields, meta);
      }
    }
    if (typeof stack === 'string' && info instanceof Error) {
      this.publisher[level](info, fields);
    } else {
      if (typeof stack === 'string') fields.stack = stack;
      this.publisher[level](text, fields);
    }
    setImmediate(() => this.emit('logged', info));
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.publisher.flush().then(() => callback(), callback);
  }

  override close(): void {
    void this.publisher.close();
  }
}
