import { LineBatch } from './line-batch';

describe('LineBatch', () => {
  it('encodes lines as UTF-8 as they come, grows past its first buffer, removes lines in place', () => {
    const batch = new LineBatch();
    const lines = Array.from({ length: 3000 }, (_, i) => `{"i":${i},"s":"${'é€'.repeat(i % 40)}"}\n`);
    lines.forEach((line, i) => expect(batch.add(line, `p${i % 3}`, i, 1000 + i)).toBe(i));
    expect(batch.count).toBe(3000);
    expect(batch.data().toString('utf8')).toBe(lines.join('')); // past 64 KiB: it grew
    expect(batch.remove((i) => i % 2 === 1 || i === 0)).toBe(1501);
    const kept = lines.filter((_, i) => i % 2 === 0 && i !== 0);
    expect(batch.data().toString('utf8')).toBe(kept.join(''));
    expect(batch.count).toBe(1499);
    expect(batch.seqs.slice(0, 3)).toEqual([2, 4, 6]);
    expect(batch.origins.slice(0, 3)).toEqual(['p2', 'p1', 'p0']);
    expect(batch.times[1498]).toBe(1000 + 2998);
    batch.clear();
    expect([batch.count, batch.length, batch.data().length]).toEqual([0, 0, 0]);
    batch.add('x\n', 'p', 1, 1);
    expect(batch.data().toString()).toBe('x\n');
  });
});
