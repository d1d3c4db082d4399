#!/usr/bin/env node
// Demo service. PORT (default 3000), LOG_CHANNEL (default logger), REDIS_URL; SHOP_SELF_TRAFFIC=1
// makes it call itself a few times a second so the demo has logs to show.
import { request } from 'node:http';
import { startShop } from './app';

async function main() {
  const shop = await startShop({
    port: Number(process.env.PORT ?? 3000),
    channel: process.env.LOG_CHANNEL ?? 'logger',
    redisUrl: process.env.REDIS_URL,
  });
  process.stdout.write(`shop listening on http://127.0.0.1:${shop.port}\n`);
  let timer: NodeJS.Timeout | undefined;
  if (process.env.SHOP_SELF_TRAFFIC === '1') {
    const paths = [
      ['GET', '/products'],
      ['POST', '/orders'],
      ['GET', '/products'],
      ['GET', '/nope'],
      ['GET', '/fail'],
    ] as const;
    let i = 0;
    timer = setInterval(() => {
      const [method, path] = paths[i++ % paths.length]!;
      request({ host: '127.0.0.1', port: shop.port, method, path }, (res) => res.resume())
        .on('error', () => {})
        .end();
    }, 200);
  }
  const stop = async () => {
    if (timer) clearInterval(timer);
    await shop.close();
    process.exit(0);
  };
  // A signal listener's promise is dropped: a failed close is reported like a failed start
  // instead of surfacing as an unhandled rejection.
  process.once('SIGINT', () => {
    stop().catch(fail);
  });
  process.once('SIGTERM', () => {
    stop().catch(fail);
  });
}

function fail(error: unknown): never {
  process.stderr.write(`shop failed: ${String(error)}\n`);
  process.exit(1);
}

main().catch(fail);
