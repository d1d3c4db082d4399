import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { TestKitError } from './errors';

/** A port nobody listens on right now, on 127.0.0.1 (never 6379: the OS hands out ephemeral ports). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A fresh directory under the OS temp dir, named per test worker so parallel runs never share one. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `${prefix}-w${process.env.JEST_WORKER_ID ?? '0'}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Full path of an executable on PATH, or undefined. */
export function which(command: string): string | undefined {
  const result = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const path = result.stdout.trim();
  return result.status === 0 && path ? path : undefined;
}

/**
 * Node's own promise timer, named as the tests call it. Not @log/protocol's `sleep` (abortable,
 * for the product's retry loops): the protocol package's tests use this kit, so importing it
 * here would make a cycle.
 */
export const sleep = (ms: number): Promise<void> => delay(ms);

/**
 * What `promise` settles to within `ms`: `{ value }`, `{ error }`, or 'pending'. For asserting on
 * something that may hang (a bug that keeps a process or a request going) without waiting for the
 * test's timeout; the timer is cleared either way, so no handle outlives the test.
 */
export async function within<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      pending,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `probe` resolves true, polling; rejects with what the service printed after `timeoutMs`. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  { timeoutMs = 10_000, child, output }: { timeoutMs?: number; child?: ChildProcess; output?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) {
      throw new TestKitError('SERVICE_START_FAILED', `${what} exited with ${child.exitCode} before it was ready:\n${output?.() ?? ''}`);
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new TestKitError('SERVICE_START_FAILED', `${what} was not ready within ${timeoutMs} ms:\n${output?.() ?? ''}`);
    }
    await sleep(50);
  }
}

/** Sends `request` on a fresh TCP connection and resolves with the first bytes answered. */
export function tcpAsk(port: number, request: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (data) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data.toString('utf8'));
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Spawns a service and keeps the tail of what it prints, for error messages. */
export function spawnService(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (data: Buffer) => {
    tail = (tail + data.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => tail };
}

/** Sends SIGTERM (or SIGKILL at once when `graceMs` is 0), SIGKILL after `graceMs`; resolves when the process is gone. */
export function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (graceMs === 0) {
      child.kill('SIGKILL');
      return;
    }
    child.kill('SIGCONT'); // a paused process cannot act on SIGTERM
    child.kill('SIGTERM');
  });
}

/** Lifecycle controls every service of the kit has. */
export interface ServiceControls {
  readonly pid: number | undefined;
  /** Stops the service (SIGTERM, SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Kills it with SIGKILL: no save, no goodbye. */
  kill(): Promise<void>;
  /** Starts it again on the same port (after stop or kill). */
  start(): Promise<void>;
  /** Freezes (SIGSTOP) and thaws (SIGCONT) the process: clients see a server that answers nothing. */
  pause(): void;
  resume(): void;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

/** Controls over the child process `current()` returns; `start` (re)spawns it. */
export function serviceControls(current: () => ChildProcess | undefined, start: () => Promise<void>, dir: string): ServiceControls {
  const stop = async () => {
    const child = current();
    if (child) await stopProcess(child);
  };
  return {
    get pid() {
      return current()?.pid;
    },
    stop,
    kill: async () => {
      const child = current();
      if (child) await stopProcess(child, 0);
    },
    start,
    pause: () => current()?.kill('SIGSTOP'),
    resume: () => current()?.kill('SIGCONT'),
    dispose: async () => {
      await stop();
      removeDir(dir);
    },
  };
}
