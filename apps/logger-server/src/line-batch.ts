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
  /**
   * Per line (the first `count` elements; the arrays keep their storage from batch to batch, so
   * a batch of tens of thousands of lines does not grow them again): byte offset after the line
   * counted over the chunks in use, origin, sequence number and time.
   */
  private ends: number[] = [];
  readonly origins: string[] = [];
  readonly seqs: number[] = [];
  readonly times: number[] = [];
  private lines = 0;

  get count(): number {
    return this.lines;
  }

  /** Appends a line (with its newline); returns its index in the batch. */
  add(line: string, origin: string, seq: number, time: number): number {
    const chunk = this.room(line.length * 3); // UTF-16 unit -> at most 3 UTF-8 bytes
    return this.addEncoded(this.writeAt + chunk.write(line, this.writeAt, 'utf8'), origin, seq, time);
  }

  /** Where room() left room: the offset in its chunk the next line starts at. */
  writeAt = 0;

  /**
   * For a line encoded in place (no string made): the chunk with room for `bytes` from
   * `writeAt`. Write the line (with its newline) there, then addEncoded with where it ends.
   */
  room(bytes: number): Buffer {
    let index = this.fills.length - 1;
    if (index < 0 || (this.fills[index] as number) + bytes > (this.chunks[index] as Buffer).length) index = this.nextChunk(bytes);
    this.writeAt = this.fills[index] as number;
    return this.chunks[index] as Buffer;
  }

  /** Adds the line written into room()'s chunk up to `end`; returns its index in the batch. */
  addEncoded(end: number, origin: string, seq: number, time: number): number {
    const index = this.fills.length - 1;
    this.length += end - (this.fills[index] as number);
    this.fills[index] = end;
    const n = this.lines++;
    this.origins[n] = origin;
    this.seqs[n] = seq;
    this.times[n] = time;
    this.ends[n] = this.length;
    return n;
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
    this.lines = 0;
  }

  /** Removes the lines whose index `drop` returns true for; returns how many went. Rare (a batch taken back): it copies the kept lines once. */
  remove(drop: (index: number) => boolean): number {
    const count = this.lines;
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
      const chunk = this.room(line.bytes.length);
      line.bytes.copy(chunk, this.writeAt);
      this.addEncoded(this.writeAt + line.bytes.length, line.origin, line.seq, line.time);
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
