import fc from 'fast-check';
import { escapeUnsafeJson, quote } from './index';

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const char = fc.oneof(
  fc.constantFrom('\u007f', '\u0080', '\u0085', '\u009b', '\u009f', '\u00a0', '\u2028', '\u2029', '\n', '"', '\\', 'é', '\ud83d'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const text = fc.string({ unit: char, maxLength: 20 });

describe('escapeUnsafeJson', () => {
  it('leaves no character raw that breaks a line or drives a terminal, and the JSON parses to the same value', () => {
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, text, fc.integer(), fc.constant(null), fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(text, tie('node'), { maxKeys: 3 })),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        const escaped = escapeUnsafeJson(JSON.stringify(v));
        expect(escaped).not.toMatch(UNSAFE);
        expect(JSON.parse(escaped)).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 2000 },
    );
  });

  it('returns ASCII text without DEL as it is', () => {
    const json = '{"a":"plain ~ text","b":[1,2]}';
    expect(escapeUnsafeJson(json)).toBe(json);
    expect(escapeUnsafeJson('"\u007f"')).toBe('"\\u007f"');
    expect(quote('a\u009b31mb\u2028')).toBe('"a\\u009b31mb\\u2028"');
  });
});
