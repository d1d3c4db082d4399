import { DEFAULT_GROUP, DEFAULT_REDIS_URL, SigningKeys, nameProblem, parseSigningKey, type SigningKey } from '@log/protocol';
import { UsageError } from './io';

/** The server's settings logctl needs, from the same environment variables (see the root README). */
export interface Settings {
  redisUrl: string;
  /** REDIS_CLUSTER_NODES split at commas: the servers read a Redis Cluster (so does every command). */
  clusterNodes: string[] | undefined;
  /** LOG_SHARDS: the channel's streams; every command reads (and stats merges over) all of them. */
  shards: number;
  /** LOG_SIGNING_KEYS as the servers have it (tail verifies with it; parsed by signingKeysOf when used). */
  signingKeys: string | undefined;
  /** LOG_SIGNING_KEY as a publisher has it (`[app=]keyid:secret`): dead replay signs with it. */
  signingKey: string | undefined;
  channel: string;
  group: string;
  logDir: string;
  s3:
    | {
        bucket: string;
        prefix: string;
        endpoint: string | undefined;
        forcePathStyle: boolean;
        region: string;
        /** From AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) when set; else the SDK's chain (profiles, roles). */
        credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
      }
    | undefined;
}

export function settingsFrom(env: NodeJS.ProcessEnv): Settings {
  const channel = env.LOG_CHANNEL || 'logger';
  const group = env.LOG_GROUP || DEFAULT_GROUP;
  for (const [name, value] of [
    ['LOG_CHANNEL', channel],
    ['LOG_GROUP', group],
  ] as const) {
    const problem = nameProblem(value);
    if (problem !== undefined) throw new UsageError(`${name}=${JSON.stringify(value)} ${problem}`);
  }
  const shards = env.LOG_SHARDS ? Number(env.LOG_SHARDS) : 1;
  if (!Number.isSafeInteger(shards) || shards < 1) throw new UsageError(`LOG_SHARDS=${JSON.stringify(env.LOG_SHARDS)} must be a whole number >= 1`);
  const clusterNodes = env.REDIS_CLUSTER_NODES?.split(',')
    .map((node) => node.trim())
    .filter((node) => node !== '');
  const bucket = env.S3_BUCKET;
  return {
    redisUrl: env.REDIS_URL || DEFAULT_REDIS_URL,
    clusterNodes: clusterNodes === undefined || clusterNodes.length === 0 ? undefined : clusterNodes,
    shards,
    signingKeys: env.LOG_SIGNING_KEYS || undefined,
    signingKey: env.LOG_SIGNING_KEY || undefined,
    channel,
    group,
    logDir: env.LOG_DIR || './log',
    s3:
      bucket === undefined || bucket === ''
        ? undefined
        : {
            bucket,
            prefix: env.S3_PREFIX ?? 'logs',
            endpoint: env.S3_ENDPOINT || undefined,
            forcePathStyle: env.S3_FORCE_PATH_STYLE === 'true',
            region: env.AWS_REGION || 'us-east-1',
            credentials:
              env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
                ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) }
                : undefined,
          },
  };
}

/** `10m`, `2h`, `30s`, `1d` as milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!match) throw new UsageError(`not a duration: ${JSON.stringify(text)} (use e.g. 30s, 10m, 2h, 1d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/** A time given as an ISO date/time, or as a duration ago (`10m`). */
export function parseTime(text: string, now = Date.now()): number {
  if (/^\d+(ms|s|m|h|d)$/.test(text)) return now - parseDuration(text);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new UsageError(`not a time: ${JSON.stringify(text)} (use an ISO time like 2026-11-25T13:00Z, or 10m for ten minutes ago)`);
  return ms;
}

/** LOG_SIGNING_KEYS parsed (undefined when unset); a bad value is a usage error naming every problem, never a secret. */
export function signingKeysOf(settings: Pick<Settings, 'signingKeys'>): SigningKeys | undefined {
  if (settings.signingKeys === undefined) return undefined;
  const { keys, problems } = SigningKeys.parse(settings.signingKeys);
  if (keys === undefined) throw new UsageError(`LOG_SIGNING_KEYS: ${problems.join('; ')}`);
  return keys;
}

/** LOG_SIGNING_KEY parsed (undefined when unset). */
export function signingKeyOf(settings: Pick<Settings, 'signingKey'>): SigningKey | undefined {
  if (settings.signingKey === undefined) return undefined;
  const key = parseSigningKey(settings.signingKey);
  if (typeof key === 'string') throw new UsageError(`LOG_SIGNING_KEY: ${key}`);
  return key;
}
