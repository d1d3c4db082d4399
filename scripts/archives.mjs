// `pnpm archives`: lists the archives the running demo put into its local S3 (s3rver);
// `pnpm archives --cat <key>` prints one, gunzipped: the JSON lines as they were on disk (a
// manifest key prints the manifest).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { root } from './stack.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const require = createRequire(join(root, 'packages/s3-archiver/package.json'));
const { S3Client, ListObjectsV2Command, GetObjectCommand } = require('@aws-sdk/client-s3');

let demo;
try {
  demo = JSON.parse(readFileSync(join(root, '.dev', 'demo.json'), 'utf8'));
} catch {
  console.error('no demo is running: start it with `pnpm demo`');
  process.exit(1);
}
const client = new S3Client({ endpoint: demo.s3Endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, maxAttempts: 1 });
try {
  const catIndex = process.argv.indexOf('--cat');
  if (catIndex > 0) {
    const key = process.argv[catIndex + 1];
    const object = await client.send(new GetObjectCommand({ Bucket: demo.bucket, Key: key }));
    const body = Buffer.from(await object.Body.transformToByteArray());
    process.stdout.write(key.endsWith('.gz') ? gunzipSync(body) : body); // a manifest is plain JSON
  } else {
    const list = await client.send(new ListObjectsV2Command({ Bucket: demo.bucket }));
    for (const object of list.Contents ?? []) console.log(`${String(object.Size).padStart(8)}  s3://${demo.bucket}/${object.Key}`);
    if (!list.Contents?.length) console.log('no archives yet: the demo closes its files every 15 s');
  }
} catch (error) {
  console.error(`cannot reach the demo's S3 at ${demo.s3Endpoint} (is \`pnpm demo\` running?): ${error.message}`);
  process.exitCode = 1;
} finally {
  client.destroy();
}
