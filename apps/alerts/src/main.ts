#!/usr/bin/env node
// apps/alerts: `node apps/alerts/dist/main.js`, configured by the environment (see README).
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { DEFAULT_REDIS_URL, toValidName } from '@log/protocol';
import { Alerts } from './alerts';

const log = (message: string, fields?: Record<string, unknown>) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', app: 'alerts', message, ...fields }) + '\n');

async function main(): Promise<void> {
  const env = process.env;
  const threshold = Number(env.ALERT_THRESHOLD ?? 10);
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    process.stderr.write(`alerts: ALERT_THRESHOLD=${JSON.stringify(env.ALERT_THRESHOLD)}: must be a whole number >= 1\n`);
    process.exit(2);
  }
  const alerts = new Alerts({
    url: env.REDIS_URL || DEFAULT_REDIS_URL,
    channel: env.LOG_CHANNEL ?? 'logger',
    group: env.ALERTS_GROUP ?? 'alerts',
    consumer: env.ALERTS_CONSUMER ?? toValidName(hostname()),
    threshold,
    webhookUrl: env.ALERT_WEBHOOK_URL || undefined,
    log,
  });
  const http = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    alerts.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': alerts.registry.contentType }).end(text),
      (error: unknown) => res.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((resolve) => http.listen(Number(env.HTTP_PORT ?? 9465), '0.0.0.0', resolve));
  await alerts.start();
  const address = http.address();
  log('alerts started', { port: typeof address === 'object' && address ? address.port : undefined, threshold });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await alerts.stop();
  http.close();
}

main().catch((error: unknown) => {
  process.stderr.write(`alerts: ${String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
});
