import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { deadLetterKey, encodeFrame, encodeFrameHeader, encodeRecord, streamKey, type FrameHeader } from '@log/protocol';
import { removeDir, sleep, tempDir } from '@log/test-kit';
import { RESP_TYPES } from 'redis';
import { readLogs, startServer, useRedis, waitForRecords, type ServerProcess } from './harness';

// Hostile input through the real server: raw XADDs of frames our publisher would never write.

const shared = useRedis();
let dir: string;
let logDir: string;
let server: ServerProcess | undefined;
let channelNo = 0;
let channel: string;

beforeEach(async () => {
  dir = tempDir('hostile');
  logDir = join(dir, 'log');
  channel = `hostile-${++channelNo}`;
  server = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel });
});
afterEach(async () => {
  await server?.stop();
  removeDir(dir);
});

const header = (over: Partial<FrameHeader>): FrameHeader => ({ producer: 'hostile01', seq: 1, count: 1, app: 'good', host: 'h', pid: 1, dropped: 0, ...over });

describe('record times outside the accepted window', () => {
  it('are replaced by the receive time and kept as originalTime; no file is named by them and the server stops cleanly', async () => {
    const times: Array<[string, number]> = [
      ['beyond', 9e15], // past the last valid Date: toISOString throws RangeError
      ['future', Date.UTC(2100, 0, 1)],
      ['ancient', 1],
    ];
    for (const [app, time] of times) {
      const lines = [encodeRecord({ time, level: 'info', message: `${app} first` }), encodeRecord({ time: Date.now(), level: 'info', message: `${app} second` })];
      await shared.client.xAdd(streamKey(channel), '*', { f: encodeFrame(header({ producer: `p-${app}`, app, count: 2 }), lines) });
    }
    const started = Date.now();
    for (const [app] of times) await waitForRecords(logDir, app, 2);
    // a clean stop closes every file, naming each by its first record's time
    await server!.stop();
    expect(await server!.exited).toBe(0);
    server = undefined;
    const logs = readLogs(logDir);
    for (const [app, time] of times) {
      const [first, second] = logs.get(app)!;
      expect(first).toMatchObject({ message: `${app} first`, originalTime: time });
      expect(Date.parse(first!.time as string)).toBeGreaterThanOrEqual(started - 60_000);
      expect(Date.parse(first!.time as string)).toBeLessThanOrEqual(Date.now());
      expect(second).not.toHaveProperty('originalTime');
      const closed = readdirSync(join(logDir, app)).filter((name) => name.endsWith('.jsonl'));
      expect(closed).toHaveLength(1);
      expect(closed[0]!.slice(0, 4)).toBe(new Date(started).toISOString().slice(0, 4));
    }
  }, 30_000);
});

describe('a record that is not UTF-8', () => {
  it('is dead-lettered alone, as its bytes; the records around it in its frame are written', async () => {
    const line = (n: number) => Buffer.from(encodeRecord({ time: Date.now(), level: 'info', message: `record ${n} é` }));
    const broken = Buffer.concat([Buffer.from('{"t":1,"l":"info","m":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
    const records = [line(1), line(2), broken, line(4)];
    const frame = Buffer.concat([Buffer.from(encodeFrameHeader(header({ count: records.length }))), ...records.flatMap((r) => [Buffer.from('\n'), r])]);
    await shared.client.xAdd(streamKey(channel), '*', { f: frame });
    const written = await waitForRecords(logDir, 'good', 3);
    expect(written.map((r) => [r.message, r.seq])).toEqual([
      ['record 1 é', 1],
      ['record 2 é', 2],
      ['record 4 é', 4],
    ]);
    let dead: Array<{ message: Record<string, Buffer> }> = [];
    for (let i = 0; i < 100 && dead.length === 0; i++) {
      dead = (await shared.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).xRange(deadLetterKey(channel), '-', '+')) as typeof dead;
      if (dead.length === 0) await sleep(50);
    }
    expect(dead).toHaveLength(1);
    expect(dead[0]!.message.reason!.toString()).toBe('INVALID_UTF8');
    expect(dead[0]!.message.payload!.equals(broken)).toBe(true);
  }, 30_000);
});
