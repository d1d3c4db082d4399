import type { ChildProcess } from 'node:child_process';
import { TestKitError } from './errors';
import { freePort, removeDir, spawnService, stopProcess, tcpAsk, tempDir, waitUntil, which } from './process';

export interface RedisServerOptions {
  /** Append-only file on (fsync every second), so a restart after kill keeps data. @defaultValue false */
  appendOnly?: boolean;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
}

/** A real redis-server owned by a test: its own port and data directory. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM, SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Kills it with SIGKILL: no save, no goodbye. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory (after stop or kill). */
  start(): Promise<void>;
  /** Freezes (SIGSTOP) and thaws (SIGCONT) the process: clients see a server that answers nothing. */
  pause(): void;
  resume(): void;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

export const REDIS_INSTALL_HINT = 'apt-get install -y redis-server';

/** Path of redis-server, or a TestKitError that says how to install it. */
export function redisServerBinary(): string {
  const path = process.env.REDIS_SERVER_BIN ?? which('redis-server');
  if (!path) {
    throw new TestKitError(
      'REDIS_SERVER_MISSING',
      `redis-server (>= 6.2) is not installed; tests need a real one. Install it with: ${REDIS_INSTALL_HINT}` +
        ' (or set REDIS_SERVER_BIN to its path)',
    );
  }
  return path;
}

/** Starts a redis-server on a free port with a temp data directory and waits until it answers PING. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = redisServerBinary();
  const port = await freePort();
  const dir = tempDir('redis');
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', options.appendOnly ? 'yes' : 'no',
    '--appendfsync', 'everysec',
    '--daemonize', 'no',
    '--loglevel', 'warning',
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

  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    stop: async () => {
      if (child) await stopProcess(child);
    },
    kill: async () => {
      if (child) await stopProcess(child, 0);
    },
    start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    dispose: async () => {
      await server.stop();
      removeDir(dir);
    },
  };
  return server;
}
