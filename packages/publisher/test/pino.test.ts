import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRedis, type RedisServer } from '@log/test-kit';
import { readStream } from './helpers';

// Runs test/fixtures/pino-app.js: real pino, its worker thread loading @log/publisher/pino from
// this package's dist/ (pnpm build first), a real redis-server.
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});

const COUNT = 20_000;

async function runApp(mode: 'exit' | 'flush' | 'drain', channel: string): Promise<{ startedAt: number; lastTime: number }> {
  const startedAt = Date.now();
  const { stdout } = await promisify(execFile)(process.execPath, [join(__dirname, 'fixtures', 'pino-app.js'), redis.url, channel, String(COUNT), mode], { timeout: 30_000 });
  const { lastTime } = JSON.parse(stdout.trim().split('\n').pop() as string) as { lastTime: number };
  return { startedAt, lastTime };
}

describe('@log/publisher/pino (pino.transport target)', () => {
  it.each(['exit', 'flush', 'drain'] as const)(
    'delivers every record when the app leaves by %s right after logging 20k records',
    async (mode) => {
      const channel = `pino-${mode}-${process.pid}`;
      const { startedAt, lastTime } = await runApp(mode, channel);
      const { records } = await readStream(redis.url, channel);
      expect(records).toHaveLength(COUNT + 3);
      // in order, nothing lost, nothing doubled
      expect(records.slice(0, COUNT).map((r) => (r.fields as { i: number }).i)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      expect(records.map((r) => r.seq)).toEqual(Array.from({ length: COUNT + 3 }, (_, i) => i + 1));
      // pino's time, taken at the log call in the app, not when the worker got to it
      for (const record of records) {
        expect(record.time).toBeGreaterThanOrEqual(startedAt);
        expect(record.time).toBeLessThanOrEqual(lastTime);
      }
      expect(records[1]).toMatchObject({ app: 'pino-app', host: 'testhost', level: 'info', message: 'record 1', fields: { i: 1 } });
      expect(records[1]!.fields).not.toHaveProperty('hostname');
      expect(records[1]!.fields).not.toHaveProperty('pid');
      // the child's bindings, the err key as the record's error with its cause
      // (pino's err serializer writes the causes into the message and the stack)
      expect(records[0]).toMatchObject({ level: 'error', message: 'failed 0', fields: { requestId: 'r1', i: 0 }, error: { name: 'TypeError', message: 'failure 0: root' } });
      expect(records[0]!.error!.stack).toContain('failure 0');
      expect(records[0]!.error!.stack).toContain('caused by: Error: root');
      expect(records[0]!.fields).not.toHaveProperty('err');
      // levels: pino's own, and a custom level by its nearest and its name
      expect(records.slice(COUNT).map((r) => [r.level, r.levelName, r.message])).toEqual([
        ['trace', undefined, 'a trace'],
        ['info', 'notice', 'a notice'],
        ['fatal', undefined, 'a fatal'],
      ]);
    },
    60_000,
  );
});
