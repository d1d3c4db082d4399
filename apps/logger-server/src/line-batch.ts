const INITIAL_BYTES = 64 * 1024;
const SHRINK_ABOVE = 8 * 1024 * 1024;

/**
 * One batch of lines for one file, encoded into a Buffer as they are appended, with where each
 * line ends and, per line, the origin, sequence number and time for the file's summary.
 * Lines are not kept as strings: a batch of thousands of them would outlive the young
 * generation and make the garbage collector copy them; bytes in a Buffer cost it nothing.
 * The Buffer and arrays are reused batch after batch.
 */
export class LineBatch {
  private bytes = Buffer.allocUnsafe(INITIAL_BYTES);
  /** Bytes used. */
  length = 0;
  /** Byte offset after each line. */
  private ends: number[] = [];
  origins: string[] = [];
  seqs: number[] = [];
  times: number[] = [];

  get count(): number {
    return this.ends.length;
  }

  /** Appends a line (with its newline); returns its index in the batch. */
  add(line: string, origin: string, seq: number, time: number): number {
    const worst = line.length * 3; // UTF-16 unit -> at most 3 UTF-8 bytes
    if (this.length + worst > this.bytes.length) this.grow(this.length + worst);
    this.length += this.bytes.write(line, this.length, 'utf8');
    this.origins.push(origin);
    this.seqs.push(seq);
    this.times.push(time);
    return this.ends.push(this.length) - 1;
  }

  /** The encoded lines; valid until the batch is cleared or changed. */
  data(): Buffer {
    return this.bytes.subarray(0, this.length);
  }

  clear(): void {
    if (this.bytes.length > SHRINK_ABOVE && this.length < this.bytes.length / 8) this.bytes = Buffer.allocUnsafe(INITIAL_BYTES);
    this.length = 0;
    this.ends.length = 0;
    this.origins.length = 0;
    this.seqs.length = 0;
    this.times.length = 0;
  }

  /** Removes the lines whose index `drop` returns true for, in place; returns how many went. */
  remove(drop: (index: number) => boolean): number {
    let write = 0;
    let kept = 0;
    let start = 0;
    const count = this.ends.length;
    for (let i = 0; i < count; i++) {
      const end = this.ends[i] as number;
      if (!drop(i)) {
        if (write !== start) this.bytes.copyWithin(write, start, end);
        write += end - start;
        this.ends[kept] = write;
        this.origins[kept] = this.origins[i] as string;
        this.seqs[kept] = this.seqs[i] as number;
        this.times[kept] = this.times[i] as number;
        kept++;
      }
      start = end;
    }
    this.length = write;
    this.ends.length = this.origins.length = this.seqs.length = this.times.length = kept;
    return count - kept;
  }

  private grow(needed: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(needed, this.bytes.length * 2));
    this.bytes.copy(bigger, 0, 0, this.length);
    this.bytes = bigger;
  }
}
