#!/usr/bin/env node
// apps/alerts: `node apps/alerts/dist/main.js`, configured by the environment (see README).
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { DEFAULT_REDIS_URL, SigningKeys, toValidName } from '@log/protocol';
import { Alerts } from './alerts';

const log = (message: string, fields?: Record<string, unknown>) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', app: 'alerts', message, ...fields }) + '\n');

async function main(): Promise<void> {
  const env = process.env;
  const threshold = Number(env.ALERT_THRESHOLD ?? 10);
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    process.stderr.write(`alerts: ALERT_THRESHOLD=${JSON.stringify(env.ALERT_THRESHOLD)}: must be a whole number >= 1\n`);
    process.exit(2);
  }
  // The logger servers' own settings, so alerts reads what they read and checks what they check.
  const shards = Number(env.LOG_SHARDS || 1);
  if (!Number.isSafeInteger(shards) || shards < 1) {
    process.stderr.write(`alerts: LOG_SHARDS=${JSON.stringify(env.LOG_SHARDS)}: must be a whole number >= 1\n`);
    process.exit(2);
  }
  const clusterNodes = env.REDIS_CLUSTER_NODES?.split(',')
    .map((node) => node.trim())
    .filter((node) => node !== '');
  let signingKeys: SigningKeys | undefined;
  if (env.LOG_SIGNING_KEYS) {
    const parsed = SigningKeys.parse(env.LOG_SIGNING_KEYS);
    if (parsed.keys === undefined) {
      process.stderr.write(`alerts: LOG_SIGNING_KEYS: ${parsed.problems.join('; ')}\n`);
      process.exit(2);
    }
    signingKeys = parsed.keys;
  }
  const alerts = new Alerts({
    url: env.REDIS_URL || DEFAULT_REDIS_URL,
    clusterNodes: clusterNodes?.length ? clusterNodes : undefined,
    shards,
    signingKeys,
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
