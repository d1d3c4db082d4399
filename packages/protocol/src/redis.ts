// `@log/protocol/redis`: the one way the pipeline's parts make a node-redis client and run a Lua
// script. A subpath of its own, so that `@log/protocol` itself stays free of `redis` (a peer
// dependency here): the archiver imports the protocol and never talks to Redis.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createClient, createCluster, type RedisClientOptions, type RedisClientType, type RedisClusterType } from 'redis';
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
  sendCommand(args: Array<string | Buffer>, options?: CommandOptions): Promise<unknown>;
}

/** node-redis's per-command options (typeMapping: bulk strings as Buffers, ...). */
type CommandOptions = Parameters<RedisClientType['sendCommand']>[1];

/**
 * What the pipeline's parts send commands through: one Redis (a node-redis client), or a Redis
 * Cluster, where each command goes to the master serving its key (see routingKey) and follows
 * MOVED and ASK redirects and failovers. Made by createRedisConnection.
 */
export interface RedisConnection extends CommandSender {
  /**
   * Sends one command. On a cluster it goes to the master of `routeKey` when given (a keyless
   * command that must reach a key's node, as WAIT after an XADD), else of the command's own key.
   */
  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>, options?: CommandOptions, routeKey?: string): Promise<T>;
  connect(): Promise<unknown>;
  destroy(): void;
  /** True while commands can be sent (a cluster: while its slot map is known). */
  readonly isReady: boolean;
  /** node-redis's events: a client's ('ready', 'reconnecting', ...), a cluster's ('node-ready', 'node-reconnecting', ...). */
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  /** Lets the process exit while this connection is all that is left open (see ClusterConnection.unref). */
  unref(): void;
}

/** Options of createRedisConnection: a client's, and the seed nodes of a cluster. */
export interface RedisConnectionOptions extends RedisOptions {
  /**
   * Seed URLs of a Redis Cluster (any few of its nodes; the rest are discovered). When given,
   * `url` is not used; the other options (TLS, credentials, socket) apply to every node.
   */
  clusterNodes?: readonly string[];
}

/**
 * A connection (not connected yet) to one Redis or, with `clusterNodes`, to a Redis Cluster, with
 * an 'error' listener (see createRedisClient). On one Redis it is the node-redis client itself.
 */
export function createRedisConnection(options: RedisConnectionOptions = {}, onError: (error: unknown) => void = ignore): RedisConnection {
  const { clusterNodes, ...clientOptions } = options;
  if (clusterNodes === undefined || clusterNodes.length === 0) return createRedisClient(clientOptions, onError) as unknown as RedisConnection;
  return new ClusterConnection(clusterNodes, clientOptions, onError);
}

/** The key a cluster routes a command by: the stream of XREADGROUP, the first key of a script, else the first argument. */
function routingKey(args: ReadonlyArray<string | Buffer>): string | Buffer | undefined {
  switch (String(args[0]).toUpperCase()) {
    case 'XREADGROUP':
    case 'XREAD': {
      const at = args.findIndex((arg) => String(arg).toUpperCase() === 'STREAMS');
      return at < 0 ? undefined : args[at + 1];
    }
    case 'EVAL':
    case 'EVALSHA':
      return Number(args[2]) > 0 ? args[3] : undefined;
    case 'XGROUP':
    case 'XINFO':
      return args[2];
    case 'WAIT':
    case 'PING':
    case 'SCRIPT':
      return undefined;
    default:
      return args[1];
  }
}

/** A Redis Cluster behind the RedisConnection interface: node-redis's cluster client, routed by routingKey. */
class ClusterConnection implements RedisConnection {
  private readonly cluster: RedisClusterType;
  private unrefed = false;

  constructor(seeds: readonly string[], options: RedisOptions, onError: (error: unknown) => void) {
    const { url: _url, ...defaults } = options;
    this.cluster = createCluster({
      rootNodes: seeds.map((url) => ({ url })),
      defaults: defaults as RedisClientOptions,
    }) as unknown as RedisClusterType;
    this.cluster.on('error', onError);
    // A node's connection failing is what a failover looks like from here: commands to it fail
    // (and are retried by their callers) until the cluster client has found the new topology.
    this.cluster.on('node-error', () => {});
  }

  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>, options?: CommandOptions, routeKey?: string): Promise<T> {
    if (routeKey !== undefined) return this.sendToNodeOf<T>(routeKey, args, options);
    return this.cluster.sendCommand<T>(routingKey(args), false, args as Array<string | Buffer>, options as never);
  }

  /**
   * Straight to the connection of the master serving `key`: node-redis applies a command's
   * cluster policy otherwise, and WAIT's (all shards, least of the replies) would ask every
   * master, and hang on any without a replica.
   */
  private async sendToNodeOf<T>(key: string, args: ReadonlyArray<string | Buffer>, options?: CommandOptions): Promise<T> {
    const node = await this.cluster.getNodeClientForKey(key);
    return (await node.sendCommand(args as Array<string | Buffer>, options as never)) as T;
  }

  connect(): Promise<unknown> {
    return this.cluster.connect();
  }

  destroy(): void {
    this.cluster.destroy();
  }

  get isReady(): boolean {
    return this.cluster.isReady;
  }

  /**
   * Lets the process exit while the cluster's connections are all that is left open (a
   * publisher's: an app ends without close()). node-redis's cluster has no unref of its own, and
   * makes a client per node as it finds them (at start, after a failover, for a new node): each is
   * unref'd as it connects, and a node client once unref'd keeps its reconnected sockets so. Only
   * a node's first connect attempt holds the process (up to its connect timeout), and the slot
   * discovery's short-lived client.
   */
  unref(): void {
    if (this.unrefed) return;
    this.unrefed = true;
    const unrefNodes = () => {
      for (const node of this.cluster.nodeByAddress.values()) node.client?.unref();
    };
    unrefNodes();
    this.cluster.on('node-connect', unrefNodes);
  }

  on(event: string, listener: (...args: unknown[]) => void): this {
    this.cluster.on(event, listener);
    return this;
  }
}

/**
 * A Lua script called by its SHA-1 (EVALSHA), so a batch does not carry the script's text. A
 * Redis that does not know it (restarted, SCRIPT FLUSH, another node of a cluster) answers
 * NOSCRIPT: it is called once with its text (EVAL, which also caches it there). EVAL, unlike
 * SCRIPT LOAD, has keys, so on a cluster it reaches the node the script runs on.
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
  async run<T>(client: CommandSender, keys: readonly string[], args: ReadonlyArray<string | number | Buffer>, options?: CommandOptions): Promise<T> {
    const command: Array<string | Buffer> = ['EVALSHA', this.sha, String(keys.length)];
    for (const key of keys) command.push(key);
    for (const arg of args) command.push(typeof arg === 'number' ? String(arg) : arg);
    try {
      return (await client.sendCommand(command, options)) as T;
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      command[0] = 'EVAL';
      command[1] = this.source;
      return (await client.sendCommand(command, options)) as T;
    }
  }
}
