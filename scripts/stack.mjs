// Starting and stopping the local processes of the demo and of `pnpm dev`: redis-server with its
// data under .dev/, the logger server, the demo app. Plain JavaScript so it runs before any build.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function requireRedisServer() {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
    console.error('redis-server is not installed. Install it with: sudo apt-get install -y redis-server');
    process.exit(1);
  }
}

const children = [];

/** Spawns a child whose output is prefixed with its name; it is stopped by stopAll(). */
export function run(name, command, args, options = {}) {
  // detached: a Ctrl-C in the terminal reaches only us, and stopAll() stops the children in order
  // (apps flush to Redis before the server drains, the server acks before Redis goes away).
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const prefix = `[${name}] `;
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.on('data', (data) => {
      const lines = (rest + data.toString()).split('\n');
      rest = lines.pop();
      if (!options.quiet) for (const line of lines) process.stdout.write(prefix + line + '\n');
    });
  }
  child.on('exit', (code, signal) => {
    if (!stopping && !options.quiet) console.log(`${prefix}exited (${signal ?? code})`);
  });
  children.push({ name, child });
  return child;
}

export async function startRedis(port, dir) {
  mkdirSync(dir, { recursive: true });
  const child = run('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--loglevel', 'warning'], { quiet: true });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG') return child;
    await sleep(50);
  }
  throw new Error(`redis-server did not start on port ${port}`);
}

let stopping = false;

// If we die without stopAll() (an uncaught error), take the children with us.
process.on('exit', () => {
  for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Stops children in reverse start order (apps flush before the server drains, the server before Redis). */
export async function stopAll() {
  stopping = true;
  for (const { child } of children.reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    await new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
