import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, startRedis, type RedisServer } from '@log/test-kit';
import { readStream } from './helpers';

const run = promisify(execFile);
const fixture = (name: string) => join(__dirname, 'fixtures', name);

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});

describe('the publisher inside a real app process', () => {
  it('sends everything logged when the app just ends, without flush() or close()', async () => {
    const channel = `exit-${process.pid}`;
    await run(process.execPath, [fixture('exit-app.js'), redis.url, channel, '5000'], { timeout: 20_000 });
    const { records } = await readStream(redis.url, channel);
    expect(records).toHaveLength(5000);
  }, 30_000);

  it('keeps the process alive while a flush() waits, even one made before the connection is up', async () => {
    const channel = `flush-loop-${process.pid}`;
    const { stdout } = await run(process.execPath, [fixture('flush-loop-app.js'), redis.url, channel], { timeout: 20_000 });
    expect(JSON.parse(stdout.trim())).toMatchObject({ logged: 1000, sent: 1000, sendErrors: 0 });
    expect((await readStream(redis.url, channel)).records).toHaveLength(1000);
  }, 30_000);

  it('holds memory to maxBufferBytes during an outage, counting every drop', async () => {
    const maxBufferBytes = 16 * 1024 * 1024;
    const deadUrl = `redis://127.0.0.1:${await freePort()}`;
    // 100,000 drops (about the bound's worth again, past it): the bound held through all of them
    const { stdout } = await run(process.execPath, [fixture('outage-app.js'), deadUrl, String(maxBufferBytes), '100000'], { timeout: 70_000 });
    const { baselineRss, maxRss, stats } = JSON.parse(stdout.trim());
    expect(stats.sent).toBe(0);
    expect(stats.dropped).toBeGreaterThanOrEqual(100_000);
    expect(stats.dropped + stats.buffered).toBe(stats.logged);
    expect(stats.bufferedBytes).toBeLessThanOrEqual(maxBufferBytes);
    // the bound plus 30 MB for the runtime's own churn (garbage not yet collected, code, stacks)
    expect(maxRss - baselineRss).toBeLessThanOrEqual(maxBufferBytes + 30 * 1024 * 1024);
  }, 80_000);
});
