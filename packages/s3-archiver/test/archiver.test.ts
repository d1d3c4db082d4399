import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { removeDir, s3Implementations, startS3, startTcpProxy, tempDir, within, type S3Server } from '@log/test-kit';
import { ArchiveError, archiveFile, archiveKey, manifestKey } from '../src';

describe('archiveKey', () => {
  it('builds Hive-style partitioned keys that do not collide', () => {
    const parts = { prefix: '/logs/', app: 'shop', host: 'app1', firstTime: Date.UTC(2026, 10, 25, 13, 4, 5, 678) };
    const key = archiveKey({ ...parts, unique: 'abcd1234' });
    expect(key).toBe('logs/shop/dt=2026-11-25/hour=13/app1-20261125T130405678Z-abcd1234.jsonl.gz');
    expect(archiveKey(parts)).not.toBe(archiveKey(parts));
  });

  it.each(['../../etc', '.', 'a/b'])('refuses a hostile app name %j', (app) => {
    expect(() => archiveKey({ prefix: 'logs', app, host: 'h', firstTime: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
  });
});

describe.each(s3Implementations())('archiveFile against %s', (implementation) => {
  let s3: S3Server;
  let client: S3Client;
  let dir: string;
  beforeAll(async () => {
    s3 = await startS3({ implementation, buckets: ['logs'] });
    client = new S3Client({ ...s3.clientConfig, maxAttempts: 1 });
    dir = tempDir('archiver');
  }, 30_000);
  afterAll(async () => {
    client.destroy();
    await s3.dispose();
    removeDir(dir);
  });

  it('uploads a multipart gzip object whose content equals the file, and leaves the file alone', async () => {
    const file = join(dir, 'big.log');
    // ~11 MiB of poorly compressible lines, so the gzip stream needs more than one 5 MiB part
    const lines: string[] = [];
    for (let i = 0; lines.length < 100_000; i++) lines.push(JSON.stringify({ i, r: randomBytes(72).toString('base64') }));
    const content = lines.join('\n') + '\n';
    writeFileSync(file, content);
    const key = archiveKey({ prefix: 'logs', app: 'shop', host: 'app1', firstTime: Date.now() });
    const result = await archiveFile(file, { client, bucket: 'logs', key, partSize: 5 * 1024 * 1024, gzipLevel: 1 });
    expect(result).toMatchObject({ status: 'uploaded', bytes: Buffer.byteLength(content) });
    expect(result.compressedBytes).toBeGreaterThan(5 * 1024 * 1024);
    const object = await client.send(new GetObjectCommand({ Bucket: 'logs', Key: key }));
    const body = Buffer.from(await object.Body!.transformToByteArray());
    expect(gunzipSync(body).toString()).toBe(content);
    // moto keeps S3's own CRC32 of the parts, which archiveFile compared with what it sent; s3rver keeps none.
    if (implementation === 'moto') expect(result.s3Checksum).toMatch(/^CRC32 [A-Za-z0-9+/]{6}==(-\d+)?$/);
  }, 60_000);

  it('never overwrites: the same content counts as done, other content is a conflict', async () => {
    const file = join(dir, 'again.log');
    writeFileSync(file, '{"n":1}\n{"n":2}\n');
    const key = archiveKey({ prefix: 'logs', app: 'shop', host: 'app1', firstTime: Date.now() });
    expect((await archiveFile(file, { client, bucket: 'logs', key })).status).toBe('uploaded');
    // a crash after the upload and before the delete: the retry finds its own object
    expect((await archiveFile(file, { client, bucket: 'logs', key })).status).toBe('exists');
    writeFileSync(file, '{"n":3}\n');
    await expect(archiveFile(file, { client, bucket: 'logs', key })).rejects.toMatchObject({ code: 'CONFLICT' });
    const object = await client.send(new GetObjectCommand({ Bucket: 'logs', Key: key }));
    expect(gunzipSync(Buffer.from(await object.Body!.transformToByteArray())).toString()).toBe('{"n":1}\n{"n":2}\n');
  }, 30_000);

  it('writes the manifest beside the object, once: a retry finds it, a manifest for other data is a conflict', async () => {
    const file = join(dir, 'manifested.log');
    writeFileSync(file, '{"seq":1}\n{"seq":2}\n');
    const key = archiveKey({ prefix: 'logs', app: 'shop', host: 'app1', firstTime: Date.now() });
    const manifest = { records: 2, producers: [{ producer: 'p1', minSeq: 1, maxSeq: 2, records: 2 }] };
    const result = await archiveFile(file, { client, bucket: 'logs', key, manifest });
    expect(result.manifestKey).toBe(manifestKey(key));
    expect(result.manifestKey).toMatch(/\.manifest\.json$/);
    const read = async (k: string) => JSON.parse(Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: 'logs', Key: k }))).Body!.transformToByteArray()).toString());
    expect(await read(result.manifestKey!)).toEqual({ ...manifest, object: key, sha256: result.sha256, rawBytes: 20, compressedBytes: result.compressedBytes });
    expect((await archiveFile(file, { client, bucket: 'logs', key, manifest })).status).toBe('exists');

    const other = join(dir, 'other.log');
    writeFileSync(other, '{"seq":9}\n');
    const otherKey = archiveKey({ prefix: 'logs', app: 'shop', host: 'app1', firstTime: Date.now() });
    await client.send(new PutObjectCommand({ Bucket: 'logs', Key: manifestKey(otherKey), Body: '{"someone":"else"}', Metadata: { 'data-sha256': 'f'.repeat(64) } }));
    await expect(archiveFile(other, { client, bucket: 'logs', key: otherKey, manifest })).rejects.toMatchObject({ code: 'CONFLICT', key: manifestKey(otherKey) });
    expect(await read(manifestKey(otherKey))).toEqual({ someone: 'else' });
  }, 30_000);

  it('stops when its signal aborts, also with the upload frozen part-way across a partition, and keeps the file', async () => {
    const file = join(dir, 'frozen.log');
    writeFileSync(file, randomBytes(1024 * 1024).toString('base64')); // ~1 MiB of gzip: far past the cut
    const key = archiveKey({ prefix: 'logs', app: 'shop', host: 'app1', firstTime: Date.now() });
    const proxy = await startTcpProxy(s3.port);
    const partitioned = new S3Client({ ...s3.clientConfig, endpoint: proxy.endpoint, maxAttempts: 1 });
    try {
      const controller = new AbortController();
      const cut = proxy.cutAfter(256 * 1024); // the HEAD and the first 256 KiB of the PUT get through
      const archiving = archiveFile(file, { client: partitioned, bucket: 'logs', key, gzipLevel: 1, signal: controller.signal });
      expect(await within(cut, 10_000)).toEqual({ value: undefined });
      controller.abort();
      const outcome = await within(archiving, 5_000);
      expect(outcome).toEqual({ error: expect.objectContaining({ name: 'ArchiveError', code: 'ABORTED', key }) });
      expect(((outcome as { error: Error }).error.cause as Error).name).toBe('AbortError');
      // already aborted: nothing is sent at all
      await expect(archiveFile(file, { client, bucket: 'logs', key, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
      expect(existsSync(file)).toBe(true);
      // Nothing at the key. (s3rver writes a PUT's body to the object as it arrives, so there the
      // frozen PUT shows half-written; S3, like moto, stores an object only once its body is whole.)
      if (implementation === 'moto') await expect(client.send(new HeadObjectCommand({ Bucket: 'logs', Key: key }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    } finally {
      partitioned.destroy();
      await proxy.close();
    }
  }, 30_000);

  it('fails with a typed error when S3 is down, and keeps the file', async () => {
    const file = join(dir, 'small.log');
    writeFileSync(file, '{"a":1}\n');
    const down = new S3Client({ ...s3.clientConfig, endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    await expect(archiveFile(file, { client: down, bucket: 'logs', key: 'x/y.jsonl.gz' })).rejects.toBeInstanceOf(ArchiveError);
    await expect(archiveFile(join(dir, 'missing.log'), { client, bucket: 'logs', key: 'x/z.jsonl.gz' })).rejects.toMatchObject({ code: 'READ_FAILED' });
    down.destroy();
  }, 30_000);
});
