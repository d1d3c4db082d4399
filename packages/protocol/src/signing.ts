import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { BadSignatureError, type ProtocolErrorContext } from './errors';
import { quote } from './escape';
import { nameProblem } from './names';

/**
 * A signed frame is a signature line followed by the frame's exact bytes:
 *
 *     @sig1 <key id> <HMAC-SHA256 of the frame's bytes, base64url, 43 characters>\n
 *     @log1 {...header...}\n
 *     ...record lines...
 *
 * A line in front rather than a header key, so that the MAC covers the frame byte for byte as
 * it travels (nothing to take out before checking) and the same bytes go over XADD and PUBLISH.
 * The key id picks the key; each key belongs to one app, and a server that has keys accepts a
 * frame only when its header's app is the key's (see SigningKeys).
 */
export const SIGNATURE_MAGIC = '@sig1 ';

/** Bytes of a decoded HMAC-SHA256, and the length of its unpadded base64url text. */
const MAC_BYTES = 32;
const MAC_CHARS = 43;
/** Shortest secret accepted: 128 bits. `openssl rand -base64 32` makes a good one. */
export const MIN_SECRET_BYTES = 16;

/** One key: its id (written into every frame it signs), the app it may sign for, the secret. */
export interface SigningKey {
  id: string;
  /** The app whose frames it signs; undefined for a publisher's key given without `app=`. */
  app: string | undefined;
  /** The secret, as a KeyObject: never printed, never serialized. */
  secret: KeyObject;
}

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * Parses one key, `[app=]keyid:base64secret`. Returns the key or why it is not one; the
 * problem never quotes the secret (it ends up in logs).
 */
export function parseSigningKey(text: string): SigningKey | string {
  const entry = text.trim();
  const equals = entry.indexOf('=');
  const colon = entry.indexOf(':');
  // '=' may end a base64 secret: it names an app only before the ':'
  const app = equals !== -1 && (colon === -1 || equals < colon) ? entry.slice(0, equals) : undefined;
  const rest = app === undefined ? entry : entry.slice(equals + 1);
  const split = rest.indexOf(':');
  if (split === -1) return `${quote((app === undefined ? '' : app + '=') + rest.slice(0, 40))}... must look like app=keyid:base64secret`;
  const id = rest.slice(0, split);
  const encoded = rest.slice(split + 1);
  if (app !== undefined) {
    const problem = nameProblem(app);
    if (problem) return `app ${quote(app.slice(0, 80))} ${problem}`;
  }
  const idProblem = nameProblem(id);
  if (idProblem) return `key id ${quote(id.slice(0, 80))} ${idProblem}`;
  if (!BASE64.test(encoded)) return `key ${id}: the secret must be base64`;
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length < MIN_SECRET_BYTES) return `key ${id}: the secret must be at least ${MIN_SECRET_BYTES} bytes (it has ${bytes.length}); make one with openssl rand -base64 32`;
  return { id, app, secret: createSecretKey(bytes) };
}

/**
 * The keys a server accepts, by id: several per app while a key is rotated (publishers move to
 * the new key, then the old one is removed). Every key is bound to one app: a key of app shop
 * cannot sign frames of app billing, so a leaked key forges only its own app's records.
 */
export class SigningKeys {
  private readonly byId = new Map<string, SigningKey>();

  private constructor(keys: readonly SigningKey[]) {
    for (const key of keys) this.byId.set(key.id, key);
  }

  /**
   * Parses `app=keyid:base64secret[,app=keyid:base64secret...]` (LOG_SIGNING_KEYS). Every problem
   * is returned (none quotes a secret); the keys only when there is none.
   */
  static parse(text: string): { keys: SigningKeys | undefined; problems: string[] } {
    const problems: string[] = [];
    const keys: SigningKey[] = [];
    const seen = new Set<string>();
    for (const part of text.split(',')) {
      if (part.trim() === '') continue;
      const key = parseSigningKey(part);
      if (typeof key === 'string') problems.push(key);
      else if (key.app === undefined) problems.push(`key ${key.id}: name the app it signs for, as app=${key.id}:...`);
      else if (seen.has(key.id)) problems.push(`key id ${key.id} is given twice`);
      else {
        seen.add(key.id);
        keys.push(key);
      }
    }
    if (keys.length === 0 && problems.length === 0) problems.push('no keys given');
    return { keys: problems.length === 0 ? new SigningKeys(keys) : undefined, problems };
  }

  get(id: string): SigningKey | undefined {
    return this.byId.get(id);
  }

  /** The keys of one app in the order given: during a rotation the new key is added after the old one, so the last is the newest. */
  ofApp(app: string): SigningKey[] {
    return [...this.byId.values()].filter((key) => key.app === app);
  }

  /** `app=keyid` of every key, for logs and the start-up line: never the secrets. */
  describe(): string[] {
    return [...this.byId.values()].map((key) => `${key.app ?? '*'}=${key.id}`);
  }

  toJSON(): string[] {
    return this.describe();
  }
}

/** Bytes the signature line of a key takes, its newline included. */
export function signatureLineLength(key: SigningKey): number {
  return SIGNATURE_MAGIC.length + Buffer.byteLength(key.id) + 1 + MAC_CHARS + 1;
}

/**
 * Writes the signature line of `frame` into `target` at `offset` (signatureLineLength(key)
 * bytes): the publisher leaves that room before a frame's header, so a signed frame is one
 * buffer without a copy. One HMAC per frame, none per record.
 */
export function writeSignatureLine(key: SigningKey, frame: Uint8Array, target: Buffer, offset: number): void {
  const mac = createHmac('sha256', key.secret).update(frame).digest('base64url');
  target.write(`${SIGNATURE_MAGIC}${key.id} ${mac}\n`, offset, 'latin1');
}

/** A signed copy of a frame (tests, tools); the publisher signs in place (writeSignatureLine). */
export function signFrame(key: SigningKey, frame: string | Uint8Array): Buffer {
  const bytes = typeof frame === 'string' ? Buffer.from(frame, 'utf8') : frame;
  const signed = Buffer.allocUnsafe(signatureLineLength(key) + bytes.length);
  writeSignatureLine(key, bytes, signed, 0);
  signed.set(bytes, signatureLineLength(key));
  return signed;
}

/** True when the payload starts with a signature line. */
export function isSigned(data: string | Uint8Array): boolean {
  return startsWith(data, SIGNATURE_MAGIC);
}

function startsWith(data: string | Uint8Array, magic: string): boolean {
  if (typeof data === 'string') return data.startsWith(magic);
  if (data.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (data[i] !== magic.charCodeAt(i)) return false;
  return true;
}

/** The frame after a signature line, unchecked: a server without keys ignores signatures. */
export function withoutSignature<T extends string | Uint8Array>(data: T): T {
  if (!isSigned(data)) return data;
  const end = typeof data === 'string' ? data.indexOf('\n') : data.indexOf(0x0a);
  // A signature line alone: no frame after it (decoding then says the magic is missing).
  const start = end === -1 ? data.length : end + 1;
  return (typeof data === 'string' ? data.slice(start) : data.subarray(start)) as T;
}

/**
 * Checks a payload's signature against `keys`: returns the frame's bytes and the key that signed
 * them. Throws BadSignatureError when it is unsigned, names an unknown key, or the MAC differs
 * (any byte of the frame changed, or another secret). The caller checks the key's app against
 * the frame's header (decodeFrame does).
 */
export function verifySignature(data: string | Uint8Array, keys: SigningKeys, context: ProtocolErrorContext = {}): { frame: Uint8Array; key: SigningKey } {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  if (!isSigned(payload)) throw new BadSignatureError('the frame is not signed', context);
  const end = payload.indexOf(0x0a);
  // The line is short: anything longer is not one of ours, and is not decoded as text.
  if (end === -1 || end > SIGNATURE_MAGIC.length + 200) throw new BadSignatureError('malformed signature line', context);
  const line = Buffer.from(payload.buffer, payload.byteOffset, end).toString('latin1');
  const space = line.indexOf(' ', SIGNATURE_MAGIC.length);
  const id = line.slice(SIGNATURE_MAGIC.length, space);
  const mac = line.slice(space + 1);
  if (space === -1 || mac.length !== MAC_CHARS || !/^[A-Za-z0-9_-]+$/.test(mac)) throw new BadSignatureError('malformed signature line', context);
  const key = keys.get(id);
  if (key === undefined) throw new BadSignatureError(`unknown key id ${quote(id.slice(0, 80))}`, context);
  const frame = payload.subarray(end + 1);
  const expected = createHmac('sha256', key.secret).update(frame).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== MAC_BYTES || !timingSafeEqual(expected, given))
    throw new BadSignatureError(`signature does not match (key ${id}): the frame was changed or signed with another secret`, context);
  return { frame, key };
}
