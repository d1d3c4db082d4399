import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { archivePartition } from '@log/s3-archiver';
import { UsageError, type Io } from './io';
import { s3Client } from './s3';
import { parseTime, type Settings } from './settings';

export const ARCHIVE_HELP = `logctl archive <ls|cat|grep PATTERN> --app NAME [--from TIME] [--to TIME]: the archives in S3
(S3_BUCKET, S3_PREFIX, S3_ENDPOINT ...), found by their Hive partitions
<prefix>/<app>/dt=YYYY-MM-DD/hour=HH/ without listing the whole bucket.

  ls              the archives of the app whose hour lies in [from, to]
  cat             their records, gunzipped as they stream in, those timed in [from, to]
  grep PATTERN    the records (JSON lines) that match the regular expression
  --app NAME      the app (required)
  --from TIME     ISO time or a duration ago (2h); default 24h
  --to TIME       ISO time or a duration ago; default now
  --json          ls: one JSON object per archive
  -h, --help      this help
A progress line goes to stderr on a terminal while cat or grep scan.`;

const HOUR = 3_600_000;

interface Archive {
  key: string;
  size: number;
}

/** Archives (not manifests) of `app` in the hour partitions that meet [from, to], in time order. */
async function listArchives(client: ReturnType<typeof s3Client>, s3: NonNullable<Settings['s3']>, app: string, from: number, to: number): Promise<Archive[]> {
  const found: Archive[] = [];
  for (let hour = Math.floor(from / HOUR) * HOUR; hour <= to; hour += HOUR) {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: archivePartition(s3.prefix, app, hour), ContinuationToken: token }));
      for (const object of page.Contents ?? []) if (object.Key?.endsWith('.jsonl.gz')) found.push({ key: object.Key, size: object.Size ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }
  return found;
}

export async function archive(args: string[], settings: Settings, io: Io): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { app: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (action !== 'ls' && action !== 'cat' && action !== 'grep')
    throw new UsageError(action === undefined ? 'archive: which action? ls, cat or grep' : `archive: unknown action ${JSON.stringify(action)}`);
  if (settings.s3 === undefined) throw new UsageError('S3_BUCKET is not set: archiving is off, there is nothing to read');
  if (values.app === undefined) throw new UsageError('archive: --app is required');
  let pattern: RegExp | undefined;
  if (action === 'grep') {
    if (positionals[0] === undefined) throw new UsageError('archive grep: give a PATTERN');
    try {
      pattern = new RegExp(positionals[0]);
    } catch (error) {
      throw new UsageError(`archive grep: ${(error as Error).message}`);
    }
  }
  const now = Date.now();
  const from = values.from === undefined ? now - 24 * HOUR : parseTime(values.from, now);
  const to = values.to === undefined ? now : parseTime(values.to, now);
  if (from > to) throw new UsageError('--from is after --to');
  const client = s3Client(settings.s3);
  try {
    const archives = await listArchives(client, settings.s3, values.app, from, to);
    if (action === 'ls') {
      for (const a of archives)
        io.stdout.write((values.json ? JSON.stringify({ bucket: settings.s3.bucket, key: a.key, size: a.size }) : `${String(a.size).padStart(10)}  s3://${settings.s3.bucket}/${a.key}`) + '\n');
      if (archives.length === 0 && !values.json) io.stdout.write(`no archives of ${values.app} between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}\n`);
      return 0;
    }
    const progress = io.stderr.isTTY === true;
    let matched = 0;
    for (let i = 0; i < archives.length; i++) {
      const a = archives[i] as Archive;
      if (progress) io.stderr.write(`\r\u001b[K[${i + 1}/${archives.length}] ${a.key}`);
      const object = await client.send(new GetObjectCommand({ Bucket: settings.s3.bucket, Key: a.key }));
      const lines = createInterface({ input: (object.Body as Readable).pipe(createGunzip()), crlfDelay: Infinity });
      for await (const line of lines) {
        if (pattern !== undefined && !pattern.test(line)) continue;
        const time = Date.parse((/^\{"time":"([^"]+)"/.exec(line) ?? [])[1] ?? '');
        if (time < from || time > to) continue;
        io.stdout.write(line + '\n');
        matched++;
      }
    }
    if (progress) io.stderr.write(`\r\u001b[K${archives.length} archives read, ${matched} records\n`);
    return pattern !== undefined && matched === 0 ? 1 : 0;
  } finally {
    client.destroy();
  }
}
