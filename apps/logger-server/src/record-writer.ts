import { LIMITS, decodeFrameLayout, decodeRecord, scanCanonicalBytes, type DecodedFrame, type LogRecord, type SigningKeys } from '@log/protocol';
import type { DedupCache } from './dedup';
import { UnsafePathError } from './errors';
import { LineEncoder, SPLICE_RESERVED, formatLine } from './format';
import type { ProducerCommit } from './group-state';
import type { Metrics } from './metrics';
import { originKey } from './origin';
import { decodeFramePayload, rejection, type Decoded, type Rejected } from './records';
import type { FileSink } from './sink';

/** Line encoders kept per origin before the map is emptied (origins come and go). */
const MAX_ENCODERS = 4096;

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
 *
 * Two batches may be in hand: the one commit() took (written and fsynced, until reset() says
 * the group committed it), which producerCommits(), the take-backs and reset() are about, and the
 * next one, whose records are queued meanwhile (see StreamConsumer).
 */
export class RecordWriter {
  /** The batch being queued. */
  private entries: EntryTally[] = [];
  /** The batch commit() took, until reset(). */
  private committing: EntryTally[] = [];
  /** Records queued per app in this batch: counted into the metrics once per batch, not per record. */
  private perApp = new Map<string, number>();
  private perAppSpare = new Map<string, number>();
  private queued = 0;
  private readonly encoders = new Map<string, LineEncoder>();

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
    const tally = frame ? this.tally(frame, id) : undefined;
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
    this.finish(tally, frame, decoded.rejected, decoded.records[0]?.app, written, duplicates);
    return written;
  }

  /**
   * A stream entry's frame, decoded and written record by record as bytes: a line in the
   * publisher's canonical shape is validated where it lies in the frame and its line is encoded
   * straight into the batch (no string, no record object); any other line takes decodeRecord's
   * full path, with the same checks and errors. The same lines, duplicates and rejections as
   * write(decodeFramePayload(payload, id), id). Returns what is to be dead-lettered.
   */
  writeFrame(payload: Buffer, id: string, keys?: SigningKeys): Rejected[] {
    let layout;
    try {
      layout = decodeFrameLayout(payload, { entryId: id, keys });
    } catch (error) {
      return [rejection(error, payload)];
    }
    let lines;
    if (layout !== undefined) {
      try {
        lines = this.sink.linesOf(layout.header.app);
      } catch (error) {
        if (!(error instanceof UnsafePathError)) throw error;
      }
    }
    if (layout === undefined || lines === undefined) {
      // not valid UTF-8 as a whole, or its file cannot be opened: record by record as strings
      const decoded = decodeFramePayload(payload, id, keys);
      this.write(decoded, id);
      return decoded.rejected;
    }
    const { header, data, starts, ends } = layout;
    const tally = this.tally(header, id);
    const origin = tally.origin;
    let encoder = this.encoders.get(origin);
    // the pid is in the encoded part and not in the origin: a frame of the origin with another pid gets its own
    if (encoder === undefined || encoder.pid !== header.pid) {
      if (this.encoders.size >= MAX_ENCODERS) this.encoders.clear();
      this.encoders.set(origin, (encoder = new LineEncoder(header)));
    }
    const rejected: Rejected[] = [];
    const receivedAt = Date.now();
    const latest = receivedAt + LIMITS.maxFutureMs;
    let written = 0;
    let duplicates = 0;
    for (let i = 0; i < starts.length; i++) {
      const start = starts[i]!;
      const end = ends[i]!;
      const seq = header.seq + i;
      const scanned = end - start <= LIMITS.maxRecordBytes ? scanCanonicalBytes(data, start, end, LIMITS, SPLICE_RESERVED) : undefined;
      if (scanned !== undefined && scanned.time >= LIMITS.minTime && scanned.time <= latest) {
        if (!this.dedup.accept(origin, seq)) {
          addToRanges(tally.seen, seq);
          duplicates++;
          continue;
        }
        const chunk = lines.room(encoder.size(scanned));
        lines.addEncoded(encoder.encode(chunk, lines.writeAt, data, scanned, seq), origin, seq, scanned.time);
      } else {
        let record: LogRecord;
        try {
          record = decodeLine(header, data, start, end, i, id, receivedAt);
        } catch (error) {
          rejected.push({ ...rejection(error, Buffer.from(data.subarray(start, end))), seq });
          continue;
        }
        if (!this.dedup.accept(origin, seq)) {
          addToRanges(tally.seen, seq);
          duplicates++;
          continue;
        }
        lines.add(formatLine(record), origin, seq, record.time);
      }
      addToRanges(tally.written, seq);
      written++;
    }
    this.finish(tally, header, rejected, header.app, written, duplicates);
    return rejected;
  }

  private tally(frame: NonNullable<Decoded['header']>, id: string): EntryTally {
    const tally: EntryTally = {
      id,
      origin: originKey(frame.producer, frame.app, frame.host),
      producer: frame.producer,
      app: frame.app,
      host: frame.host,
      reportedDrops: 0,
      written: [],
      seen: [],
      dead: [],
      takenOut: 0,
    };
    this.entries.push(tally);
    return tally;
  }

  /** Counts what a frame (or message) did into its tally and the metrics. */
  private finish(tally: EntryTally | undefined, frame: Decoded['header'], rejected: readonly Rejected[], app: string | undefined, written: number, duplicates: number): void {
    if (tally && frame) {
      for (const r of rejected) if (r.seq !== undefined) addToRanges(tally.dead, r.seq);
      // A re-sent frame repeats its drop count: it counts once, with the frame's first new records.
      if (written > 0 || tally.dead.length > 0 || frame.count === 0) tally.reportedDrops = frame.dropped;
      if (frame.dropped > 0) this.metrics.producerReportedDrops.inc(tally.reportedDrops);
    }
    if (app !== undefined && written > 0) this.perApp.set(app, (this.perApp.get(app) ?? 0) + written);
    if (duplicates > 0) this.metrics.duplicatesDropped.inc(duplicates);
    this.queued += written;
  }

  /**
   * Writes and fsyncs everything queued, which becomes the batch in commit (until reset());
   * resolves with the apps whose files were written. Rejects with DiskError.
   */
  async commit(): Promise<string[]> {
    if (this.committing.length > 0) throw new Error('RecordWriter.commit: the batch before is not committed yet (reset() not called)');
    this.committing = this.entries;
    this.entries = [];
    // what the next batch queues while this one is written counts with the next one
    const perApp = this.perApp;
    this.perApp = this.perAppSpare;
    this.perAppSpare = perApp;
    const queued = this.queued;
    this.queued = 0;
    this.dedup.tick();
    const end = this.metrics.fsyncSeconds.startTimer();
    const { apps, bytes } = await this.sink.commit();
    end();
    for (const [app, count] of perApp) this.metrics.recordsWritten.inc({ app }, count);
    perApp.clear();
    this.metrics.bytesWritten.inc(bytes);
    this.metrics.batchRecords.observe(queued);
    return apps;
  }

  /** Takes the records of entries another server claimed back out of the files; resolves with how many. */
  async takeBackEntries(ids: ReadonlySet<string>): Promise<number> {
    const lost = this.committing.filter((entry) => ids.has(entry.id));
    this.committing = this.committing.filter((entry) => !ids.has(entry.id));
    const seqsOf = new Map<string, number[]>();
    for (const entry of lost) {
      const ranges = seqsOf.get(entry.origin) ?? [];
      for (const n of entry.written) ranges.push(n);
      seqsOf.set(entry.origin, ranges);
    }
    const removed = await this.sink.takeBack((_app, _index, origin, seq) => inRanges(seqsOf.get(origin), seq));
    for (const [origin, ranges] of seqsOf) forEachInRanges(ranges, (seq) => this.dedup.forget(origin, seq));
    return removed;
  }

  /** Takes records the group had already committed back out of the files; they count as duplicates. */
  async takeBackCommitted(ranges: ReadonlyArray<{ origin: string; start: number; end: number }>): Promise<number> {
    const committed = (origin: string, seq: number) => ranges.some((r) => r.origin === origin && seq >= r.start && seq <= r.end);
    const removed = await this.sink.takeBack((_app, _index, origin, seq) => committed(origin, seq));
    for (const entry of this.committing) {
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

  /**
   * The numbers of `origin` in this server's files, as sorted [start, end] pairs (flat): its
   * dedup cache, less the numbers of the batch being queued (accepted, not yet on disk).
   */
  onDisk(origin: string): number[] {
    const queued: number[] = [];
    for (const entry of this.entries) if (entry.origin === origin) for (const n of entry.written) queued.push(n);
    const known = this.dedup.rangesOf(origin);
    return queued.length === 0 ? known : subtractRanges(known, normalize(queued));
  }

  /** Ids of the entries that carried frames in the batch in commit. */
  get entryIds(): string[] {
    return this.committing.map((entry) => entry.id);
  }

  /** The batch in commit as the group's ledger takes it: one line per origin, ranges sorted and merged. */
  producerCommits(): ProducerCommit[] {
    const byOrigin = new Map<string, ProducerCommit>();
    for (const entry of this.committing) {
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

  /** The batch in commit is committed (or abandoned); the one queued since is untouched. */
  reset(): void {
    this.committing = [];
    this.sink.acknowledged();
  }
}

/** Line i of a frame (bytes [start, end) of it) decoded the full way: a record, or a ProtocolError thrown. */
function decodeLine(header: DecodedFrame['header'], payload: Buffer, start: number, end: number, index: number, entryId: string, receivedAt: number): LogRecord {
  // The frame is valid UTF-8 as a whole, and so is each line of it.
  const lines: string[] = [];
  lines[index] = payload.toString('utf8', start, end);
  return decodeRecord({ header, lines }, index, { entryId, spliceFields: SPLICE_RESERVED, receivedAt });
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

/** The numbers of sorted, disjoint [start, end] pairs `from` that are not in sorted, disjoint pairs `less` (both flat). */
export function subtractRanges(from: readonly number[], less: readonly number[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < from.length; i += 2) {
    let start = from[i]!;
    const end = from[i + 1]!;
    while (j < less.length && less[j + 1]! < start) j += 2;
    for (let k = j; k < less.length && less[k]! <= end && start <= end; k += 2) {
      if (less[k]! > start) out.push(start, less[k]! - 1);
      start = Math.max(start, less[k + 1]! + 1);
    }
    if (start <= end) out.push(start, end);
  }
  return out;
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
