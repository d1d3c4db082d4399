// `pnpm new-app <name>`: creates apps/<name>, a service that logs through @log/publisher
// (workspace:*), with a test against a real redis-server, links it into the workspace and builds
// it. `pnpm dev` picks it up by its `dev` script (scripts/dev-run.mjs gives it REDIS_URL).
// Plain JavaScript so it runs before anything is built.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './stack.mjs';

// An npm package name segment and a directory name; also a valid app name of the log records
// (@log/protocol's names allow more), so the records' app is the directory's name.
const APP_NAME = /^[a-z][a-z0-9-]{0,39}$/;

const USAGE = `usage: pnpm new-app <name>

Creates apps/<name>: an HTTP service logging every request through @log/publisher, its test
against a real redis-server, and a dev script that \`pnpm dev\` runs. <name>: lowercase letters,
digits and hyphens, starting with a letter, at most 40 characters.`;

function refuse(message) {
  process.stderr.write(`new-app: ${message}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
if (args.length !== 1) refuse(`expected one app name\n\n${USAGE}`);
const name = args[0];
if (!APP_NAME.test(name)) refuse(`${JSON.stringify(name)} is not an app name: lowercase letters, digits and hyphens, starting with a letter, at most 40 characters`);
const appDir = join(root, 'apps', name);
if (existsSync(appDir)) refuse(`apps/${name} already exists`);

const shop = join(root, 'apps', 'shop');
const shopPackage = JSON.parse(readFileSync(join(shop, 'package.json'), 'utf8'));
const files = {
  'package.json':
    JSON.stringify(
      {
        name: `@log/${name}`,
        version: '0.1.0',
        private: true,
        description: `${name}: a service that logs through @log/publisher.`,
        license: 'MIT',
        main: './dist/main.js',
        engines: shopPackage.engines,
        scripts: {
          build: 'tsc -p tsconfig.build.json',
          dev: `node ../../scripts/dev-run.mjs ${name}`,
          start: 'node dist/main.js',
          lint: 'tsc -p tsconfig.json',
          test: 'jest --runInBand',
        },
        dependencies: { '@log/publisher': 'workspace:*' },
        devDependencies: { '@log/protocol': 'workspace:*', '@log/test-kit': 'workspace:*', redis: shopPackage.devDependencies.redis },
      },
      null,
      2,
    ) + '\n',
  // The build and test set-up is shop's, so every app builds and tests the same way.
  'tsconfig.json': readFileSync(join(shop, 'tsconfig.json'), 'utf8'),
  'tsconfig.build.json': readFileSync(join(shop, 'tsconfig.build.json'), 'utf8'),
  'jest.config.js': readFileSync(join(shop, 'jest.config.js'), 'utf8'),
  'README.md': `# ${name}

An HTTP service that logs every request through \`@log/publisher\` (a \`workspace:*\`
dependency), made by \`pnpm new-app ${name}\`. Replace the handler in \`src/app.ts\` with the
service's own; keep the logger.

\`\`\`sh
REDIS_URL=redis://127.0.0.1:6379 PORT=3001 node apps/${name}/dist/main.js
curl localhost:3001/
\`\`\`

\`PORT\` (default: any free port), \`LOG_CHANNEL\` (default \`logger\`), \`REDIS_URL\`. \`pnpm dev\` runs it
with the dev Redis; \`pnpm --filter @log/${name} test\` runs its test against a real redis-server.
`,
  'src/app.ts': `import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublisher, type Logger } from '@log/publisher';

export interface AppOptions {
  /** 0: any free port. */
  port: number;
  channel: string;
  /** Undefined: REDIS_URL, then redis://127.0.0.1:6379. */
  redisUrl: string | undefined;
}

export interface RunningApp {
  port: number;
  log: Logger;
  /** Stops serving, then flushes and closes the logger. */
  close(): Promise<void>;
}

/** ${name}'s HTTP server: every request is logged. */
export async function start${pascal(name)}(options: AppOptions): Promise<RunningApp> {
  const log = createPublisher(options.channel, { app: '${name}', url: options.redisUrl });
  const server = createServer((req, res) => {
    const reqLog = log.child({ method: req.method, path: req.url });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ app: '${name}' }));
    reqLog.info('request', { status: res.statusCode });
  });
  await new Promise<void>((resolve) => server.listen(options.port, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  log.info('${name} started', { port });
  return {
    port,
    log,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      log.info('${name} stopped');
      await log.close();
    },
  };
}
`,
  'src/main.ts': `#!/usr/bin/env node
// ${name}. PORT (default: any free port), LOG_CHANNEL (default logger), REDIS_URL.
import { start${pascal(name)} } from './app';

async function main() {
  const app = await start${pascal(name)}({
    port: Number(process.env.PORT ?? 0),
    channel: process.env.LOG_CHANNEL ?? 'logger',
    redisUrl: process.env.REDIS_URL,
  });
  process.stdout.write(\`${name} listening on http://127.0.0.1:\${app.port}\\n\`);
  const stop = async () => {
    await app.close();
    process.exit(0);
  };
  // A failed close is reported like a failed start, not as an unhandled rejection.
  process.once('SIGINT', () => {
    stop().catch(fail);
  });
  process.once('SIGTERM', () => {
    stop().catch(fail);
  });
}

function fail(error: unknown): never {
  process.stderr.write(\`${name} failed: \${String(error)}\\n\`);
  process.exit(1);
}

main().catch(fail);
`,
  [`test/${name}.test.ts`]: `import { FRAME_FIELD, decodeFrame, decodeRecord, streamKey, type LogRecord } from '@log/protocol';
import { startRedis, type RedisServer } from '@log/test-kit';
import { createClient } from 'redis';
import { start${pascal(name)} } from '../src/app';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.dispose();
});

async function recordsIn(channel: string): Promise<LogRecord[]> {
  const client = createClient({ url: redis.url });
  await client.connect();
  const entries = (await client.xRange(streamKey(channel), '-', '+')) ?? [];
  client.destroy();
  return entries.flatMap((entry) => {
    const frame = decodeFrame(String(entry.message[FRAME_FIELD]), { entryId: entry.id });
    return frame.lines.map((_, i) => decodeRecord(frame, i));
  });
}

describe('${name}', () => {
  it('logs every request through @log/publisher', async () => {
    const app = await start${pascal(name)}({ port: 0, channel: '${name}-test', redisUrl: redis.url });
    expect((await fetch(\`http://127.0.0.1:\${app.port}/hello\`)).status).toBe(200);
    await app.close();
    const records = await recordsIn('${name}-test');
    expect(records.map((r) => r.message)).toEqual(['${name} started', 'request', '${name} stopped']);
    expect(records[1]).toMatchObject({ app: '${name}', fields: { method: 'GET', path: '/hello', status: 200 } });
  });
});
`,
};

function pascal(text) {
  return text
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

function step(what, command, commandArgs) {
  process.stdout.write(`new-app: ${what}\n`);
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`new-app: \`${command} ${commandArgs.join(' ')}\` failed; apps/${name} is left as written, fix the cause and run it again\n`);
    process.exit(1);
  }
}

try {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(appDir, path, '..'), { recursive: true });
    writeFileSync(join(appDir, path), text);
  }
} catch (error) {
  rmSync(appDir, { recursive: true, force: true });
  refuse(`could not write apps/${name}: ${error.message}`);
}
// --no-frozen-lockfile: the lockfile gains the new app (pnpm freezes it by default under CI=true).
step('linking it into the workspace (pnpm install)', 'pnpm', ['install', '--prefer-offline', '--no-frozen-lockfile']);
step('building it', 'pnpm', ['--filter', `@log/${name}`, 'build']);
process.stdout.write(`
Created apps/${name} (@log/${name}), logging as app "${name}" through @log/publisher.
  pnpm --filter @log/${name} test    its test, against a real redis-server
  pnpm dev                           runs it beside the logger server, with the dev Redis
`);
