import { createHash } from 'node:crypto';

/** What a server keeps of the Pub/Sub messages it heard, at most this many bytes ... */
export const RING_BYTES = 16 * 1024 * 1024;
/** ... and this old: a takeover comes within the bridge lease (3 s) and a poll of the last forward. */
export const RING_MS = 10_000;

/**
 * Where a bridge stopped, as every listener of one Redis can find it: `after` messages of the
 * channel heard after the mark `mark` (a random id published on the barrier channel, which every
 * listener hears at the same place among the channel's messages), the digest of the last of them
 * (a check, not the locator: repeated identical messages are placed by the count), and when the
 * bridge heard it (ms). Encoded as one string, stored by bridge.lua with the frames it adds.
 */
export interface RingPosition {
  mark: string;
  after: number;
  digest: string;
  at: number;
}

/** Where a successor starts forwarding, or why it cannot tell yet (wait) or at all (unplaced). */
export type Placement = { kind: 'placed'; cursor: number; rolledOver: number; gaps: Array<{ from: number; to: number }> } | { kind: 'wait'; why: string } | { kind: 'unplaced'; why: string };

interface Mark {
  mark: string;
  /** Absolute index of the first message heard after it. */
  index: number;
  at: number;
}

interface Gap {
  mark?: undefined;
  /** Absolute index of the first message heard after the subscription came back. */
  index: number;
  /** The last message heard before the subscription went down (ms), and when it was seen back. */
  from: number;
  at: number;
}

const UNKNOWN = '-';

/** The position's string form: `<mark> <after> <digest> <at>`. */
export function encodePosition(position: RingPosition): string {
  return `${position.mark} ${position.after} ${position.digest} ${position.at}`;
}

/** The position bridge.lua stored, or undefined for a missing or unreadable one. */
export function decodePosition(text: string | undefined | null): RingPosition | undefined {
  if (!text) return undefined;
  const [mark, after, digest, at] = text.split(' ');
  if (mark === undefined || digest === undefined || !/^\d+$/.test(after ?? '') || !/^\d+$/.test(at ?? '')) return undefined;
  return { mark, after: Number(after), digest, at: Number(at) };
}

function digestOf(message: Buffer): string {
  return createHash('sha1').update(message).digest('hex').slice(0, 16);
}

/**
 * The Pub/Sub messages one server heard, in the order Redis delivered them (the order it gives
 * every subscriber), numbered from the server's start (absolute indexes), with the marks heard
 * between them and the gaps of its subscription. Every server of LOG_TRANSPORT=stream,pubsub
 * keeps one; the bridge forwards from it, and a server taking over finds in its own where the
 * predecessor stopped (place()). One array of messages and one of times (no object per message).
 */
export class HeardRing {
  private messages: Buffer[] = [];
  private times: number[] = [];
  /** Index in the arrays of the oldest kept message. */
  private head = 0;
  /** Absolute index of the oldest kept message. */
  private first = 0;
  private heldBytes = 0;
  /** Marks and gaps, in the order they were heard. */
  private events: Array<Mark | Gap> = [];

  constructor(
    private readonly maxBytes = RING_BYTES,
    private readonly maxAgeMs = RING_MS,
  ) {}

  /** Absolute index of the oldest message kept. */
  get base(): number {
    return this.first;
  }

  /** Absolute index the next message heard gets. */
  get end(): number {
    return this.first + this.messages.length - this.head;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  push(message: Buffer, now: number): void {
    // A message is usually a view into the socket chunk it arrived in (up to 64 KiB): kept for
    // seconds, a small one would hold its whole chunk, and the byte bound would not be the memory.
    if (message.buffer.byteLength > 2 * message.length) message = Buffer.from(message);
    this.messages.push(message);
    this.times.push(now);
    this.heldBytes += message.length;
  }

  mark(mark: string, now: number): void {
    this.events.push({ mark, index: this.end, at: now });
  }

  /** The subscription was down: what was published meanwhile is not here. */
  gap(now: number): void {
    // Down again before a message was heard (node-redis retrying): still the same window.
    const previous = this.events[this.events.length - 1];
    if (previous !== undefined && previous.mark === undefined && previous.index === this.end) {
      previous.at = now;
      return;
    }
    const last = this.end > this.first ? this.times[this.times.length - 1]! : now;
    this.events.push({ index: this.end, from: last, at: now });
  }

  /** The message at an absolute index (base <= index < end). */
  at(index: number): Buffer {
    return this.messages[this.head + index - this.first]!;
  }

  /** When the message at an absolute index was heard. */
  heardAt(index: number): number {
    return this.times[this.head + index - this.first]!;
  }

  /** Bytes of the messages from `index` to the end. */
  bytesFrom(index: number): number {
    let bytes = 0;
    for (let i = Math.max(index, this.first); i < this.end; i++) bytes += this.at(i).length;
    return bytes;
  }

  /** Forgets messages past the bounds, never one at or after `keepFrom` (the bridge's unforwarded ones). */
  trim(now: number, keepFrom = Number.POSITIVE_INFINITY): void {
    const oldest = now - this.maxAgeMs;
    while (this.head < this.messages.length && this.first < keepFrom && (this.heldBytes > this.maxBytes || this.times[this.head]! < oldest)) {
      this.heldBytes -= this.messages[this.head]!.length;
      this.messages[this.head] = EMPTY;
      this.head++;
      this.first++;
    }
    if (this.head > 1024 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
    let drop = 0;
    while (drop < this.events.length && this.events[drop]!.at < oldest && this.events[drop]!.index < this.first) drop++;
    if (drop > 0) this.events.splice(0, drop);
  }

  /**
   * The position of `cursor` (everything before it forwarded): counted from the last mark heard
   * before it with no gap of this subscription between; the mark is unknown without one.
   */
  position(cursor: number, now: number): RingPosition {
    const digest = cursor - 1 >= this.first && cursor <= this.end ? digestOf(this.at(cursor - 1)) : UNKNOWN;
    // A mark heard after a gap at the cursor (often the first thing heard again: every server
    // publishes one when it sees its drop) was published after messages this server missed:
    // "0 after it" would make a successor skip those it heard, and count no window for them.
    let gapAtCursor = this.events.length;
    for (let i = this.events.length - 1; i >= 0 && this.events[i]!.index >= cursor; i--) {
      if (this.events[i]!.mark === undefined && this.events[i]!.index === cursor) gapAtCursor = i;
    }
    for (let i = this.events.length - 1; i >= 0; i--) {
      const event = this.events[i]!;
      if (event.mark === undefined) {
        if (event.index < cursor) break;
      } else if (event.index < cursor || (event.index === cursor && i < gapAtCursor)) return { mark: event.mark, after: cursor - event.index, digest, at: now };
    }
    return { mark: UNKNOWN, after: 0, digest, at: now };
  }

  /**
   * Where to forward from after a predecessor that stopped at `position`: its mark found here,
   * that many messages after it, with no gap of this subscription in between, and the last of
   * them the same message. Gaps after it (messages this server did not hear) and messages the
   * ring no longer holds are returned to be counted.
   */
  place(position: RingPosition): Placement {
    if (position.mark === UNKNOWN) return { kind: 'unplaced', why: 'the previous bridge did not know its own position (its subscription had been down)' };
    let at = -1;
    for (let i = this.events.length - 1; i >= 0; i--) {
      if (this.events[i]!.mark === position.mark) {
        at = i;
        break;
      }
    }
    if (at < 0) return { kind: 'wait', why: 'this server did not hear the mark the previous bridge counted from (it subscribed later, or its ring rolled over)' };
    const cursor = this.events[at]!.index + position.after;
    const gaps: Array<{ from: number; to: number }> = [];
    for (let i = at + 1; i < this.events.length; i++) {
      const event = this.events[i]!;
      if (event.mark !== undefined) continue;
      if (event.index < cursor) return { kind: 'unplaced', why: "this server's subscription was down among the messages the previous bridge forwarded" };
      gaps.push({ from: event.from, to: event.at });
    }
    if (this.end < cursor) return { kind: 'wait', why: 'this server has not heard every message the previous bridge forwarded yet' };
    if (cursor - 1 >= this.first && position.digest !== UNKNOWN && position.after > 0 && digestOf(this.at(cursor - 1)) !== position.digest) {
      return { kind: 'unplaced', why: "the message at the previous bridge's position differs here (the order of the messages differs)" };
    }
    return { kind: 'placed', cursor: Math.max(cursor, this.first), rolledOver: Math.max(0, this.first - cursor), gaps };
  }
}

const EMPTY = Buffer.alloc(0);
