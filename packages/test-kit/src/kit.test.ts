import { request } from 'node:http';
import { connect } from 'node:net';
import { sleep } from './process';
import { freePort, motoAvailable, s3Implementations, startRedis, startS3, startS3Pager, startTcpProxy, tcpAskForTest, type TcpProxy } from './testing';

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
      await sleep(300);
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

  it.each(s3Implementations())(
    'starts %s, which answers S3 requests for its bucket',
    async (implementation) => {
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
      await expect(new Promise((resolve, reject) => connect(s3.port, '127.0.0.1').on('connect', resolve).on('error', reject))).rejects.toThrow();
    },
    30_000,
  );

  /** Runs `test` with a TCP proxy in front of a fresh redis-server, and disposes of both. */
  async function withProxiedRedis(test: (proxy: TcpProxy) => Promise<void>): Promise<void> {
    const redis = await startRedis();
    const proxy = await startTcpProxy(redis.port);
    try {
      await test(proxy);
    } finally {
      await proxy.close();
      await redis.dispose();
    }
  }

  it('proxies to a real server, and when cut drops every byte without closing connections', () =>
    withProxiedRedis(async (proxy) => {
      expect(await tcpAskForTest(proxy.port, 'PING\r\n')).toBe('+PONG\r\n');
      proxy.cut();
      await expect(tcpAskForTest(proxy.port, 'PING\r\n', 500)).rejects.toThrow('timeout');
      proxy.heal();
      expect(await tcpAskForTest(proxy.port, 'PING\r\n')).toBe('+PONG\r\n');
    }));

  it('cutAfter lets a given number of bytes through towards the server, then black-holes the rest', () =>
    withProxiedRedis(async (proxy) => {
      const cut = proxy.cutAfter(14);
      expect(await tcpAskForTest(proxy.port, 'PING\r\n')).toBe('+PONG\r\n'); // 6 bytes of 14
      // the next 8 bytes get through, the SET's last byte does not, and nothing comes back
      await expect(tcpAskForTest(proxy.port, 'SET k v\r\n', 500)).rejects.toThrow('timeout');
      await cut;
      await expect(tcpAskForTest(proxy.port, 'PING\r\n', 500)).rejects.toThrow('timeout');
      proxy.heal();
      expect(await tcpAskForTest(proxy.port, 'GET k\r\n')).toBe('$-1\r\n');
    }));

  // moto lists multipart uploads (in one page); s3rver does not list them at all
  (motoAvailable() ? it : it.skip)(
    "pages a real S3 server's multipart upload listing as AWS does",
    async () => {
      const s3 = await startS3({ implementation: 'moto', buckets: ['kit-bucket'] });
      const pager = await startS3Pager(s3.port, { maxUploads: 2 });
      const http = (method: string, path: string) =>
        new Promise<string>((resolve, reject) => {
          const req = request(`${pager.endpoint}${path}`, { method }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          });
          req.on('error', reject);
          req.end();
        });
      try {
        for (const key of ['p/c', 'p/a', 'q/x', 'p/b', 'p/a']) await http('POST', `/kit-bucket/${key}?uploads`);
        const seen: string[] = [];
        let query = '';
        for (let pages = 1; ; pages++) {
          const body = await http('GET', `/kit-bucket?uploads&prefix=p%2F${query}`);
          for (const m of body.matchAll(/<Key>(.*?)<\/Key>/g)) seen.push(m[1]!);
          if (!body.includes('<IsTruncated>true</IsTruncated>')) {
            expect(pages).toBe(2);
            break;
          }
          const next = (name: string) => encodeURIComponent(new RegExp(`<${name}>(.*?)</${name}>`).exec(body)![1]!);
          query = `&key-marker=${next('NextKeyMarker')}&upload-id-marker=${next('NextUploadIdMarker')}`;
        }
        expect(seen).toEqual(['p/a', 'p/a', 'p/b', 'p/c']);
        expect(pager.listings).toBe(2);
      } finally {
        await pager.close();
        await s3.dispose();
      }
    },
    30_000,
  );
});
