import { compareIds, idRange } from './stream-reader';

/** The plain definition: (ms, seq) compared as integers of any size. */
function reference(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

/** A small seeded generator (mulberry32), so a failure can be replayed from the printed seed. */
function random(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r ^= r + Math.imul(r ^ (r >>> 7), 61 | r);
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

describe('compareIds', () => {
  it('orders stream ids as (ms, seq) integers, like BigInt arithmetic, on ids near each other and far apart', () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1e9);
    process.stdout.write(`compareIds seed ${seed}\n`);
    const next = random(seed);
    const part = (): string => {
      const kind = next();
      if (kind < 0.15) return String(Math.floor(next() * 3)); // 0, 1, 2: the leading-zero cases
      if (kind < 0.3) return `${Math.floor(next() * 9) + 1}${'9'.repeat(Math.floor(next() * 20))}`; // beyond 2^53
      return String(1796189309558 + Math.floor(next() * 2000) - 1000);
    };
    const ids: string[] = [];
    for (let i = 0; i < 400; i++) ids.push(`${part()}-${next() < 0.5 ? String(Math.floor(next() * 12)) : part()}`);
    let disagreements = 0;
    for (const a of ids) for (const b of ids) if (compareIds(a, b) !== reference(a, b)) disagreements++;
    expect(disagreements).toBe(0);
    const sorted = [...ids].sort(reference);
    expect(idRange(ids)).toEqual({ first: sorted[0], last: sorted[sorted.length - 1] });
    // the cases that fooled a length-first comparison
    expect(compareIds('2-10', '3-9')).toBe(-1);
    expect(compareIds('10-1', '9-99')).toBe(1);
    expect(compareIds('5-0', '5-00')).toBe(0);
  });
});
