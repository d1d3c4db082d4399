import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { streamKey } from '@log/protocol';
import { createPublisher } from '@log/publisher';
import { removeDir, sleep, startRedis, tempDir, within, type RedisServer } from '@log/test-kit';
import { createClient } from 'redis';
import { DiskError } from '../src/errors';
import { manifestPathOf } from '../src/closed-file';
import { FileSink } from '../src/sink';
import { countLines, expectExactlyOnce, readLogs, rng, startServer, waitForRecords } from './harness';

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
function mountSmallDisk(path: string, size: string, inodes?: number): boolean {
  mkdirSync(path, { recursive: true });
  const options = inodes === undefined ? `size=${size}` : `size=${size},nr_inodes=${inodes}`;
  return spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', path]).status === 0;
}

/**
 * Inodes of a LOG_DIR (a tmpfs root) holding one app's open file: the root, `<app>/` and
 * `<app>.log`. With no inode to spare, writing and fsyncing the open file works and creating the
 * manifest at rotation fails (ENOSPC): a real rotation failure, even for root.
 */
const INODES_FOR_ONE_OPEN_FILE = 3;

describe('disk trouble', () => {
  const probe = tempDir('probe');
  const canMount = mountSmallDisk(join(probe, 'm'), '64k');
  spawnSync('umount', [join(probe, 'm')]);
  removeDir(probe);
  // Without mount permission there is no way to fill a disk safely; the sink's error paths are
  // then covered only by the unit tests. Here (root) it runs.
  (canMount ? it : it.skip)(
    'on a full disk: no ack, exit 1; after space is freed, every record lands exactly once',
    async () => {
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
    },
    60_000,
  );

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

  describe('while a backlog drains (the next batch queued during each commit)', () => {
    const total = 300_000;
    /** READ_BATCH_BYTES: ~6k records a batch, so the drain is ~50 batches, each queued while the one before is committed. */
    const BATCH_BYTES = 256 * 1024;
    /** Publishes `total` records before the server starts, yielding every 5000 calls as a busy app does. */
    async function backlog(channel: string, app: string) {
      const log = createPublisher(channel, { app, url: redis.url });
      for (let i = 0; i < total; i++) {
        log.info('backlog', { i });
        if (i % 5000 === 4999) await new Promise(setImmediate);
      }
      await log.flush();
      return log;
    }

    it('closes files at ROTATE_BYTES as it goes, not once the backlog is drained: every record once, no file far past the bound', async () => {
      const logDir = join(dir, 'log');
      const log = await backlog('drainrotate', 'drain');
      const rotateBytes = 2 * 1024 * 1024;
      const server = await startServer({ REDIS_URL: redis.url, LOG_DIR: logDir, LOG_CHANNEL: 'drainrotate', ROTATE_BYTES: String(rotateBytes), READ_BATCH_BYTES: String(BATCH_BYTES) });
      try {
        const records = await waitForRecords(logDir, 'drain', total, 90_000);
        expectExactlyOnce(records, log.producer, total);
        const closed = readdirSync(join(logDir, 'drain')).filter((name) => name.endsWith('.jsonl'));
        const sizes = closed.map((name) => statSync(join(logDir, 'drain', name)).size);
        const bytes = sizes.reduce((sum, size) => sum + size, 0);
        // A file is closed between batches once it reaches ROTATE_BYTES: past it by a batch's
        // lines (READ_BATCH_BYTES of frames of small records make ~5x that in lines, ~1.3 MB;
        // the bound leaves room for about three).
        // Starved while the backlog drains, it would be one file of all 45 MB.
        for (const size of sizes) expect(size).toBeLessThanOrEqual(rotateBytes + 4 * 1024 * 1024);
        expect(closed.length).toBeGreaterThanOrEqual(Math.floor(bytes / (rotateBytes + 4 * 1024 * 1024)));
        expect(closed.length).toBeGreaterThanOrEqual(5);
      } finally {
        await log.close();
        await server.stop();
      }
    }, 120_000);

    it('reopens on SIGHUP mid-drain (logrotate moved the file): every record once, in the moved files or the new one', async () => {
      const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
      console.log(`SIGHUP mid-drain seed ${seed} (replay: SEED=${seed})`);
      const random = rng(seed);
      const logDir = join(dir, 'log');
      const log = await backlog('drainhup', 'hup');
      const server = await startServer({ REDIS_URL: redis.url, LOG_DIR: logDir, LOG_CHANNEL: 'drainhup', ROTATE_BYTES: String(1 << 30), READ_BATCH_BYTES: String(BATCH_BYTES) });
      // the last at 65% at most: the reopen comes within two batches, long before the drain ends
      const moments = [0.05 + random.next() * 0.15, 0.3 + random.next() * 0.15, 0.5 + random.next() * 0.15].map((f) => Math.floor(f * total));
      try {
        const hupDir = join(logDir, 'hup');
        // Progress by the files' sizes (a stat each), not by counting lines: the server drains
        // the whole backlog in a second or two, faster than the lines could be read.
        const bytesOnDisk = () => readdirSync(hupDir).reduce((sum, name) => sum + (name === 'hup.log' || name.startsWith('moved-') ? statSync(join(hupDir, name)).size : 0), 0);
        while (!existsSync(join(hupDir, 'hup.log')) || statSync(join(hupDir, 'hup.log')).size === 0) await sleep(1);
        const lineBytes = readFileSync(join(hupDir, 'hup.log'), 'utf8').indexOf('\n') + 1;
        for (const [n, at] of moments.entries()) {
          // The reopen waits for the batches in hand (at most two, ~12k records here).
          const deadline = Date.now() + 30_000;
          while (bytesOnDisk() < at * lineBytes || !existsSync(join(hupDir, 'hup.log'))) {
            if (Date.now() > deadline)
              throw new Error(
                `${countLines(logDir, 'hup')} lines of ${at}, hup.log ${existsSync(join(hupDir, 'hup.log')) ? 'there' : 'not there'} (files: ${readdirSync(hupDir).join(', ')}); the server said:\n${server.output()}`,
              );
            await sleep(1);
          }
          renameSync(join(logDir, 'hup', 'hup.log'), join(logDir, 'hup', `moved-${n}.jsonl`));
          server.child.kill('SIGHUP');
        }
        const records = await waitForRecords(logDir, 'hup', total, 90_000);
        expectExactlyOnce(records, log.producer, total);
        // each move was followed by a reopen: every moved file and the open one hold records
        for (let n = 0; n < moments.length; n++) expect(statSync(join(logDir, 'hup', `moved-${n}.jsonl`)).size).toBeGreaterThan(0);
        expect(statSync(join(logDir, 'hup', 'hup.log')).size).toBeGreaterThan(0);
        expect(server.output()).not.toMatch(/disk failure/);
      } finally {
        await log.close();
        await server.stop();
      }
    }, 120_000);
  });

  (canMount ? it : it.skip)('a rotation that cannot write its manifest is a DiskError that keeps the file open and its summary for the next try', async () => {
    const logDir = join(dir, 'log');
    expect(mountSmallDisk(logDir, '1m', INODES_FOR_ONE_OPEN_FILE)).toBe(true);
    const sink = new FileSink(logDir);
    const policy = { maxBytes: 1, maxAgeMs: 1e9 };
    try {
      for (let seq = 1; seq <= 3; seq++) sink.append('shop', `line ${seq}\n`, Date.UTC(2026, 0, 1, 0, 0, seq), 'p1', seq);
      await sink.commit();
      let error: unknown;
      try {
        sink.rotate(policy);
      } catch (thrown) {
        error = thrown;
      }
      expect(error).toBeInstanceOf(DiskError);
      expect(error).toMatchObject({ code: 'DISK_WRITE_FAILED', errno: 'ENOSPC', path: expect.stringMatching(/\.manifest\.json$/) });
      expect((error as Error).cause).toMatchObject({ code: 'ENOSPC' });
      expect(readdirSync(join(logDir, 'shop'))).toEqual(['shop.log']);

      expect(spawnSync('mount', ['-o', 'remount,nr_inodes=100', logDir]).status).toBe(0);
      sink.append('shop', 'line 4\n', Date.UTC(2026, 0, 1, 0, 0, 4), 'p1', 4);
      await sink.commit();
      const [closed] = sink.rotate(policy).closed;
      expect(readFileSync(closed!.path, 'utf8')).toBe('line 1\nline 2\nline 3\nline 4\n');
      // the summary outlived the failed rotation: the manifest counts every line of the file
      expect(JSON.parse(readFileSync(manifestPathOf(closed!.path), 'utf8'))).toMatchObject({
        records: 4,
        producers: [{ producer: 'p1', minSeq: 1, maxSeq: 4, records: 4 }],
      });
    } finally {
      sink.close();
    }
  });

  (canMount ? it : it.skip)(
    'a rotation that fails is a disk failure: exit 1 with no redis or ack error; after a restart every record is there once, with manifests',
    async () => {
      const logDir = join(dir, 'log');
      // + LOG_DIR/.state/ and the checkpoint file the server writes after each commit
      expect(mountSmallDisk(logDir, '4m', INODES_FOR_ONE_OPEN_FILE + 2)).toBe(true);
      const channel = 'rotatefail';
      const env = { REDIS_URL: redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel, ROTATE_BYTES: '20000' };
      const log = createPublisher(channel, { app: 'rot', url: redis.url });
      try {
        for (let i = 0; i < 2000; i++) log.info('rotating', { i, pad: 'x'.repeat(100) });
        await log.flush();
        const first = await startServer(env);
        try {
          expect(await within(first.exited, 15_000)).toEqual({ value: 1 });
        } finally {
          await first.stop();
        }
        expect(first.output()).toMatch(/"errorCode":"DISK_WRITE_FAILED"/);
        expect(first.output()).toMatch(/manifest\.json failed \(ENOSPC\)/);
        expect(first.output()).not.toMatch(/reading from redis failed|acknowledging a batch failed/);

        expect(spawnSync('mount', ['-o', 'remount,nr_inodes=1000', logDir]).status).toBe(0);
        const second = await startServer(env);
        try {
          // more records, so the file left open by the failed rotation is written to and rotated again
          for (let i = 2000; i < 2500; i++) log.info('rotating', { i, pad: 'x'.repeat(100) });
          await log.flush();
          await waitForRecords(logDir, 'rot', 2500);
        } finally {
          await second.stop(); // closes the open file too: every record ends in a closed file
        }
        expectExactlyOnce(readLogs(logDir).get('rot')!, log.producer, 2500);
        const closed = readdirSync(join(logDir, 'rot')).filter((name) => name.endsWith('.jsonl'));
        const counts = closed.map((name) => JSON.parse(readFileSync(manifestPathOf(join(logDir, 'rot', name)), 'utf8')).records as number);
        expect(counts).toEqual(closed.map((name) => readFileSync(join(logDir, 'rot', name), 'utf8').split('\n').length - 1));
        expect(counts.reduce((a, b) => a + b, 0)).toBe(2500);
      } finally {
        await log.close();
      }
    },
    60_000,
  );

  (canMount ? it : it.skip)(
    'in Pub/Sub mode too, a rotation that fails stops the server as a disk failure',
    async () => {
      const logDir = join(dir, 'log');
      expect(mountSmallDisk(logDir, '4m', INODES_FOR_ONE_OPEN_FILE)).toBe(true);
      const server = await startServer({ REDIS_URL: redis.url, LOG_DIR: logDir, LOG_CHANNEL: 'rotatepubsub', LOG_TRANSPORT: 'pubsub', ROTATE_BYTES: '1000' });
      const log = createPublisher('rotatepubsub', { app: 'rot', url: redis.url, transport: 'pubsub' });
      try {
        for (let i = 0; i < 100; i++) log.info('rotating', { i, pad: 'x'.repeat(100) });
        await log.flush();
        expect(await within(server.exited, 15_000)).toEqual({ value: 1 });
        expect(server.output()).toMatch(/"level":"error".*"errorCode":"DISK_WRITE_FAILED".*ENOSPC/);
      } finally {
        await log.close();
        await server.stop();
      }
    },
    30_000,
  );
});
