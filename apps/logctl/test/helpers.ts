import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort, removeDir, startRedis, stopProcess, type RedisServer } from '@log/test-kit';
import { createClient, type RedisClientType } from 'redis';
import { run } from '../src/cli';
import type { Io } from '../src/io';

/** Runs one logctl command line in-process with the given environment; stdout and stderr captured. */
export async function logctl(env: Record<string, string>, argv: string[], extra: Partial<Io> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(argv, {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    env,
    ...extra,
  });
  return { code, out, err };
}

/** A logger-server (its dist/main.js) beside the commands, as operators run it: output captured, a free HTTP port. */
export interface ServerChild {
  child: ReturnType<typeof spawn>;
  httpPort: number;
  output(): string;
}

/**
 * Starts logger-servers for a describe block's tests (`start(env)`), and after each test stops
 * the one it started and removes its LOG_DIR.
 */
export function useServer(): { start(env: Record<string, string>): Promise<ServerChild> } {
  let current: { server: ServerChild; logDir: string } | undefined;
  afterEach(async () => {
    if (current) {
      await stopProcess(current.server.child, 15_000);
      if (current.logDir !== '') removeDir(current.logDir);
    }
    current = undefined;
  });
  return {
    async start(env) {
      const httpPort = await freePort();
      let output = '';
      const child = spawn(process.execPath, [join(__dirname, '..', '..', 'logger-server', 'dist', 'main.js')], {
        env: { PATH: process.env.PATH, HTTP_PORT: String(httpPort), READ_BLOCK_MS: '200', LOG_CONSUMER: 'test', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const server = { child, httpPort, output: () => output };
      current = { server, logDir: env.LOG_DIR ?? '' };
      return server;
    },
  };
}

/** A redis-server of the test file's own and a connected client, started before its tests and stopped after. */
export function useRedis(): { readonly redis: RedisServer; readonly client: RedisClientType } {
  const state = {} as { redis: RedisServer; client: RedisClientType };
  beforeAll(async () => {
    state.redis = await startRedis();
    state.client = createClient({ url: state.redis.url }) as RedisClientType;
    state.client.on('error', () => {});
    await state.client.connect();
  });
  afterAll(async () => {
    state.client.destroy();
    await state.redis.dispose();
  });
  return state;
}
