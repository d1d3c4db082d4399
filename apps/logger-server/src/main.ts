#!/usr/bin/env node
// The logger daemon in the foreground: `node apps/logger-server/dist/main.js`, configured by the
// environment (see README). Exit codes: 0 after a clean drain, 1 on a disk failure (pending
// entries are redelivered after restart), 2 on bad configuration.
import { loadConfig, redactedConfig } from './config';
import { ConfigError } from './errors';
import { startHttp } from './http';
import { describeError, serverLog } from './log';
import { LoggerServer } from './server';

const DRAIN_DEADLINE_MS = 10_000;

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`logger-server: ${problem}\n`);
      return 2;
    }
    throw error;
  }
  serverLog('info', 'configuration', redactedConfig(config));
  const server = new LoggerServer(config);
  await server.start();
  const http = config.httpPort === undefined ? undefined : await startHttp(server, config.httpPort);
  if (http) serverLog('info', 'http listening', { port: http.port, paths: ['/metrics', '/healthz', '/stats'] });

  const stopping = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.on('SIGHUP', () => server.reopenFiles());
  const reason = await Promise.race([stopping, server.done.then(() => 'loop ended')]);
  serverLog('info', 'draining', { reason });
  const deadline = setTimeout(() => {
    serverLog('error', 'drain deadline passed; exiting (unacknowledged entries will be redelivered)');
    process.exit(1);
  }, DRAIN_DEADLINE_MS);
  deadline.unref();
  await server.stop();
  http?.http.close();
  return server.fatal ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    serverLog('error', 'logger server failed', describeError(error));
    process.exit(1);
  },
);
