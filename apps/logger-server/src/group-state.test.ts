import { groupStateKeys, streamKey } from '@log/protocol';
import { useRedis } from '../test/harness';
import { GroupState, type ProducerCommit } from './group-state';

const shared = useRedis();
let n = 0;

const commit = (producer: string, written: number[], over: Partial<ProducerCommit> = {}): ProducerCommit => ({
  origin: `${producer}/${over.app ?? 'shop'}/${over.host ?? 'h'}`,
  producer,
  app: 'shop',
  host: 'h',
  takenOut: 0,
  reportedDrops: 0,
  written,
  seen: [],
  dead: [],
  reasserted: [],
  ...over,
});

/** A channel with a group, `entries` entries read (pending) by consumer c1, and c1's state with its lease. */
async function setUp(entries = 0) {
  const channel = `gs${++n}`;
  const key = streamKey(channel);
  await shared.client.sendCommand(['XGROUP', 'CREATE', key, 'g', '0', 'MKSTREAM']);
  const ids: string[] = [];
  for (let i = 0; i < entries; i++) ids.push(await shared.client.xAdd(key, '*', { f: `e${i}` }));
  if (entries > 0) await shared.client.sendCommand(['XREADGROUP', 'GROUP', 'g', 'c1', 'COUNT', String(entries), 'STREAMS', key, '>']);
  const state = new GroupState(shared.client, channel, 'g', 'c1');
  await state.acquireLease();
  return { channel, key, ids, state };
}

let tokens = 0;
const token = () => `t${++tokens}`;
const pending = async (key: string) => Number(((await shared.client.sendCommand(['XPENDING', key, 'g'])) as unknown[])[0]);

describe('GroupState.commit', () => {
  it('acknowledges, stores checkpoints and merges the ledger; missing is what no commit covered', async () => {
    const { key, ids, state } = await setUp(2);
    const checkpoints = new Map([['shop', { offset: 120, origin: 'p1/shop/h', seq: 10 }]]);
    expect(await state.commit(ids, checkpoints, [commit('p1', [1, 5, 9, 10], { dead: [7, 7], reportedDrops: 4 })], token())).toEqual({ kind: 'committed' });
    expect(await pending(key)).toBe(0);
    expect(await state.checkpoints()).toEqual(checkpoints);
    const report = await state.report();
    expect(report.totals).toEqual({ producers: 1, received: 7, duplicates: 0, deadLettered: 1, reportedDrops: 4, missing: 2, conflicts: 0 }); // 6 and 8
    expect(report.producers).toEqual([expect.objectContaining({ producer: 'p1', app: 'shop', received: 7, deadLettered: 1, missing: 2, highest: 10 })]);
    expect(await state.commit([], new Map(), [commit('p1', [6, 6, 8, 8])], token())).toEqual({ kind: 'committed' });
    expect((await state.totals()).missing).toBe(0);
    // the producer's own counters add up over commits (set from what the commit read, not incremented)
    expect((await state.report()).producers).toEqual([expect.objectContaining({ producer: 'p1', received: 9, deadLettered: 1, reportedDrops: 4, missing: 0 })]);
    await state.releaseLease();
  });

  it('counts a small leading gap of a new origin as missing, never one a header claims near 2^53', async () => {
    const { state } = await setUp();
    await state.commit([], new Map(), [commit('small', [5, 6])], token());
    expect((await state.totals()).missing).toBe(4);
    await state.commit([], new Map(), [commit('huge', [Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER])], token());
    await state.commit([], new Map(), [commit('huge', [Number.MAX_SAFE_INTEGER - 5, Number.MAX_SAFE_INTEGER - 5])], token());
    expect(await state.totals()).toMatchObject({ missing: 4, received: 5 }); // the late one below its first fills no gap
    await state.releaseLease();
  });

  it('commits nothing and names the records when some server of the group already committed them', async () => {
    const { key, ids, state } = await setUp(1);
    await state.commit([], new Map(), [commit('p1', [1, 100])], token());
    const outcome = await state.commit(ids, new Map([['shop', { offset: 1, origin: 'p1/shop/h', seq: 150 }]]), [commit('p1', [90, 110, 140, 150]), commit('p2', [1, 10])], token());
    expect(outcome).toEqual({ kind: 'overlap', ranges: [{ origin: 'p1/shop/h', start: 90, end: 100 }] });
    expect(await pending(key)).toBe(1);
    expect(await state.checkpoints()).toEqual(new Map());
    expect((await state.totals()).received).toBe(100);
    // taken out, the rest commits; the taken-out records count as duplicates
    expect(await state.commit(ids, new Map(), [commit('p1', [101, 110, 140, 150], { takenOut: 11 }), commit('p2', [1, 10])], token())).toEqual({ kind: 'committed' });
    expect(await state.totals()).toMatchObject({ received: 131, duplicates: 11, missing: 29 });
    await state.releaseLease();
  });

  it('applies a commit sent again after a lost reply once (its token), and never takes acknowledged entries for lost', async () => {
    const { key, ids, state } = await setUp(2);
    const again = token();
    expect(await state.commit(ids, new Map(), [commit('p1', [1, 10])], again)).toEqual({ kind: 'committed' });
    expect(await state.commit(ids, new Map(), [commit('p1', [1, 10])], again)).toEqual({ kind: 'committed' });
    expect(await state.totals()).toMatchObject({ received: 10, duplicates: 0 });
    expect(await pending(key)).toBe(0);
    // entries pending to nobody (acknowledged, or lost by Redis) do not stop a commit; the ledger decides
    expect(await state.commit(ids, new Map(), [commit('p1', [11, 12])], token())).toEqual({ kind: 'committed' });
    expect((await state.totals()).received).toBe(12);
    await state.releaseLease();
  });

  it('commits nothing when an entry was claimed by another consumer, and says which', async () => {
    const { key, ids, state } = await setUp(3);
    await shared.client.sendCommand(['XCLAIM', key, 'g', 'c2', '0', ids[1]!]);
    expect(await state.commit(ids, new Map(), [commit('p1', [1, 3])], token())).toEqual({ kind: 'lost', ids: [ids[1]] });
    expect(await pending(key)).toBe(3);
    expect((await state.totals()).received).toBe(0);
    await state.releaseLease();
  });

  it('commits nothing while another server holds the consumer name, and takes an expired lease back', async () => {
    const { channel, ids, state } = await setUp(1);
    const lease = groupStateKeys(channel, 'g').lease('c1');
    await shared.client.set(lease, 'other host 1 then');
    expect(await state.commit(ids, new Map(), [], token())).toEqual({ kind: 'lease', holder: 'other host 1 then' });
    await shared.client.del(lease); // expired while this server was paused, nobody took it
    expect(await state.commit(ids, new Map(), [], token())).toEqual({ kind: 'committed' });
    expect(await shared.client.get(lease)).toBe(state.leaseValue);
    await state.releaseLease();
    expect(await shared.client.get(lease)).toBeNull();
  });

  it('counts records its dedup cache dropped as duplicates when committed, as received when Redis lost that commit', async () => {
    const { state } = await setUp();
    await state.commit([], new Map(), [commit('p1', [1, 10])], token());
    await state.commit([], new Map(), [commit('p1', [], { seen: [5, 15] })], token());
    expect(await state.totals()).toMatchObject({ received: 15, duplicates: 6, missing: 0 });
    await state.releaseLease();
  });

  it('keeps a producer with thousands of gaps small, and its missing count right', async () => {
    const { channel, state } = await setUp();
    const written: number[] = [];
    for (let seq = 1; seq <= 1400; seq += 2) written.push(seq, seq);
    await state.commit([], new Map(), [commit('p1', written)], token());
    expect(await state.totals()).toMatchObject({ received: 700, missing: 699 });
    const intervals = String(await shared.client.hGet(groupStateKeys(channel, 'g').producer('p1'), 'intervals'));
    expect(intervals.split(',').length).toBeLessThanOrEqual(512);
    await state.releaseLease();
  });
});
