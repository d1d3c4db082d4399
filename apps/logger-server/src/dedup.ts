/**
 * Which sequence numbers of each producer are already on disk, as sorted disjoint intervals.
 * The common case (the next number in order) extends the last interval in O(1); late or
 * re-sent numbers are found by binary search. `missing` counts the numbers below the highest
 * seen that never arrived: the gap, told apart from the drops the producer reported.
 */
export class SeenSequences {
  private starts: number[] = [];
  private ends: number[] = [];
  private covered = 0;

  /**
   * @param base numbers at or below it are not counted as missing: 0 for a producer seen from its
   * start; for one rebuilt from a file tail after a restart, the number before the oldest found.
   */
  constructor(private base = 0) {}

  /** Numbers at or below `seq` are history this server never saw: not counted as missing. */
  lowerBase(seq: number): void {
    if (seq < this.base) this.base = seq;
  }

  /** Records `seq`; false when it was already there (a duplicate). */
  add(seq: number): boolean {
    const last = this.ends.length - 1;
    if (last < 0 || seq > this.ends[last]! + 1) {
      this.starts.push(seq);
      this.ends.push(seq);
      this.covered++;
      return true;
    }
    if (seq === this.ends[last]! + 1) {
      this.ends[last] = seq;
      this.covered++;
      return true;
    }
    // seq <= highest: find the first interval whose end >= seq
    let lo = 0;
    let hi = last;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    if (this.starts[lo]! <= seq) return false;
    // seq falls in the hole before interval lo: extend a neighbour or open an interval
    this.covered++;
    const joinsPrevious = lo > 0 && this.ends[lo - 1]! + 1 === seq;
    const joinsNext = this.starts[lo]! - 1 === seq;
    if (joinsPrevious && joinsNext) {
      this.ends[lo - 1] = this.ends[lo]!;
      this.starts.splice(lo, 1);
      this.ends.splice(lo, 1);
    } else if (joinsPrevious) this.ends[lo - 1] = seq;
    else if (joinsNext) this.starts[lo] = seq;
    else {
      this.starts.splice(lo, 0, seq);
      this.ends.splice(lo, 0, seq);
    }
    return true;
  }

  has(seq: number): boolean {
    let lo = 0;
    let hi = this.ends.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! < seq) lo = mid + 1;
      else if (this.starts[mid]! > seq) hi = mid - 1;
      else return true;
    }
    return false;
  }

  get highest(): number {
    return this.ends[this.ends.length - 1] ?? 0;
  }

  /** Numbers above base, up to the highest seen, that never arrived. */
  get missing(): number {
    return Math.max(0, this.highest - this.base - this.covered);
  }

  get intervals(): number {
    return this.starts.length;
  }
}

/** Per-producer accounting for GET /stats and the metrics. */
export interface ProducerStats {
  producer: string;
  app: string;
  host: string;
  received: number;
  duplicates: number;
  /** Sequence numbers below the highest seen that never arrived (lost in transit). */
  missing: number;
  /** Records the producer itself reported as dropped. */
  reportedDrops: number;
  firstSeen: string;
  lastSeen: string;
}

/** Dedup and loss accounting over all producers. */
export class ProducerLedger {
  private readonly producers = new Map<string, { seen: SeenSequences; stats: ProducerStats }>();

  private entry(producer: string, app: string, host: string, base = 0) {
    let entry = this.producers.get(producer);
    if (entry === undefined) {
      const now = new Date().toISOString();
      entry = {
        seen: new SeenSequences(base),
        stats: { producer, app, host, received: 0, duplicates: 0, missing: 0, reportedDrops: 0, firstSeen: now, lastSeen: now },
      };
      this.producers.set(producer, entry);
    }
    return entry;
  }

  /** True when (producer, seq) is new and must be written; false for a duplicate. */
  accept(producer: string, seq: number, app: string, host: string): boolean {
    const entry = this.entry(producer, app, host);
    if (!entry.seen.add(seq)) {
      entry.stats.duplicates++;
      return false;
    }
    entry.stats.received++;
    return true;
  }

  /**
   * Marks a sequence number as already on disk without counting it: the server rebuilds this
   * from its open files at start, one line at a time, so entries written but not acknowledged
   * before a crash are not written again when they are redelivered. Numbers below the lowest
   * remembered are history this server never saw, not missing. O(1) memory per call: recovery
   * never holds a file's numbers in an array (a spread of one threw RangeError past ~100k).
   */
  remember(producer: string, seq: number, app: string, host: string): void {
    const entry = this.entry(producer, app, host, seq - 1);
    entry.seen.lowerBase(seq - 1);
    entry.seen.add(seq);
  }

  /** Adds the drops a producer reported in a frame header. */
  reportDrops(producer: string, count: number, app: string, host: string): void {
    if (count > 0) this.entry(producer, app, host).stats.reportedDrops += count;
  }

  touch(producer: string): void {
    const entry = this.producers.get(producer);
    if (entry) entry.stats.lastSeen = new Date().toISOString();
  }

  snapshot(): ProducerStats[] {
    return [...this.producers.values()].map(({ seen, stats }) => ({ ...stats, missing: seen.missing }));
  }

  totals(): { received: number; duplicates: number; missing: number; reportedDrops: number; producers: number } {
    let received = 0;
    let duplicates = 0;
    let missing = 0;
    let reportedDrops = 0;
    for (const { seen, stats } of this.producers.values()) {
      received += stats.received;
      duplicates += stats.duplicates;
      missing += seen.missing;
      reportedDrops += stats.reportedDrops;
    }
    return { received, duplicates, missing, reportedDrops, producers: this.producers.size };
  }
}
