import { readFileSync } from 'node:fs';
import type { PublisherStats } from '@log/publisher';
import { SoakError } from './errors';

/**
 * The history a producer process writes, one JSON object per line:
 *   {"start":<index>,"producer":"<publisher id>","app":"<app>"}
 *   {"p":<index>,"n":<n>,"t":<ms since the run started>}          one per log call, rid "<index>-<n>"
 *   {"p":<index>,"n":<n>,"t":<ms>,"d":1}                           a call the publisher dropped
 *   {"end":<index>,"stats":{...log.stats() after close}}
 * n counts from 1 without gaps, so a record is named by (index, n) alone.
 */
export type HistoryLine = { start: number; producer: string; app: string } | { p: number; n: number; t: number; d?: 1 } | { end: number; stats: PublisherStats };

/** What one producer did, as the checker needs it. */
export interface ProducerHistory {
  index: number;
  /** The publisher's random id: the `producer` of its records and the key of the servers' /stats. */
  producer: string;
  app: string;
  /** Records logged: rids `<index>-1` .. `<index>-<logged>`. */
  logged: number;
  /** The n of each call the publisher dropped (its `dropped` counter went up during the call). */
  dropped: ReadonlySet<number>;
  /** When each record was logged, ms from the start of the run (index n - 1). */
  loggedAtMs: ArrayLike<number>;
  /** log.stats() after close; undefined when the producer never finished. */
  stats: PublisherStats | undefined;
}

export function ridOf(index: number, n: number): string {
  return `${index}-${n}`;
}

/** Reads history files; a producer whose calls are not numbered 1, 2, 3... is a harness bug and throws. */
export function readHistories(paths: readonly string[]): ProducerHistory[] {
  const byIndex = new Map<number, { producer: string; app: string; times: number[]; dropped: Set<number>; stats: PublisherStats | undefined }>();
  const get = (index: number, path: string) => {
    const entry = byIndex.get(index);
    if (!entry) throw new SoakError('HISTORY_INVALID', `${path}: producer ${index} logged before its start line`);
    return entry;
  };
  for (const path of paths) {
    const text = readFileSync(path, 'utf8');
    let lineNo = 0;
    for (const line of text.split('\n')) {
      lineNo++;
      if (line === '') continue;
      let parsed: HistoryLine;
      try {
        parsed = JSON.parse(line) as HistoryLine;
      } catch (error) {
        throw new SoakError('HISTORY_INVALID', `${path}:${lineNo}: not JSON: ${line.slice(0, 80)}`, { cause: error });
      }
      if ('p' in parsed) {
        const entry = get(parsed.p, path);
        if (parsed.n !== entry.times.length + 1) {
          throw new SoakError('HISTORY_INVALID', `${path}:${lineNo}: producer ${parsed.p} logged n=${parsed.n} after n=${entry.times.length}`);
        }
        entry.times.push(parsed.t);
        if (parsed.d) entry.dropped.add(parsed.n);
      } else if ('start' in parsed) {
        byIndex.set(parsed.start, { producer: parsed.producer, app: parsed.app, times: [], dropped: new Set(), stats: undefined });
      } else if ('end' in parsed) {
        get(parsed.end, path).stats = parsed.stats;
      }
    }
  }
  return [...byIndex.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, e]) => ({ index, producer: e.producer, app: e.app, logged: e.times.length, dropped: e.dropped, loggedAtMs: e.times, stats: e.stats }));
}
