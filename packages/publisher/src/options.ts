import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { DEFAULT_REDIS_URL, LEVELS, LIMITS, isLevel, nameProblem, parseSigningKey, resolveRedisUrl, toValidName, type Fields, type Level, type SigningKey } from '@log/protocol';
import type { RedisClientOptions } from 'redis';
import { InvalidOptionError, type PublisherError } from './errors';
import { Redactor, parseRedactPath, type RedactOption } from './redact';

/** Options of createPublisher and RedisTransport. */
export interface PublisherOptions {
  /** Name of the app: becomes the directory under LOG_DIR. Letters, digits, '.', '_', '-'. Required. */
  app: string;
  /** Redis URL. @defaultValue process.env.REDIS_URL, then 'redis://127.0.0.1:6379' */
  url?: string;
  /**
   * Seed URLs of a Redis Cluster (a few of its nodes; the others are discovered): publish to the
   * cluster instead of `url`. Stream transport only.
   * @defaultValue process.env.REDIS_CLUSTER_NODES (comma-separated), else unset (one Redis at `url`)
   */
  clusterNodes?: readonly string[];
  /**
   * The channel's number of shards (streams `log:{<channel>:<i>}`); must match the servers'
   * LOG_SHARDS. The publisher sends to one shard, chosen at random, for its whole life, so its
   * sequence numbers stay in order on one stream. 1 is the unsharded `log:{<channel>}`.
   * @defaultValue process.env.LOG_SHARDS, then 1
   */
  shards?: number;
  /**
   * After each frame, WAIT until this many replicas have it (at most WAIT_TIMEOUT_MS); a frame
   * fewer replicas took is sent again (the server drops the copy). With 1, a master that fails
   * over to its replica cannot lose a frame the publisher counted as sent. Stream transport only.
   * @defaultValue 0 (no WAIT: replication is asynchronous)
   */
  waitReplicas?: number;
  /** 'stream' (XADD, durable, default) or 'pubsub' (PUBLISH, at-most-once). @defaultValue 'stream' */
  transport?: 'stream' | 'pubsub';
  /** Lowest level that is logged (trace, debug, info, warn, error, fatal); lower levels cost nothing. @defaultValue process.env.LOG_LEVEL, then 'info' */
  level?: Level;
  /**
   * Paths into the fields (of log calls, child() and `fields`) whose values are replaced by
   * `censor` (default '[Redacted]') or removed, before serialization, as pino's redact:
   * `['password', 'card.number', 'users[*].token', 'headers["x-api-key"]']`. The caller's
   * objects are not changed. Unset, it costs nothing.
   */
  redact?: RedactOption;
  /** Host name written with every record. @defaultValue os.hostname(), made a valid name */
  host?: string;
  /** Fields added to every record (e.g. { env: 'prod' }). */
  fields?: Fields;
  /**
   * Most bytes held in memory (records not yet accepted by Redis). Past it, new records are dropped and counted.
   * The buffers of frames Redis accepted are kept for the next ones (up to this many bytes of them, never more
   * than the last burst took), and let go after 5 to 10 s unused: after a burst, the process's memory stays at
   * the burst's level that long, and a burst like it writes into memory already touched, not fresh pages.
   * @defaultValue 64 MiB
   */
  maxBufferBytes?: number;
  /** Most records in one frame (one XADD or PUBLISH). @defaultValue 10000 */
  maxFrameRecords?: number;
  /** Most bytes in one frame, at most 2 MiB. @defaultValue 1 MiB, or maxBufferBytes / 4 when that is smaller */
  maxFrameBytes?: number;
  /** Largest record, at most 256 KiB; a larger one is truncated (message cut, fields replaced) and counted. @defaultValue 256 KiB, or maxFrameBytes when that is smaller */
  maxRecordBytes?: number;
  /** Frames sent and not yet answered by Redis, at most. @defaultValue 8 */
  maxInFlightFrames?: number;
  /**
   * Retention hint: XADD with MAXLEN ~ this many entries. Off by default, because the logger
   * server owns trimming and never trims what its group has not acknowledged; a cap here can
   * delete entries no server has written yet. Stream transport only.
   */
  maxStreamLength?: number;
  /** Extra node-redis client options (TLS, username, password, ...). `url` above wins over `redis.url`. */
  redis?: Omit<RedisClientOptions, 'url'>;
  /**
   * Signs every frame with HMAC-SHA256 (one MAC per frame, over its exact bytes), for servers
   * that verify (LOG_SIGNING_KEYS): `'keyid:base64secret'`, or `'app=keyid:base64secret'` as the
   * server's list writes it (the app must then be this publisher's). The server must know the key
   * id under this app: a key signs for one app only. Unset: frames are not signed.
   * @defaultValue process.env.LOG_SIGNING_KEY
   */
  signingKey?: string;
  /** Flush what is buffered when the process is about to exit (beforeExit). @defaultValue true */
  flushOnExit?: boolean;
  /**
   * Told, never thrown at: Redis unreachable (once per outage, RedisUnreachableError) and records
   * close() gave up on (RecordsGivenUpError). @defaultValue one line on stderr per report
   */
  onError?: (error: PublisherError) => void;
}

export interface ResolvedOptions {
  channel: string;
  app: string;
  url: string;
  clusterNodes: readonly string[] | undefined;
  /** The shard this publisher sends to (undefined: the channel is not sharded). */
  shard: number | undefined;
  shards: number;
  waitReplicas: number;
  transport: 'stream' | 'pubsub';
  level: Level;
  host: string;
  fields: Fields | undefined;
  redactor: Redactor | undefined;
  maxBufferBytes: number;
  maxFrameRecords: number;
  maxFrameBytes: number;
  maxRecordBytes: number;
  maxInFlightFrames: number;
  maxStreamLength: number | undefined;
  redis: Omit<RedisClientOptions, 'url'>;
  signingKey: SigningKey | undefined;
  flushOnExit: boolean;
  onError: (error: PublisherError) => void;
}

export const DEFAULTS = Object.freeze({
  url: DEFAULT_REDIS_URL,
  transport: 'stream' as const,
  level: 'info' as Level,
  maxBufferBytes: 64 * 1024 * 1024,
  maxFrameRecords: 10_000,
  maxFrameBytes: 1024 * 1024,
  maxRecordBytes: 256 * 1024,
  maxInFlightFrames: 8,
});

/** Largest maxFrameBytes: a quarter of the server's frame limit (3 bytes per unit, newlines and header). */
const MAX_FRAME_UNITS = LIMITS.maxFrameBytes / 4;

/** A whole number >= 0 (positiveInteger allows none). */
function count(problems: string[], name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    problems.push(`${name} must be a whole number >= 0, got ${JSON.stringify(value)}`);
    return fallback;
  }
  return value;
}

/** clusterNodes, else REDIS_CLUSTER_NODES split at commas; every one a redis:// or rediss:// URL. */
function resolveClusterNodes(problems: string[], option: readonly string[] | undefined): readonly string[] | undefined {
  const env = process.env.REDIS_CLUSTER_NODES;
  // unknown: an app in plain JavaScript may pass anything
  const nodes: unknown =
    option ??
    (env
      ? env
          .split(',')
          .map((node) => node.trim())
          .filter((node) => node !== '')
      : undefined);
  if (nodes === undefined) return undefined;
  if (!Array.isArray(nodes) || nodes.length === 0) {
    problems.push('clusterNodes must be a non-empty array of redis:// URLs');
    return undefined;
  }
  const list = nodes as unknown[];
  for (const node of list) if (typeof node !== 'string' || !/^rediss?:\/\/\S+$/.test(node)) problems.push(`clusterNodes: ${JSON.stringify(node)} is not a redis:// or rediss:// URL`);
  return list as string[];
}

/** shards, else LOG_SHARDS, else 1. */
function resolveShards(problems: string[], option: number | undefined): number {
  const env = process.env.LOG_SHARDS;
  if (option === undefined && env !== undefined && env !== '') {
    if (!/^\d+$/.test(env) || Number(env) < 1) {
      problems.push(`LOG_SHARDS=${JSON.stringify(env)} must be a whole number >= 1`);
      return 1;
    }
    return Number(env);
  }
  return positiveInteger(problems, 'shards', option, 1);
}

function positiveInteger(problems: string[], name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    problems.push(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
    return fallback;
  }
  return value;
}

function writeToStderr(error: PublisherError): void {
  process.stderr.write(`@log/publisher: ${error.message}\n`);
}

function resolveRedact(problems: string[], option: RedactOption | undefined): Redactor | undefined {
  if (option === undefined) return undefined;
  const { paths, censor, remove } = Array.isArray(option) ? { paths: option as readonly string[], censor: undefined, remove: undefined } : (option as Exclude<RedactOption, readonly string[]>);
  if (!Array.isArray(paths)) {
    problems.push('redact must be an array of paths or { paths, censor?, remove? }');
    return undefined;
  }
  if (censor !== undefined && typeof censor !== 'string') problems.push('redact.censor must be a string');
  if (remove !== undefined && typeof remove !== 'boolean') problems.push('redact.remove must be a boolean');
  const parsed = [];
  for (const path of paths as unknown[]) {
    const segments = typeof path === 'string' ? parseRedactPath(path) : 'is not a string';
    if (typeof segments === 'string') problems.push(`redact path ${JSON.stringify(path)} ${segments}`);
    else parsed.push(segments);
  }
  return parsed.length === 0 ? undefined : new Redactor(parsed, censor, remove);
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === '' ? undefined : value;
}

function resolveSigningKey(problems: string[], text: unknown, app: string): SigningKey | undefined {
  if (text === undefined) return undefined;
  if (typeof text !== 'string') {
    problems.push("signingKey must be a string 'keyid:base64secret'");
    return undefined;
  }
  const key = parseSigningKey(text);
  if (typeof key === 'string') problems.push(`signingKey: ${key}`);
  else if (key.app !== undefined && key.app !== app) problems.push(`signingKey: key ${key.id} is for app ${key.app}, this publisher's app is ${app}`);
  else return key;
  return undefined;
}

/** Checks every option once, reporting all problems in one InvalidOptionError. */
export function resolveOptions(channel: string, options: PublisherOptions): ResolvedOptions {
  const problems: string[] = [];
  const channelProblem = nameProblem(channel);
  if (channelProblem) problems.push(`channel ${JSON.stringify(channel)} ${channelProblem}`);
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new InvalidOptionError(['options must be an object with at least { app }']);
  }
  const appProblem = nameProblem(options.app);
  if (appProblem) problems.push(`app ${JSON.stringify(options.app)} ${appProblem}`);
  const transport = options.transport ?? DEFAULTS.transport;
  if (transport !== 'stream' && transport !== 'pubsub') {
    problems.push(`transport must be 'stream' or 'pubsub', got ${JSON.stringify(transport)}`);
  }
  const envLevel = process.env.LOG_LEVEL;
  const level = options.level ?? (isLevel(envLevel) ? envLevel : DEFAULTS.level);
  if (!isLevel(level)) problems.push(`level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  let host = options.host;
  if (host === undefined) host = toValidName(hostname());
  else {
    const hostProblem = nameProblem(host);
    if (hostProblem) problems.push(`host ${JSON.stringify(host)} ${hostProblem}`);
  }
  const url = resolveRedisUrl(options.url);
  if (!/^rediss?:\/\//.test(url)) problems.push(`url must start with redis:// or rediss://, got ${JSON.stringify(url)}`);
  if (options.fields !== undefined && (typeof options.fields !== 'object' || options.fields === null || Array.isArray(options.fields))) {
    problems.push('fields must be an object');
  }
  const shards = resolveShards(problems, options.shards);
  const resolved: ResolvedOptions = {
    channel,
    app: options.app,
    url,
    clusterNodes: resolveClusterNodes(problems, options.clusterNodes),
    shards,
    // One shard for the publisher's life, at random: publishers spread evenly over the shards.
    shard: shards === 1 ? undefined : randomInt(shards),
    waitReplicas: count(problems, 'waitReplicas', options.waitReplicas, 0),
    transport,
    level,
    host,
    fields: options.fields,
    redactor: resolveRedact(problems, options.redact),
    maxBufferBytes: 0,
    maxFrameRecords: positiveInteger(problems, 'maxFrameRecords', options.maxFrameRecords, DEFAULTS.maxFrameRecords),
    maxFrameBytes: 0,
    maxRecordBytes: 0,
    maxInFlightFrames: positiveInteger(problems, 'maxInFlightFrames', options.maxInFlightFrames, DEFAULTS.maxInFlightFrames),
    maxStreamLength: options.maxStreamLength === undefined ? undefined : positiveInteger(problems, 'maxStreamLength', options.maxStreamLength, 1),
    redis: options.redis ?? {},
    signingKey: resolveSigningKey(problems, options.signingKey ?? emptyToUndefined(process.env.LOG_SIGNING_KEY), options.app),
    flushOnExit: options.flushOnExit ?? true,
    onError: options.onError ?? writeToStderr,
  };
  if (typeof resolved.onError !== 'function') problems.push('onError must be a function');
  // A smaller buffer shrinks the unset frame and record limits with it, so that setting
  // maxBufferBytes alone is always valid; limits set explicitly must agree with each other.
  resolved.maxBufferBytes = positiveInteger(problems, 'maxBufferBytes', options.maxBufferBytes, DEFAULTS.maxBufferBytes);
  resolved.maxFrameBytes = positiveInteger(problems, 'maxFrameBytes', options.maxFrameBytes, Math.min(DEFAULTS.maxFrameBytes, Math.max(1, Math.floor(resolved.maxBufferBytes / 4))));
  resolved.maxRecordBytes = positiveInteger(problems, 'maxRecordBytes', options.maxRecordBytes, Math.min(DEFAULTS.maxRecordBytes, resolved.maxFrameBytes));
  // The server's limits bound these: a record or frame it would refuse must never be sent.
  if (resolved.maxRecordBytes > LIMITS.maxRecordBytes) {
    problems.push(`maxRecordBytes (${resolved.maxRecordBytes}) must not exceed ${LIMITS.maxRecordBytes}, the largest record the server accepts`);
  }
  // Frames are measured in UTF-16 units, which take up to 3 bytes each in UTF-8, plus newlines.
  if (resolved.maxFrameBytes > MAX_FRAME_UNITS) {
    problems.push(
      `maxFrameBytes (${resolved.maxFrameBytes}) must not exceed ${MAX_FRAME_UNITS}: a frame of that many UTF-16 units can take ${LIMITS.maxFrameBytes} bytes, the largest frame the server accepts`,
    );
  }
  if (resolved.maxRecordBytes > resolved.maxFrameBytes) {
    problems.push(`maxRecordBytes (${resolved.maxRecordBytes}) must not exceed maxFrameBytes (${resolved.maxFrameBytes})`);
  }
  if (resolved.maxFrameBytes > resolved.maxBufferBytes) {
    problems.push(`maxFrameBytes (${resolved.maxFrameBytes}) must not exceed maxBufferBytes (${resolved.maxBufferBytes})`);
  }
  if (resolved.maxStreamLength !== undefined && resolved.transport === 'pubsub') {
    problems.push("maxStreamLength applies to transport 'stream' only");
  }
  if (resolved.transport === 'pubsub') {
    // Given as options, they are a mistake; from the environment (shared with stream publishers and the server), they do not apply.
    if (options.clusterNodes !== undefined) problems.push("clusterNodes applies to transport 'stream' only");
    if (options.shards !== undefined && options.shards !== 1) problems.push("shards applies to transport 'stream' only");
    if (resolved.waitReplicas > 0) problems.push("waitReplicas applies to transport 'stream' only");
    resolved.clusterNodes = undefined;
    resolved.shards = 1;
    resolved.shard = undefined;
  }
  if (problems.length > 0) throw new InvalidOptionError(problems);
  return resolved;
}
