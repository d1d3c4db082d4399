import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removeDir, startRedis, tempDir, type RedisServer } from '@log/test-kit';

// logctl over rediss://, as operators run it (a process: NODE_EXTRA_CA_CERTS is read at start).

const main = join(__dirname, '..', 'dist', 'main.js');
let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  redis = await startRedis({ tls: true });
  dir = tempDir('logctl-tls');
});
afterAll(async () => {
  await redis.dispose();
  removeDir(dir);
});

async function logctl(caFile: string, args: string[]): Promise<{ code: number; out: string }> {
  const env = { PATH: process.env.PATH, REDIS_URL: redis.tls!.url, NODE_EXTRA_CA_CERTS: caFile, LOG_DIR: dir };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [main, ...args], { env, timeout: 20_000 });
    return { code: 0, out: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, out: failed.stdout + failed.stderr };
  }
}

describe('logctl over TLS', () => {
  it('checks and reports over rediss:// with the CA trusted, and says the certificate is not trusted otherwise', async () => {
    const trusted = await logctl(redis.tls!.caFile, ['check']);
    expect(trusted).toMatchObject({ code: 0 });
    expect(trusted.out).toContain(`ok      redis: ${redis.tls!.url}: reachable, authenticated`);
    const stats = await logctl(redis.tls!.caFile, ['stats', '--json']);
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.out)).toMatchObject({ totals: expect.any(Object) });

    const untrusted = await logctl(redis.tls!.wrongCaFile, ['check']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.out).toMatch(new RegExp(`PROBLEM redis: ${redis.tls!.url.replace(/[.]/g, '\\.')}: .*SELF_SIGNED_CERT_IN_CHAIN.*NODE_EXTRA_CA_CERTS names the CA file`));
  });
});
