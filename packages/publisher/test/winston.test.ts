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
    expect(records.map((r) => [r.level, r.message])).toEqual([
      ['debug', 'foo'],
      ['info', 'an http line'],
      ['debug', 'a silly line'],
      ['warn', 'with meta'],
    ]);
    expect(records[3]!.fields).toEqual({ userId: 5 });
    transport.close();
    await transport.publisher.close();
    expect(transport.publisher.stats().buffered).toBe(0);
  });
});
