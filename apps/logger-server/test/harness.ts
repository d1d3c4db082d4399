import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, sleep, startRedis, stopProcess, waitUntil, type RedisServer } from '@log/test-kit';
import { streamKey } from '@log/protocol';
import { createRedisClient } from '@log/protocol/redis';
import type { RedisClientType } from 'redis';

/** The server's entry point, as operators run it. */
export const MAIN = join(__dirname, '..', 'dist', 'main.js');

/** A logger-server child process, as operators run it: `node dist/main.js` with environment variables. */
export interface ServerProcess {
  child: ChildProcess;
  httpPort: number;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

/**
 * Starts `node dist/main.js`. `openFileLimit` runs it under that `ulimit -n` (through sh, which
 * execs node: the child is the server itself).
 */
export async function startServer(env: Record<string, string>, { waitReady = true, openFileLimit }: { waitReady?: boolean; openFileLimit?: number } = {}): Promise<ServerProcess> {
  const httpPort = await freePort();
  const [command, args] = openFileLimit === undefined ? [process.execPath, [MAIN]] : ['/bin/sh', ['-c', `ulimit -n ${openFileLimit} && exec "$0" "$1"`, process.execPath, MAIN]];
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH, HTTP_PORT: String(httpPort), READ_BLOCK_MS: '200', LOG_CONSUMER: 'test', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const server: ServerProcess = {
    child,
    httpPort,
    output: () => output,
    exited,
    stop: () => stopProcess(child, 15_000),
    kill9: () => stopProcess(child, 0),
  };
  if (waitReady) {
    const deadline = Date.now() + 15_000;
    while (!output.includes('"logger server started"')) {
      if (child.exitCode !== null) throw new Error(`logger-server exited early:\n${output}`);
      if (Date.now() > deadline) throw new Error(`logger-server did not start:\n${output}`);
      await sleep(20);
    }
  }
  return server;
}

/**
 * Every complete JSON line under logDir, per app: closed files (oldest first) then the open one
 * (a line being written is not complete yet). A file the running server renames (rotation) or
 * deletes (archived) while it is read makes the whole read start again.
 */
export function readLogs(logDir: string): Map<string, Array<Record<string, unknown>>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return readLogsOnce(logDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw error;
    }
  }
}

function readLogsOnce(logDir: string): Map<string, Array<Record<string, unknown>>> {
  const result = new Map<string, Array<Record<string, unknown>>>();
  if (!existsSync(logDir)) return result;
  for (const app of readdirSync(logDir).filter((name) => !name.startsWith('.'))) {
    const dir = join(logDir, app);
    const files = readdirSync(dir)
      .filter((name) => name.endsWith('.jsonl'))
      .sort();
    if (existsSync(join(dir, `${app}.log`))) files.push(`${app}.log`);
    if (files.length === 0) continue;
    const records: Array<Record<string, unknown>> = [];
    for (const name of files) {
      const lines = readFileSync(join(dir, name), 'utf8').split('\n');
      lines.pop(); // after the last newline: '' or a line the server is writing right now
      for (const line of lines) records.push(JSON.parse(line));
    }
    result.set(app, records);
  }
  return result;
}

/** Complete lines under logDir/app (closed and open files), counted without parsing: cheap to poll. */
export function countLines(logDir: string, app: string): number {
  const dir = join(logDir, app);
  for (let attempt = 1; ; attempt++) {
    if (!existsSync(dir)) return 0;
    try {
      let lines = 0;
      for (const name of readdirSync(dir)) {
        if (!name.endsWith('.jsonl') && name !== `${app}.log`) continue;
        const data = readFileSync(join(dir, name));
        for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) lines++;
      }
      return lines;
    } catch (error) {
      // renamed (rotation) or deleted (archived) between the listing and the read: count again
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw error;
    }
  }
}

/** Polls until `count` lines are under logDir/app (or the timeout passes) and returns them. */
export async function waitForRecords(logDir: string, app: string, count: number, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = readLogs(logDir).get(app) ?? [];
    if (records.length >= count || Date.now() > deadline) return records;
    await sleep(50);
  }
}

export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

/** Asserts every (producer, seq) appears exactly once and returns how many records there are. */
export function expectExactlyOnce(records: Array<Record<string, unknown>>, producer: string, count: number): void {
  const seqs = records.filter((r) => r.producer === producer).map((r) => r.seq as number);
  const unique = new Set(seqs);
  expect(unique.size).toBe(seqs.length); // no duplicates
  expect(unique.size).toBe(count); // nothing missing
  for (let seq = 1; seq <= count; seq++) if (!unique.has(seq)) throw new Error(`seq ${seq} of ${producer} is missing`);
}

/** A redis-server of the test file's own and a connected client, started before its tests and stopped after. */
export function useRedis(): { readonly redis: RedisServer; readonly client: RedisClientType } {
  const state = {} as { redis: RedisServer; client: RedisClientType };
  beforeAll(async () => {
    state.redis = await startRedis();
    state.client = createRedisClient({ url: state.redis.url });
    await state.client.connect();
  });
  afterAll(async () => {
    state.client.destroy();
    await state.redis.dispose();
  });
  return state;
}

/** Waits until a group of the channel's stream has read every entry and has none pending: all that was added is settled. */
export async function groupSettled(client: RedisClientType, channel: string, timeoutMs = 30_000): Promise<void> {
  await waitUntil(
    `a group of ${streamKey(channel)} settles`,
    async () => {
      const groups = (await client.xInfoGroups(streamKey(channel))) as Array<{ pending: number; lag: number | null }>;
      return groups.some((group) => group.pending === 0 && group.lag === 0);
    },
    { timeoutMs },
  );
}

/** mulberry32: small, seeded, good enough to pick faults and timings from a printed seed. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]! };
}
