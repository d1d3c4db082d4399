import { DEFAULT_GROUP, assertValidName, deadLetterKey, groupStateKeys, isValidName, shardsOf, streamKey, toValidName } from './index';

describe('names', () => {
  it.each(['shop', 'app-1', 'api.v2', 'A_b', 'x'.repeat(64)])('accepts %s', (name) => {
    expect(isValidName(name)).toBe(true);
  });

  it.each(['', '.', '..', '../../etc', '/etc/passwd', 'a/b', 'a\\b', '.hidden', '-flag', 'sh\0op', 'a b', 'x'.repeat(65), 'é'])('refuses %j', (name) => {
    expect(isValidName(name)).toBe(false);
    expect(() => assertValidName('app', name)).toThrow(expect.objectContaining({ code: 'INVALID_NAME', kind: 'app' }));
  });

  it('refuses non-strings', () => {
    expect(isValidName(42)).toBe(false);
    expect(isValidName(undefined)).toBe(false);
  });

  it('turns arbitrary host names into valid names', () => {
    expect(toValidName('web01.example.com')).toBe('web01.example.com');
    expect(toValidName('../evil host')).toBe('evil-host');
    expect(toValidName('...')).toBe('unknown');
    expect(isValidName(toValidName('x'.repeat(300)))).toBe(true);
  });

  it('names keys of one channel in one cluster slot', () => {
    expect(streamKey('logger')).toBe('log:{logger}');
    expect(deadLetterKey('logger')).toBe('log:{logger}:dead');
    expect(DEFAULT_GROUP).toBe('logger-server');
    expect(() => streamKey('a}b')).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
  });

  it('names one set of keys per shard, each in its own hash tag; one shard keeps the unsharded keys', () => {
    expect(shardsOf(1)).toEqual([undefined]);
    expect(shardsOf(3)).toEqual([0, 1, 2]);
    expect(shardsOf(3).map((shard) => streamKey('logger', shard))).toEqual(['log:{logger:0}', 'log:{logger:1}', 'log:{logger:2}']);
    expect(deadLetterKey('logger', 2)).toBe('log:{logger:2}:dead');
    expect(groupStateKeys('logger', 'g', 1).totals).toBe('log:{logger:1}:g:totals');
    expect(groupStateKeys('logger', 'g').totals).toBe('log:{logger}:g:totals');
    expect(() => shardsOf(0)).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
    expect(() => streamKey('logger', -1)).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
  });
});
