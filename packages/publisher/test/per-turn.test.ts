import { setImmediate as turn, setTimeout as delay } from 'node:timers/promises';
import { startRedis, waitUntil } from '@log/test-kit';
import fc from 'fast-check';
import { createPublisher, type Logger } from '../src';
import { readStream } from './helpers';

// An app that logs once per event-loop turn (a request handler) while Redis is killed, stopped or
// frozen and comes back, from a printed seed (PER_TURN_SEED to replay). The publisher queues no
// setImmediate of its own on a turn where a pump is certain to come anyway (a frame in flight, a
// timer armed, the client not ready): if one of those ever failed to come, records would stay
// buffered for good. So the test never calls flush() (which would pump by itself) before the
// checker: every record must reach Redis on the publisher's own, and exactly the history's.

const SEED = Number(process.env.PER_TURN_SEED ?? Date.now() % 1e9);

type Fault = 'kill' | 'stop' | 'pause';
/** One phase of the run: log at a pace for `runMs`, then `fault` Redis for `downMs` while logging on. */
interface Phase {
  pace: 'immediate' | number; // a setImmediate per call, or a timer of that many ms (a quiet app)
  runMs: number;
  fault: Fault;
  downMs: number;
}
const phase = fc.record({
  pace: fc.oneof(fc.constant<'immediate'>('immediate'), fc.integer({ min: 0, max: 3 })),
  runMs: fc.integer({ min: 20, max: 300 }),
  fault: fc.constantFrom<Fault>('kill', 'stop', 'pause'),
  downMs: fc.integer({ min: 0, max: 400 }),
});
const plan = fc.record({
  phases: fc.array(phase, { minLength: 2, maxLength: 4 }),
  // After the last recovery: a few records, each after a quiet moment (nothing in flight, no
  // timer armed), the last with no call after it: only the publisher's own setImmediate sends them.
  tail: fc.record({ records: fc.integer({ min: 1, max: 5 }), gapMs: fc.integer({ min: 5, max: 30 }) }),
});

let logger: Logger | undefined;
afterEach(async () => {
  await logger?.close(1000);
});

it(`sends every record of a one-call-per-turn loop across Redis restarts without flush() (seed ${SEED})`, async () => {
  console.log(`per-turn seed ${SEED} (replay: PER_TURN_SEED=${SEED})`);
  const { phases, tail } = fc.sample(plan, { seed: SEED, numRuns: 1 })[0]!;
  // appendfsync always: what Redis acknowledged survives its SIGKILL, so a record can be missing only if the publisher never re-sent it
  const redis = await startRedis({ appendOnly: true, args: ['--appendfsync', 'always'] });
  const channel = `perturn${SEED}`;
  try {
    logger = createPublisher(channel, { app: 'shop', url: redis.url, host: 'testhost', onError: () => {} });
    const log = logger;
    const history: number[] = []; // record i was logged i-th: its sequence number must be i + 1
    const logOne = () => {
      log.info('handled', { i: history.length });
      history.push(history.length);
    };
    const logFor = async (ms: number, pace: Phase['pace']) => {
      const until = Date.now() + ms;
      do {
        logOne();
        if (pace === 'immediate') await turn();
        else await delay(pace);
      } while (Date.now() < until);
    };
    // the publisher alone must get every record to Redis (backoff reaches 5 s between retries at most)
    const allSent = (what: string) =>
      waitUntil(`${what}: every record accepted by Redis, without flush()`, async () => log.stats().sent === history.length, {
        timeoutMs: 20_000,
        output: () => `stats ${JSON.stringify(log.stats())}, logged ${history.length}, plan ${JSON.stringify({ phases, tail })}`,
      });
    for (const { pace, runMs, fault, downMs } of phases) {
      await logFor(runMs, pace);
      if (fault === 'pause') redis.pause();
      else if (fault === 'kill') await redis.kill();
      else await redis.stop();
      // logged while Redis is down or frozen; no call comes between its return and the next phase
      await logFor(downMs, pace);
      if (fault === 'pause') redis.resume();
      else await redis.start();
    }
    // the last records were logged while Redis was away: its return ('ready'), or the frames in flight settling, must send them
    await allSent('after the last fault');
    for (let k = 0; k < tail.records; k++) {
      await delay(tail.gapMs);
      logOne();
    }
    await allSent('after the quiet tail');

    // the checker: every sequence number 1..n in the stream, each (and its re-sent copies) the record logged for it
    const stats = log.stats();
    expect(stats).toMatchObject({ logged: history.length, sent: history.length, dropped: 0, buffered: 0 });
    const { records } = await readStream(redis.url, channel);
    const bySeq = new Map<number, number>();
    for (const record of records) {
      expect(record.producer).toBe(log.producer);
      const i = (record.fields as { i: number }).i;
      expect(record.seq).toBe(i + 1);
      bySeq.set(record.seq, i);
    }
    const missing = history.filter((i) => !bySeq.has(i + 1));
    expect({ missing: missing.slice(0, 20), count: missing.length }).toEqual({ missing: [], count: 0 });
    expect(bySeq.size).toBe(history.length);
    // re-sent frames (a reply lost with the connection) are the only copies: the server drops them by sequence number
    expect(records.length - bySeq.size).toBeLessThanOrEqual(stats.sendErrors * 10_000);
  } finally {
    await redis.dispose();
  }
}, 60_000);
