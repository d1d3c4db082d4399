import { createRedisConnection, type RedisConnection } from '@log/protocol/redis';
import { RESP_TYPES } from 'redis';
import type { Settings } from './settings';

/**
 * The Redis the servers read: REDIS_URL, or the cluster of REDIS_CLUSTER_NODES. Connected, with no
 * reconnect loop, so an unreachable Redis fails fast with its error (the failed command or
 * connect() reports it).
 */
export async function connect(settings: Pick<Settings, 'redisUrl' | 'clusterNodes'>): Promise<RedisConnection> {
  const client = createRedisConnection({ url: settings.redisUrl, clusterNodes: settings.clusterNodes, socket: { connectTimeout: 3000, reconnectStrategy: false } });
  await client.connect();
  return client;
}

/** Options of sendCommand that keep bulk strings as Buffers (frames are bytes). */
export const AS_BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

/** Stream entries as node-redis returns them for XRANGE / XREAD with AS_BUFFERS. */
export type RawEntry = [Buffer, Buffer[]];

/** The fields of a raw entry as a map of name to bytes. */
export function entryFields(entry: RawEntry): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  const list = entry[1];
  for (let i = 0; i + 1 < list.length; i += 2) fields.set(String(list[i]), list[i + 1] as Buffer);
  return fields;
}
