import fc from 'fast-check';
import { LIMITS, decodeFrame, decodeRecord } from '@log/protocol';
import { fieldsJson, walked } from './serialize';

const counters = () => ({ unserializable: 0 });
/** Decodes fields JSON the way the server does, as one record of a frame: throws where it would refuse. */
function serverAccepts(json: string): void {
  const frame = decodeFrame(`@log1 {"p":"p1","s":1,"n":1,"a":"a","h":"h","i":1,"d":0}\n{"t":${Date.now()},"l":"info","m":"x","f":${json}}`);
  decodeRecord(frame, 0);
}

describe('fieldsJson', () => {
  it('writes what JSON.stringify writes when nothing is cut, on the walk as on the fast path', () => {
    // a __proto__ key is renamed by design (the server refuses it)
    const object = fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 5 }), { maxKeys: 6 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));
    fc.assert(
      fc.property(object, (value) => {
        const fast = fieldsJson(value, counters(), LIMITS.maxKeys);
        expect(fast).toBe(JSON.stringify(value));
        // a toJSON at the top sends the same value down the walk
        const walkedJson = fieldsJson({ toJSON: () => value }, counters(), LIMITS.maxKeys);
        expect(walkedJson).toBe(JSON.stringify(value));
        expect(walked.truncated).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it.each([
    ['keys', (n: number) => ({ a: Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])) })],
    ['elements', (n: number) => ({ a: Array(n).fill(0) })],
  ])('fits %s exactly up to the key limit, and cuts one more', (_name, make) => {
    const atLimit = fieldsJson(make(LIMITS.maxKeys - 1), counters(), LIMITS.maxKeys); // plus the key "a"
    expect(walked).toEqual({ keys: LIMITS.maxKeys, truncated: false });
    serverAccepts(atLimit);
    const over = fieldsJson(make(LIMITS.maxKeys), counters(), LIMITS.maxKeys);
    expect(walked).toEqual({ keys: LIMITS.maxKeys, truncated: true });
    expect(over).toMatch(/"\[truncated: 2 more (keys|items)\]"/);
    serverAccepts(over);
  });

  it('renames a __proto__ key at any depth and counts it', () => {
    const c = counters();
    const json = fieldsJson(JSON.parse('{"a":{"b":[{"__proto__":{"admin":true}}]}}'), c, LIMITS.maxKeys);
    expect(JSON.parse(json)).toEqual({ a: { b: [{ '[__proto__]': { admin: true } }] } });
    expect(c.unserializable).toBe(1);
    serverAccepts(json);
  });

  it('survives a getter that logs (walks again) in the middle of a walk', () => {
    const inner = { big: 1n };
    const outer = {
      first: { a: 1 },
      get logs() {
        fieldsJson(inner, counters(), 5);
        return { b: 2n };
      },
      list: Array(3000).fill(1),
    };
    const json = fieldsJson(outer, counters(), LIMITS.maxKeys);
    expect(walked.truncated).toBe(true);
    serverAccepts(json);
    expect(JSON.parse(json)).toMatchObject({ first: { a: 1 }, logs: { b: '2' } });
  });

  it('never throws, and what it writes the server takes', () => {
    fc.assert(
      fc.property(
        fc.anything({ maxDepth: 25, withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withBoxedValues: true, withSparseArray: true }),
        (value) => {
          const fields = typeof value === 'object' && value !== null ? value : { value };
          serverAccepts(fieldsJson(fields, counters(), LIMITS.maxKeys));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
