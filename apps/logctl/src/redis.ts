import { createRedisClient } from '@log/protocol/redis';
import { RESP_TYPES, type RedisClientType } from 'redis';

/** A client for one command: no reconnect loop, so an unreachable Redis fails fast with its error. */
export async function connect(url: string): Promise<RedisClientType> {
  const client = createRedisClient({ url, socket: { connectTimeout: 3000, reconnectStrategy: false } }); // the failed command or connect() reports errors
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
