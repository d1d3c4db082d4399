import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LoggerServer } from './server';

/**
 * GET /metrics (Prometheus text), /healthz (200 ready, 503 not ready, with the reason) and
 * /stats (the group's per-producer loss report as JSON, merged over every server: `?cursor=N&limit=M`
 * pages it, most recently active producers first; the reply's `cursor` fetches the next page).
 */
export function startHttp(server: LoggerServer, port: number): Promise<{ http: Server; port: number }> {
  const http = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/metrics') {
      server.metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': server.metrics.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
      return;
    }
    if (path === '/healthz') {
      const { ready, redisOk, diskOk, lastError } = server.health;
      const archive = server.archiveHealth();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
      const status = !ready ? 'unavailable' : archive === 'degraded' ? 'degraded' : 'ok';
      res.end(JSON.stringify({ status, redis: redisOk ? 'ok' : 'failing', disk: diskOk ? 'ok' : 'failing', archive, lastError }));
      return;
    }
    if (path === '/stats') {
      // The group's report, merged over every server, read from Redis a page at a time: never
      // built on the write loop's time, never bigger than one page.
      const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
      const cursor = Math.max(0, Math.floor(Number(query.get('cursor') ?? 0)) || 0);
      const limit = Math.min(1000, Math.max(1, Math.floor(Number(query.get('limit') ?? 100)) || 100));
      server.group.report(cursor, limit).then(
        (report) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(report, null, 2)),
        (error: unknown) => res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `redis: ${String((error as Error)?.message ?? error)}` })),
      );
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, '0.0.0.0', () => resolve({ http, port: (http.address() as AddressInfo).port }));
  });
}
