import { randomInt } from 'node:crypto';
import { HeardRing, decodePosition, encodePosition } from './bridge-ring';

// Two listeners of one Redis hear the same sequence; one forwards a prefix and records its
// position, the other must place it exactly: the checker is the index of the next message.

function message(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

describe('HeardRing: where a predecessor stopped, found in another listener ring', () => {
  it('places a position counted from a mark, with repeated identical messages, from a random history', () => {
    const seed = randomInt(1_000_000);
    console.log(`bridge-ring seed ${seed}`);
    let state = seed;
    const random = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state % n;
    };
    for (let round = 0; round < 50; round++) {
      const bridge = new HeardRing();
      const standby = new HeardRing();
      // the standby subscribed after a few messages: it has not heard those
      const late = random(5);
      const events: Array<{ mark?: string; text?: string }> = [];
      for (let i = 0; i < 200; i++) events.push(random(20) === 0 ? { mark: `m${i}` } : { text: random(3) === 0 ? 'same' : `x${random(4)}` });
      events.unshift({ mark: 'first' });
      let standbyIndexOfBridge0 = 0;
      for (const [i, event] of events.entries()) {
        const hearers = i >= late ? [bridge, standby] : [bridge];
        if (i === late) standbyIndexOfBridge0 = bridge.end;
        for (const ring of hearers) {
          if (event.mark !== undefined) ring.mark(event.mark, 0);
          else ring.push(message(event.text!), 0);
        }
      }
      const cursor = bridge.base + random(bridge.end - bridge.base + 1);
      const position = decodePosition(encodePosition(bridge.position(cursor, 5)))!;
      const placement = standby.place(position);
      // the bridge's index `cursor` is the standby's `cursor - standbyIndexOfBridge0`
      const expected = cursor - standbyIndexOfBridge0;
      const markIndex = events.slice(0, events.length).findIndex((event) => event.mark === position.mark);
      if (markIndex < late) expect(placement.kind).toBe('wait');
      else expect([seed, placement]).toEqual([seed, { kind: 'placed', cursor: expected, rolledOver: 0, gaps: [] }]);
    }
  });

  it('refuses to place across a gap of its own subscription, counts one after the position, and waits for messages not heard yet', () => {
    const bridge = new HeardRing();
    const standby = new HeardRing();
    for (const ring of [bridge, standby]) ring.mark('m', 0);
    for (let i = 0; i < 10; i++) bridge.push(message(`a${i}`), 0);
    for (let i = 0; i < 4; i++) standby.push(message(`a${i}`), 0);
    // the standby has not heard a4.. yet
    expect(standby.place(bridge.position(6, 1))).toEqual({ kind: 'wait', why: expect.stringContaining('not heard every message') });
    standby.gap(1);
    standby.gap(2); // down again before hearing anything: the same window, longer
    for (let i = 7; i < 10; i++) standby.push(message(`a${i}`), 3);
    expect(standby.place(bridge.position(6, 1))).toEqual({ kind: 'unplaced', why: expect.stringContaining('down among the messages') });
    // a position before the gap is placed, and the gap after it is returned to be counted
    expect(standby.place(bridge.position(3, 1))).toEqual({ kind: 'placed', cursor: 3, rolledOver: 0, gaps: [{ from: 0, to: 2 }] });
    // the same count over different messages (the order differed) is not placed
    const other = new HeardRing();
    other.mark('m', 0);
    for (let i = 0; i < 10; i++) other.push(message(`b${i}`), 0);
    expect(other.place(bridge.position(6, 1))).toEqual({ kind: 'unplaced', why: expect.stringContaining('differs') });
    // a bridge that does not know its own position (a gap before the cursor) says so
    expect(standby.position(5, 1).mark).toBe('-');
  });

  it('trims by age and bytes, never what the bridge has not forwarded, and counts what rolled over', () => {
    const ring = new HeardRing(100, 1_000);
    ring.mark('m', 0);
    for (let i = 0; i < 20; i++) ring.push(Buffer.alloc(10), 0);
    ring.trim(0, 5);
    expect(ring.base).toBe(5);
    ring.trim(0);
    expect([ring.base, ring.bytes]).toEqual([10, 100]);
    // the predecessor stopped 3 after the mark: 7 of the messages after it are gone
    expect(ring.place({ mark: 'm', after: 3, digest: '-', at: 0 })).toEqual({ kind: 'placed', cursor: 10, rolledOver: 7, gaps: [] });
    // by age: the messages and the mark go, and the position cannot be found any more
    ring.trim(1_001);
    expect([ring.base, ring.end, ring.bytes]).toEqual([20, 20, 0]);
    expect(ring.place({ mark: 'm', after: 3, digest: '-', at: 0 }).kind).toBe('wait');
  });
});
