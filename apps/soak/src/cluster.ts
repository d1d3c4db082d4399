import { join } from 'node:path';
import { freePort, motoAvailable, startFaultProxy, startRedis, startS3, type FaultProxy, type RedisServer, type S3Server } from '@log/test-kit';
import { Disks } from './disk';
import { SoakError } from './errors';
import type { SoakOptions } from './options';
import { SupervisedServer } from './server-process';

export const CHANNEL = 'soak';
export const GROUP = 'soak';
export const BUCKET = 'soak';
export const S3_PREFIX = 'archive';

/**
 * Everything the soak runs against, all real: a redis-server with its AOF, s3rver, the logger
 * servers in one consumer group, and the fault points between them: a proxy in front of S3 for
 * the servers, one proxy per server in front of Redis (partitions), tmpfs LOG_DIRs (disk full).
 * The producers talk to Redis directly: the faults are the servers' and the stores', not theirs.
 */
export class Cluster {
  private constructor(
    readonly redis: RedisServer,
    readonly s3: S3Server,
    readonly s3Proxy: FaultProxy,
    readonly redisProxies: FaultProxy[],
    readonly servers: SupervisedServer[],
    readonly logDirs: string[],
    readonly disks: Disks,
  ) {}

  static async start(options: SoakOptions, workDir: string, clock: () => number, say: (line: string) => void): Promise<Cluster> {
    const parts: { redis?: RedisServer; s3?: S3Server; proxies: FaultProxy[]; servers: SupervisedServer[]; disks: Disks } = {
      proxies: [],
      servers: [],
      disks: new Disks(options.diskBytes),
    };
    try {
      // The AOF with Redis's default appendfsync everysec: Redis write()s the AOF before it
      // replies, so an XADD the publisher saw acknowledged survives kill -9 of the process (only a
      // machine crash could lose the last second, and the soak does not crash machines).
      parts.redis = await startRedis({ appendOnly: true });
      parts.s3 = await startS3({ implementation: s3Implementation(options), buckets: [BUCKET] });
      const s3Proxy = await startFaultProxy(parts.s3.port);
      parts.proxies.push(s3Proxy);
      const logDirs: string[] = [];
      const redisProxies: FaultProxy[] = [];
      for (let i = 0; i < options.servers; i++) {
        const name = `s${i}`;
        const logDir = join(workDir, 'logs', name);
        parts.disks.prepare(logDir);
        logDirs.push(logDir);
        const redisProxy = await startFaultProxy(parts.redis.port);
        parts.proxies.push(redisProxy);
        redisProxies.push(redisProxy);
        const env = {
          REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
          LOG_CHANNEL: CHANNEL,
          LOG_SHARDS: String(options.shards),
          LOG_GROUP: GROUP,
          LOG_CONSUMER: name,
          LOG_DIR: logDir,
          READ_BLOCK_MS: '500',
          CLAIM_IDLE_MS: String(options.claimIdleMs),
          CLAIM_INTERVAL_MS: '500',
          TRIM_INTERVAL_MS: '2000',
          ROTATE_BYTES: String(options.rotateBytes),
          ROTATE_SECONDS: String(options.rotateSeconds),
          S3_BUCKET: BUCKET,
          S3_PREFIX,
          S3_ENDPOINT: s3Proxy.endpoint,
          S3_FORCE_PATH_STYLE: 'true',
          AWS_REGION: parts.s3.region,
          AWS_ACCESS_KEY_ID: parts.s3.credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: parts.s3.credentials.secretAccessKey,
          // Short, so a frozen S3 fails attempts within the run instead of after it.
          S3_IDLE_TIMEOUT_MS: '2000',
          ARCHIVE_STALE_UPLOAD_SECONDS: '0',
        };
        const server = new SupervisedServer(name, await freePort(), env, join(workDir, `server-${name}.log`), clock, say);
        parts.servers.push(server);
      }
      const ready = await Promise.all(parts.servers.map((s) => s.start()));
      const failed = parts.servers.filter((_, i) => !ready[i]).map((s) => s.name);
      if (failed.length > 0) throw new SoakError('SERVICE_START_FAILED', `logger server(s) ${failed.join(', ')} did not start; see ${workDir}/server-*.log`);
      return new Cluster(parts.redis, parts.s3, s3Proxy, redisProxies, parts.servers, logDirs, parts.disks);
    } catch (error) {
      await disposeParts(parts);
      if (error instanceof SoakError) throw error;
      throw new SoakError('SERVICE_START_FAILED', `could not start the cluster: ${(error as Error).message}`, { cause: error });
    }
  }

  get redisUrl(): string {
    return this.redis.url;
  }

  /** Stops whatever still runs and unmounts the tmpfs LOG_DIRs (their contents are gone then). */
  async dispose(): Promise<void> {
    await disposeParts({ redis: this.redis, s3: this.s3, proxies: [this.s3Proxy, ...this.redisProxies], servers: this.servers, disks: this.disks });
  }
}

export function s3Implementation(options: Pick<SoakOptions, 's3'>): 's3rver' | 'moto' {
  if (options.s3 === 'auto') return motoAvailable() ? 'moto' : 's3rver';
  return options.s3;
}

async function disposeParts(parts: { redis?: RedisServer; s3?: S3Server; proxies: FaultProxy[]; servers: SupervisedServer[]; disks: Disks }): Promise<void> {
  await Promise.all(parts.servers.map((s) => s.destroy()));
  await Promise.all(parts.proxies.map((p) => p.close()));
  // resume first: a paused redis-server cannot act on SIGTERM (test-kit sends SIGCONT too, but only to its current child)
  parts.redis?.resume();
  await parts.redis?.dispose();
  await parts.s3?.dispose();
  parts.disks.unmountAll();
}
