import { LIMITS, encodeFrameHeader } from '@log/protocol';

/** A sealed frame waiting for Redis to accept it. */
export interface Frame {
  firstSeq: number;
  count: number;
  /**
   * The record lines joined by '\n' at seal time: one flat string per frame instead of thousands
   * of small ones keeps the memory of a long outage close to maxBufferBytes.
   */
  body: string;
  /** Built on first send so that the drop count it reports is the latest; fixed after that (re-sends are identical). */
  text: string | undefined;
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
  private lines: string[] = [];
  private linesBytes = 0;
  private nextSeq = 1;
  private queuedBytes = 0;
  private droppedSinceReport = 0;
  /** Length of the last line accepted: the estimate full() uses for the next one. */
  private lastLineBytes = 0;

  constructor(
    private readonly limits: FrameLimits,
    private readonly origin: FrameOrigin,
  ) {}

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
    if (this.lines.length > 0 && this.linesBytes + bytes > this.limits.maxFrameBytes) this.seal();
    this.lines.push(line);
    this.linesBytes += bytes;
    if (this.lines.length >= this.limits.maxFrameRecords) this.seal();
    return true;
  }

  /** Counts records refused before they reached append (e.g. logged after close) as reported drops. */
  countDrop(records = 1): void {
    this.droppedSinceReport += records;
  }

  /** True when drops wait for a frame to report them (more than one header may carry). */
  get dropsUnreported(): boolean {
    return this.droppedSinceReport > 0;
  }

  /** Closes the frame being filled, or opens an empty one that only reports drops (at most one waits at a time). */
  seal(): void {
    if (this.lines.length === 0) {
      if (this.droppedSinceReport === 0 || this.frames.some((frame) => frame.text === undefined)) return;
    }
    const count = this.lines.length;
    this.frames.push({ firstSeq: this.nextSeq, count, body: this.lines.join('\n'), text: undefined, bytes: this.linesBytes, inFlight: false });
    this.queuedBytes += this.linesBytes;
    this.nextSeq += count;
    this.lines = [];
    this.linesBytes = 0;
  }

  /**
   * The frame's text, built once: its header reports the drops counted until now, up to the
   * most one header may carry (a long outage can drop more than 2^32); the rest waits for the
   * next frame.
   */
  encode(frame: Frame): string {
    if (frame.text === undefined) {
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
      frame.text = frame.count === 0 ? header : header + '\n' + frame.body;
      frame.body = ''; // the text holds it now
    }
    return frame.text;
  }

  /** Redis accepted the frame: forget it. */
  remove(frame: Frame): void {
    const index = this.frames.indexOf(frame);
    if (index < 0) return;
    this.frames.splice(index, 1);
    this.queuedBytes -= frame.bytes;
  }

  /** Sequence number of the oldest record not yet accepted, or +Infinity when none waits. */
  firstPendingSeq(): number {
    for (const frame of this.frames) if (frame.count > 0) return frame.firstSeq;
    return this.lines.length > 0 ? this.nextSeq : Number.POSITIVE_INFINITY;
  }

  /** Sequence number of the newest record accepted so far (0 before the first). */
  lastSeq(): number {
    return this.nextSeq - 1 + this.lines.length;
  }

  /** Gives up every record still held (close() after its timeout); returns how many. */
  discard(): number {
    const records = this.bufferedRecords;
    this.frames.length = 0;
    this.lines = [];
    this.linesBytes = 0;
    this.queuedBytes = 0;
    return records;
  }

  get bufferedRecords(): number {
    let records = this.lines.length;
    for (const frame of this.frames) records += frame.count;
    return records;
  }

  get bufferedBytes(): number {
    return this.queuedBytes + this.linesBytes;
  }
}
