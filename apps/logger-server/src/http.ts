import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StartupError } from './errors';
import type { LoggerServer } from './server';

/**
 * GET /metrics (Prometheus text), /healthz (200 ready, 503 starting or not ready, with the reason;
 * with LOG_SHARDS > 1 ready needs every shard's Redis, and failingShards names those that fail) and
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
      const { ready, redisOk, diskOk, lastError, starting, shards, failingShards } = server.health;
      const archive = server.archiveHealth();
      const up = ready && !starting;
      res.writeHead(up ? 200 : 503, { 'content-type': 'application/json' });
      // Archiving that fails or lags never makes the server unready: it writes on, files wait on disk.
      const status = starting ? 'starting' : !ready ? 'unavailable' : archive.state === 'ok' || archive.state === 'off' ? 'ok' : 'degraded';
      const body: Record<string, unknown> = { status, redis: redisOk ? 'ok' : 'failing', disk: diskOk ? 'ok' : 'failing', archive: archive.state, archiveError: archive.reason, lastError };
      // Which shard's Redis fails, each with its own error (LOG_SHARDS > 1): the server is unready while any does.
      if (shards > 1) body.failingShards = failingShards;
      res.end(JSON.stringify(body));
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
    http.once('error', (error: NodeJS.ErrnoException) => {
      const why =
        error.code === 'EADDRINUSE'
          ? 'address in use (another process listens there; stop it or set another HTTP_PORT)'
          : error.code === 'EACCES'
            ? 'permission denied (ports below 1024 need privileges)'
            : error.message;
      reject(new StartupError('HTTP_PORT_UNUSABLE', `HTTP_PORT ${port}`, `${why} (${error.code ?? 'error'})`, { cause: error }));
    });
    http.listen(port, '0.0.0.0', () => resolve({ http, port: (http.address() as AddressInfo).port }));
  });
}
