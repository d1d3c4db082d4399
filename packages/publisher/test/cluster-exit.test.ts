import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FRAME_FIELD, decodeFrame } from '@log/protocol';
import { createRedisConnection } from '@log/protocol/redis';
import { startRedisCluster } from '@log/test-kit';
import { RESP_TYPES } from 'redis';

const run = promisify(execFile);

// On one Redis the publisher's connection is unref'd, so an app ends when its work is done; on a
// cluster each node's connection is (see ClusterConnection.unref), so the same holds there.
it('an app on a Redis Cluster ends by itself without close(), after sending everything it logged', async () => {
  const cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  const connection = createRedisConnection({ clusterNodes: cluster.seeds });
  try {
    const channel = `cluster-exit-${process.pid}`;
    // execFile's timeout kills an app that does not end: the promise then rejects, failing the test
    const { stdout } = await run(process.execPath, [join(__dirname, 'fixtures', 'cluster-exit-app.js'), cluster.seeds.slice(0, 1).join(','), channel, '5000'], { timeout: 15_000 });
    const stream = stdout.trim();
    expect(stream).toMatch(new RegExp(`^log:\\{${channel}:[0-2]\\}$`));
    await connection.connect();
    const entries = (await connection.sendCommand(['XRANGE', stream, '-', '+'], { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } })) as Array<[Buffer, Buffer[]]>;
    let records = 0;
    for (const [, fields] of entries) records += decodeFrame(fields[fields.findIndex((field) => String(field) === FRAME_FIELD) + 1]!).header.count;
    expect(records).toBe(5000);
  } finally {
    connection.destroy();
    await cluster.dispose();
  }
}, 60_000);
