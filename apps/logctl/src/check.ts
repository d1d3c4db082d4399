import { randomBytes } from 'node:crypto';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { redactRedisUrl, streamKey } from '@log/protocol';
import type { Io } from './io';
import { connect } from './redis';
import { s3Client } from './s3';
import type { Settings } from './settings';

export const CHECK_HELP = `logctl check [options]: checks what the server needs, from the same environment: Redis
reachable and authenticated, the S3 bucket and credentials (when S3_BUCKET is set), LOG_DIR
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

async function checkRedis(settings: Settings): Promise<Outcome> {
  const where = redactRedisUrl(settings.redisUrl);
  try {
    const client = await connect(settings.redisUrl);
    try {
      await client.sendCommand(['PING']);
      const length = Number(await client.sendCommand(['EXISTS', streamKey(settings.channel)]));
      return { check: 'redis', ok: true, detail: `${where}: reachable, authenticated; stream ${streamKey(settings.channel)} ${length ? 'exists' : 'not created yet'}` };
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
    return { check: 'redis', ok: false, detail: `${where}: ${text}${hint}` };
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
  const outcomes = await Promise.all([checkRedis(settings), checkS3(settings), checkLogDir(settings)]);
  if (values.json) io.stdout.write(JSON.stringify(outcomes, null, 2) + '\n');
  else for (const o of outcomes) io.stdout.write(`${o.ok ? 'ok     ' : 'PROBLEM'} ${o.check}: ${o.detail}\n`);
  return outcomes.every((o) => o.ok) ? 0 : 1;
}
