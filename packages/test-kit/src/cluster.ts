import { execFile } from 'node:child_process';
import { TestKitError } from './errors';
import { sleep, which } from './process';
import { startRedis, type RedisServer } from './redis';

export interface RedisClusterOptions {
  /** Master nodes; the 16384 slots are split evenly between them. @defaultValue 3 */
  masters?: number;
  /** Replicas per master. @defaultValue 1 */
  replicas?: number;
  /**
   * cluster-node-timeout: how long a master may be unreachable before its replica takes over
   * (failover happens about twice this after a kill). @defaultValue 1000
   */
  nodeTimeoutMs?: number;
}

/** One node of the cluster as CLUSTER NODES describes it now. */
export interface ClusterNode {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId: string | undefined;
  /** Slot ranges served, as [first, last] (masters only). */
  slots: Array<[number, number]>;
  /** Marked failing (fail or fail?) by the node asked. */
  failing: boolean;
  server: RedisServer;
}

/** A real Redis Cluster owned by a test: `redis-server --cluster-enabled yes` processes joined by `redis-cli --cluster create`. */
export interface RedisCluster {
  /** Every node, in start order. */
  readonly servers: readonly RedisServer[];
  /** Seed URLs of every node (redis://127.0.0.1:port), for REDIS_CLUSTER_NODES and `clusterNodes`. */
  readonly seeds: readonly string[];
  /** The topology as a live node sees it. */
  nodes(): Promise<ClusterNode[]>;
  /** The slot of a key (CLUSTER KEYSLOT). */
  slotOf(key: string): Promise<number>;
  /** The master serving `slot` now. */
  masterOf(slot: number): Promise<ClusterNode>;
  /** Resolves when every slot is served by a live master, every live node agrees, and cluster_state is ok. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Kills a master (SIGKILL) and resolves when a replica has taken over its slots; returns the new master. */
  failover(master: ClusterNode, timeoutMs?: number): Promise<ClusterNode>;
  /** Moves `slot` with its keys to the master `to` (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE). */
  migrateSlot(slot: number, to: ClusterNode): Promise<number>;
  /** Runs redis-cli against a node: `cli(port, 'CLUSTER', 'INFO')`. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** Stops every node and removes their directories. */
  dispose(): Promise<void>;
}

/** Path of redis-cli, or a TestKitError that says how to install it. */
function redisCliBinary(): string {
  const path = process.env.REDIS_CLI_BIN ?? which('redis-cli');
  if (!path) throw new TestKitError('REDIS_SERVER_MISSING', 'redis-cli is not installed; cluster tests need it. Install it with: apt-get install -y redis-tools');
  return path;
}

/**
 * Starts `masters` x (1 + `replicas`) redis-servers with cluster mode on, on free ports, and joins
 * them with `redis-cli --cluster create ... --cluster-replicas N --cluster-yes`. Slots stay served
 * by the other masters while one fails over (cluster-require-full-coverage no).
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  const cliPath = redisCliBinary();
  const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(nodeTimeoutMs), '--cluster-require-full-coverage', 'no'];
  // A replica may always take over, however long it was cut off (the test decides what it lost).
  args.push('--cluster-replica-validity-factor', '0');
  const servers = await Promise.all(Array.from({ length: masters * (1 + replicas) }, () => startRedis({ args })));
  const byPort = new Map(servers.map((server) => [server.port, server]));

  const cli = (port: number, ...command: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(cliPath, ['-p', String(port), ...command], { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
        if (error) reject(new TestKitError('COMMAND_FAILED', `redis-cli -p ${port} ${command.join(' ')} failed: ${stderr || error.message}`, { cause: error }));
        else resolve(stdout);
      });
    });
  const alive = (server: RedisServer) => server.pid !== undefined && isRunning(server.pid);

  const nodes = async (): Promise<ClusterNode[]> => {
    let lastError: unknown;
    for (const server of servers) {
      if (!alive(server)) continue;
      try {
        return parseNodes(await cli(server.port, 'CLUSTER', 'NODES'), byPort);
      } catch (error) {
        lastError = error;
      }
    }
    throw new TestKitError('COMMAND_FAILED', 'no live cluster node answered CLUSTER NODES', { cause: lastError });
  };
  const slotOf = async (key: string) => Number((await cli(servers[0]!.port, 'CLUSTER', 'KEYSLOT', key)).trim());
  const masterOf = async (slot: number) => {
    const master = (await nodes()).find((node) => node.role === 'master' && !node.failing && node.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!master) throw new TestKitError('COMMAND_FAILED', `no live master serves slot ${slot}`);
    return master;
  };

  const waitHealthy = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    let why = '';
    for (;;) {
      try {
        why = await unhealthy();
        if (why === '') return;
      } catch (error) {
        why = String(error);
      }
      if (Date.now() > deadline) throw new TestKitError('SERVICE_START_FAILED', `the cluster did not become healthy within ${timeoutMs} ms: ${why}`);
      await sleep(100);
    }
  };
  const unhealthy = async (): Promise<string> => {
    const live = servers.filter(alive);
    const views = await Promise.all(live.map(async (server) => ({ server, info: await cli(server.port, 'CLUSTER', 'INFO'), nodes: parseNodes(await cli(server.port, 'CLUSTER', 'NODES'), byPort) })));
    for (const { server, info, nodes: seen } of views) {
      if (!/cluster_state:ok/.test(info)) return `node ${server.port} says cluster_state is not ok`;
      let covered = 0;
      for (const node of seen) {
        if (node.role !== 'master' || node.slots.length === 0) continue;
        if (node.failing || !alive(node.server)) return `node ${server.port} still routes slots to ${node.port}, which is down`;
        for (const [a, b] of node.slots) covered += b - a + 1;
      }
      if (covered !== 16384) return `node ${server.port} sees ${covered} of 16384 slots served`;
    }
    const signature = (seen: ClusterNode[]) =>
      seen
        .filter((node) => node.role === 'master' && node.slots.length > 0)
        .map((node) => `${node.port}:${JSON.stringify(node.slots)}`)
        .sort()
        .join(' ');
    const first = signature(views[0]!.nodes);
    for (const view of views) if (signature(view.nodes) !== first) return `node ${view.server.port} disagrees about who serves which slots`;
    return '';
  };

  const failover = async (master: ClusterNode, timeoutMs = 30_000) => {
    await master.server.kill();
    await waitHealthy(timeoutMs);
    const promoted = (await nodes()).find((node) => node.role === 'master' && node.slots.length > 0 && node.slots[0]![0] === master.slots[0]![0]);
    if (!promoted) throw new TestKitError('COMMAND_FAILED', `no replica took over the slots of ${master.port}`);
    return promoted;
  };

  const migrateSlot = async (slot: number, to: ClusterNode) => {
    const from = await masterOf(slot);
    if (from.id === to.id) return 0;
    await cli(to.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', from.id);
    await cli(from.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', to.id);
    let moved = 0;
    for (;;) {
      const keys = (await cli(from.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100')).split('\n').filter((key) => key !== '');
      if (keys.length === 0) break;
      const reply = await cli(from.port, 'MIGRATE', '127.0.0.1', String(to.port), '', '0', '10000', 'KEYS', ...keys);
      if (!/OK|NOKEY/.test(reply)) throw new TestKitError('COMMAND_FAILED', `MIGRATE of slot ${slot} answered ${reply.trim()}`);
      moved += keys.length;
    }
    // The new owner first, then the old one, then everyone (as redis-cli --cluster reshard does).
    for (const node of [to, from, ...(await nodes()).filter((n) => n.role === 'master' && !n.failing && n.id !== to.id && n.id !== from.id)]) {
      await cli(node.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
    }
    return moved;
  };

  try {
    const created = await cli(servers[0]!.port, '--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', String(replicas), '--cluster-yes');
    if (!/All 16384 slots covered/.test(created)) throw new TestKitError('SERVICE_START_FAILED', `redis-cli --cluster create did not cover every slot:\n${created}`);
    await waitHealthy();
    // Replicas known as such by everyone (a replica still syncing would not take over on failover).
    const deadline = Date.now() + 30_000;
    while ((await nodes()).filter((node) => node.role === 'replica').length < masters * replicas) {
      if (Date.now() > deadline) throw new TestKitError('SERVICE_START_FAILED', 'cluster replicas did not attach within 30 s');
      await sleep(100);
    }
  } catch (error) {
    await Promise.all(servers.map((server) => server.dispose()));
    throw error;
  }

  return {
    servers,
    seeds: servers.map((server) => server.url),
    nodes,
    slotOf,
    masterOf,
    waitHealthy,
    failover,
    migrateSlot,
    cli,
    dispose: async () => {
      await Promise.all(servers.map((server) => server.dispose()));
    },
  };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** CLUSTER NODES text: `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`. */
function parseNodes(text: string, byPort: ReadonlyMap<number, RedisServer>): ClusterNode[] {
  const nodes: ClusterNode[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, address, flags, master] = parts as [string, string, string, string];
    const port = Number(/:(\d+)@/.exec(address)?.[1]);
    const server = byPort.get(port);
    if (!server) continue; // a node forgotten or not yet known by address
    const slots: Array<[number, number]> = [];
    for (const range of parts.slice(8)) {
      if (range.startsWith('[')) continue; // a slot being imported or migrated
      const [a, b] = range.split('-');
      slots.push([Number(a), Number(b ?? a)]);
    }
    const flagList = flags.split(',');
    nodes.push({
      id,
      port,
      role: flagList.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? undefined : master,
      slots,
      failing: flagList.includes('fail') || flagList.includes('fail?'),
      server,
    });
  }
  return nodes;
}
