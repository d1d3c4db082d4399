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
  const host = assertValidName('host', parts.host);
  const stamp = timeStamp(parts.firstTime); // as in the closed file's name, so the key is derived from it
  const unique = parts.unique ?? randomBytes(4).toString('hex');
  assertValidName('unique part', unique);
  return `${archivePartition(parts.prefix, parts.app, parts.firstTime)}${host}-${stamp}-${unique}.jsonl.gz`;
}

/**
 * The key prefix of one app's archives of one UTC hour, `<prefix>/<app>/dt=YYYY-MM-DD/hour=HH/`
 * (with `hour: false`, of the whole day `<prefix>/<app>/dt=YYYY-MM-DD/`): what a reader lists to
 * find the archives of a time range.
 */
export function archivePartition(prefix: string, app: string, time: number, hour = true): string {
  assertValidName('app', app);
  const iso = new Date(time).toISOString();
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return `${trimmed ? trimmed + '/' : ''}${app}/dt=${iso.slice(0, 10)}/${hour ? `hour=${iso.slice(11, 13)}/` : ''}`;
}
