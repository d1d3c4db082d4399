import fc from 'fast-check';
import { LIMITS, decodeFrame, decodeRecord } from '@log/protocol';
import { fieldsJson, jsonString, walked } from './serialize';

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

  it('writes what JSON.stringify writes for many keys (dictionary-mode objects), keys seen before or needing escapes, and values it leaves out', () => {
    // Keys repeat across records (the quoted key texts are cached), some need escaping, some are
    // too long to cache; objects of up to 60 keys added one by one (V8 turns such objects into
    // hash tables) or made with a null prototype; undefined, functions and symbols are left out,
    // also as the first member (no comma before the next).
    // (near twins: a cache keyed by less than the whole key would mix them up)
    const common = fc.constantFrom(
      'orderId',
      'orderId2',
      'orderI',
      'OrderId',
      'order"Id',
      'user',
      'a',
      '',
      'k"q',
      'line\nbreak',
      'é',
      '\ud800',
      'abcdefghijklmnop1',
      'abcdefghijklmnop2',
      'x'.repeat(64),
      'x'.repeat(65),
    );
    const key = fc
      .oneof({ arbitrary: common, weight: 3 }, fc.string({ maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ minLength: 65, maxLength: 90 }))
      .filter((k) => k !== '__proto__');
    const omitted = fc.constantFrom<unknown>(undefined, () => 1, Symbol('s'));
    const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), omitted);
    const members = fc.array(fc.tuple(key, value), { maxLength: 60 });
    const build = (entries: Array<[string, unknown]>, nullPrototype: boolean): Record<string, unknown> => {
      const out = (nullPrototype ? Object.create(null) : {}) as Record<string, unknown>;
      for (const [k, v] of entries) out[k] = v;
      return out;
    };
    const bindings = '"requestId":"r-1"';
    fc.assert(
      fc.property(members, fc.boolean(), (entries, nullPrototype) => {
        const object = build(entries, nullPrototype);
        const expected = JSON.stringify(object);
        expect(fieldsJson(object, counters(), LIMITS.maxKeys)).toBe(expected);
        expect(walked.truncated).toBe(false);
        expect(fieldsJson(object, counters(), LIMITS.maxKeys, bindings)).toBe(expected === '{}' ? `{${bindings}}` : `{${bindings},${expected.slice(1)}`);
        // nested one level down, the same object takes the same path
        expect(fieldsJson({ nested: object }, counters(), LIMITS.maxKeys)).toBe(JSON.stringify({ nested: object }));
      }),
      { numRuns: 1000 },
    );
  });

  it('writes keys right across the bound of its cache of quoted keys, and never takes __proto__ from it', () => {
    // more distinct keys than the cache keeps (it is emptied and fills again), a few keys logged all along
    for (let i = 0; i < 3000; i++) {
      const object = { [`key${i}"x`]: i, [`k${i % 7}`]: 'v', [`key${i}"x2`]: [i] };
      expect(fieldsJson(object, counters(), LIMITS.maxKeys)).toBe(JSON.stringify(object));
    }
    const c = counters();
    const json = fieldsJson(JSON.parse('{"k1":1,"__proto__":{"admin":true}}'), c, LIMITS.maxKeys);
    expect(JSON.parse(json)).toEqual({ k1: 1, '[__proto__]': { admin: true } });
    expect(c.unserializable).toBe(1);
  });

  it('quotes any string as JSON.stringify does (controls, quotes, lone surrogates; short and long)', () => {
    const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 100 }), fc.string({ maxLength: 300 }));
    fc.assert(
      fc.property(text, (value) => {
        expect(jsonString(value)).toBe(JSON.stringify(value));
      }),
      { numRuns: 2000 },
    );
    expect(jsonString('a'.repeat(100) + '\ud800')).toBe(JSON.stringify('a'.repeat(100) + '\ud800'));
  });

  it("opens the object with a child's bindings, on the fast path as on the walk", () => {
    const object = fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));
    const bindings = '"requestId":"r-1","tenant":"acme"';
    const expected = (value: object): string => {
      const json = JSON.stringify(value);
      return json === '{}' ? `{${bindings}}` : `{${bindings},${json.slice(1)}`;
    };
    fc.assert(
      fc.property(object, (value) => {
        expect(fieldsJson(value, counters(), LIMITS.maxKeys, bindings)).toBe(expected(value));
        expect(fieldsJson({ toJSON: () => value }, counters(), LIMITS.maxKeys, bindings)).toBe(expected(value));
      }),
      { numRuns: 300 },
    );
  });

  it('writes own keys only, as JSON.stringify: inherited enumerable keys (a class, a polluted Object.prototype) stay out', () => {
    class Order {
      id = 1;
    }
    (Order.prototype as unknown as { inherited: number }).inherited = 2;
    const values: object[] = [new Order(), Object.assign(Object.create({ inherited: 1 }) as object, { own: 1 }), Object.assign(Object.create(null) as object, { own: [1, { a: 2 }] })];
    for (const value of values) expect(fieldsJson(value, counters(), LIMITS.maxKeys)).toBe(JSON.stringify(value));
    const prototype = Object.prototype as unknown as { polluted?: number };
    prototype.polluted = 1;
    try {
      const value = { a: 1, nested: { b: [2, { c: 3 }] } };
      expect(fieldsJson(value, counters(), LIMITS.maxKeys)).toBe(JSON.stringify(value));
    } finally {
      delete prototype.polluted;
    }
    expect(fieldsJson({ a: 1 }, counters(), LIMITS.maxKeys)).toBe('{"a":1}');
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
