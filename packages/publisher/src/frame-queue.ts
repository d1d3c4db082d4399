import { LIMITS, encodeFrameHeader, signatureLineLength, writeSignatureLine, type SigningKey } from '@log/protocol';

/**
 * Spare frame buffers kept for reuse (see FrameQueue.spare): at most this many, holding at most
 * maxBufferBytes together, each at least MIN_SPARE_BYTES.
 */
const MAX_SPARE = 64;
const MIN_SPARE_BYTES = 64 * 1024;
/** Lines, or UTF-16 units of them, encoded into a frame's buffer at once (see FrameQueue.pending). */
const PENDING_LINES = 32;
const PENDING_UNITS = 16 * 1024;
/**
 * A frame whose lines fill at least this share of the buffer they were written into keeps that
 * buffer (no copy; the next frame is written into a spare or a new one); a smaller one is
 * copied into a buffer of its size, so that a frame holds little more memory than its lines.
 */
const KEEP_WORK_SHARE = 4;

/** A sealed frame waiting for Redis to accept it. */
export interface Frame {
  firstSeq: number;
  count: number;
  /**
   * Room for the header, then the record lines joined by '\n' as UTF-8, copied out at seal time:
   * bytes outside the JavaScript heap instead of a frame-sized string, which V8 would make in its
   * large-object space and node-redis would measure and encode again on every send.
   */
  buffer: Buffer;
  /** Where the lines end in `buffer` (a reused buffer can be longer). */
  end: number;
  /** What is sent (header, '\n', lines): built on first send so that the drop count it reports is the latest; fixed after that (re-sends are identical). */
  payload: Buffer | undefined;
  /** The lines' size in UTF-16 units, as maxFrameBytes and maxBufferBytes count. */
  bytes: number;
  inFlight: boolean;
}

export interface FrameLimits {
  maxBufferBytes: number;
  maxFrameRecords: number;
  maxFrameBytes: number;
}

/** Who the frames come from: written into every frame header. */
export interface FrameOrigin {
  producer: string;
  app: string;
  host: string;
  pid: number;
}

/**
 * The publisher's memory: the frame being filled and the sealed frames not yet accepted by Redis,
 * bounded by maxBufferBytes. Sequence numbers are handed out when a record is accepted, so
 * dropped records never take one and the sequence stays gap-free. No I/O here: the sender asks
 * for frames and reports back.
 */
export class FrameQueue {
  /** Sealed frames, oldest first, until Redis accepts them. */
  readonly frames: Frame[] = [];
  /**
   * The frame being filled: room for its header (headerRoom), then its lines as UTF-8, joined
   * by '\n', up to workEnd (the last few wait in `pending`). A large frame is sealed with this very buffer (see seal()).
   */
  private work: Buffer;
  private workEnd: number;
  /** Size of a new work buffer: a frame of maxFrameBytes ASCII lines fits without growing it. */
  private readonly workCapacity: number;
  private lineCount = 0;
  /**
   * Lines accepted and not yet encoded into `work`, joined by '\n' (and led by one when `work`
   * holds lines already): encoded PENDING_LINES at a time. Buffer.write of a line made by
   * concatenation costs ~250 ns a call whatever its length (V8 flattens it first); of 32 lines
   * joined, about as much once.
   */
  private pending = '';
  private pendingLines = 0;
  private linesBytes = 0;
  private nextSeq = 1;
  private queuedBytes = 0;
  private droppedSinceReport = 0;
  /** Length of the last line accepted: the estimate full() uses for the next one. */
  private lastLineBytes = 0;
  /** Bytes left before the lines of a sealed frame for its header: the longest header this origin can have, and its newline (and the signature line, when signing). */
  private readonly headerRoom: number;
  private readonly signatureBytes: number;
  /**
   * Buffers of frames Redis accepted, for the next frames: memory the process has already
   * touched. A fresh megabyte costs its page faults on every frame (~20 ms on a busy virtual
   * machine, more than logging the frame's records); a copy into a reused buffer, ~0.1 ms.
   * Enough are kept for the next burst like the last one (a loop that never yields seals every
   * frame before any is sent: ~53 of 1 MiB for 300,000 records), within maxBufferBytes, so the
   * memory the publisher holds never goes past what its last burst took; trimSpares() lets go
   * of those unused for a while.
   */
  private readonly spare: Buffer[] = [];
  private spareBytes = 0;
  /** The fewest spares held since the last trimSpares(): that many went unused since then. */
  private spareLow = 0;

  constructor(
    private readonly limits: FrameLimits,
    private readonly origin: FrameOrigin,
    private readonly signingKey?: SigningKey,
  ) {
    const longest = encodeFrameHeader({ ...origin, seq: Number.MAX_SAFE_INTEGER, count: Number.MAX_SAFE_INTEGER, dropped: LIMITS.maxDropped });
    this.signatureBytes = signingKey === undefined ? 0 : signatureLineLength(signingKey);
    this.headerRoom = this.signatureBytes + Buffer.byteLength(longest) + 1;
    this.workCapacity = this.headerRoom + limits.maxFrameBytes + limits.maxFrameRecords;
    this.work = Buffer.allocUnsafe(this.workCapacity);
    this.workEnd = this.headerRoom;
  }

  /**
   * True when a record like the last one would not fit: the logger then drops the record before
   * serializing it, so a long outage costs neither CPU nor garbage per call.
   */
  full(): boolean {
    return this.queuedBytes + this.linesBytes + this.lastLineBytes > this.limits.maxBufferBytes;
  }

  /** Accepts a record line, or refuses it (false) when the buffer is full: a drop to count. */
  append(line: string): boolean {
    const bytes = line.length;
    if (this.queuedBytes + this.linesBytes + bytes > this.limits.maxBufferBytes) {
      // Drop the newest record: what is buffered is older and already numbered.
      this.droppedSinceReport++;
      return false;
    }
    this.lastLineBytes = bytes;
    if (this.lineCount > 0 && this.linesBytes + bytes > this.limits.maxFrameBytes) this.seal();
    this.writeLine(line);
    this.linesBytes += bytes;
    if (this.lineCount >= this.limits.maxFrameRecords) this.seal();
    return true;
  }

  /** Adds a line to the frame being filled: to the pending lines, encoded a few at a time (never joined into a frame-sized string). */
  private writeLine(line: string): void {
    this.pending = this.lineCount > 0 ? this.pending + '\n' + line : line;
    this.lineCount++;
    if (++this.pendingLines >= PENDING_LINES || this.pending.length >= PENDING_UNITS) this.writePending();
  }

  /** Encodes the pending lines into the frame being filled. */
  private writePending(): void {
    const text = this.pending;
    if (text === '') return;
    // A UTF-16 unit takes at most 3 bytes: only text that might not fit is measured.
    if (this.workEnd + text.length * 3 > this.work.length) {
      const needed = this.workEnd + Buffer.byteLength(text);
      if (needed > this.work.length) {
        const bigger = Buffer.allocUnsafe(Math.max(needed, this.work.length * 2));
        this.work.copy(bigger, this.headerRoom, this.headerRoom, this.workEnd);
        this.work = bigger;
      }
    }
    this.workEnd += this.work.write(text, this.workEnd, 'utf8');
    this.pending = '';
    this.pendingLines = 0;
  }

  /** Counts records refused before they reached append (e.g. logged after close) as reported drops. */
  countDrop(records = 1): void {
    this.droppedSinceReport += records;
  }

  /** True when drops wait for a frame to report them (more than one header may carry). */
  get dropsUnreported(): boolean {
    return this.droppedSinceReport > 0;
  }

  /** Closes the frame being filled, or opens an empty one that only reports drops (at most one waits at a time). True when a frame was added. */
  seal(): boolean {
    if (this.lineCount === 0) {
      if (this.droppedSinceReport === 0 || this.frames.some((frame) => frame.payload === undefined)) return false;
    }
    this.writePending();
    const count = this.lineCount;
    const end = this.workEnd;
    let buffer: Buffer;
    if (end * KEEP_WORK_SHARE >= this.work.length) {
      // Copying a frame of a megabyte cost more than logging its records: in a loop that never
      // yields, every frame waits in memory, and each copy went to fresh pages (page faults).
      buffer = this.work;
      this.work = this.newWork();
    } else {
      buffer = this.bufferFor(end);
      this.work.copy(buffer, this.headerRoom, this.headerRoom, end);
    }
    this.frames.push({ firstSeq: this.nextSeq, count, buffer, end, payload: undefined, bytes: this.linesBytes, inFlight: false });
    this.queuedBytes += this.linesBytes;
    this.nextSeq += count;
    this.lineCount = 0;
    this.workEnd = this.headerRoom;
    this.linesBytes = 0;
    return true;
  }

  /**
   * The frame's text, built once (and signed, with a key): its header reports the drops counted until now, up to the
   * most one header may carry (a long outage can drop more than 2^32); the rest waits for the
   * next frame.
   */
  encode(frame: Frame): Buffer {
    if (frame.payload === undefined) {
      const dropped = Math.min(this.droppedSinceReport, LIMITS.maxDropped);
      const header = encodeFrameHeader({
        producer: this.origin.producer,
        seq: frame.firstSeq,
        count: frame.count,
        app: this.origin.app,
        host: this.origin.host,
        pid: this.origin.pid,
        dropped,
      });
      this.droppedSinceReport -= dropped;
      const start = this.headerRoom - 1 - Buffer.byteLength(header);
      frame.buffer.write(header, start, 'utf8');
      frame.buffer[this.headerRoom - 1] = 0x0a;
      // An empty frame (drops only) is its header alone.
      const end = frame.count === 0 ? this.headerRoom - 1 : frame.end;
      frame.payload = frame.buffer.subarray(start, end);
      if (this.signingKey !== undefined) {
        // The signature line goes into the room left before the header: still one buffer, no copy.
        writeSignatureLine(this.signingKey, frame.payload, frame.buffer, start - this.signatureBytes);
        frame.payload = frame.buffer.subarray(start - this.signatureBytes, end);
      }
    }
    return frame.payload;
  }

  /** Redis accepted the frame: forget it. */
  remove(frame: Frame): void {
    const index = this.frames.indexOf(frame);
    if (index < 0) return;
    this.frames.splice(index, 1);
    this.queuedBytes -= frame.bytes;
    // Redis has answered: the command, and the buffer it was written from, are done with.
    const bytes = frame.buffer.length;
    if (bytes >= MIN_SPARE_BYTES && this.spare.length < MAX_SPARE && this.spareBytes + bytes <= this.limits.maxBufferBytes) {
      this.spare.push(frame.buffer);
      this.spareBytes += bytes;
    }
  }

  /** Spare buffers held (see trimSpares), and their bytes. */
  get spareBuffers(): number {
    return this.spare.length;
  }

  get spareBufferBytes(): number {
    return this.spareBytes;
  }

  /**
   * Lets go of the spares no frame needed since the last call (the oldest first), so that an app
   * does not keep a burst's memory for good after one burst; called every few seconds while
   * spares are held. Returns whether spares are still held.
   */
  trimSpares(): boolean {
    const unused = this.spareLow;
    for (const buffer of this.spare.splice(0, unused)) this.spareBytes -= buffer.length;
    this.spareLow = this.spare.length;
    return this.spare.length > 0;
  }

  private takeSpare(i: number): Buffer {
    const buffer = this.spare[i] as Buffer;
    this.spare.splice(i, 1);
    this.spareBytes -= buffer.length;
    if (this.spare.length < this.spareLow) this.spareLow = this.spare.length;
    return buffer;
  }

  /** A buffer to fill the next frame in: a spare one of full size when there is one. */
  private newWork(): Buffer {
    for (let i = this.spare.length - 1; i >= 0; i--) {
      if ((this.spare[i] as Buffer).length >= this.workCapacity) return this.takeSpare(i);
    }
    return Buffer.allocUnsafe(this.workCapacity);
  }

  /** A buffer of at least `bytes` (and at most twice that, so a frame holds little more than its lines): a spare one when one fits. */
  private bufferFor(bytes: number): Buffer {
    for (let i = this.spare.length - 1; i >= 0; i--) {
      const length = (this.spare[i] as Buffer).length;
      if (length >= bytes && length <= 2 * bytes) return this.takeSpare(i);
    }
    return Buffer.allocUnsafe(bytes);
  }

  /** Sequence number of the oldest record not yet accepted, or +Infinity when none waits. */
  firstPendingSeq(): number {
    for (const frame of this.frames) if (frame.count > 0) return frame.firstSeq;
    return this.lineCount > 0 ? this.nextSeq : Number.POSITIVE_INFINITY;
  }

  /** Sequence number of the newest record accepted so far (0 before the first). */
  lastSeq(): number {
    return this.nextSeq - 1 + this.lineCount;
  }

  /** Gives up every record still held (close() after its timeout); returns how many. */
  discard(): number {
    const records = this.bufferedRecords;
    this.frames.length = 0;
    this.workEnd = this.headerRoom;
    this.lineCount = 0;
    this.pending = '';
    this.pendingLines = 0;
    this.linesBytes = 0;
    this.queuedBytes = 0;
    return records;
  }

  get bufferedRecords(): number {
    let records = this.lineCount;
    for (const frame of this.frames) records += frame.count;
    return records;
  }

  /** UTF-16 units of the lines in the frame being filled. */
  get fillingUnits(): number {
    return this.linesBytes;
  }

  get bufferedBytes(): number {
    return this.queuedBytes + this.linesBytes;
  }
}
