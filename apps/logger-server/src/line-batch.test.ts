import { LineBatch } from './line-batch';

describe('LineBatch', () => {
  it('encodes lines as UTF-8 as they come, removes lines, and starts again empty after clear', () => {
    const batch = new LineBatch();
    const lines = Array.from({ length: 3000 }, (_, i) => `{"i":${i},"s":"${'é€'.repeat(i % 40)}"}\n`);
    lines.forEach((line, i) => expect(batch.add(line, `p${i % 3}`, i, 1000 + i)).toBe(i));
    expect(batch.count).toBe(3000);
    expect(Buffer.concat(batch.data()).toString('utf8')).toBe(lines.join(''));
    expect(batch.remove((i) => i % 2 === 1 || i === 0)).toBe(1501);
    const kept = lines.filter((_, i) => i % 2 === 0 && i !== 0);
    expect(Buffer.concat(batch.data()).toString('utf8')).toBe(kept.join(''));
    expect(batch.count).toBe(1499);
    expect(batch.seqs.slice(0, 3)).toEqual([2, 4, 6]);
    expect(batch.origins.slice(0, 3)).toEqual(['p2', 'p1', 'p0']);
    expect(batch.times[1498]).toBe(1000 + 2998);
    batch.clear();
    expect([batch.count, batch.length, batch.data().length]).toEqual([0, 0, 0]);
    batch.add('x\n', 'p', 1, 1);
    expect(batch.length).toBe(2);
    expect(Buffer.concat(batch.data()).toString()).toBe('x\n');
  });

  it('fills chunks of 1 MiB, never splits a line across two, and keeps lines and their order when some are removed across chunks', () => {
    const batch = new LineBatch();
    // ~2.6 MiB of lines of varied length with multi-byte characters: three chunks
    const lines = Array.from({ length: 12_000 }, (_, i) => `{"i":${i},"s":"${'a€'.repeat(i % 100)}"}\n`);
    lines.forEach((line, i) => batch.add(line, 'p', i + 1, i));
    const chunks = batch.data();
    expect(chunks.length).toBe(3);
    for (const chunk of chunks) expect(chunk[chunk.length - 1]).toBe(0x0a); // every chunk ends a line
    expect(Buffer.concat(chunks).toString('utf8')).toBe(lines.join(''));
    expect(batch.length).toBe(Buffer.byteLength(lines.join('')));
    expect(batch.remove((i) => i % 3 !== 0)).toBe(8000);
    const kept = lines.filter((_, i) => i % 3 === 0);
    expect(Buffer.concat(batch.data()).toString('utf8')).toBe(kept.join(''));
    expect(batch.length).toBe(Buffer.byteLength(kept.join('')));
    expect(batch.seqs.slice(batch.count - 2, batch.count)).toEqual([11_995, 11_998]);
    // a later add continues after the kept lines
    batch.add('z\n', 'q', 1, 1);
    expect(Buffer.concat(batch.data()).toString('utf8')).toBe(kept.join('') + 'z\n');
  });
});
