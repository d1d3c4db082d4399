const CHUNK_BYTES = 1024 * 1024;
/** Spare chunks beyond this many are let go when a batch uses less than an eighth of them. */
const SHRINK_ABOVE_CHUNKS = 8;

/**
 * One batch of lines for one file, encoded as they are appended into 1 MiB chunks (written with
 * one writev), with where each line ends and, per line, the origin, sequence number and time
 * for the file's summary. Lines are not kept as strings: a batch of thousands of them would
 * outlive the young generation and make the garbage collector copy them; bytes cost it nothing.
 * Chunks rather than one growing buffer: a batch of tens of MiB is never copied to grow, and
 * takes no more memory than its lines. Chunks and arrays are reused batch after batch.
 */
export class LineBatch {
  /** Chunks in use (the first `fills.length`), then spare ones kept for the next batches. */
  private chunks: Buffer[] = [];
  /** Bytes used in each chunk in use. A line never spans two chunks. */
  private fills: number[] = [];
  /** Bytes used. */
  length = 0;
  /** Byte offset after each line, counted over the chunks in use. */
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
    let index = this.fills.length - 1;
    if (index < 0 || (this.fills[index] as number) + worst > (this.chunks[index] as Buffer).length) index = this.nextChunk(worst);
    const written = (this.chunks[index] as Buffer).write(line, this.fills[index] as number, 'utf8');
    this.fills[index] = (this.fills[index] as number) + written;
    this.length += written;
    this.origins.push(origin);
    this.seqs.push(seq);
    this.times.push(time);
    return this.ends.push(this.length) - 1;
  }

  /** The encoded lines, in order; valid until the batch is cleared or changed. */
  data(): Buffer[] {
    const data: Buffer[] = [];
    for (let i = 0; i < this.fills.length; i++) data.push((this.chunks[i] as Buffer).subarray(0, this.fills[i]));
    return data;
  }

  clear(): void {
    const used = this.fills.length;
    if (this.chunks.length > SHRINK_ABOVE_CHUNKS && used < this.chunks.length / 8) this.chunks.length = Math.max(used, 1);
    this.length = 0;
    this.fills.length = 0;
    this.ends.length = 0;
    this.origins.length = 0;
    this.seqs.length = 0;
    this.times.length = 0;
  }

  /** Removes the lines whose index `drop` returns true for; returns how many went. Rare (a batch taken back): it copies the kept lines once. */
  remove(drop: (index: number) => boolean): number {
    const count = this.ends.length;
    const kept: Array<{ bytes: Buffer; origin: string; seq: number; time: number }> = [];
    let chunk = 0;
    let chunkStart = 0;
    let start = 0;
    for (let i = 0; i < count; i++) {
      const end = this.ends[i] as number;
      while (start >= chunkStart + (this.fills[chunk] as number)) chunkStart += this.fills[chunk++] as number;
      if (!drop(i)) {
        const bytes = Buffer.from((this.chunks[chunk] as Buffer).subarray(start - chunkStart, end - chunkStart));
        kept.push({ bytes, origin: this.origins[i] as string, seq: this.seqs[i] as number, time: this.times[i] as number });
      }
      start = end;
    }
    this.clear();
    for (const line of kept) {
      let index = this.fills.length - 1;
      if (index < 0 || (this.fills[index] as number) + line.bytes.length > (this.chunks[index] as Buffer).length) index = this.nextChunk(line.bytes.length);
      line.bytes.copy(this.chunks[index] as Buffer, this.fills[index]);
      this.fills[index] = (this.fills[index] as number) + line.bytes.length;
      this.length += line.bytes.length;
      this.ends.push(this.length);
      this.origins.push(line.origin);
      this.seqs.push(line.seq);
      this.times.push(line.time);
    }
    return count - kept.length;
  }

  /** Puts the next chunk in use (a spare one when it is large enough) for a line of up to `bytes`; returns its index. */
  private nextChunk(bytes: number): number {
    const index = this.fills.length;
    const spare = this.chunks[index];
    if (spare === undefined || spare.length < bytes) this.chunks[index] = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bytes));
    this.fills.push(0);
    return index;
  }
}
