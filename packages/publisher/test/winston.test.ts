import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRedis, type RedisServer } from '@log/test-kit';
import winston from 'winston';
import { RedisTransport } from '../src';
import { readStream } from './helpers';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});

describe('RedisTransport (winston)', () => {
  it('delivers every record when the app calls logger.end() and exits on finish', async () => {
    const channel = `winston-${process.pid}`;
    const { stdout } = await promisify(execFile)(process.execPath, [join(__dirname, 'fixtures', 'winston-app.js'), redis.url, channel, '20000']);
    const stats = JSON.parse(stdout.trim().split('\n').pop() as string);
    expect(stats).toMatchObject({ logged: 20000, sent: 20000, dropped: 0, buffered: 0 });
    const { records } = await readStream(redis.url, channel);
    expect(records).toHaveLength(20000);
    expect(records[1]).toMatchObject({ app: 'winston-app', level: 'info', message: 'record 1 of many', fields: { i: 1 } });
    expect(records[0]).toMatchObject({ level: 'error', message: 'failure 0', error: { name: 'Error', message: 'failure 0' } });
    expect(records[0]!.error!.stack).toContain('failure 0');
  }, 30_000);
});

describe('RedisTransport, the transport contract winston relies on', () => {
  it('is a winston transport: logs through a logger, emits logged, maps levels, closes its publisher', async () => {
    const channel = `winston-contract-${process.pid}`;
    const transport = new RedisTransport({ channel, app: 'contract', url: redis.url, winstonLevel: 'silly' });
    const logger = winston.createLogger({ level: 'silly', transports: [transport] });
    expect(logger.transports).toContain(transport);
    const logged = new Promise<Record<string, unknown>>((resolve) => transport.once('logged', resolve));
    expect(logger.log('debug', 'foo')).toBe(logger);
    expect(await logged).toMatchObject({ level: 'debug', message: 'foo' });
    logger.http('an http line');
    logger.silly('a silly line');
    logger.warn('with meta', { userId: 5 });
    await transport.publisher.flush();
    const { records } = await readStream(redis.url, channel);
    expect(records.map((r) => [r.level, r.levelName, r.message])).toEqual([
      ['debug', undefined, 'foo'],
      ['info', 'http', 'an http line'],
      ['trace', 'silly', 'a silly line'],
      ['warn', undefined, 'with meta'],
    ]);
    expect(records[3]!.fields).toEqual({ userId: 5 });
    transport.close();
    await transport.publisher.close();
    expect(transport.publisher.stats().buffered).toBe(0);
  });
});

describe('RedisTransport, levels and errors', () => {
  const channels = { n: 0 };
  async function logThrough(configure: (logger: winston.Logger) => void, options: winston.LoggerOptions = {}) {
    const channel = `winston-shapes-${process.pid}-${++channels.n}`;
    const transport = new RedisTransport({ channel, app: 'shapes', url: redis.url });
    const logger = winston.createLogger({ level: 'silly', ...options, transports: [transport] });
    configure(logger);
    await transport.publisher.flush();
    await transport.publisher.close();
    return (await readStream(redis.url, channel)).records;
  }

  it("keeps winston's own level names beside ours (npm and syslog levels)", async () => {
    const records = await logThrough((logger) => {
      for (const level of ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']) logger.log(level, level);
    });
    expect(records.map((r) => [r.message, r.level, r.levelName])).toEqual([
      ['error', 'error', undefined],
      ['warn', 'warn', undefined],
      ['info', 'info', undefined],
      ['http', 'info', 'http'],
      ['verbose', 'debug', 'verbose'],
      ['debug', 'debug', undefined],
      ['silly', 'trace', 'silly'],
    ]);
    const syslog = await logThrough(
      (logger) => {
        logger.log('crit', 'disk gone');
        logger.log('notice', 'noted');
      },
      { levels: winston.config.syslog.levels, level: 'debug' },
    );
    expect(syslog.map((r) => [r.level, r.levelName])).toEqual([
      ['fatal', 'crit'],
      ['info', 'notice'],
    ]);
  });

  it('writes one error shape (name, message, stack, cause) whichever way winston hands the error over', async () => {
    const make = () => new TypeError('card declined', { cause: new Error('issuer down') });
    const plain = await logThrough((logger) => {
      logger.error(make());
      logger.error('payment failed', make());
      logger.log({ level: 'error', message: make() as unknown as string });
      logger.warn('meta err', { err: make(), orderId: 7 });
    });
    const formatted = await logThrough(
      (logger) => {
        logger.error(make());
        logger.error('payment failed', make());
      },
      { format: winston.format.errors({ stack: true, cause: true } as { stack: boolean }) },
    );
    const shape = { name: 'TypeError', message: 'card declined', cause: { name: 'Error', message: 'issuer down' } };
    for (const record of [...plain, ...formatted]) {
      expect(record.error).toMatchObject(shape);
      expect(record.error!.stack).toMatch(/^TypeError: card declined\n\s+at /);
      expect(record.fields ?? {}).not.toHaveProperty('stack');
      expect(record.fields ?? {}).not.toHaveProperty('err');
    }
    expect(plain.map((r) => r.message)).toEqual(['card declined', 'payment failed', 'card declined', 'meta err']);
    expect(plain[3]!.fields).toEqual({ orderId: 7 });
    expect(formatted.map((r) => r.message)).toEqual(['card declined', 'payment failed']);
  });

  it('keeps a stack field that is no error stack as a field', async () => {
    const records = await logThrough((logger) => logger.info('deployed', { stack: 'blue-green', route: '/a' }));
    expect(records[0]).toMatchObject({ message: 'deployed', fields: { stack: 'blue-green', route: '/a' } });
    expect(records[0]!.error).toBeUndefined();
  });
});
