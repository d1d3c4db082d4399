import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { shardsOf, streamKey } from '@log/protocol';
import { createRedisConnection, type RedisConnection } from '@log/protocol/redis';
import { createPublisher, type Logger } from '@log/publisher';
import { removeDir, sleep, startRedisCluster, tempDir, type ClusterNode, type RedisCluster } from '@log/test-kit';
import { httpGet, readLogs, rng, startServer, type ServerProcess } from './harness';

// Sharded streams on a real Redis Cluster (3 masters, a replica each): every record lands exactly
// once; a master killed mid-run fails over to its replica and what asynchronous replication lost
// is counted as missing, exactly what is absent from disk (none with waitReplicas: 1); a slot
// migrated mid-run loses nothing. Timings from a printed seed (CLUSTER_SEED to replay).

const SEED = Number(process.env.CLUSTER_SEED ?? Date.now() % 1e9);
const SHARDS = 3;
/** The operators' CLI, as they run it (after pnpm build). */
const LOGCTL = join(__dirname, '..', '..', 'logctl', 'dist', 'main.js');

let cluster: RedisCluster;
let client: RedisConnection;
let dir: string;
const servers: ServerProcess[] = [];
const publishers: Logger[] = [];
let channelNo = 0;

beforeAll(async () => {
  console.log(`cluster test seed ${SEED} (replay: CLUSTER_SEED=${SEED})`);
  cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 500 });
  client = createRedisConnection({ clusterNodes: cluster.seeds });
  await client.connect();
}, 60_000);
afterAll(async () => {
  client?.destroy();
  await cluster?.dispose();
});
beforeEach(() => {
  dir = tempDir('cluster');
});
afterEach(async () => {
  // a test that failed half-way may leave nodes or servers paused: the next test needs them
  for (const server of cluster.servers) server.resume();
  for (const server of servers) server.child.kill('SIGCONT');
  await Promise.all(publishers.splice(0).map((log) => log.close(1000)));
  await Promise.all(servers.splice(0).map((server) => server.stop()));
  removeDir(dir);
}, 60_000);

/** A channel whose SHARDS streams are served by every master (the hash tags' slots spread over them), and the master of each shard. */
async function channelOverAllMasters(): Promise<{ channel: string; masters: ClusterNode[] }> {
  for (;;) {
    const channel = `cl${++channelNo}`;
    const masters: ClusterNode[] = [];
    for (const shard of shardsOf(SHARDS)) masters.push(await cluster.masterOf(await cluster.slotOf(streamKey(channel, shard))));
    if (new Set(masters.map((m) => m.id)).size === 3) return { channel, masters };
  }
}

async function startServers(channel: string, names: string[], env: Record<string, string> = {}): Promise<ServerProcess[]> {
  const started = await Promise.all(
    names.map((name) =>
      startServer({
        REDIS_CLUSTER_NODES: cluster.seeds.join(','),
        LOG_SHARDS: String(SHARDS),
        LOG_DIR: join(dir, name),
        LOG_CHANNEL: channel,
        LOG_CONSUMER: name,
        CLAIM_IDLE_MS: '3000',
        CLAIM_INTERVAL_MS: '500',
        ...env,
      }),
    ),
  );
  for (const server of started) servers.push(server);
  return started;
}

/** Publishers made until every shard has one (each picks its shard at random, for its life). */
function publishersOnEveryShard(channel: string, options: { waitReplicas?: number } = {}): Logger[] {
  const byStream = new Map<string, Logger>();
  while (byStream.size < SHARDS) {
    const log = createPublisher(channel, { app: `app${publishers.length % 2}`, clusterNodes: cluster.seeds, shards: SHARDS, maxInFlightFrames: 4, ...options });
    publishers.push(log);
    if (!byStream.has(log.stream!)) byStream.set(log.stream!, log);
  }
  return publishers.slice();
}

/** Logs `perTick` records on every publisher every 10 ms until `until()` is true. */
async function logUntil(logs: Logger[], until: () => boolean, perTick: number): Promise<void> {
  for (let tick = 0; !until(); tick++) {
    for (const log of logs) for (let i = 0; i < perTick; i++) log.info(`tick ${tick} record ${i}`, { tick });
    await sleep(10);
  }
}

interface Tally {
  /** (producer, seq) pairs on disk more than once, over every server's LOG_DIR. */
  duplicates: number;
  /** Per producer: distinct sequence numbers on disk. */
  onDisk: Map<string, Set<number>>;
}

function tallyDisk(names: string[]): Tally {
  const onDisk = new Map<string, Set<number>>();
  let duplicates = 0;
  for (const name of names) {
    for (const records of readLogs(join(dir, name)).values()) {
      for (const record of records) {
        const producer = record.producer as string;
        let seqs = onDisk.get(producer);
        if (!seqs) onDisk.set(producer, (seqs = new Set()));
        if (seqs.has(record.seq as number)) duplicates++;
        seqs.add(record.seq as number);
      }
    }
  }
  return { duplicates, onDisk };
}

interface ProducerRow {
  producer: string;
  received: number;
  missing: number;
  reportedDrops: number;
  duplicates: number;
}

async function stats(server: ServerProcess): Promise<{ totals: Record<string, number>; producers: ProducerRow[] }> {
  return JSON.parse((await httpGet(server.httpPort, '/stats?limit=1000')).body);
}

/**
 * The checker: waits until, for every producer, what is on disk plus what the merged loss report
 * counts missing accounts for everything it sent, then returns the history's numbers.
 */
async function settle(logs: Logger[], names: string[], server: ServerProcess, timeoutMs = 40_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tally = tallyDisk(names);
    const report = await stats(server).catch(() => undefined);
    const rows = new Map((report?.producers ?? []).map((row) => [row.producer, row]));
    const lines = logs.map((log) => {
      const { logged, sent, dropped, buffered } = log.stats();
      const disk = tally.onDisk.get(log.producer)?.size ?? 0;
      const row = rows.get(log.producer);
      return { producer: log.producer, logged, sent, dropped, buffered, disk, absent: logged - dropped - disk, missing: row?.missing ?? -1, received: row?.received ?? -1 };
    });
    const done = lines.every((line) => line.buffered === 0 && line.received === line.disk && line.missing === line.absent);
    if (done || Date.now() > deadline) return { tally, lines, report };
    await sleep(250);
  }
}

describe('logger-server on a Redis Cluster with sharded streams', () => {
  it('spreads records over every master and writes each exactly once; the merged loss report covers all shards', async () => {
    const r = rng(SEED);
    const { channel, masters } = await channelOverAllMasters();
    const names = ['a', 'b'];
    const [a] = await startServers(channel, names);
    const logs = publishersOnEveryShard(channel);
    const perPublisher = logs.map(() => 2000 + r.int(3000));
    for (const [p, log] of logs.entries()) for (let i = 0; i < perPublisher[p]!; i++) log.info(`record ${i}`, { i });
    await Promise.all(logs.map((log) => log.flush()));
    const { tally, lines, report } = await settle(logs, names, a!);

    expect(tally.duplicates).toBe(0);
    for (const [p, line] of lines.entries()) expect(line).toMatchObject({ logged: perPublisher[p], dropped: 0, disk: perPublisher[p], missing: 0, received: perPublisher[p] });
    // every shard's stream holds entries, on three different masters, and nothing is left pending
    for (const [i, shard] of shardsOf(SHARDS).entries()) {
      const key = streamKey(channel, shard);
      expect(Number(await client.sendCommand(['XLEN', key]))).toBeGreaterThan(0);
      expect((await cluster.masterOf(await cluster.slotOf(key))).id).toBe(masters[i]!.id);
      expect(Number(((await client.sendCommand(['XPENDING', key, 'logger-server'])) as unknown[])[0])).toBe(0);
    }
    const total = perPublisher.reduce((sum, n) => sum + n, 0);
    expect(report!.totals).toMatchObject({ producers: logs.length, received: total, missing: 0 });
    // the operator's view: logctl stats reads the same report, merged over the cluster's shards
    const logctl = spawnSync(process.execPath, [LOGCTL, 'stats', '--json'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, REDIS_CLUSTER_NODES: cluster.seeds.join(','), LOG_SHARDS: String(SHARDS), LOG_CHANNEL: channel },
    });
    expect(logctl.status).toBe(0);
    const json = JSON.parse(logctl.stdout) as { totals: Record<string, number>; producers: ProducerRow[] };
    expect(json.totals).toEqual(report!.totals);
    expect(json.producers.map((row) => row.producer).sort()).toEqual(logs.map((log) => log.producer).sort());
    // pages of 2 merged across the shards: every producer once, most recently active first, when
    // no commit moved a producer's last-seen time while the pages were read (a claim may still
    // commit late): the full report is read before and after the pages, and the pages count only
    // when both agree
    let full: Awaited<ReturnType<typeof stats>>;
    let paged: ProducerRow[];
    for (let tries = 0; ; tries++) {
      full = await stats(a!);
      paged = [];
      for (let cursor: number | undefined = 0; cursor !== undefined;) {
        const page = JSON.parse((await httpGet(a!.httpPort, `/stats?limit=2&cursor=${cursor}`)).body) as { producers: ProducerRow[]; cursor?: number };
        expect(page.producers.length).toBeLessThanOrEqual(2);
        for (const row of page.producers) paged.push(row);
        cursor = page.cursor;
      }
      if (JSON.stringify(await stats(a!)) === JSON.stringify(full) || tries >= 20) break;
      await sleep(500);
    }
    expect(paged.map((row) => row.producer)).toEqual(full.producers.map((row) => row.producer));
  }, 90_000);

  it.each([
    ['asynchronous replication: what the failover lost is counted missing, exactly what is absent from disk', 0],
    ['waitReplicas: 1: nothing the publisher sent is lost', 1],
  ])(
    'a master killed mid-run fails over to its replica; %s',
    async (_name, waitReplicas) => {
      const r = rng(SEED + waitReplicas);
      const { channel, masters } = await channelOverAllMasters();
      // One server: with several, a failover that loses the group's delivery state can hand an entry
      // one server wrote to another as new (see "Redis Cluster" in the README).
      const names = ['a'];
      const started = await startServers(channel, names);
      const logs = publishersOnEveryShard(channel, { waitReplicas });
      const victim = masters[r.int(SHARDS)]!;
      const replica = (await cluster.nodes()).find((node) => node.masterId === victim.id)!;
      expect(replica).toBeDefined();

      let stop = false;
      const logging = logUntil(logs, () => stop, 20);
      await sleep(1000 + r.int(1000));
      // The replica is cut off (paused, its replication link closed): what the master takes from now
      // on lives on the master alone and dies with it. First the servers go on reading (records on
      // disk whose commits die with the master), then they are paused too (records never read).
      replica.server.pause();
      await cluster.cli(victim.port, 'CLIENT', 'KILL', 'TYPE', 'replica');
      await sleep(300 + r.int(300));
      for (const server of started) server.child.kill('SIGSTOP');
      await sleep(200 + r.int(300));
      await victim.server.kill();
      replica.server.resume();
      for (const server of started) server.child.kill('SIGCONT');
      await cluster.waitHealthy();
      expect((await cluster.masterOf(victim.slots[0]![0])).id).toBe(replica.id);
      // the killed master comes back, as a replica of the new one (waitReplicas needs one)
      await victim.server.start();
      await cluster.waitHealthy();
      for (let tries = 0; (await cluster.nodes()).find((node) => node.port === victim.port)?.masterId !== replica.id; tries++) {
        if (tries > 100) throw new Error('the restarted master did not become a replica of the new one');
        await sleep(100);
      }
      await sleep(1000 + r.int(1000)); // logging goes on to the new master
      stop = true;
      await logging;
      await Promise.all(logs.map((log) => log.close(30_000)));
      const { tally, lines } = await settle(logs, names, started[0]!);
      console.log(`failover (waitReplicas ${waitReplicas}): ${lines.map((l) => `${l.producer} logged ${l.logged} on disk ${l.disk} received ${l.received} missing ${l.missing}`).join('; ')}`);

      if (process.env.CLUSTER_DEBUG)
        console.log(
          started[0]!
            .output()
            .split('\n')
            .filter((l) => !l.includes('"info"') || l.includes('claimed') || l.includes('reachable'))
            .join('\n'),
        );
      expect(tally.duplicates).toBe(0);
      for (const line of lines) {
        expect(line.buffered).toBe(0);
        expect(line.received).toBe(line.disk);
        expect(line.missing).toBe(line.absent);
      }
      const lost = lines.reduce((sum, line) => sum + line.absent, 0);
      if (waitReplicas > 0) expect(lost).toBe(0);
      else expect(lost).toBeGreaterThan(0); // the paused replica really lost frames the master had acknowledged
    },
    120_000,
  );

  it.each([
    ["without it, the entries a lost delivery hands out again are on two servers' disks", 0],
    ['REDIS_WAIT_REPLICAS=1: a server writes only deliveries a replica has, so every record is on one disk once', 1],
  ])(
    "two servers and a failover that loses the group's record of a delivery; %s",
    async (_name, waitReplicas) => {
      const r = rng(SEED + 11 + waitReplicas);
      const t0 = Date.now();
      const step = (what: string) => process.env.CLUSTER_DEBUG && console.log(`${Date.now() - t0} ms: ${what}`);
      const { channel, masters } = await channelOverAllMasters();
      const names = ['a', 'b'];
      const [a, b] = await startServers(channel, names, { REDIS_WAIT_REPLICAS: String(waitReplicas) });
      const shard = r.int(SHARDS);
      const victim = masters[shard]!;
      const victimStream = streamKey(channel, shardsOf(SHARDS)[shard]);
      const replica = (await cluster.nodes()).find((node) => node.masterId === victim.id)!;
      expect(replica).toBeDefined();
      // History: a backlog every replica has (the publishers WAIT for one), then the victim's replica
      // is cut off and server a alone reads it: a's deliveries (and, without WAIT, its commits) live
      // on the victim alone. The victim dies; b, resumed first, reads from the promoted replica.
      for (const server of [a!, b!]) server.child.kill('SIGSTOP');
      const logs = publishersOnEveryShard(channel, { waitReplicas: 1 });
      const perPublisher = logs.map(() => 500 + r.int(1500));
      for (const [p, log] of logs.entries()) for (let i = 0; i < perPublisher[p]!; i++) log.info(`record ${i}`, { i });
      await Promise.all(logs.map((log) => log.flush()));
      const onVictim = logs.filter((log) => log.stream === victimStream);
      const elsewhere = logs.filter((log) => log.stream !== victimStream);
      step('backlog flushed');
      replica.server.pause();
      await cluster.cli(victim.port, 'CLIENT', 'KILL', 'TYPE', 'replica');
      a!.child.kill('SIGCONT');
      step('replica cut off, a resumed');
      const written = (names: string[], group: Logger[]) => {
        const tally = tallyDisk(names);
        return group.every((log) => (tally.onDisk.get(log.producer)?.size ?? 0) === log.stats().logged);
      };
      const until = async (done: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000) => {
        for (const deadline = Date.now() + timeoutMs; !(await done()); await sleep(100)) if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      };
      // asked of the victim itself: the test's cluster client may still route the slot to the node
      // that was its master before an earlier test's failover, now the replica paused here
      const pendingOnVictim = async () => Number((await cluster.cli(victim.port, 'XPENDING', victimStream, 'logger-server')).split('\n')[0]);
      await until(() => written(['a'], elsewhere), 'a wrote the other shards');
      // ... and committed it (acknowledged on the victim alone), so no commit of a's is in flight
      if (waitReplicas === 0) await until(async () => written(['a'], onVictim) && (await pendingOnVictim()) === 0, 'a wrote and committed the victim shard');
      else await sleep(1500 + r.int(1000)); // a reads the victim shard and holds it back: no replica confirms
      if (waitReplicas > 0) expect(onVictim.some((log) => tallyDisk(['a']).onDisk.has(log.producer))).toBe(false);
      step('a read the victim shard');
      a!.child.kill('SIGSTOP');
      await victim.server.kill();
      replica.server.resume();
      await cluster.waitHealthy();
      step('failed over');
      expect((await cluster.masterOf(victim.slots[0]![0])).id).toBe(replica.id);
      // the killed master comes back as a replica of the new one (REDIS_WAIT_REPLICAS needs one)
      await victim.server.start();
      await cluster.waitHealthy();
      step('victim back');
      b!.child.kill('SIGCONT');
      await until(() => written(['b'], onVictim), 'b wrote the victim shard from the promoted replica');
      a!.child.kill('SIGCONT');
      step('b wrote the victim shard');
      const { tally, lines } = await settle(logs, names, b!);
      console.log(
        `two servers, failover (REDIS_WAIT_REPLICAS ${waitReplicas}): on two disks ${tally.duplicates}; ${lines.map((l) => `${l.producer} logged ${l.logged} on disk ${l.disk} missing ${l.missing}`).join('; ')}`,
      );

      for (const line of lines) expect(line).toMatchObject({ buffered: 0, dropped: 0, absent: 0, missing: 0 });
      if (waitReplicas > 0) {
        // (the report may count duplicates: a frame whose WAIT timed out on the loaded machine is
        // sent again and its copy dropped; that is the publisher's waitReplicas, and not on disk)
        expect(tally.duplicates).toBe(0);
      } else {
        // the hazard is real: the victim shard's records are on both disks, which nothing counts
        expect(tally.duplicates).toBe(onVictim.reduce((sum, log) => sum + log.stats().logged, 0));
      }
    },
    120_000,
  );

  it('a slot migrated to another master mid-run loses nothing', async () => {
    const r = rng(SEED + 7);
    const { channel, masters } = await channelOverAllMasters();
    const names = ['a'];
    const [a] = await startServers(channel, names);
    const logs = publishersOnEveryShard(channel);
    const shard = r.int(SHARDS);
    const slot = await cluster.slotOf(streamKey(channel, shardsOf(SHARDS)[shard]));
    const to = masters[(shard + 1) % SHARDS]!;

    let stop = false;
    const logging = logUntil(logs, () => stop, 20);
    await sleep(1000 + r.int(1000));
    const moved = await cluster.migrateSlot(slot, to);
    expect(moved).toBeGreaterThan(0);
    expect((await cluster.masterOf(slot)).id).toBe(to.id);
    await sleep(1000 + r.int(1000));
    stop = true;
    await logging;
    await Promise.all(logs.map((log) => log.close(30_000)));
    const { tally, lines } = await settle(logs, names, a!);

    expect(tally.duplicates).toBe(0);
    for (const line of lines) expect(line).toMatchObject({ buffered: 0, dropped: 0, absent: 0, missing: 0, received: line.logged });
  }, 90_000);
});
