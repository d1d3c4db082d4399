import fc from 'fast-check';
import { DedupCache, SeenSequences } from './dedup';

describe('SeenSequences', () => {
  it('accepts each number once, in any order, and forgets what is removed', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 300 })), { maxLength: 600 }), (ops) => {
        const seen = new SeenSequences();
        const reference = new Set<number>();
        for (const [remove, seq] of ops) {
          if (remove) {
            expect(seen.remove(seq)).toBe(reference.delete(seq));
            continue;
          }
          expect(seen.add(seq)).toBe(!reference.has(seq));
          reference.add(seq);
        }
        let highest = 0;
        for (const seq of reference) highest = Math.max(highest, seq);
        expect(seen.highest).toBe(highest);
        for (let seq = 1; seq <= 301; seq++) expect(seen.has(seq)).toBe(reference.has(seq));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps an in-order stream in one interval', () => {
    const seen = new SeenSequences();
    for (let seq = 1; seq <= 100_000; seq++) seen.add(seq);
    expect(seen.intervals).toBe(1);
  });
});

describe('DedupCache', () => {
  it('drops numbers already written, remembered or not forgotten, per producer', () => {
    const cache = new DedupCache();
    expect([1, 2, 3, 2].map((seq) => cache.accept('p1', seq))).toEqual([true, true, true, false]);
    expect(cache.accept('p2', 2)).toBe(true);
    cache.forget('p1', 2);
    expect(cache.accept('p1', 2)).toBe(true);
    cache.remember('p3', 7);
    expect(cache.accept('p3', 7)).toBe(false);
  });

  it('remembers a million numbers of one producer one at a time (a spread of them threw RangeError)', () => {
    const cache = new DedupCache();
    for (let seq = 1; seq <= 1_000_000; seq++) cache.remember('p1', seq);
    expect(cache.accept('p1', 1_000_000)).toBe(false);
    expect(cache.accept('p1', 1_000_001)).toBe(true);
  });

  it('forgets producers idle past its bound, so memory follows the active producers', () => {
    const cache = new DedupCache(1000);
    const t0 = Date.now();
    cache.tick(t0);
    for (let i = 0; i < 200_000; i++) cache.accept(`old${i}`, 1);
    cache.tick(t0 + 600);
    cache.accept('active', 1);
    cache.tick(t0 + 1500); // a sweep: the old ones were last used at t0
    expect(cache.size).toBe(1);
    expect(cache.accept('active', 1)).toBe(false);
    expect(cache.accept('old5', 1)).toBe(true); // forgotten here; the group's ledger catches a late re-send
  });
});
