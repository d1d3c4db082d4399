import { startRedisCluster, tcpAskForTest } from './testing';

describe('test kit: redis cluster', () => {
  it('starts 3 masters with a replica each, serves every slot, fails a killed master over to its replica and migrates a slot', async () => {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 500 });
    try {
      const nodes = await cluster.nodes();
      const masters = nodes.filter((node) => node.role === 'master');
      expect(masters).toHaveLength(3);
      expect(nodes.filter((node) => node.role === 'replica')).toHaveLength(3);
      let slots = 0;
      for (const master of masters) for (const [a, b] of master.slots) slots += b - a + 1;
      expect(slots).toBe(16384);
      expect(cluster.seeds).toHaveLength(6);

      const key = 'kit-key';
      const slot = await cluster.slotOf(key);
      const owner = await cluster.masterOf(slot);
      expect(await tcpAskForTest(owner.port, `SET ${key} v\r\n`)).toBe('+OK\r\n');
      // every other master redirects
      for (const master of masters.filter((m) => m.id !== owner.id)) expect(await tcpAskForTest(master.port, `GET ${key}\r\n`)).toMatch(new RegExp(`^-MOVED ${slot} `));
      // wait until the replica has it, then kill the master: the replica serves the slot
      await cluster.cli(owner.port, 'WAIT', '1', '5000');
      const promoted = await cluster.failover(owner);
      expect(promoted.id).not.toBe(owner.id);
      expect(promoted.port).not.toBe(owner.port);
      expect((await cluster.masterOf(slot)).id).toBe(promoted.id);
      expect(await tcpAskForTest(promoted.port, `GET ${key}\r\n`)).toBe('$1\r\nv\r\n');

      // a slot with its key moved to another master
      const target = (await cluster.nodes()).find((node) => node.role === 'master' && !node.failing && node.slots.length > 0 && node.id !== promoted.id)!;
      expect(await cluster.migrateSlot(slot, target)).toBe(1);
      expect((await cluster.masterOf(slot)).id).toBe(target.id);
      expect(await tcpAskForTest(target.port, `GET ${key}\r\n`)).toBe('$1\r\nv\r\n');
      expect(await tcpAskForTest(promoted.port, `GET ${key}\r\n`)).toMatch(/^-MOVED/);
    } finally {
      await cluster.dispose();
    }
    for (const server of cluster.servers) await expect(tcpAskForTest(server.port, 'PING\r\n', 500)).rejects.toThrow();
  }, 60_000);
});
