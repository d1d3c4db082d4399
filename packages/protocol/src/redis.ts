// `@log/protocol/redis`: the one way the pipeline's parts make a node-redis client and run a Lua
// script. A subpath of its own, so that `@log/protocol` itself stays free of `redis` (a peer
// dependency here): the archiver imports the protocol and never talks to Redis.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createClient, type RedisClientOptions, type RedisClientType } from 'redis';
import { resolveRedisUrl } from './redis-url';

/** Options of createRedisClient: node-redis's, with `url` defaulting as resolveRedisUrl says. */
export type RedisOptions = RedisClientOptions;

/**
 * A node-redis client (not connected yet) with an 'error' listener. node-redis emits 'error' on
 * every failed (re)connect, and an 'error' nobody listens to crashes the process; the failure
 * reaches callers through the commands that fail, so the default listener ignores it.
 */
export function createRedisClient(options: RedisOptions = {}, onError: (error: unknown) => void = ignore): RedisClientType {
  const client = createClient({ ...options, url: resolveRedisUrl(options.url) }) as RedisClientType;
  client.on('error', onError);
  return client;
}

function ignore(): void {
  // see createRedisClient
}

/** What running a script needs of a client: node-redis's sendCommand. */
export interface CommandSender {
  sendCommand(args: Array<string | Buffer>, options?: ScriptReplyOptions): Promise<unknown>;
}

/** node-redis's command options as a script's reply needs them (typeMapping: bulk strings as Buffers). */
export type ScriptReplyOptions = { typeMapping?: Record<number, unknown> };

/**
 * A Lua script sent to Redis once (SCRIPT LOAD) and then called by its SHA-1 (EVALSHA), so a
 * batch does not carry the script's text. A Redis that does not know it (restarted, SCRIPT
 * FLUSH, another node) answers NOSCRIPT: it is loaded again and called once more.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** The script in a `.lua` file (read once, at start). */
  static fromFile(path: string): LuaScript {
    return new LuaScript(readFileSync(path, 'utf8'));
  }

  /** EVALSHA with `keys` and `args` (Buffers go as they are: frames are bytes); rejects with what Redis answered (the caller wraps it). `options` shape the reply. */
  async run<T>(client: CommandSender, keys: readonly string[], args: ReadonlyArray<string | number | Buffer>, options?: ScriptReplyOptions): Promise<T> {
    const command: Array<string | Buffer> = ['EVALSHA', this.sha, String(keys.length)];
    for (const key of keys) command.push(key);
    for (const arg of args) command.push(typeof arg === 'number' ? String(arg) : arg);
    try {
      return (await client.sendCommand(command, options)) as T;
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      await client.sendCommand(['SCRIPT', 'LOAD', this.source]);
      return (await client.sendCommand(command, options)) as T;
    }
  }
}
