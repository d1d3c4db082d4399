// The `dev` task of the apps (started by `turbo run dev`): the app's tsc in watch mode and the
// app under `node --watch`. logger-server's also starts the dev redis-server (port 16379,
// data in .dev/redis). Ctrl-C stops everything started here.
import { join } from 'node:path';
import { requireRedisServer, root, run, startRedis, stopAll } from './stack.mjs';

const app = process.argv[2];
const DEV_REDIS_PORT = 16379;
const redisUrl = process.env.REDIS_URL ?? `redis://127.0.0.1:${DEV_REDIS_PORT}`;
const appDir = join(root, 'apps', app);

if (app === 'logger-server' && !process.env.REDIS_URL) {
  requireRedisServer();
  await startRedis(DEV_REDIS_PORT, join(root, '.dev', 'redis'));
}
run(`${app}:tsc`, process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(appDir, 'tsconfig.build.json'), '--watch', '--preserveWatchOutput'], { quiet: true });
const env = { REDIS_URL: redisUrl };
if (app === 'logger-server') Object.assign(env, { LOG_DIR: join(root, 'log'), HTTP_PORT: '9464' });
if (app === 'shop') Object.assign(env, { SHOP_SELF_TRAFFIC: '1', PORT: '3000' });
run(app, process.execPath, ['--watch', join(appDir, 'dist/main.js')], { env });

const stop = async () => {
  await stopAll();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
