// A logger-server process for the benchmarks: started as operators run it, with its readiness time.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { freePort } = require('@log/test-kit');

const MAIN = join(import.meta.dirname, '..', 'dist', 'main.js');

/** Records the server has written, from its /metrics (0 while it does not answer). */
export async function written(port) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    let sum = 0;
    for (const match of text.matchAll(/^logger_records_written_total\{[^}]*\} (\d+)/gm)) sum += Number(match[1]);
    return sum;
  } catch {
    return 0;
  }
}

/** Resolves when `line` appears on the child's stdout, with the time it did. */
export function lineSeen(child, line) {
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code, signal) => reject(new Error(`process exited before "${line}" (${code ?? signal})`)));
    child.stdout.on('data', function onData(d) {
      out += d;
      if (out.includes(line)) {
        child.stdout.off('data', onData);
        child.removeAllListeners('exit');
        resolve(process.hrtime.bigint());
      }
    });
  });
}

/**
 * Starts a server; `ready` is when it logged that its read loop runs (node and module loading are
 * behind it). `main`: another build's dist/main.js; `nodeArgs`: e.g. --cpu-prof for a profile.
 */
export async function runServer(env, main = MAIN, nodeArgs = []) {
  const httpPort = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, main], { env: { PATH: process.env.PATH, HTTP_PORT: String(httpPort), LOG_CONSUMER: 'bench', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const readyAt = lineSeen(child, '"logger server started"');
  let ready;
  readyAt.then((t) => (ready = t)).catch(() => undefined);
  await lineSeen(child, '"logger server started"');
  await readyAt;
  // keep the pipe drained: a full pipe would block the server's log writes. BENCH_SERVER_STDOUT=<dir>
  // keeps each server's stdout (its log lines, and --trace-gc's when given as a node argument) in <dir>/server-<pid>.out.
  if (process.env.BENCH_SERVER_STDOUT) child.stdout.pipe(createWriteStream(join(process.env.BENCH_SERVER_STDOUT, `server-${child.pid}.out`)));
  else child.stdout.resume();
  return {
    child,
    httpPort,
    ready,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', resolve);
        child.kill('SIGTERM');
      }),
  };
}
