import fc from 'fast-check';
import { LIMITS } from '@log/protocol';
import { createPublisher, InvalidOptionError } from '../src';
import { readStream, redisAndPublishers } from './helpers';

// The publisher must never send what the server refuses: every record it reports `sent` decodes
// with @log/protocol's decoder under LIMITS, which is exactly what the server runs.

const kit = redisAndPublishers('limits');
const { channel, publisher } = kit;

/** Every record in the channel's stream, decoded as the server decodes it: a refusal throws. */
const serverView = async (ch: string) => (await readStream(kit.redis.url, ch)).records;

function nested(depth: number, leaf: unknown = 'bottom'): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = { down: value };
  return value;
}

/** Keys and array elements over all levels, as the server counts them. */
function countKeys(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  const items = Array.isArray(value) ? value : Object.values(value);
  return items.length + items.reduce((sum: number, item) => sum + countKeys(item), 0);
}

function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  const items = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...items.map(depthOf));
}

describe('the publisher fits every record inside the protocol limits', () => {
  it('cuts an array longer than the key limit, with a placeholder, and counts the record as truncated', async () => {
    const ch = channel();
    const log = publisher(ch);
    log.info('long array', { list: Array.from({ length: 2000 }, (_, i) => i) });
    log.info('long array in a child', { nested: { list: Array(5000).fill('x') } });
    await log.flush();
    const records = await serverView(ch);
    expect(log.stats()).toMatchObject({ sent: 2, truncated: 2 });
    const list = records[0]!.fields!.list as unknown[];
    expect(list.length).toBeLessThanOrEqual(LIMITS.maxKeys);
    expect(list.slice(0, 3)).toEqual([0, 1, 2]);
    expect(list.at(-1)).toMatch(/^\[truncated: \d+ more items\]$/);
    expect(countKeys(records[1]!.fields)).toBeLessThanOrEqual(LIMITS.maxKeys);
  });

  it('replaces what is nested deeper than the depth limit with a placeholder', async () => {
    const ch = channel();
    const log = publisher(ch);
    log.info('deep', { deep: nested(25) });
    log.info('just deep enough', { deep: nested(LIMITS.maxDepth - 1) }); // the fields object is depth 1
    await log.flush();
    const records = await serverView(ch);
    expect(log.stats()).toMatchObject({ sent: 2, truncated: 1 });
    expect(JSON.stringify(records[0]!.fields)).toContain(`"[truncated: depth > ${LIMITS.maxDepth}]"`);
    expect(depthOf(records[0]!.fields)).toBe(LIMITS.maxDepth);
    expect(records[1]!.fields).toEqual({ deep: nested(LIMITS.maxDepth - 1) });
  });

  it('counts the keys of bindings, fields and the error together, as the server does', async () => {
    const ch = channel();
    const log = publisher(ch);
    const many = (prefix: string, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, i]));
    const child = log.child(many('b', 600));
    child.info('bindings and fields', many('f', 600));
    child.error(new Error('outer', { cause: new Error('inner') }), many('g', 399));
    log.info('flat but too many', many('k', 1500));
    log.info('exactly the limit', many('k', LIMITS.maxKeys));
    await log.flush();
    const records = await serverView(ch);
    expect(records).toHaveLength(4);
    expect(records[1]!.error).toMatchObject({ message: 'outer', cause: { message: 'inner' } });
    expect(Object.keys(records[3]!.fields!)).toHaveLength(LIMITS.maxKeys);
    expect(log.stats().truncated).toBe(3);
  });

  it('cuts errors nested in fields to the depth limit too', async () => {
    const ch = channel();
    const log = publisher(ch);
    let error = new Error('root');
    for (let i = 0; i < 10; i++) error = new Error(`level ${i}`, { cause: error });
    log.info('deep error', { wrapper: nested(15, error) });
    await log.flush();
    expect(await serverView(ch)).toHaveLength(1);
    expect(log.stats().truncated).toBe(1);
  });

  it('keeps a record of escaped characters within maxRecordBytes (JSON takes 6 bytes for one of them)', async () => {
    const ch = channel();
    const log = publisher(ch);
    log.info('\u0001'.repeat(300_000));
    log.info('é'.repeat(200_000));
    await log.flush();
    const records = await serverView(ch);
    expect(records).toHaveLength(2);
    expect(records.map((r) => r.fields)).toEqual([expect.objectContaining({ truncated: true }), expect.objectContaining({ truncated: true })]);
    expect(log.stats().truncated).toBe(2);
  });

  it('counts values that cannot be serialized at all', async () => {
    const ch = channel();
    const log = publisher(ch);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    log.info('hostile', { loop, big: 2n ** 70n, nested: { big: 1n } });
    await log.flush();
    const [record] = await serverView(ch);
    expect(record!.fields).toEqual({ loop: { self: '[Circular]' }, big: String(2n ** 70n), nested: { big: '1' } });
    expect(log.stats().unserializable).toBe(3);
  });

  it('sends only what decodes, whatever the shape of the fields (property test)', async () => {
    const ch = channel();
    const log = publisher(ch);
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'large', maxDepth: 30 },
        fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.constant(null), fc.boolean()),
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(fc.string({ maxLength: 4 }), tie('node'), { maxKeys: 4 }),
        fc.integer({ min: 900, max: 1600 }).map((n) => Array(n).fill(1)),
        fc.integer({ min: 15, max: 30 }).chain((d) => tie('node').map((leaf) => nested(d, leaf))),
      ),
    })).node;
    let logged = 0;
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 5 }), fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 3 }), (fields, bindings) => {
        log.child(bindings).info('random', fields);
        logged++;
      }),
      { numRuns: 300 },
    );
    await log.flush();
    const records = await serverView(ch);
    expect(records).toHaveLength(logged);
    expect(log.stats()).toMatchObject({ sent: logged, dropped: 0 });
  }, 60_000);
});

describe('options', () => {
  it('refuses record and frame sizes the server would refuse', () => {
    expect(() => createPublisher('logger', { app: 'shop', maxRecordBytes: LIMITS.maxRecordBytes + 1, maxFrameBytes: 2 * 1024 * 1024 })).toThrow(InvalidOptionError);
    // a frame of UTF-16 units takes up to 3 bytes per unit in UTF-8
    expect(() => createPublisher('logger', { app: 'shop', maxFrameBytes: LIMITS.maxFrameBytes, maxBufferBytes: 64 * LIMITS.maxFrameBytes })).toThrow(/maxFrameBytes/);
    const ok = createPublisher('logger', { app: 'shop', maxFrameBytes: LIMITS.maxFrameBytes / 4, maxRecordBytes: LIMITS.maxRecordBytes, flushOnExit: false });
    return ok.close(10);
  });
});
