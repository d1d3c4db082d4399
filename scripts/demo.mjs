// `pnpm demo`: the whole pipeline on this machine. redis-server (data in .dev/redis), a local
// S3-compatible server (s3rver, data in .dev/s3), the logger server writing under ./log and
// archiving closed files every 15 s, and the shop demo app calling itself and logging every
// request. Ctrl-C stops everything it started. DEMO_SECONDS=n stops by itself after n seconds.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
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
const s3Port = await freePort();
const redisUrl = `redis://127.0.0.1:${redisPort}`;
await startRedis(redisPort, join(root, '.dev', 'redis'));
const s3Dir = join(root, '.dev', 's3');
mkdirSync(s3Dir, { recursive: true });
run('s3', process.execPath, [join(root, 'packages/test-kit/dist/s3rver-main.js'), String(s3Port), s3Dir, 'logs'], { quiet: true });
writeFileSync(join(root, '.dev', 'demo.json'), JSON.stringify({ redisUrl, s3Endpoint: `http://127.0.0.1:${s3Port}`, bucket: 'logs' }));
run('logger-server', process.execPath, ['apps/logger-server/dist/main.js'], {
  env: {
    REDIS_URL: redisUrl,
    LOG_DIR: join(root, 'log'),
    HTTP_PORT: String(httpPort),
    LOG_CONSUMER: 'demo',
    ROTATE_SECONDS: '15',
    S3_BUCKET: 'logs',
    S3_PREFIX: 'archive',
    S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
    S3_FORCE_PATH_STYLE: 'true',
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    // Node 20 is what this machine has; the SDK versions are pinned in the lockfile.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  },
  quiet: true,
});
run('shop', process.execPath, ['apps/shop/dist/main.js'], { env: { REDIS_URL: redisUrl, PORT: '0', SHOP_SELF_TRAFFIC: '1' } });

console.log(`demo: redis ${redisUrl}, logger server metrics http://127.0.0.1:${httpPort}/metrics, loss report /stats`);
console.log('demo: records are appended to ./log/<app>/<app>.log; every 15 s the file is closed, gzipped to S3 (s3rver in .dev/s3) and deleted');
console.log('demo: `pnpm archives` lists the archives, `pnpm archives --cat <key>` prints one — Ctrl-C stops everything');

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

async function archived() {
  try {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    return Number(/^logger_archive_uploads_total\{status="uploaded"\} (\d+)/m.exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}
const progress = setInterval(async () => console.log(`demo: ${countLines(join(root, 'log'))} records in open files under ./log, ${await archived()} files archived to S3`), 3000);

let shuttingDown = false;
async function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  clearInterval(progress);
  console.log(`demo: ${signal}, stopping shop, logger server and redis`);
  await stopAll();
  console.log('demo: stopped. Files closed at shutdown wait in ./log/<app>/*.jsonl and are archived when the server starts again.');
  process.exit(0);
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
if (process.env.DEMO_SECONDS) setTimeout(() => shutdown('timer'), Number(process.env.DEMO_SECONDS) * 1000);
