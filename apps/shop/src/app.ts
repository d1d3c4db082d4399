import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublisher, type Logger } from '@log/publisher';

export interface ShopOptions {
  port: number;
  channel: string;
  redisUrl: string | undefined;
}

const PRODUCTS = [
  { id: 1, name: 'kimchi', price: 9 },
  { id: 2, name: 'tteok', price: 5 },
  { id: 3, name: 'gimbap', price: 7 },
];

/** A tiny shop: GET /products, POST /orders, GET /fail (an error with a cause). Every request is logged. */
export async function startShop(options: ShopOptions): Promise<{ server: Server; port: number; log: Logger; close(): Promise<void> }> {
  const log = createPublisher(options.channel, { app: 'shop', url: options.redisUrl, fields: { service: 'shop' } });
  let orderId = 0;
  const server = createServer((req, res) => {
    const started = process.hrtime.bigint();
    const reqLog = log.child({ method: req.method, path: req.url });
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (status >= 500) reqLog.error('request failed', { status, ms });
      else reqLog.info('request', { status, ms });
    };
    if (req.method === 'GET' && req.url === '/products') return reply(200, PRODUCTS);
    if (req.method === 'POST' && req.url === '/orders') {
      orderId++;
      reqLog.info('order placed', { orderId, total: PRODUCTS[orderId % PRODUCTS.length]!.price });
      return reply(201, { orderId });
    }
    if (req.url === '/fail') {
      const error = new Error('payment declined', { cause: new Error('card expired') });
      reqLog.error(error);
      return reply(502, { error: error.message });
    }
    return reply(404, { error: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(options.port, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  log.info('shop started', { port });
  return {
    server,
    port,
    log,
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      log.info('shop stopped');
      await log.close();
    },
  };
}
