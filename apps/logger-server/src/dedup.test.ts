import fc from 'fast-check';
import { ProducerLedger, SeenSequences } from './dedup';

describe('SeenSequences', () => {
  it('accepts each number once, in any order, and counts what is missing', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 600 }), (seqs) => {
        const seen = new SeenSequences();
        const reference = new Set<number>();
        for (const seq of seqs) {
          expect(seen.add(seq)).toBe(!reference.has(seq));
          reference.add(seq);
        }
        const highest = Math.max(0, ...reference);
        expect(seen.highest).toBe(highest);
        expect(seen.missing).toBe(highest - reference.size);
        for (let seq = 1; seq <= 301; seq++) expect(seen.has(seq)).toBe(reference.has(seq));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps an in-order stream in one interval', () => {
    const seen = new SeenSequences();
    for (let seq = 1; seq <= 100_000; seq++) seen.add(seq);
    expect(seen.intervals).toBe(1);
    expect(seen.missing).toBe(0);
  });
});

describe('ProducerLedger', () => {
  it('drops duplicates, counts gaps and reported drops per producer', () => {
    const ledger = new ProducerLedger();
    for (const seq of [1, 2, 3, 5, 6, 3]) ledger.accept('p1', seq, 'shop', 'h');
    ledger.reportDrops('p1', 4, 'shop', 'h');
    ledger.accept('p2', 1, 'api', 'h');
    expect(ledger.totals()).toEqual({ received: 6, duplicates: 1, missing: 1, reportedDrops: 4, producers: 2 });
    const p1 = ledger.snapshot().find((p) => p.producer === 'p1');
    expect(p1).toMatchObject({ received: 5, duplicates: 1, missing: 1, reportedDrops: 4, app: 'shop' });
  });

  it('remembers records found in file tails without counting what came before them as missing', () => {
    const ledger = new ProducerLedger();
    for (const seq of [1002, 1001, 1003]) ledger.remember('p1', seq, 'shop', 'h');
    expect(ledger.accept('p1', 1003, 'shop', 'h')).toBe(false);
    expect(ledger.accept('p1', 1004, 'shop', 'h')).toBe(true);
    expect(ledger.totals().missing).toBe(0);
  });

  it('remembers a million numbers of one producer without a data-sized spread (it threw RangeError)', () => {
    const ledger = new ProducerLedger();
    for (let seq = 1; seq <= 1_000_000; seq++) ledger.remember('p1', seq, 'shop', 'h');
    expect(ledger.accept('p1', 1_000_000, 'shop', 'h')).toBe(false);
    expect(ledger.accept('p1', 1_000_001, 'shop', 'h')).toBe(true);
    expect(ledger.totals()).toMatchObject({ missing: 0, received: 1 });
  });
});
