import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { streamKey } from '@log/protocol';
import { createPublisher } from '@log/publisher';
import { removeDir, sleep, startRedis, tempDir, type RedisServer } from '@log/test-kit';
import { createClient } from 'redis';
import { expectExactlyOnce, readLogs, startServer, waitForRecords } from './harness';

let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});
beforeEach(() => {
  dir = tempDir('disk');
});
afterEach(() => {
  spawnSync('umount', [join(dir, 'log')]);
  removeDir(dir);
});

/** A tiny tmpfs stands in for a full disk; mounting needs root (CI and dev machines here are root). */
function mountSmallDisk(path: string, size: string): boolean {
  mkdirSync(path, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path]).status === 0;
}

describe('disk trouble', () => {
  const probe = tempDir('probe');
  const canMount = mountSmallDisk(join(probe, 'm'), '64k');
  spawnSync('umount', [join(probe, 'm')]);
  removeDir(probe);
  // Without mount permission there is no way to fill a disk safely; the sink's error paths are
  // then covered only by the unit tests. Here (root) it runs.
  (canMount ? it : it.skip)('on a full disk: no ack, exit 1; after space is freed, every record lands exactly once', async () => {
    const logDir = join(dir, 'log');
    expect(mountSmallDisk(logDir, '256k')).toBe(true);
    const channel = 'diskfull';
    const log = createPublisher(channel, { app: 'full', url: redis.url });
    for (let i = 0; i < 5000; i++) log.info('filling the disk', { i, pad: 'x'.repeat(100) });
    await log.flush();
    const first = await startServer({ REDIS_URL: redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel });
    expect(await first.exited).toBe(1);
    expect(first.output()).toMatch(/"errorCode":"DISK_WRITE_FAILED"|"errorCode":"FSYNC_FAILED"/);
    expect(first.output()).toContain('ENOSPC');
    const client = createClient({ url: redis.url }).on('error', () => {});
    await client.connect();
    const pending = (await client.sendCommand(['XPENDING', streamKey(channel), 'logger-server'])) as unknown[];
    expect(Number(pending[0])).toBeGreaterThan(0); // the failed batch was not acknowledged
    client.destroy();

    expect(spawnSync('mount', ['-o', 'remount,size=16m', logDir]).status).toBe(0); // space freed
    const second = await startServer({ REDIS_URL: redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel });
    try {
      await waitForRecords(logDir, 'full', 5000);
      await sleep(300);
      expectExactlyOnce(readLogs(logDir).get('full')!, log.producer, 5000);
    } finally {
      await second.stop();
      await log.close();
    }
  }, 60_000);

  it('SIGHUP reopens files, so logrotate can move them away', async () => {
    const logDir = join(dir, 'log');
    const channel = 'rotate';
    const server = await startServer({ REDIS_URL: redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel });
    const log = createPublisher(channel, { app: 'hup', url: redis.url });
    try {
      log.info('before rotation');
      await log.flush();
      await waitForRecords(logDir, 'hup', 1);
      renameSync(join(logDir, 'hup', 'hup.log'), join(logDir, 'hup', 'hup.log.1'));
      server.child.kill('SIGHUP');
      await sleep(200);
      log.info('after rotation');
      await log.flush();
      const records = await waitForRecords(logDir, 'hup', 1);
      expect(records.map((r) => r.message)).toEqual(['after rotation']);
      expect(readFileSync(join(logDir, 'hup', 'hup.log.1'), 'utf8')).toContain('before rotation');
      expect(existsSync(join(logDir, 'hup', 'hup.log'))).toBe(true);
    } finally {
      await log.close();
      await server.stop();
    }
  }, 30_000);
});
