import type { DedupCache } from './dedup';
import { UnsafePathError } from './errors';
import { formatLine } from './format';
import type { ProducerCommit } from './group-state';
import type { Metrics } from './metrics';
import { originKey } from './origin';
import type { Decoded } from './records';
import type { FileSink } from './sink';

/** What one stream entry (or Pub/Sub message) of a batch did, to commit or take back as a unit. */
interface EntryTally {
  id: string;
  /** originKey(producer, app, host): what dedup and the ledger are keyed by. */
  origin: string;
  producer: string;
  app: string;
  host: string;
  reportedDrops: number;
  /** Sequence numbers as [start, end] pairs, in the order they came. */
  written: number[];
  seen: number[];
  dead: number[];
  takenOut: number;
}

/**
 * The write path both transports share: decoded records -> dedup -> one JSON line each -> the
 * file sink; commit() fsyncs. It keeps, per entry of the batch, which sequence numbers it wrote,
 * dropped as duplicates or dead-lettered, so the batch's commit to the group's ledger says the
 * same as the files, and records can be taken back out when Redis says they are not ours.
 */
export class RecordWriter {
  private entries: EntryTally[] = [];
  /** Records queued per app in this batch: counted into the metrics once per batch, not per record. */
  private readonly perApp = new Map<string, number>();
  private queued = 0;

  constructor(
    private readonly sink: FileSink,
    private readonly dedup: DedupCache,
    private readonly metrics: Metrics,
  ) {}

  /**
   * Queues the new records of a decoded payload; returns how many. A record whose file cannot be
   * opened safely (a symlink planted under LOG_DIR) joins decoded.rejected.
   */
  write(decoded: Decoded, id: string): number {
    const frame = decoded.header;
    let tally: EntryTally | undefined;
    if (frame) {
      const origin = originKey(frame.producer, frame.app, frame.host);
      tally = { id, origin, producer: frame.producer, app: frame.app, host: frame.host, reportedDrops: 0, written: [], seen: [], dead: [], takenOut: 0 };
      this.entries.push(tally);
    }
    let written = 0;
    let duplicates = 0;
    for (const record of decoded.records) {
      // Only frames carry a producer's sequence; legacy Pub/Sub text is written as it comes.
      if (tally && !this.dedup.accept(tally.origin, record.seq)) {
        addToRanges(tally.seen, record.seq);
        duplicates++;
        continue;
      }
      const line = formatLine(record);
      try {
        // Pub/Sub text has no frame: its origin is made per record (that path is not the hot one)
        this.sink.append(record.app, line, record.time, tally ? tally.origin : originKey(record.producer, record.app, record.host), record.seq);
      } catch (error) {
        if (!(error instanceof UnsafePathError)) throw error;
        decoded.rejected.push({ reason: error.code, detail: error.message, payload: Buffer.from(line), seq: tally ? record.seq : undefined });
        continue;
      }
      if (tally) addToRanges(tally.written, record.seq);
      written++;
    }
    if (tally && frame) {
      for (const rejected of decoded.rejected) if (rejected.seq !== undefined) addToRanges(tally.dead, rejected.seq);
      // A re-sent frame repeats its drop count: it counts once, with the frame's first new records.
      if (written > 0 || tally.dead.length > 0 || frame.count === 0) tally.reportedDrops = frame.dropped;
      if (frame.dropped > 0) this.metrics.producerReportedDrops.inc(tally.reportedDrops);
    }
    const app = decoded.records[0]?.app;
    if (app !== undefined && written > 0) this.perApp.set(app, (this.perApp.get(app) ?? 0) + written);
    if (duplicates > 0) this.metrics.duplicatesDropped.inc(duplicates);
    this.queued += written;
    return written;
  }

  /** Writes and fsyncs everything queued; returns the apps whose files were written. Throws DiskError. */
  commit(): string[] {
    this.dedup.tick();
    const end = this.metrics.fsyncSeconds.startTimer();
    const { apps, bytes } = this.sink.commit();
    end();
    for (const [app, count] of this.perApp) this.metrics.recordsWritten.inc({ app }, count);
    this.perApp.clear();
    this.metrics.bytesWritten.inc(bytes);
    this.metrics.batchRecords.observe(this.queued);
    this.queued = 0;
    return apps;
  }

  /** Takes the records of entries another server claimed back out of the files; returns how many. */
  takeBackEntries(ids: ReadonlySet<string>): number {
    const lost = this.entries.filter((entry) => ids.has(entry.id));
    this.entries = this.entries.filter((entry) => !ids.has(entry.id));
    const seqsOf = new Map<string, number[]>();
    for (const entry of lost) {
      const ranges = seqsOf.get(entry.origin) ?? [];
      for (const n of entry.written) ranges.push(n);
      seqsOf.set(entry.origin, ranges);
    }
    const removed = this.sink.takeBack((_app, _index, origin, seq) => inRanges(seqsOf.get(origin), seq));
    for (const [origin, ranges] of seqsOf) forEachInRanges(ranges, (seq) => this.dedup.forget(origin, seq));
    return removed;
  }

  /** Takes records the group had already committed back out of the files; they count as duplicates. */
  takeBackCommitted(ranges: ReadonlyArray<{ origin: string; start: number; end: number }>): number {
    const committed = (origin: string, seq: number) => ranges.some((r) => r.origin === origin && seq >= r.start && seq <= r.end);
    const removed = this.sink.takeBack((_app, _index, origin, seq) => committed(origin, seq));
    for (const entry of this.entries) {
      const kept: number[] = [];
      forEachInRanges(entry.written, (seq) => {
        if (committed(entry.origin, seq)) entry.takenOut++;
        else addToRanges(kept, seq);
      });
      // A frame sent twice, wholly committed elsewhere: its drop count was counted with the first.
      if (kept.length === 0 && entry.written.length > 0 && entry.dead.length === 0) entry.reportedDrops = 0;
      entry.written = kept;
    }
    this.metrics.duplicatesDropped.inc(removed);
    return removed;
  }

  /** The numbers of `origin` in this server's files (its dedup cache), as sorted [start, end] pairs (flat). */
  onDisk(origin: string): number[] {
    return this.dedup.rangesOf(origin);
  }

  /** Ids of the batch's entries that carried frames. */
  get entryIds(): string[] {
    return this.entries.map((entry) => entry.id);
  }

  /** The batch as the group's ledger takes it: one line per origin, ranges sorted and merged. */
  producerCommits(): ProducerCommit[] {
    const byOrigin = new Map<string, ProducerCommit>();
    for (const entry of this.entries) {
      let commit = byOrigin.get(entry.origin);
      if (!commit) {
        commit = { origin: entry.origin, producer: entry.producer, app: entry.app, host: entry.host, takenOut: 0, reportedDrops: 0, written: [], seen: [], dead: [], reasserted: [] };
        byOrigin.set(entry.origin, commit);
      }
      commit.takenOut += entry.takenOut;
      commit.reportedDrops += entry.reportedDrops;
      for (const n of entry.written) commit.written.push(n);
      for (const n of entry.seen) commit.seen.push(n);
      for (const n of entry.dead) commit.dead.push(n);
    }
    const commits = [...byOrigin.values()];
    for (const commit of commits) {
      commit.written = normalize(commit.written);
      commit.seen = normalize(commit.seen);
      commit.dead = normalize(commit.dead);
    }
    return commits;
  }

  /** The batch is committed (or abandoned): start the next. */
  reset(): void {
    this.entries = [];
  }
}

/** Adds a number to [start, end] pairs: extends the last pair when it follows it (a frame's records are consecutive). */
function addToRanges(ranges: number[], seq: number): void {
  const last = ranges.length - 1;
  if (last > 0 && ranges[last] === seq - 1) ranges[last] = seq;
  else ranges.push(seq, seq);
}

function inRanges(ranges: readonly number[] | undefined, seq: number): boolean {
  if (!ranges) return false;
  for (let i = 0; i < ranges.length; i += 2) if (seq >= ranges[i]! && seq <= ranges[i + 1]!) return true;
  return false;
}

function forEachInRanges(ranges: readonly number[], fn: (seq: number) => void): void {
  for (let i = 0; i < ranges.length; i += 2) for (let seq = ranges[i]!; seq <= ranges[i + 1]!; seq++) fn(seq);
}

/** Sorts [start, end] pairs and merges those that overlap or touch. */
export function normalize(ranges: readonly number[]): number[] {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [start, end] of pairs) {
    const last = out.length - 1;
    if (last > 0 && start <= out[last]! + 1) out[last] = Math.max(out[last]!, end);
    else out.push(start, end);
  }
  return out;
}
