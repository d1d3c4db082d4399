import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { RedisClientType } from 'redis';
import type { Source, StatsBody, StatsReport } from './checker';
import { SoakError } from './errors';

const CLOSED_NAME = /^\d{8}T\d{9}Z-[0-9a-f]{8}\.jsonl$/;
/** `<prefix>/<app>/dt=.../hour=.../<consumer>-<time>-<unique>.jsonl.gz` */
const ARCHIVE_KEY = /\/([^/]+)\/dt=[^/]+\/hour=[^/]+\/(.+)-(\d{8}T\d{9}Z-[0-9a-f]{8})\.jsonl\.gz$/;

/** Every record file under one server's LOG_DIR; `other` lists what is neither a record file nor a manifest. */
export function readLocal(consumer: string, logDir: string): { sources: Source[]; other: string[] } {
  const sources: Source[] = [];
  const other: string[] = [];
  if (!existsSync(logDir)) return { sources, other };
  for (const app of readdirSync(logDir)) {
    if (app.startsWith('.')) continue; // the disk-full filler
    const dir = join(logDir, app);
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const location = `${consumer}:${app}/${name}`;
      if (name === `${app}.log`) sources.push({ location, kind: 'open', fileId: `${consumer}/${app}/open`, data: readFileSync(path) });
      else if (CLOSED_NAME.test(name)) sources.push({ location, kind: 'closed', fileId: `${consumer}/${app}/${name.slice(0, -'.jsonl'.length)}`, data: readFileSync(path) });
      else if (!name.endsWith('.manifest.json')) other.push(location);
    }
  }
  return { sources, other };
}

/** Every archived object in the bucket (read straight from S3, not through the fault proxy). */
export async function readArchive(client: S3Client, bucket: string): Promise<{ sources: Source[]; manifests: number; other: string[] }> {
  const sources: Source[] = [];
  const other: string[] = [];
  let manifests = 0;
  let token: string | undefined;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        const key = object.Key ?? '';
        if (key.endsWith('.manifest.json')) {
          manifests++;
          continue;
        }
        const match = ARCHIVE_KEY.exec(key);
        if (!match) {
          other.push(key);
          continue;
        }
        const body = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const data = Buffer.from(await (body.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
        sources.push({ location: `s3:${key}`, kind: 'archived', fileId: `${match[2]}/${match[1]}/${match[3]}`, data });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } catch (error) {
    throw new SoakError('COLLECT_FAILED', `could not read the archive in S3 bucket ${bucket}: ${(error as Error).message}`, { cause: error });
  }
  return { sources, manifests, other };
}

export async function fetchStats(server: string, httpPort: number): Promise<StatsReport> {
  try {
    // The report comes a page at a time (`cursor` until it is absent); the totals are on every page.
    let body: StatsBody | undefined;
    let cursor: number | undefined = 0;
    while (cursor !== undefined) {
      const response = await fetch(`http://127.0.0.1:${httpPort}/stats?limit=1000&cursor=${cursor}`, { signal: AbortSignal.timeout(5000) });
      if (!response.ok) return { server, body: undefined, error: `HTTP ${response.status}` };
      const page = (await response.json()) as StatsBody & { cursor?: number };
      body = { totals: page.totals, producers: [...(body?.producers ?? []), ...page.producers] };
      cursor = page.cursor;
    }
    return { server, body, error: undefined };
  } catch (error) {
    return { server, body: undefined, error: (error as Error).message };
  }
}

/** rids found in the frames of the dead-letter stream (the records themselves are never written to disk). */
export async function deadLetteredRids(client: RedisClientType, keys: readonly string[]): Promise<{ entries: number; rids: Set<string>; reasons: Map<string, number> }> {
  const rids = new Set<string>();
  const reasons = new Map<string, number>();
  const entries = [];
  for (const key of keys) for (const entry of (await client.xRange(key, '-', '+')) ?? []) entries.push(entry);
  for (const entry of entries) {
    const message = entry.message as Record<string, string>;
    reasons.set(message.reason ?? '?', (reasons.get(message.reason ?? '?') ?? 0) + 1);
    for (const match of (message.payload ?? '').matchAll(/"rid":"(\d+-\d+)"/g)) rids.add(match[1] as string);
  }
  return { entries: entries.length, rids, reasons };
}

export interface GroupState {
  pending: number;
  lastDelivered: string;
  lastGenerated: string;
}

/** The consumer group's progress: drained when nothing is pending and the last entry was delivered. */
export async function groupState(client: RedisClientType, key: string, group: string): Promise<GroupState | undefined> {
  const groups = (await client.sendCommand(['XINFO', 'GROUPS', key])) as unknown[];
  const stream = asMap(await client.sendCommand(['XINFO', 'STREAM', key]));
  for (const raw of groups) {
    const info = asMap(raw);
    if (info.get('name') !== group) continue;
    return { pending: Number(info.get('pending')), lastDelivered: String(info.get('last-delivered-id')), lastGenerated: String(stream.get('last-generated-id')) };
  }
  return undefined;
}

/** XINFO replies come as flat [key, value, ...] arrays (RESP2) or as objects (node-redis's map reply). */
function asMap(reply: unknown): Map<string, unknown> {
  if (!Array.isArray(reply)) return new Map(Object.entries(reply as Record<string, unknown>));
  const map = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), reply[i + 1]);
  return map;
}
