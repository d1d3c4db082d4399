// `pnpm archives`: lists the archives in the running demo's local S3 (s3rver), one key a line;
// `pnpm archives --cat <key>` prints one, gunzipped: the JSON lines as they were on disk (a
// manifest key prints the manifest). --cat takes a key as listed, or as s3://<bucket>/<key>.
// `--endpoint <url> --bucket <name>` name another S3-compatible server than the demo's (tests).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { root } from './stack.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const require = createRequire(join(root, 'packages/s3-archiver/package.json'));
const { S3Client, ListObjectsV2Command, GetObjectCommand } = require('@aws-sdk/client-s3');

const argument = (name) => {
  const index = process.argv.indexOf(name);
  return index > 0 ? process.argv[index + 1] : undefined;
};

let target;
if (argument('--endpoint') && argument('--bucket')) target = { s3Endpoint: argument('--endpoint'), bucket: argument('--bucket') };
else {
  try {
    target = JSON.parse(readFileSync(join(root, '.dev', 'demo.json'), 'utf8'));
  } catch {
    console.error('no demo is running: start it with `pnpm demo`');
    process.exit(1);
  }
}

/** The object key of what --cat was given: a key as listed, or s3://<bucket>/<key>. */
function keyOf(given) {
  const url = `s3://${target.bucket}/`;
  return given.startsWith(url) ? given.slice(url.length) : given;
}

const client = new S3Client({ endpoint: target.s3Endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, maxAttempts: 1 });
try {
  const cat = argument('--cat');
  if (process.argv.includes('--cat')) {
    if (!cat) throw Object.assign(new Error('--cat needs a key, as `pnpm archives` lists them'), { usage: true });
    const key = keyOf(cat);
    const object = await client.send(new GetObjectCommand({ Bucket: target.bucket, Key: key }));
    const body = Buffer.from(await object.Body.transformToByteArray());
    process.stdout.write(key.endsWith('.gz') ? gunzipSync(body) : body); // a manifest is plain JSON
  } else {
    let listed = 0;
    let token;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: target.bucket, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        console.log(`${String(object.Size).padStart(10)}  ${object.Key}`);
        listed++;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (listed === 0) console.log('no archives yet: the demo closes its files every 15 s');
  }
} catch (error) {
  if (error.usage) console.error(error.message);
  else if (error.name === 'NoSuchKey') console.error(`no object ${keyOf(argument('--cat') ?? '')} in bucket ${target.bucket}: pass a key as \`pnpm archives\` lists it`);
  else console.error(`cannot reach the S3 at ${target.s3Endpoint} (is \`pnpm demo\` running?): ${error.message}`);
  process.exitCode = 1;
} finally {
  client.destroy();
}
