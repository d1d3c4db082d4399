// `pnpm demo`: the whole pipeline on this machine. redis-server (data in .dev/redis), the logger
// server writing under ./log, and the shop demo app calling itself and logging every request.
// Ctrl-C stops everything it started. DEMO_SECONDS=n stops by itself after n seconds.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, requireRedisServer, root, run, startRedis, stopAll } from './stack.mjs';

requireRedisServer();
for (const main of ['apps/logger-server/dist/main.js', 'apps/shop/dist/main.js']) {
  if (!existsSync(join(root, main))) {
    console.error(`${main} is missing: run \`pnpm build\` first (scripts/setup.sh does it).`);
    process.exit(1);
  }
}

const redisPort = await freePort();
const httpPort = await freePort();
const redisUrl = `redis://127.0.0.1:${redisPort}`;
await startRedis(redisPort, join(root, '.dev', 'redis'));
run('logger-server', process.execPath, ['apps/logger-server/dist/main.js'], {
  env: { REDIS_URL: redisUrl, LOG_DIR: join(root, 'log'), HTTP_PORT: String(httpPort), LOG_CONSUMER: 'demo' },
  quiet: true,
});
run('shop', process.execPath, ['apps/shop/dist/main.js'], { env: { REDIS_URL: redisUrl, PORT: '0', SHOP_SELF_TRAFFIC: '1' } });

console.log(`demo: redis ${redisUrl}, logger server metrics http://127.0.0.1:${httpPort}/metrics, loss report /stats`);
console.log('demo: records are appended to ./log/<app>/<app>.log — Ctrl-C stops everything');

function countLines(dir) {
  let lines = 0;
  if (!existsSync(dir)) return 0;
  for (const app of readdirSync(dir)) {
    const file = join(dir, app, `${app}.log`);
    if (existsSync(file) && statSync(file).isFile()) {
      lines += readFileSyncCount(file);
    }
  }
  return lines;
}

function readFileSyncCount(file) {
  const data = readFileSync(file);
  let n = 0;
  for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) n++;
  return n;
}

const progress = setInterval(() => console.log(`demo: ${countLines(join(root, 'log'))} records under ./log`), 3000);

let shuttingDown = false;
async function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  clearInterval(progress);
  console.log(`demo: ${signal}, stopping shop, logger server and redis`);
  await stopAll();
  console.log(`demo: stopped; ${countLines(join(root, 'log'))} records under ./log`);
  process.exit(0);
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
if (process.env.DEMO_SECONDS) setTimeout(() => shutdown('timer'), Number(process.env.DEMO_SECONDS) * 1000);
