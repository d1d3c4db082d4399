import { randomInt } from 'node:crypto';
import { rng } from '../test/harness';
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

  it('counts a position from no mark heard after its own gap: the successor forwards what the bridge missed and counts the gap', () => {
    // Both subscriptions dropped after a4; the standby came back first and heard a5 a6, then both
    // heard the mark m1 (the first thing the bridge heard again). The bridge forwarded a0..a4.
    const bridge = new HeardRing();
    const standby = new HeardRing();
    for (const ring of [bridge, standby]) {
      ring.mark('m0', 0);
      for (let i = 0; i < 5; i++) ring.push(message(`a${i}`), 0);
      ring.gap(1); // the drop seen
      ring.gap(2); // heard again (PubSubBridge.back): the same window
    }
    standby.push(message('a5'), 2);
    standby.push(message('a6'), 2);
    for (const ring of [bridge, standby]) {
      ring.mark('m1', 3);
      ring.push(message('a7'), 3);
    }
    // counted from m1 ("0 after m1"), the standby would start after a6: a5 and a6 lost, nothing counted
    expect(bridge.position(5, 4)).toMatchObject({ mark: 'm0', after: 5 });
    expect(standby.place(bridge.position(5, 4))).toEqual({ kind: 'placed', cursor: 5, rolledOver: 0, gaps: [{ from: 0, to: 2 }] });
    // a mark heard after the last message forwarded and before the gap still counts
    const before = new HeardRing();
    before.mark('m0', 0);
    before.push(message('a0'), 0);
    before.mark('m1', 0);
    before.gap(1);
    before.mark('m2', 2);
    expect(before.position(1, 3)).toMatchObject({ mark: 'm1', after: 0 });
  });

  it('places where a bridge with gaps of its own stopped in the ring of a standby that heard everything, from a random history', () => {
    const seed = Number(process.env.SEED ?? randomInt(1_000_000));
    console.log(`bridge-ring gaps seed ${seed} (replay: SEED=${seed})`);
    const random = rng(seed).int;
    let placed = 0;
    for (let round = 0; round < 200; round++) {
      const bridge = new HeardRing();
      const standby = new HeardRing();
      // the history: what was published (messages numbered in publish order, and marks), and when the bridge's subscription was down
      const standbyIndexOf: number[] = []; // the bridge's index -> the standby's index of the same message
      let up = true;
      let dropped = false;
      bridge.mark('first', 0);
      standby.mark('first', 0);
      for (let i = 0; i < 60; i++) {
        const roll = random(10);
        if (roll === 0) {
          up = !up;
          if (!up) {
            bridge.gap(i); // the drop, seen by a tick before anything is heard again
            dropped = true;
          }
          continue;
        }
        if (up && dropped) {
          bridge.gap(i); // heard again: PubSubBridge.back
          dropped = false;
        }
        const mark = roll === 1 ? `m${i}` : undefined;
        if (mark !== undefined) {
          standby.mark(mark, i);
          if (up) bridge.mark(mark, i);
        } else {
          const text = message(random(3) === 0 ? 'same' : `x${i}`);
          if (up) {
            standbyIndexOf[bridge.end] = standby.end;
            bridge.push(text, i);
          }
          standby.push(text, i);
        }
      }
      if (bridge.end === 0) continue;
      const cursor = 1 + random(bridge.end);
      const position = decodePosition(encodePosition(bridge.position(cursor, 100)))!;
      // the checker: the standby forwards from right after the last message the bridge forwarded, or nothing is placed (and it is counted)
      if (position.mark === '-') continue;
      expect([seed, round, standby.place(position)]).toEqual([seed, round, { kind: 'placed', cursor: standbyIndexOf[cursor - 1]! + 1, rolledOver: 0, gaps: [] }]);
      placed++;
    }
    console.log(`bridge-ring gaps: ${placed} positions checked`);
    expect(placed).toBeGreaterThan(50);
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
