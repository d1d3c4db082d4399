/**
 * Which sequence numbers of one origin (producer id, app, host: see origin.ts) are already on disk, as sorted disjoint intervals.
 * The common case (the next number in order) extends the last interval in O(1); late or
 * re-sent numbers are found by binary search.
 */
export class SeenSequences {
  private starts: number[] = [];
  private ends: number[] = [];

  /** Records `seq`; false when it was already there (a duplicate). */
  add(seq: number): boolean {
    const last = this.ends.length - 1;
    if (last < 0 || seq > this.ends[last]! + 1) {
      this.starts.push(seq);
      this.ends.push(seq);
      return true;
    }
    if (seq === this.ends[last]! + 1) {
      this.ends[last] = seq;
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
    return this.indexOf(seq) !== -1;
  }

  /** The interval holding `seq`, or -1. */
  private indexOf(seq: number): number {
    let lo = 0;
    let hi = this.ends.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! < seq) lo = mid + 1;
      else if (this.starts[mid]! > seq) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  get highest(): number {
    return this.ends[this.ends.length - 1] ?? 0;
  }

  /** Takes `seq` out again (its record was taken back out of the file); false when it was not there. */
  remove(seq: number): boolean {
    const at = this.indexOf(seq);
    if (at === -1) return false;
    const start = this.starts[at]!;
    const end = this.ends[at]!;
    if (start === end) {
      this.starts.splice(at, 1);
      this.ends.splice(at, 1);
    } else if (seq === start) this.starts[at] = seq + 1;
    else if (seq === end) this.ends[at] = seq - 1;
    else {
      this.starts.splice(at + 1, 0, seq + 1);
      this.ends.splice(at + 1, 0, end);
      this.ends[at] = seq - 1;
    }
    return true;
  }

  get intervals(): number {
    return this.starts.length;
  }

  /** Every number held, as sorted disjoint [start, end] pairs (flat, a copy). */
  ranges(): number[] {
    const flat: number[] = [];
    for (let i = 0; i < this.starts.length; i++) flat.push(this.starts[i]!, this.ends[i]!);
    return flat;
  }
}

/**
 * The server's own memory of what it wrote, per origin: drops a redelivered or re-sent record
 * before it is written a second time. A cache in front of the group's ledger in Redis (which
 * catches at commit what this cache does not know: another server's records, a producer
 * forgotten here): origins idle longer than `idleMs` are forgotten, so memory follows the
 * producers active now, not every producer ever seen.
 */
export class DedupCache {
  private readonly producers = new Map<string, { seen: SeenSequences; lastUsed: number }>();
  private now = Date.now();
  private nextSweep: number;

  constructor(private readonly idleMs = 10 * 60_000) {
    this.nextSweep = this.now + idleMs;
  }

  private entry(producer: string) {
    let entry = this.producers.get(producer);
    if (entry === undefined) this.producers.set(producer, (entry = { seen: new SeenSequences(), lastUsed: this.now }));
    else entry.lastUsed = this.now;
    return entry;
  }

  /** True when (origin, seq) is new and must be written; false for a duplicate. `origin`: see origin.ts. */
  accept(producer: string, seq: number): boolean {
    return this.entry(producer).seen.add(seq);
  }

  /** Marks a number as on disk (rebuilt from the open files at start). */
  remember(producer: string, seq: number): void {
    this.entry(producer).seen.add(seq);
  }

  /** Forgets a number whose record was taken back out of the file (another server writes it). */
  /** The numbers of `origin` on disk as sorted [start, end] pairs (flat); [] for an origin not (or no longer) known. */
  rangesOf(origin: string): number[] {
    return this.producers.get(origin)?.seen.ranges() ?? [];
  }

  forget(producer: string, seq: number): void {
    this.producers.get(producer)?.seen.remove(seq);
  }

  /** Call once per batch: reads the clock once, and forgets idle producers at most once per idleMs. */
  tick(now = Date.now()): void {
    this.now = now;
    if (now < this.nextSweep) return;
    this.nextSweep = now + this.idleMs;
    for (const [producer, { lastUsed }] of this.producers) if (now - lastUsed > this.idleMs) this.producers.delete(producer);
  }

  get size(): number {
    return this.producers.size;
  }
}
