#!/usr/bin/env node
// The logger daemon in the foreground: `node apps/logger-server/dist/main.js`, configured by the
// environment (see README). Exit codes: 0 after a clean drain, 1 on a disk failure (pending
// entries are redelivered after restart), 2 on bad configuration or a LOG_CONSUMER another live
// server holds.
//
// `logger-server archive [dir]`: uploads the closed files left under LOG_DIR (or dir) once and
// exits: 0 when all were archived, 1 when some are left (they are kept), 2 on bad configuration.
import { ENV_KEYS, SETTING_HELP, loadConfig, redactedConfig, type ServerConfig } from './config';
import { ConfigError, LeaseError, StartupError } from './errors';
import { startHttp } from './http';
import { describeError, serverLog } from './log';
import { createMetrics } from './metrics';
import { LoggerServer } from './server';
import { waitForRedis } from './startup';

const USAGE = `usage: logger-server              run the server in the foreground (settings below, from the environment)
       logger-server archive [dir]  upload the closed files under LOG_DIR (or dir) to S3 once, and exit
       logger-server --help         this text

Exit codes: 0 stopped cleanly; 1 disk failure (unacknowledged entries are redelivered after a
restart); 2 a setting is wrong (each problem on its own line, naming the setting).

Settings (environment variables; a JSON file named by LOG_CONFIG may give any of them):
${ENV_KEYS.map((key) => `  ${key.padEnd(30)}${SETTING_HELP[key]}`).join('\n')}
`;

// Shorter than S3_IDLE_TIMEOUT_MS (30 s) on purpose: stopping aborts an upload in flight (its file
// is kept and archived after the next start) instead of waiting for a frozen S3, so only the
// batch in hand (write, fsync, ack) and closing the files count against it.
const DRAIN_DEADLINE_MS = 10_000;

const ARCHIVE_ATTEMPTS = 5;

function configOrExit(env: NodeJS.ProcessEnv): Readonly<ServerConfig> | undefined {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`logger-server: ${problem}\n`);
      return undefined;
    }
    throw error;
  }
}

async function archiveCommand(dir: string | undefined): Promise<number> {
  const config = configOrExit(dir === undefined ? process.env : { ...process.env, LOG_DIR: dir });
  if (!config) return 2;
  if (!config.s3) {
    process.stderr.write('logger-server archive: S3_BUCKET is not set (and S3_ENDPOINT, S3_PREFIX, AWS_REGION as needed)\n');
    return 2;
  }
  // Loaded here, not at the top: the AWS SDK costs ~200 ms of start-up, paid only where archiving runs.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy, synchronous load on purpose (see above); the module is CommonJS
  const { ArchiveQueue } = require('./archive') as typeof import('./archive');
  const queue = new ArchiveQueue({ ...config, s3: config.s3 }, createMetrics(), serverLog);
  queue.scan();
  const { archived, failed } = await queue.archiveAll(ARCHIVE_ATTEMPTS);
  serverLog(failed.length === 0 ? 'info' : 'error', 'archive pass finished', { logDir: config.logDir, archived, left: failed.length });
  return failed.length === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === 'archive') return archiveCommand(args[0]);
  if (command !== undefined) {
    process.stderr.write(`logger-server: unknown command ${JSON.stringify(command)}\n${USAGE}`);
    return 2;
  }
  const config = configOrExit(process.env);
  if (!config) return 2;
  serverLog('info', 'configuration', redactedConfig(config));
  // Heard from the start: a SIGTERM while starting drains once started, instead of killing the process.
  const stopping = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const server = new LoggerServer(config);
  // HTTP first: while Redis is awaited, /healthz answers 503 with the reason instead of nothing.
  let http: Awaited<ReturnType<typeof startHttp>> | undefined;
  try {
    http = config.httpPort === undefined ? undefined : await startHttp(server, config.httpPort);
    if (http) serverLog('info', 'http listening', { port: http.port, paths: ['/metrics', '/healthz', '/stats'] });
    const abort = new AbortController();
    void stopping.then(() => abort.abort());
    const reachable = await waitForRedis(
      config.clusterNodes ? { clusterNodes: config.clusterNodes } : config.redisUrl,
      serverLog,
      (reason) => server.health.set(reason === undefined, true, reason),
      abort.signal,
    );
    if (!reachable) {
      http?.http.close();
      return 0; // stopped while waiting: nothing was read, nothing to drain
    }
    await server.start();
  } catch (error) {
    if (!(error instanceof LeaseError || error instanceof StartupError)) throw error;
    process.stderr.write(`logger-server: ${error.message}\n`);
    serverLog('error', 'cannot start', describeError(error));
    http?.http.close();
    return 2;
  }

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
