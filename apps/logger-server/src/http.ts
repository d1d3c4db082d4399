import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LoggerServer } from './server';

/**
 * GET /metrics (Prometheus text), /healthz (200 ready, 503 not ready, with the reason) and
 * /stats (per-producer loss report as JSON).
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
      const { ready, redisOk, diskOk, lastError } = server.state;
      const archive = server.archiveHealth();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
      const status = !ready ? 'unavailable' : archive === 'degraded' ? 'degraded' : 'ok';
      res.end(JSON.stringify({ status, redis: redisOk ? 'ok' : 'failing', disk: diskOk ? 'ok' : 'failing', archive, lastError }));
      return;
    }
    if (path === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ totals: server.ledger.totals(), producers: server.ledger.snapshot() }, null, 2));
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, '0.0.0.0', () => resolve({ http, port: (http.address() as AddressInfo).port }));
  });
}
