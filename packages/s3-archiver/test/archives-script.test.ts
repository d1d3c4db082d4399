import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { removeDir, startS3, tempDir, type S3Server } from '@log/test-kit';
import { archiveFile, archiveKey, manifestKey } from '../src';

// `pnpm archives` (scripts/archives.mjs) against a real s3rver: every key it lists is one that
// `pnpm archives --cat` accepts, and --cat prints the file as it was (the manifest as JSON).

const run = promisify(execFile);
const script = join(__dirname, '..', '..', '..', 'scripts', 'archives.mjs');

let s3: S3Server;
let client: S3Client;
let dir: string;
beforeAll(async () => {
  s3 = await startS3({ buckets: ['logs'] });
  client = new S3Client({ ...s3.clientConfig, maxAttempts: 1 });
  dir = tempDir('archives-script');
}, 30_000);
afterAll(async () => {
  client.destroy();
  await s3.dispose();
  removeDir(dir);
});

async function archives(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [script, '--endpoint', s3.endpoint, '--bucket', 'logs', ...args]);
  return stdout;
}

it('lists keys that --cat accepts, and --cat prints each archive gunzipped and each manifest as it is', async () => {
  const lines = '{"time":"2026-11-25T13:04:05.678Z","message":"one"}\n{"time":"2026-11-25T13:04:06.000Z","message":"two"}\n';
  const file = join(dir, '20261125T130405678Z-1f2e3d4c.jsonl');
  writeFileSync(file, lines);
  const key = archiveKey({ prefix: 'archive', app: 'shop', host: 'demo', firstTime: Date.UTC(2026, 10, 25, 13, 4, 5, 678), unique: '1f2e3d4c' });
  const manifest = { version: 1, app: 'shop', records: 2 };
  await archiveFile(file, { client, bucket: 'logs', key, manifest });

  const listed = (await archives())
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).pop() as string);
  expect(listed.sort()).toEqual([key, manifestKey(key)].sort());

  expect(await archives('--cat', key)).toBe(lines);
  expect(JSON.parse(await archives('--cat', manifestKey(key)))).toMatchObject(manifest);
  // The s3:// form is accepted too.
  expect(await archives('--cat', `s3://logs/${key}`)).toBe(lines);
}, 60_000); // several node processes, each loading the AWS SDK: slow on a loaded machine

it('says which key is missing, and exits 1', async () => {
  const failed = await archives('--cat', 'archive/shop/nothing.jsonl.gz').then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  );
  expect(failed?.code).toBe(1);
  expect(failed?.stderr).toMatch(/no object archive\/shop\/nothing\.jsonl\.gz in bucket logs/);
}, 30_000);
