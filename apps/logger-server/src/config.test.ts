import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';
import { readFileSync } from 'node:fs';
import { SETTING_HELP, loadConfig, redactedConfig } from './config';
import { ConfigError } from './errors';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({}, '/srv');
    expect(config).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      channel: 'logger',
      transport: 'stream',
      logDir: '/srv/log',
      group: 'logger-server',
      httpPort: 9464,
      s3: undefined,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('--help and the README state the defaults loadConfig uses', () => {
    const readme = readFileSync(join(__dirname, '../../../README.md'), 'utf8');
    // S3 settings only count when S3_BUCKET is set; READ_COUNT set at all turns READ_BATCH_BYTES off (tested above).
    const base = { S3_BUCKET: 'bucket' };
    const checked: string[] = [];
    for (const [key, help] of Object.entries(SETTING_HELP)) {
      const stated = /\(default ([\w./:-]+)[;)\s]/.exec(help)?.[1];
      if (stated === undefined || key === 'READ_COUNT') continue;
      expect({ key, config: loadConfig({ ...base, [key]: stated }, '/srv', 20_000) }).toEqual({ key, config: loadConfig(base, '/srv', 20_000) });
      // the README's row of this key (alone or with others) names the same default
      const row = readme.split('\n').find((line) => line.startsWith('| ') && line.split('|')[1]!.includes(`\`${key}\``));
      expect({ key, row: row?.includes(stated) ?? false }).toEqual({ key, row: true });
      checked.push(key);
    }
    expect(checked.length).toBeGreaterThanOrEqual(20);
  });

  it('bounds MAX_OPEN_FILES by the process limit (ulimit -n), naming the setting when it is too high', () => {
    expect(loadConfig({}, '/srv', 20_000).maxOpenFiles).toBe(256);
    expect(loadConfig({}, '/srv', 256).maxOpenFiles).toBe(64);
    expect(loadConfig({}, '/srv', undefined).maxOpenFiles).toBe(256);
    expect(() => loadConfig({ MAX_OPEN_FILES: '5000' }, '/srv', 1024)).toThrow(/MAX_OPEN_FILES=5000: must be at most 960, the process's open file limit \(1024/);
    expect(loadConfig({ MAX_OPEN_FILES: '900' }, '/srv', 1024).maxOpenFiles).toBe(900);
  });

  it('reads on past READ_COUNT up to READ_BATCH_BYTES only when READ_COUNT is not set (an explicit count is the batch)', () => {
    expect(loadConfig({}, '/srv')).toMatchObject({ readCount: 16, readBatchBytes: 4 * 1024 * 1024 });
    expect(loadConfig({ READ_COUNT: '1' }, '/srv')).toMatchObject({ readCount: 1, readBatchBytes: 0 });
    expect(loadConfig({ READ_COUNT: '8', READ_BATCH_BYTES: '65536' }, '/srv')).toMatchObject({ readCount: 8, readBatchBytes: 65536 });
    expect(loadConfig({ READ_BATCH_BYTES: '0' }, '/srv')).toMatchObject({ readBatchBytes: 0 });
  });

  it('reads REDIS_CLUSTER_NODES and LOG_SHARDS (one unsharded stream on one Redis by default), and refuses them with Pub/Sub alone', () => {
    expect(loadConfig({}, '/srv')).toMatchObject({ clusterNodes: undefined, shards: 1 });
    const config = loadConfig({ REDIS_CLUSTER_NODES: 'redis://10.0.0.1:7000, redis://u:secret@10.0.0.2:7000', LOG_SHARDS: '3' }, '/srv');
    expect(config).toMatchObject({ clusterNodes: ['redis://10.0.0.1:7000', 'redis://u:secret@10.0.0.2:7000'], shards: 3 });
    expect(redactedConfig(config).clusterNodes).toEqual(['redis://10.0.0.1:7000', 'redis://***@10.0.0.2:7000']);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis://ok:1,10.0.0.2:7000', LOG_SHARDS: '0' }, '/srv')).toThrow(
      /REDIS_CLUSTER_NODES: "10.0.0.2:7000" must look like redis:\/\/host:port[\s\S]*LOG_SHARDS="0": must be a whole number >= 1/,
    );
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis://a:1', LOG_SHARDS: '2', LOG_TRANSPORT: 'pubsub' }, '/srv')).toThrow(
      /REDIS_CLUSTER_NODES: applies to LOG_TRANSPORT=stream only[\s\S]*LOG_SHARDS: applies to LOG_TRANSPORT=stream only/,
    );
    // the Pub/Sub bridge runs over shards and on a cluster too (it adds into the first shard)
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'redis://a:1', LOG_SHARDS: '2', LOG_TRANSPORT: 'stream,pubsub' }, '/srv')).toMatchObject({ transport: 'stream', pubsubBridge: true, shards: 2 });
  });

  it('reads REDIS_WAIT_REPLICAS (no WAIT by default) and refuses it with Pub/Sub alone', () => {
    expect(loadConfig({}, '/srv').waitReplicas).toBe(0);
    expect(loadConfig({ REDIS_WAIT_REPLICAS: '2', LOG_TRANSPORT: 'stream,pubsub' }, '/srv').waitReplicas).toBe(2);
    expect(() => loadConfig({ REDIS_WAIT_REPLICAS: '-1' }, '/srv')).toThrow(/REDIS_WAIT_REPLICAS="-1": must be a whole number >= 0/);
    expect(() => loadConfig({ REDIS_WAIT_REPLICAS: '1', LOG_TRANSPORT: 'pubsub' }, '/srv')).toThrow(/REDIS_WAIT_REPLICAS: applies to LOG_TRANSPORT=stream only/);
  });

  it('reports every bad value at once, one line each', () => {
    let caught: unknown;
    try {
      loadConfig({ LOG_TRANSPORT: 'kafka', LOG_CHANNEL: '../x', HTTP_PORT: 'eighty', ROTATE_BYTES: '-5', REDIS_URL: 'localhost', S3_BUCKET: 'Bad_Bucket', S3_FORCE_PATH_STYLE: 'maybe' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const problems = (caught as ConfigError).problems;
    expect(problems).toHaveLength(7);
    for (const name of ['LOG_TRANSPORT', 'LOG_CHANNEL', 'HTTP_PORT', 'ROTATE_BYTES', 'REDIS_URL', 'S3_BUCKET', 'S3_FORCE_PATH_STYLE']) {
      expect(problems.some((p) => p.startsWith(name))).toBe(true);
    }
  });

  it('takes values from a LOG_CONFIG file, the environment winning', () => {
    const dir = tempDir('config');
    try {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ LOG_CHANNEL: 'fromfile', LOG_DIR: '/var/log/x', HTTP_PORT: 'off' }));
      const config = loadConfig({ LOG_CONFIG: file, LOG_CHANNEL: 'fromenv' });
      expect(config).toMatchObject({ channel: 'fromenv', logDir: '/var/log/x', httpPort: undefined });
      writeFileSync(file, JSON.stringify({ NOT_A_SETTING: 1 }));
      expect(() => loadConfig({ LOG_CONFIG: file })).toThrow(/unknown key "NOT_A_SETTING"/);
    } finally {
      removeDir(dir);
    }
  });

  it('redacts credentials in the logged configuration: the Redis password, the signing secrets', () => {
    const secret = randomBytes(32).toString('base64');
    const config = loadConfig({ REDIS_URL: 'redis://user:secret@redis.internal:6380', LOG_SIGNING_KEYS: `shop=k1:${secret},shop=k2:${secret}` });
    const logged = JSON.stringify(redactedConfig(config));
    expect(logged).not.toContain('secret');
    expect(logged).not.toContain(secret);
    expect(redactedConfig(config).signingKeys).toEqual(['shop=k1', 'shop=k2']);
    expect(() => loadConfig({ LOG_SIGNING_KEYS: `k1:${secret}` })).toThrow(/LOG_SIGNING_KEYS: key k1: name the app it signs for/);
  });

  it('reads LOG_TRANSPORT=stream,pubsub as the stream with the Pub/Sub bridge, in either order', () => {
    expect(loadConfig({}, '/srv')).toMatchObject({ transport: 'stream', pubsubBridge: false });
    expect(loadConfig({ LOG_TRANSPORT: 'pubsub' }, '/srv')).toMatchObject({ transport: 'pubsub', pubsubBridge: false });
    expect(loadConfig({ LOG_TRANSPORT: 'stream,pubsub' }, '/srv')).toMatchObject({ transport: 'stream', pubsubBridge: true });
    expect(loadConfig({ LOG_TRANSPORT: 'pubsub, stream' }, '/srv')).toMatchObject({ transport: 'stream', pubsubBridge: true });
    expect(() => loadConfig({ LOG_TRANSPORT: 'stream,kafka' }, '/srv')).toThrow(/LOG_TRANSPORT="stream,kafka": must be stream, pubsub, or stream,pubsub/);
  });
});
