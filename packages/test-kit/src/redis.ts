import type { ChildProcess } from 'node:child_process';
import { TestKitError } from './errors';
import { freePort, serviceControls, spawnService, tcpAsk, tempDir, waitUntil, which, type ServiceControls } from './process';

export interface RedisServerOptions {
  /** Append-only file on (fsync every second), so a restart after kill keeps data. @defaultValue false */
  appendOnly?: boolean;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
}

/** A real redis-server owned by a test: its own port and data directory. */
export interface RedisServer extends ServiceControls {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** FLUSHALL: an empty server for the next round of a benchmark or test. */
  flushAll(): Promise<void>;
}

export const REDIS_INSTALL_HINT = 'apt-get install -y redis-server';

/** Path of redis-server, or a TestKitError that says how to install it. */
export function redisServerBinary(): string {
  const path = process.env.REDIS_SERVER_BIN ?? which('redis-server');
  if (!path) {
    throw new TestKitError('REDIS_SERVER_MISSING', `redis-server (>= 6.2) is not installed; tests need a real one. Install it with: ${REDIS_INSTALL_HINT}` + ' (or set REDIS_SERVER_BIN to its path)');
  }
  return path;
}

/** Starts a redis-server on a free port with a temp data directory and waits until it answers PING. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = redisServerBinary();
  const port = await freePort();
  const dir = tempDir('redis');
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.appendOnly ? 'yes' : 'no',
    '--appendfsync',
    'everysec',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
    ...(options.args ?? []),
  ];
  let child: ChildProcess | undefined;

  const start = async () => {
    const service = spawnService(binary, args);
    child = service.child;
    await waitUntil(`redis-server on port ${port}`, async () => (await tcpAsk(port, 'PING\r\n')).startsWith('+PONG'), {
      child,
      output: service.output,
    });
  };
  await start();

  const flushAll = async () => {
    const reply = await tcpAsk(port, 'FLUSHALL\r\n', 10_000);
    if (!reply.startsWith('+OK')) throw new TestKitError('COMMAND_FAILED', `FLUSHALL on port ${port} answered ${reply.trim()}`);
  };
  const server: RedisServer = Object.assign(
    serviceControls(() => child, start, dir),
    { url: `redis://127.0.0.1:${port}`, port, dir, flushAll },
  );
  return server;
}
