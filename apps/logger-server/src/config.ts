import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { DEFAULT_GROUP, DEFAULT_REDIS_URL, SigningKeys, nameProblem, redactRedisUrl, toValidName } from '@log/protocol';
import { ConfigError } from './errors';
import { DEFAULT_MAX_OPEN_FILES } from './sink';

/** The server's configuration, checked once at start and frozen. */
export interface ServerConfig {
  redisUrl: string;
  /** Seed URLs of a Redis Cluster (REDIS_CLUSTER_NODES); set, the server reads from the cluster and redisUrl is not used. */
  clusterNodes: readonly string[] | undefined;
  /** The channel's streams: 1 is log:{<channel>}, N > 1 are log:{<channel>:0} .. log:{<channel>:N-1}, each read by its own loop. */
  shards: number;
  /**
   * REDIS_WAIT_REPLICAS: entries are written only once this many replicas have their delivery to
   * this server (WAIT after each read), so a failover cannot hand them to another server as new.
   */
  waitReplicas: number;
  channel: string;
  /** What this server writes from: the stream's consumer group, or Pub/Sub directly. */
  transport: 'stream' | 'pubsub';
  /**
   * LOG_TRANSPORT=stream,pubsub: besides the stream, the channel's Pub/Sub messages are moved
   * into the stream by one server of all that run so (a lease), and written from there.
   */
  pubsubBridge: boolean;
  logDir: string;
  group: string;
  consumer: string;
  /**
   * Entries per XREADGROUP and how long it blocks. An entry is one frame of up to ~1 MiB, so the
   * count bounds the memory of one batch (16 x 1 MiB at most with the publisher's defaults).
   */
  readCount: number;
  readBlockMs: number;
  /**
   * A batch goes on reading (more XREADGROUPs of readCount, without blocking) while it holds less
   * than this many bytes: one-record entries make batches (and fsyncs) as large as big frames do.
   * 0 turns it off. Default 4 MiB, or 0 when READ_COUNT is set (an explicit count is the batch).
   */
  readBatchBytes: number;
  /** Entries other consumers left unacknowledged this long are claimed (XAUTOCLAIM), checked every claimIntervalMs. */
  claimIdleMs: number;
  claimIntervalMs: number;
  /** An entry delivered more often than this is dead-lettered (a poison entry must not crash-loop the server). */
  maxDeliveries: number;
  /** How often the stream is trimmed below what every group still needs; 0 turns trimming off. */
  trimIntervalMs: number;
  /**
   * LOG_SIGNING_KEYS: when set, only frames signed by one of these keys, for the key's own app,
   * are written; the rest are dead-lettered (BAD_SIGNATURE). Unset: signatures are not checked.
   */
  signingKeys: SigningKeys | undefined;
  /** HTTP port for /metrics, /healthz and /stats; 0 picks a free port, undefined turns HTTP off. */
  httpPort: number | undefined;
  rotateBytes: number;
  rotateSeconds: number;
  /** Most log files with an open descriptor at once; idle ones are closed and reopened on demand. Below RLIMIT_NOFILE. */
  maxOpenFiles: number;
  s3:
    | {
        bucket: string;
        prefix: string;
        endpoint: string | undefined;
        forcePathStyle: boolean;
        region: string;
        gzipLevel: number;
        /** Multipart part size; memory per upload is about 4 parts. */
        partSize: number;
        /** Past this many bytes of closed files waiting, the server stops reading from Redis (entries wait there, safely). */
        backlogBytes: number;
        /** /healthz says degraded when the oldest waiting file is older than this. */
        staleSeconds: number;
        /** /healthz says archive failing after this many failed attempts in a row. */
        failingAfter: number;
        /** This server's incomplete multipart uploads older than this are aborted at start. */
        staleUploadSeconds: number;
        /** An S3 request with nothing sent or received this long fails (and the attempt is retried): a frozen S3 must not hang the archiver. */
        idleTimeoutMs: number;
      }
    | undefined;
}

/** Environment variables the server reads; a JSON file named by LOG_CONFIG may supply any of them. */
export const ENV_KEYS = [
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'LOG_SHARDS',
  'REDIS_WAIT_REPLICAS',
  'LOG_CHANNEL',
  'LOG_TRANSPORT',
  'LOG_DIR',
  'LOG_GROUP',
  'LOG_CONSUMER',
  'READ_COUNT',
  'READ_BLOCK_MS',
  'READ_BATCH_BYTES',
  'CLAIM_IDLE_MS',
  'CLAIM_INTERVAL_MS',
  'MAX_DELIVERIES',
  'TRIM_INTERVAL_MS',
  'HTTP_PORT',
  'ROTATE_BYTES',
  'ROTATE_SECONDS',
  'MAX_OPEN_FILES',
  'S3_BUCKET',
  'S3_PREFIX',
  'S3_ENDPOINT',
  'S3_FORCE_PATH_STYLE',
  'AWS_REGION',
  'S3_GZIP_LEVEL',
  'S3_PART_SIZE',
  'ARCHIVE_BACKLOG_BYTES',
  'ARCHIVE_STALE_SECONDS',
  'ARCHIVE_FAILING_AFTER',
  'ARCHIVE_STALE_UPLOAD_SECONDS',
  'S3_IDLE_TIMEOUT_MS',
  'LOG_SIGNING_KEYS',
] as const;

/** One line per setting for `logger-server --help` (the README's table says more). */
export const SETTING_HELP: Readonly<Record<(typeof ENV_KEYS)[number], string>> = {
  REDIS_URL: 'Redis to read from (default redis://127.0.0.1:6379; rediss:// for TLS)',
  REDIS_CLUSTER_NODES: 'comma-separated seed URLs of a Redis Cluster; set, the server reads from the cluster instead of REDIS_URL (default: unset)',
  LOG_SHARDS: 'streams the channel is split into, log:{<channel>:0..N-1}; publishers must use the same (default 1; that is log:{<channel>})',
  REDIS_WAIT_REPLICAS: 'write a batch only once this many replicas have its delivery (WAIT after each read), so a failover cannot hand it to a second server (default 0; that is no WAIT)',
  LOG_CHANNEL: 'channel name; the stream is log:{<channel>} (default logger)',
  LOG_TRANSPORT: 'stream (consumer group, at-least-once; default), pubsub (at-most-once), or stream,pubsub (both: Pub/Sub moved into the stream by one server)',
  LOG_DIR: 'where <app>/<app>.log files are written (default ./log)',
  LOG_GROUP: 'consumer group shared by all logger servers (default logger-server)',
  LOG_CONSUMER: "this server's stable name in the group (default: the host name)",
  READ_COUNT: 'entries (frames) per read (default 16)',
  READ_BLOCK_MS: 'how long a read blocks (default 1000)',
  READ_BATCH_BYTES: 'a batch goes on reading while smaller than this, without blocking (default 4194304 unless READ_COUNT is set)',
  CLAIM_IDLE_MS: 'entries another server left unacknowledged this long are claimed (default 60000)',
  CLAIM_INTERVAL_MS: 'how often to look for them (default 5000)',
  MAX_DELIVERIES: 'an entry delivered more often is dead-lettered (default 10)',
  TRIM_INTERVAL_MS: 'how often the stream is trimmed below what every group needs; 0 = never (default 10000)',
  HTTP_PORT: '/metrics, /healthz, /stats (default 9464; 0 = any free port; off = none)',
  ROTATE_BYTES: 'an open file is closed for archiving at this size (default 67108864)',
  ROTATE_SECONDS: '... or this age, and at each UTC hour (default 3600)',
  MAX_OPEN_FILES: 'most log files with an open descriptor (default 256, less under a low ulimit -n)',
  S3_BUCKET: 'archive closed files to this bucket (default: unset, files stay on disk)',
  S3_PREFIX: 'key prefix (default logs)',
  S3_ENDPOINT: 'an S3-compatible endpoint, http(s)://... (default: AWS)',
  S3_FORCE_PATH_STYLE: 'path-style addressing (default false)',
  AWS_REGION: 'region (default us-east-1); credentials come from the AWS SDK chain',
  S3_GZIP_LEVEL: '1 (fast) to 9 (small) (default 6)',
  S3_PART_SIZE: 'multipart part size, at least 5 MiB (default 8388608)',
  ARCHIVE_BACKLOG_BYTES: 'past this many bytes waiting for S3, reading pauses (default 1073741824)',
  ARCHIVE_STALE_SECONDS: '/healthz says degraded when the oldest waiting file is older (default 7200)',
  ARCHIVE_FAILING_AFTER: '/healthz says archive failing after this many failed attempts in a row (default 3)',
  ARCHIVE_STALE_UPLOAD_SECONDS: "at start, this server's incomplete uploads older than this are aborted (default 3600)",
  S3_IDLE_TIMEOUT_MS: 'an S3 request idle this long fails the attempt (default 30000)',
  LOG_SIGNING_KEYS: 'app=keyid:base64secret,...: only frames signed by a key of their app are written (default: unset, no check)',
};

type Env = Partial<Record<string, string | undefined>>;

/**
 * Reads the configuration from the environment (a LOG_CONFIG JSON file adds values the
 * environment does not set). Every problem is collected and reported in one ConfigError.
 */
export function loadConfig(env: Env = process.env, cwd = process.cwd(), limit = openFileLimit()): Readonly<ServerConfig> {
  const problems: string[] = [];
  const values: Env = { ...readConfigFile(env.LOG_CONFIG, problems) };
  for (const key of ENV_KEYS) if (env[key] !== undefined && env[key] !== '') values[key] = env[key];

  const name = (key: string, fallback: string): string => {
    const value = values[key] ?? fallback;
    const problem = nameProblem(value);
    if (problem) problems.push(`${key}=${JSON.stringify(value)}: ${problem}`);
    return value;
  };
  const integer = (key: string, fallback: number, min: number): number => {
    const raw = values[key];
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min) {
      problems.push(`${key}=${JSON.stringify(raw)}: must be a whole number >= ${min}`);
      return fallback;
    }
    return value;
  };
  const boolean = (key: string, fallback: boolean): boolean => {
    const raw = values[key];
    if (raw === undefined) return fallback;
    if (/^(1|true|yes)$/i.test(raw)) return true;
    if (/^(0|false|no)$/i.test(raw)) return false;
    problems.push(`${key}=${JSON.stringify(raw)}: must be true or false`);
    return fallback;
  };

  const redisUrl = values.REDIS_URL ?? DEFAULT_REDIS_URL;
  if (!/^rediss?:\/\/[^\s]+$/.test(redisUrl)) problems.push(`REDIS_URL=${JSON.stringify(redisUrl)}: must look like redis://host:port`);
  else if (!URL.canParse(redisUrl)) {
    const port = /^rediss?:\/\/(?:[^@/]*@)?[^/:]*:(\d+)/.exec(redisUrl)?.[1];
    const why = port !== undefined && Number(port) > 65535 ? `port ${port} is out of range (1 to 65535)` : 'not a valid URL';
    problems.push(`REDIS_URL=${JSON.stringify(redactRedisUrl(redisUrl))}: ${why}`);
  }
  let clusterNodes: string[] | undefined;
  if (values.REDIS_CLUSTER_NODES !== undefined) {
    clusterNodes = values.REDIS_CLUSTER_NODES.split(',')
      .map((node) => node.trim())
      .filter((node) => node !== '');
    for (const node of clusterNodes) {
      if (!/^rediss?:\/\/[^\s]+$/.test(node) || !URL.canParse(node)) problems.push(`REDIS_CLUSTER_NODES: ${JSON.stringify(redactRedisUrl(node))} must look like redis://host:port`);
    }
    if (clusterNodes.length === 0) problems.push('REDIS_CLUSTER_NODES: must list at least one redis://host:port');
  }
  const shards = integer('LOG_SHARDS', 1, 1);
  const waitReplicas = integer('REDIS_WAIT_REPLICAS', 0, 0);
  if (waitReplicas > 0 && (values.LOG_TRANSPORT ?? 'stream') === 'pubsub') problems.push('REDIS_WAIT_REPLICAS: applies to LOG_TRANSPORT=stream only');
  const transports = new Set((values.LOG_TRANSPORT ?? 'stream').split(',').map((t) => t.trim()));
  const pubsubBridge = transports.size === 2 && transports.has('stream') && transports.has('pubsub');
  const transport = pubsubBridge ? 'stream' : (values.LOG_TRANSPORT ?? 'stream');
  if (transport === 'pubsub' && clusterNodes !== undefined) problems.push('REDIS_CLUSTER_NODES: applies to LOG_TRANSPORT=stream only');
  if (transport === 'pubsub' && shards > 1) problems.push('LOG_SHARDS: applies to LOG_TRANSPORT=stream only');
  if (transport !== 'stream' && transport !== 'pubsub') {
    problems.push(`LOG_TRANSPORT=${JSON.stringify(values.LOG_TRANSPORT)}: must be stream, pubsub, or stream,pubsub (both)`);
  }
  let httpPort: number | undefined;
  if (values.HTTP_PORT !== 'off') {
    httpPort = integer('HTTP_PORT', 9464, 0);
    if (httpPort > 65535) problems.push(`HTTP_PORT=${httpPort}: must be at most 65535 (or off)`);
  }
  let signingKeys: SigningKeys | undefined;
  if (values.LOG_SIGNING_KEYS !== undefined) {
    const parsed = SigningKeys.parse(values.LOG_SIGNING_KEYS);
    for (const problem of parsed.problems) problems.push(`LOG_SIGNING_KEYS: ${problem}`);
    signingKeys = parsed.keys;
  }
  const bucket = values.S3_BUCKET;
  const config: ServerConfig = {
    redisUrl,
    clusterNodes,
    shards,
    waitReplicas,
    channel: name('LOG_CHANNEL', 'logger'),
    transport: transport as ServerConfig['transport'],
    pubsubBridge,
    logDir: resolve(cwd, values.LOG_DIR ?? './log'),
    group: name('LOG_GROUP', DEFAULT_GROUP),
    consumer: name('LOG_CONSUMER', toValidName(hostname())),
    readCount: integer('READ_COUNT', 16, 1),
    readBlockMs: integer('READ_BLOCK_MS', 1000, 1),
    readBatchBytes: integer('READ_BATCH_BYTES', values.READ_COUNT === undefined ? 4 * 1024 * 1024 : 0, 0),
    claimIdleMs: integer('CLAIM_IDLE_MS', 60_000, 1),
    claimIntervalMs: integer('CLAIM_INTERVAL_MS', 5_000, 1),
    maxDeliveries: integer('MAX_DELIVERIES', 10, 1),
    trimIntervalMs: integer('TRIM_INTERVAL_MS', 10_000, 0),
    signingKeys,
    httpPort,
    rotateBytes: integer('ROTATE_BYTES', 64 * 1024 * 1024, 1),
    rotateSeconds: integer('ROTATE_SECONDS', 3600, 1),
    maxOpenFiles: integer('MAX_OPEN_FILES', defaultMaxOpenFiles(limit), 1),
    s3:
      bucket === undefined
        ? undefined
        : {
            bucket,
            prefix: (values.S3_PREFIX ?? 'logs').replace(/^\/+|\/+$/g, ''),
            endpoint: values.S3_ENDPOINT,
            forcePathStyle: boolean('S3_FORCE_PATH_STYLE', false),
            region: values.AWS_REGION ?? 'us-east-1',
            gzipLevel: integer('S3_GZIP_LEVEL', 6, 1),
            partSize: integer('S3_PART_SIZE', 8 * 1024 * 1024, 5 * 1024 * 1024),
            backlogBytes: integer('ARCHIVE_BACKLOG_BYTES', 1024 * 1024 * 1024, 1),
            staleSeconds: integer('ARCHIVE_STALE_SECONDS', 7200, 1),
            failingAfter: integer('ARCHIVE_FAILING_AFTER', 3, 1),
            staleUploadSeconds: integer('ARCHIVE_STALE_UPLOAD_SECONDS', 3600, 0),
            idleTimeoutMs: integer('S3_IDLE_TIMEOUT_MS', 30_000, 1000),
          },
  };
  if (bucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    problems.push(`S3_BUCKET=${JSON.stringify(bucket)}: not a valid bucket name`);
  }
  if (config.s3 && config.s3.gzipLevel > 9) problems.push(`S3_GZIP_LEVEL=${config.s3.gzipLevel}: must be 1 to 9`);
  if (config.s3?.endpoint !== undefined && !/^https?:\/\//.test(config.s3.endpoint)) {
    problems.push(`S3_ENDPOINT=${JSON.stringify(config.s3.endpoint)}: must start with http:// or https://`);
  }
  if (limit !== undefined && config.maxOpenFiles > limit - RESERVED_DESCRIPTORS) {
    problems.push(
      `MAX_OPEN_FILES=${config.maxOpenFiles}: must be at most ${limit - RESERVED_DESCRIPTORS}, the process's open file limit (${limit}, ulimit -n) less ${RESERVED_DESCRIPTORS} for sockets and state files`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** Descriptors kept free for Redis and HTTP sockets, S3 uploads, state files and recovery. */
const RESERVED_DESCRIPTORS = 64;

/** DEFAULT_MAX_OPEN_FILES, or less when the process's limit is low (half of it, minus the reserve). */
function defaultMaxOpenFiles(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_MAX_OPEN_FILES;
  return Math.max(1, Math.min(DEFAULT_MAX_OPEN_FILES, Math.floor(limit / 2) - RESERVED_DESCRIPTORS));
}

/** The soft RLIMIT_NOFILE (`ulimit -n`) from /proc/self/limits; undefined where there is none (not Linux). */
export function openFileLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!match || match[1] === 'unlimited') return undefined;
    return Number(match[1]);
  } catch {
    return undefined;
  }
}

function readConfigFile(path: string | undefined, problems: string[]): Env {
  if (path === undefined || path === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    problems.push(`LOG_CONFIG=${JSON.stringify(path)}: cannot read it as JSON (${(error as Error).message})`);
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push(`LOG_CONFIG=${JSON.stringify(path)}: must hold a JSON object of VARIABLE: value`);
    return {};
  }
  const values: Env = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!(ENV_KEYS as readonly string[]).includes(key)) problems.push(`LOG_CONFIG: unknown key ${JSON.stringify(key)}`);
    else values[key] = String(value);
  }
  return values;
}

/** The configuration for the server's start-up log line. Credentials in REDIS_URL are redacted; of the signing keys, only `app=keyid`. */
export function redactedConfig(config: ServerConfig): Record<string, unknown> {
  return { ...config, redisUrl: redactRedisUrl(config.redisUrl), clusterNodes: config.clusterNodes?.map(redactRedisUrl), signingKeys: config.signingKeys?.describe() };
}
