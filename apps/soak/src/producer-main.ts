// One producer process of the soak: several publishers (one per producer index), each logging
// records with a unique `rid` at a fixed rate until the deadline, then closing and writing its
// final stats. Everything it did goes to the history file (format: history.ts). Started by
// producers.ts with its settings as JSON in SOAK_PRODUCER.
import { createWriteStream } from 'node:fs';
import { sleep } from '@log/protocol';
import { createPublisher, type Logger } from '@log/publisher';
import type { HistoryLine } from './history';
import { Rng } from './rng';

export interface ProducerConfig {
  redisUrl: string;
  channel: string;
  /** Producer indexes this process runs. */
  indexes: number[];
  apps: number;
  /** The channel's shards: each publisher picks one. */
  shards: number;
  rate: number;
  /** Epoch ms: time 0 of the run's history, and when logging starts. */
  startAt: number;
  durationMs: number;
  bufferBytes: number;
  historyPath: string;
  seed: number;
}

const TICK_MS = 20;
/** After the deadline: how long close() may flush. Redis is whole again by then, so this only bounds a bug. */
const CLOSE_TIMEOUT_MS = 60_000;

async function main(): Promise<void> {
  const config = JSON.parse(process.env.SOAK_PRODUCER ?? '') as ProducerConfig;
  const history = createWriteStream(config.historyPath);
  const write = (line: HistoryLine) => history.write(JSON.stringify(line) + '\n');
  const producers = config.indexes.map((index) => {
    const app = `soak-${index % config.apps}`;
    const log: Logger = createPublisher('soak', { app, url: config.redisUrl, host: 'soak', maxBufferBytes: config.bufferBytes, shards: config.shards });
    write({ start: index, producer: log.producer, app });
    return { index, log, n: 0, rng: Rng.fork(config.seed, `producer-${index}`) };
  });

  const now = () => Date.now() - config.startAt;
  // The publisher truncates a record over maxRecordBytes (a quarter of the buffer) and replaces its
  // fields, rid included: keep every record well under it, or the checker could not name it.
  const maxPad = Math.max(0, Math.floor(config.bufferBytes / 8) - 300);
  await sleep(Math.max(0, config.startAt - Date.now()));
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const t = now();
      const due = Math.floor((config.rate * Math.min(t, config.durationMs)) / 1000);
      for (const p of producers) {
        // A stalled event loop catches up by at most one second's worth: a burst, not a flood.
        const until = Math.min(due, p.n + config.rate);
        while (p.n < until) {
          p.n++;
          // Mostly small records, now and then a large one, so frames are cut by size as well as by turn.
          const pad = 'x'.repeat(Math.min(maxPad, p.rng.chance(0.01) ? p.rng.int(2000, 8000) : p.rng.int(0, 300)));
          const before = p.log.stats().dropped;
          p.log.info('soak record', { rid: `${p.index}-${p.n}`, pad });
          const dropped = p.log.stats().dropped > before;
          write(dropped ? { p: p.index, n: p.n, t, d: 1 } : { p: p.index, n: p.n, t });
        }
      }
      if (t >= config.durationMs) {
        clearInterval(timer);
        resolve();
      }
    }, TICK_MS);
  });
  await Promise.all(producers.map((p) => p.log.close(CLOSE_TIMEOUT_MS)));
  for (const p of producers) write({ end: p.index, stats: p.log.stats() });
  await new Promise<void>((resolve, reject) => history.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`soak producer failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
