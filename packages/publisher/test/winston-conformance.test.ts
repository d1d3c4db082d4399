import abstractWinstonTransport from 'abstract-winston-transport';
import { startRedis, type RedisServer } from '@log/test-kit';
import { RedisTransport, type RedisTransportOptions } from '../src';

// The suite is written for mocha: `after` is jest's afterAll.
(globalThis as { after?: unknown }).after = afterAll;

let redis: RedisServer;
const made: RedisTransport[] = [];

/** Every transport the suite makes, so each one's publisher is closed after its test. */
class TrackedTransport extends RedisTransport {
  constructor(options: RedisTransportOptions) {
    super(options);
    made.push(this);
  }
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(made.splice(0).map((transport) => transport.publisher.close(1000)));
  await redis.dispose();
});

abstractWinstonTransport({
  name: 'RedisTransport',
  Transport: TrackedTransport,
  construct: () => ({ channel: `conformance-${process.pid}`, app: 'conformance', url: redis.url }),
  afterEach: (_options, done) => {
    Promise.all(made.splice(0).map((transport) => transport.publisher.close(1000))).then(() => done(), done);
  },
});
