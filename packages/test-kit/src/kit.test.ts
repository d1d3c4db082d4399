import { request } from 'node:http';
import { connect } from 'node:net';
import { freePort, s3Implementations, startRedis, startS3, startTcpProxy, tcpAskForTest } from './testing';

describe('test kit', () => {
  it('hands out free ports that are never 6379', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    for (const port of ports) {
      expect(port).toBeGreaterThan(1024);
      expect(port).not.toBe(6379);
    }
  });

  it('starts, kills and restarts a real redis-server that keeps its AOF', async () => {
    const redis = await startRedis({ appendOnly: true });
    try {
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
      expect(await tcpAskForTest(redis.port, 'SET k v\r\n')).toBe('+OK\r\n');
      await tcpAskForTest(redis.port, 'BGREWRITEAOF\r\n');
      await new Promise((r) => setTimeout(r, 300));
      await redis.kill();
      await expect(tcpAskForTest(redis.port, 'PING\r\n')).rejects.toThrow();
      await redis.start();
      expect(await tcpAskForTest(redis.port, 'GET k\r\n')).toBe('$1\r\nv\r\n');
      await redis.flushAll();
      expect(await tcpAskForTest(redis.port, 'GET k\r\n')).toBe('$-1\r\n');
    } finally {
      await redis.dispose();
    }
  });

  it.each(s3Implementations())('starts %s, which answers S3 requests for its bucket', async (implementation) => {
    const s3 = await startS3({ implementation, buckets: ['kit-bucket'] });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${s3.endpoint}/kit-bucket?list-type=2`, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      // s3rver answers unsigned requests with 403, moto with 200: either way a real S3 server saw the bucket
      expect([200, 403]).toContain(status);
    } finally {
      await s3.dispose();
    }
    await expect(
      new Promise((resolve, reject) => connect(s3.port, '127.0.0.1').on('connect', resolve).on('error', reject)),
    ).rejects.toThrow();
  }, 30_000);

  it('proxies to a real server, and when cut drops every byte without closing connections', async () => {
    const redis = await startRedis();
    const proxy = await startTcpProxy(redis.port);
    try {
      expect(await tcpAskForTest(proxy.port, 'PING\r\n')).toBe('+PONG\r\n');
      proxy.cut();
      await expect(tcpAskForTest(proxy.port, 'PING\r\n', 500)).rejects.toThrow('timeout');
      proxy.heal();
      expect(await tcpAskForTest(proxy.port, 'PING\r\n')).toBe('+PONG\r\n');
    } finally {
      await proxy.close();
      await redis.dispose();
    }
  });
});
