import { Backoff, redactRedisUrl } from '@log/protocol';
import { createRedisClient } from '@log/protocol/redis';
import { StartupError } from './errors';
import type { ServerLog } from './log';

/** Oldest Redis the server works with: XAUTOCLAIM and XTRIM MINID came in 6.2. */
const MIN_REDIS = [6, 2] as const;
const PROBE_TIMEOUT_MS = 5_000;
/** Waits between probes of a Redis that does not answer: from 500 ms, doubling up to 10 s, with jitter. */
const PROBE_RETRY = { initialMs: 500, maxMs: 10_000 };
/** OpenSSL and Node codes of a certificate the client does not trust: a setting to fix, not a wait. */
const TLS_TRUST =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|CERT_SIGNATURE_FAILURE|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/** What one probe found: Redis usable (its version), a condition that may pass (retried), or one that will not. */
export type RedisProbe = { ok: true; version: string } | { ok: false; lasting: boolean; reason: string; cause?: unknown };

/**
 * Connects once, without retries, and asks for the server's version, all within `timeoutMs`.
 * Refused, unresolvable or silent: may pass. Wrong or missing credentials, an old Redis or a
 * server that does not speak Redis: will not.
 */
export async function probeRedis(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<RedisProbe> {
  let firstError: Error | undefined;
  const client = createRedisClient({ url, socket: { connectTimeout: timeoutMs, reconnectStrategy: false } }, (error) => (firstError ??= error as Error));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const reply: unknown = await Promise.race([client.connect().then(() => client.sendCommand(['INFO', 'server'])), timeout]);
    const info = typeof reply === 'string' || Buffer.isBuffer(reply) ? reply.toString() : '';
    const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0';
    const [major = 0, minor = 0] = version.split('.').map(Number);
    if (major < MIN_REDIS[0] || (major === MIN_REDIS[0] && minor < MIN_REDIS[1])) {
      return { ok: false, lasting: true, reason: `Redis ${version} is too old: ${MIN_REDIS.join('.')} or later is needed (XAUTOCLAIM, XTRIM MINID)` };
    }
    return { ok: true, version };
  } catch (error) {
    return classify(firstError ?? (error as Error), error);
  } finally {
    clearTimeout(timer);
    try {
      client.destroy();
    } catch {
      // never connected
    }
  }
}

function classify(first: Error, error: unknown): RedisProbe {
  const message = first.message;
  if (/^(NOAUTH|WRONGPASS|NOPERM)/.test(message)) {
    const what = message.startsWith('NOPERM') ? 'the user may not run' : 'authentication failed';
    return { ok: false, lasting: true, reason: `${what}: ${message.split(/[.,]/)[0]} (give the user and password in the URL: redis://user:password@host:port)`, cause: first };
  }
  if (/Unknown RESP type|Protocol error|parse/i.test(message)) return { ok: false, lasting: true, reason: `not a Redis server (${message})`, cause: first };
  const code = (first as NodeJS.ErrnoException).code;
  if (code !== undefined && TLS_TRUST.test(code)) {
    return {
      ok: false,
      lasting: true,
      reason: `TLS: the server's certificate is not trusted (${code}: ${message}); trust its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem`,
      cause: first,
    };
  }
  if (/wrong version number|packet length too long|EPROTO/i.test(`${code ?? ''} ${message}`)) {
    return { ok: false, lasting: true, reason: `TLS: the port does not speak TLS (${code ?? message}); use redis:// for a plain port, rediss:// for Redis's tls-port`, cause: first };
  }
  const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'host not found' : 'unreachable';
  return { ok: false, lasting: false, reason: `${what} (${code ?? message})`, cause: error };
}

/**
 * Probes REDIS_URL (or the seed nodes of REDIS_CLUSTER_NODES: one that answers is enough) until
 * Redis answers: a condition that may pass is retried with backoff and said once per change (not
 * once per attempt), through `onProblem` too (for /healthz); one that will not throws StartupError
 * naming the setting. Resolves false when `signal` aborts first.
 */
export async function waitForRedis(target: string | { clusterNodes: readonly string[] }, log: ServerLog, onProblem: (reason: string | undefined) => void, signal?: AbortSignal): Promise<boolean> {
  const [setting, urls] = typeof target === 'string' ? (['REDIS_URL', [target]] as const) : (['REDIS_CLUSTER_NODES', target.clusterNodes] as const);
  let said: string | undefined;
  const backoff = new Backoff(PROBE_RETRY);
  for (;;) {
    if (signal?.aborted) return false;
    let reason = '';
    for (const url of urls) {
      const probe = await probeRedis(url);
      if (probe.ok) {
        if (said !== undefined) log('info', 'redis reachable again', { url: redactRedisUrl(url), version: probe.version });
        onProblem(undefined);
        return true;
      }
      if (probe.lasting) throw new StartupError('REDIS_UNUSABLE', setting, `${redactRedisUrl(url)}: ${probe.reason}`, { cause: probe.cause });
      reason ||= `${setting} ${redactRedisUrl(url)}: ${probe.reason}`;
    }
    if (reason !== said) {
      log('error', 'redis is not reachable; retrying with backoff until it is', { reason, retryInMs: backoff.delayMs });
      said = reason;
    }
    onProblem(reason);
    await backoff.wait(signal);
  }
}
