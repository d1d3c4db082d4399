import { LEVEL_VALUES, levelOfValue, type Fields } from '@log/protocol';
import { Writable } from 'node:stream';
import build from 'pino-abstract-transport';
import { createPublisher, logNamed } from './logger';
import type { PublisherOptions } from './options';

/** Options of the pino transport: the publisher's options plus the channel. Plain data: they cross into pino's worker thread. */
export interface PinoTransportOptions extends Omit<PublisherOptions, 'level'> {
  /** Channel to publish to. @defaultValue 'logger' */
  channel?: string;
}

/** pino's own labels, for a pino that sends no configuration. */
const PINO_LABELS: Readonly<Record<number, string>> = Object.freeze({ 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' });

interface PinoConfig {
  levels?: { labels?: Record<number, string> };
  messageKey?: string;
  errorKey?: string;
}

/** A time pino wrote (epoch ms by default; an ISO string with stdTimeFunctions.isoTime) as integer ms, or undefined. */
function timeOf(value: unknown): number | undefined {
  const ms = typeof value === 'number' ? value : typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isFinite(ms) ? Math.trunc(ms) : undefined;
}

/** How long a chunk waits for Redis before the worker takes the next (records stay buffered and are sent later). */
const ACCEPT_TIMEOUT_MS = 5000;

/**
 * pino's transport target `@log/publisher/pino`: runs in pino's worker thread and publishes
 * every line pino writes through a publisher, keeping pino's time, level (and the name of a
 * custom level), message, error and bindings. `pid` and `hostname` are the record's own.
 *
 * Nothing is lost when the app exits right after logging: on exit pino blocks its main thread
 * until the worker has taken every byte written (thread-stream's flushSync), and the worker
 * takes a chunk only when this destination calls back, which it does once the chunk's records
 * were accepted by Redis (or ACCEPT_TIMEOUT_MS passed). pino's logger.flush(cb) waits for the
 * same; the end of the stream closes the publisher.
 *
 * @example
 * const logger = pino(pino.transport({ target: '@log/publisher/pino', options: { channel: 'logger', app: 'shop' } }));
 */
export default async function pinoTransport(options: PinoTransportOptions): Promise<Writable> {
  const { channel = 'logger', ...publisherOptions } = options ?? ({} as PinoTransportOptions);
  // pino filters levels itself; the publisher takes everything it is handed.
  const publisher = createPublisher(channel, { ...publisherOptions, level: 'trace', flushOnExit: false });
  const source = await build(
    async (lines) => {
      const config = lines as unknown as PinoConfig;
      const labels = config.levels?.labels ?? PINO_LABELS;
      const messageKey = config.messageKey ?? 'msg';
      const errorKey = config.errorKey ?? 'err';
      for await (const line of lines) publish(line as Fields, labels, messageKey, errorKey);
    },
    { expectPinoConfig: true, close: () => publisher.close() },
  );
  // A line that is not JSON (pino always writes JSON; something else wrote to the stream) is kept as text.
  source.on('unknown', (line: string) => publisher.info(line));

  function publish(record: Fields, labels: Readonly<Record<number, string>>, messageKey: string, errorKey: string): void {
    const value = typeof record.level === 'number' ? record.level : LEVEL_VALUES.info;
    const time = timeOf(record.time);
    const message = record[messageKey];
    const err = record[errorKey];
    // The parsed line is ours alone: what is left of it after the own keys are the fields.
    delete record.level;
    delete record.time;
    delete record[messageKey];
    delete record.pid;
    delete record.hostname;
    if (err !== undefined && errorKey !== 'err') {
      delete record[errorKey];
      record.err = err;
    }
    const text = message === undefined ? '' : typeof message === 'string' ? message : JSON.stringify(message);
    logNamed(publisher, levelOfValue(value), labels[value], record, text, time);
  }

  /** Calls back once every line written so far went through publish() and Redis accepted it (or the timeout passed). */
  function accepted(callback: (error?: Error | null) => void): void {
    // The loop above runs in microtasks: once the split stream is empty at a macrotask, it has
    // published everything written to it.
    if (source.writableLength > 0 || source.readableLength > 0) {
      setImmediate(accepted, callback);
      return;
    }
    const timer = setTimeout(() => callback(), ACCEPT_TIMEOUT_MS);
    publisher.flush().then(
      () => {
        clearTimeout(timer);
        callback();
      },
      (error: Error) => {
        clearTimeout(timer);
        callback(error);
      },
    );
  }

  const destination = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      source.write(chunk);
      accepted(callback);
    },
    final(callback) {
      source.once('close', () => callback());
      source.end();
    },
  });
  source.on('error', (error) => destination.destroy(error));
  // pino's logger.flush(cb) reaches the worker as destination.flush(cb).
  Object.defineProperty(destination, 'flush', { value: accepted });
  return destination;
}
