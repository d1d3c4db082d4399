import { randomBytes } from 'node:crypto';
import { assertValidName, timeStamp } from '@log/protocol';

export interface ArchiveKeyParts {
  /** Key prefix (S3_PREFIX); leading and trailing slashes are ignored. */
  prefix: string;
  app: string;
  host: string;
  /** Time of the first record in the file, ms since the epoch. */
  firstTime: number;
  /** Makes the key unique even for two files of the same host and first time. @defaultValue 8 random hex characters */
  unique?: string;
}

/**
 * `<prefix>/<app>/dt=YYYY-MM-DD/hour=HH/<host>-<first record time>-<unique>.jsonl.gz`: Hive-style
 * partitions (Athena and similar tools read them), and a name no other file can take, so an
 * archive is never written over another.
 */
export function archiveKey(parts: ArchiveKeyParts): string {
  const app = assertValidName('app', parts.app);
  const host = assertValidName('host', parts.host);
  const iso = new Date(parts.firstTime).toISOString(); // 2026-11-25T13:04:05.678Z
  const dt = iso.slice(0, 10);
  const hour = iso.slice(11, 13);
  const stamp = timeStamp(parts.firstTime); // as in the closed file's name, so the key is derived from it
  const unique = parts.unique ?? randomBytes(4).toString('hex');
  assertValidName('unique part', unique);
  const prefix = parts.prefix.replace(/^\/+|\/+$/g, '');
  return `${prefix ? prefix + '/' : ''}${app}/dt=${dt}/hour=${hour}/${host}-${stamp}-${unique}.jsonl.gz`;
}
