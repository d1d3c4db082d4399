import { randomBytes } from 'node:crypto';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { redactRedisUrl, shardsOf, streamKey } from '@log/protocol';
import type { Io } from './io';
import { connect } from './redis';
import { s3Client } from './s3';
import { signingKeysOf, type Settings } from './settings';

export const CHECK_HELP = `logctl check [options]: checks what the server needs, from the same environment: Redis
reachable and authenticated (REDIS_CLUSTER_NODES: the cluster), each shard's stream (LOG_SHARDS; a stream
of a shard past it is a problem: publishers with more shards than the servers), LOG_SIGNING_KEYS
parsed when set, the S3 bucket and credentials (when S3_BUCKET is set), LOG_DIR
writable. One line per check; exit code 1 when any fails.

  --json       [{ check, ok, detail }] as JSON
  -h, --help   this help`;

interface Outcome {
  check: string;
  ok: boolean;
  detail: string;
}

function describe(error: unknown): string {
  const e = error as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return [e.code ?? e.name, status === undefined ? undefined : `HTTP ${status}`, e.message].filter((part) => part !== undefined && part !== '').join(': ');
}

async function checkRedis(settings: Settings): Promise<Outcome[]> {
  const where = settings.clusterNodes === undefined ? redactRedisUrl(settings.redisUrl) : `cluster ${settings.clusterNodes.map(redactRedisUrl).join(',')}`;
  const shards = shardsOf(settings.shards);
  try {
    const client = await connect(settings);
    try {
      await client.sendCommand(['PING']);
      // Each shard's stream on its own node (a cluster): one EXISTS each.
      const exists = await Promise.all(shards.map(async (shard) => Number(await client.sendCommand(['EXISTS', streamKey(settings.channel, shard)])) > 0));
      const streams =
        shards.length === 1
          ? `stream ${streamKey(settings.channel)} ${exists[0] ? 'exists' : 'not created yet'}`
          : `LOG_SHARDS=${shards.length}: ${shards.map((shard, i) => `${streamKey(settings.channel, shard)} ${exists[i] ? 'exists' : 'not created yet'}`).join(', ')}`;
      const outcomes: Outcome[] = [{ check: 'redis', ok: true, detail: `${where}: reachable, authenticated; ${streams}` }];
      // Publishers with more shards than the servers write streams no server reads: the first ones past LOG_SHARDS tell.
      const beyond = shards.length === 1 ? [0, 1] : [shards.length];
      const strays: string[] = [];
      for (const shard of beyond) if (Number(await client.sendCommand(['EXISTS', streamKey(settings.channel, shard)])) > 0) strays.push(streamKey(settings.channel, shard));
      if (strays.length > 0)
        outcomes.push({
          check: 'shards',
          ok: false,
          detail: `${strays.join(', ')} exists: a publisher uses more shards than LOG_SHARDS=${settings.shards}, and no server reads it (give servers and publishers the same LOG_SHARDS)`,
        });
      return outcomes;
    } finally {
      client.destroy();
    }
  } catch (error) {
    const text = describe(error);
    const hint = /NOAUTH|WRONGPASS|NOPERM/.test(text)
      ? ' (check the user and password in REDIS_URL)'
      : /CERT|certificate/.test(text)
        ? " (TLS: Redis's certificate is not trusted; NODE_EXTRA_CA_CERTS names the CA file that signed it)"
        : '';
    return [{ check: 'redis', ok: false, detail: `${where}: ${text}${hint}` }];
  }
}

/** LOG_SIGNING_KEYS as the servers would parse it (only when set): a bad value stops a server at start. */
function checkSigning(settings: Settings): Outcome[] {
  if (settings.signingKeys === undefined) return [];
  try {
    const keys = signingKeysOf(settings)!;
    return [{ check: 'signing', ok: true, detail: `LOG_SIGNING_KEYS: ${keys.describe().join(', ')}` }];
  } catch (error) {
    return [{ check: 'signing', ok: false, detail: (error as Error).message }];
  }
}

async function checkS3(settings: Settings): Promise<Outcome> {
  if (settings.s3 === undefined) return { check: 's3', ok: true, detail: 'S3_BUCKET unset: archiving is off' };
  const client = s3Client(settings.s3);
  try {
    await client.send(new HeadBucketCommand({ Bucket: settings.s3.bucket }));
    return { check: 's3', ok: true, detail: `bucket ${settings.s3.bucket}${settings.s3.endpoint ? ` at ${settings.s3.endpoint}` : ''}: reachable with these credentials` };
  } catch (error) {
    return { check: 's3', ok: false, detail: `bucket ${settings.s3.bucket}${settings.s3.endpoint ? ` at ${settings.s3.endpoint}` : ''}: ${describe(error)}` };
  } finally {
    client.destroy();
  }
}

async function checkLogDir(settings: Settings): Promise<Outcome> {
  const probe = join(settings.logDir, `.logctl-check-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(settings.logDir, { recursive: true });
    await writeFile(probe, 'check\n');
    await unlink(probe);
    return { check: 'log-dir', ok: true, detail: `LOG_DIR ${settings.logDir}: writable` };
  } catch (error) {
    return { check: 'log-dir', ok: false, detail: `LOG_DIR ${settings.logDir}: ${describe(error)}` };
  }
}

export async function check(args: string[], settings: Settings, io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const outcomes = (await Promise.all([checkRedis(settings), checkS3(settings), checkLogDir(settings)])).flat();
  outcomes.splice(1, 0, ...checkSigning(settings));
  if (values.json) io.stdout.write(JSON.stringify(outcomes, null, 2) + '\n');
  else for (const o of outcomes) io.stdout.write(`${o.ok ? 'ok     ' : 'PROBLEM'} ${o.check}: ${o.detail}\n`);
  return outcomes.every((o) => o.ok) ? 0 : 1;
}
