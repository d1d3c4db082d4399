import { randomBytes } from 'node:crypto';
import { SIGNATURE_MAGIC, SigningKeys, decodeFrame, encodeFrame, encodeRecord, isFrame, parseSigningKey, signFrame, type FrameHeader, type SigningKey } from './index';

const SECRET = randomBytes(32).toString('base64');
const OTHER = randomBytes(32).toString('base64');

const header = (count: number, over: Partial<FrameHeader> = {}): FrameHeader => ({ producer: 'p0a1b2c3d4e5f6a7', seq: 1, count, app: 'shop', host: 'app1', pid: 1, dropped: 0, ...over });
const frame = (count: number, over: Partial<FrameHeader> = {}) =>
  encodeFrame(
    header(count, over),
    Array.from({ length: count }, (_, i) => encodeRecord({ time: 1_700_000_000_000 + i, level: 'info', message: `m${i}`, fields: { i } })),
  );

function key(text: string): SigningKey {
  const parsed = parseSigningKey(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

function ring(text: string): SigningKeys {
  const { keys, problems } = SigningKeys.parse(text);
  if (!keys) throw new Error(problems.join('; '));
  return keys;
}

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
};

describe('signed frames', () => {
  const keys = ring(`shop=k1:${SECRET},billing=b1:${OTHER}`);

  it('decode with the key of their app, and without keys the signature is ignored', () => {
    const signed = signFrame(key(`shop=k1:${SECRET}`), frame(3));
    expect(signed.toString('latin1')).toMatch(/^@sig1 k1 [A-Za-z0-9_-]{43}\n@log1 /);
    expect(isFrame(signed)).toBe(true);
    expect(decodeFrame(signed, { keys }).lines).toEqual(decodeFrame(frame(3)).lines);
    expect(decodeFrame(signed).header).toEqual(header(3));
    expect(decodeFrame(signed.toString('utf8'), { keys }).header).toEqual(header(3));
  });

  it.each([
    ['unsigned', () => Buffer.from(frame(2))],
    ['signed with an unknown key id', () => signFrame(key(`shop=k9:${SECRET}`), frame(2))],
    ['signed with another secret under the same id', () => signFrame(key(`shop=k1:${OTHER}`), frame(2))],
    ['signed with the key of another app (billing signing shop)', () => signFrame(key(`billing=b1:${OTHER}`), frame(2))],
    ['a signature line alone', () => Buffer.from(`${SIGNATURE_MAGIC}k1 ${'A'.repeat(43)}`)],
    ['a malformed signature line', () => Buffer.from(`${SIGNATURE_MAGIC}k1 short\n${frame(1)}`)],
    ['a megabyte without a newline after the magic', () => Buffer.from(SIGNATURE_MAGIC + 'x'.repeat(1 << 20))],
  ])('refuses a frame %s with BAD_SIGNATURE', (_name, make) => {
    expect(codeOf(() => decodeFrame(make(), { keys, entryId: '1-1' }))).toBe('BAD_SIGNATURE');
  });

  it('refuses every frame with one byte changed, anywhere (random positions from a printed seed)', () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    let state = seed;
    const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const signed = signFrame(key(`shop=k1:${SECRET}`), frame(20));
    const failures: string[] = [];
    for (let n = 0; n < 500; n++) {
      const copy = Buffer.from(signed);
      const at = Math.floor(random() * copy.length);
      copy[at] = copy[at]! ^ (1 + Math.floor(random() * 255));
      const code = codeOf(() => decodeFrame(copy, { keys }));
      if (code !== 'BAD_SIGNATURE') failures.push(`byte ${at}: ${code ?? 'accepted'}`);
    }
    expect({ seed, failures }).toEqual({ seed, failures: [] });
  });

  it('accepts several keys of one app at once (rotation)', () => {
    const rotating = ring(`shop=old:${SECRET},shop=new:${OTHER}`);
    expect(decodeFrame(signFrame(key(`old:${SECRET}`), frame(1)), { keys: rotating }).header.app).toBe('shop');
    expect(decodeFrame(signFrame(key(`new:${OTHER}`), frame(1)), { keys: rotating }).header.app).toBe('shop');
    const rotated = ring(`shop=new:${OTHER}`);
    expect(codeOf(() => decodeFrame(signFrame(key(`old:${SECRET}`), frame(1)), { keys: rotated }))).toBe('BAD_SIGNATURE');
  });

  it('parses key lists and says what is wrong without ever quoting a secret', () => {
    const secret = randomBytes(8).toString('base64'); // too short
    const { keys: none, problems } = SigningKeys.parse(`shop=k1:${secret},k2:${SECRET},../x=k3:${SECRET},shop=k4,shop=k1:${SECRET},shop=k5:not*base64`);
    expect(none).toBeUndefined();
    expect(problems).toEqual([
      'key k1: the secret must be at least 16 bytes (it has 8); make one with openssl rand -base64 32',
      'key k2: name the app it signs for, as app=k2:...',
      expect.stringMatching(/^app "\.\.\/x" may contain only/),
      expect.stringMatching(/^"shop=k4"\.\.\. must look like app=keyid:base64secret$/),
      'key k5: the secret must be base64',
    ]);
    for (const problem of problems) expect(problem).not.toContain(SECRET);
    expect(SigningKeys.parse(`shop=k1:${SECRET},shop=k1:${OTHER}`).problems).toEqual(['key id k1 is given twice']);
    expect(SigningKeys.parse(' , ').problems).toEqual(['no keys given']);
    // a base64 secret may end in '=': only an '=' before the ':' names an app
    expect(key(`k1:${randomBytes(17).toString('base64')}`).app).toBeUndefined();
    expect(JSON.stringify({ keys })).toBe('{"keys":["shop=k1","billing=b1"]}');
  });
});
