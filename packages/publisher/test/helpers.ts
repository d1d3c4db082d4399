import { FRAME_FIELD, decodeFrame, decodeRecord, streamKey, type FrameHeader, type LogRecord } from '@log/protocol';
import { startRedis, type RedisServer } from '@log/test-kit';
import { createClient, RESP_TYPES } from 'redis';
import { createPublisher, type Logger } from '../src';

let channelNo = 0;

/**
 * A redis-server for the test file, fresh channel names, and publishers on it that are closed
 * after each test, pass or fail, so no connection outlives its test.
 */
export function redisAndPublishers(prefix: string) {
  const kit = {
    redis: undefined as unknown as RedisServer,
    /** Publishers to close after the test: those made by publisher(), and any a test adds. */
    loggers: [] as Logger[],
    channel: () => `${prefix}-${process.pid}-${++channelNo}`,
    publisher: (ch: string, options: Partial<Parameters<typeof createPublisher>[1]> = {}): Logger => {
      const log = createPublisher(ch, { app: 'shop', url: kit.redis.url, host: 'testhost', ...options });
      kit.loggers.push(log);
      return log;
    },
  };
  beforeAll(async () => {
    kit.redis = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(kit.loggers.splice(0).map((log) => log.close(1000)));
  });
  afterAll(async () => {
    await kit.redis.dispose();
  });
  return kit;
}

/** Every frame in a channel's stream, decoded (records and headers), read with a plain client. */
export async function readStream(url: string, channel: string): Promise<{ records: LogRecord[]; headers: FrameHeader[] }> {
  const client = createClient({ url });
  await client.connect();
  try {
    const entries = (await client.sendCommand(['XRANGE', streamKey(channel), '-', '+'], {
      typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer },
    })) as Array<[Buffer, Buffer[]]>;
    const records: LogRecord[] = [];
    const headers: FrameHeader[] = [];
    for (const [id, fields] of entries) {
      expect(fields[0]!.toString()).toBe(FRAME_FIELD);
      const frame = decodeFrame(fields[1]!, { entryId: id.toString() });
      headers.push(frame.header);
      for (let i = 0; i < frame.lines.length; i++) records.push(decodeRecord(frame, i));
    }
    return { records, headers };
  } finally {
    client.destroy();
  }
}
