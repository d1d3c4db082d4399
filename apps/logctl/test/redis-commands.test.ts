import { FRAME_FIELD, deadLetterKey, encodeFrame, encodeRecord, streamKey, type FrameHeader, type WireRecord } from '@log/protocol';
import { deadLetterCommand } from '@log/subscriber';
import { sleep, tempDir } from '@log/test-kit';
import { logctl, useRedis, useServer } from './helpers';

const shared = useRedis();
let channelNo = 0;
const env = (channel: string): Record<string, string> => ({ REDIS_URL: shared.redis.url, LOG_CHANNEL: channel });
const nextChannel = () => `logctl-${process.pid}-${++channelNo}`;

function frame(header: Partial<FrameHeader> & { seq: number }, records: WireRecord[]): string {
  return encodeFrame({ producer: 'aaaabbbbccccdddd', app: 'shop', host: 'web1', pid: 7, dropped: 0, count: records.length, ...header }, records.map(encodeRecord));
}

async function xadd(channel: string, text: string): Promise<string> {
  return (await shared.client.sendCommand(['XADD', streamKey(channel), '*', FRAME_FIELD, text])) as string;
}

const at = Date.UTC(2026, 10, 25, 13);

describe('logctl help', () => {
  it('lists every command, and each command has --help', async () => {
    const top = await logctl({}, ['--help']);
    expect(top.code).toBe(0);
    for (const name of ['tail', 'stats', 'dead', 'archive', 'check']) {
      expect(top.out).toContain(`  ${name} `);
      const help = await logctl({}, [name, '--help']);
      expect(help).toMatchObject({ code: 0, err: '' });
      expect(help.out).toMatch(new RegExp(`^logctl ${name}`));
    }
    expect(await logctl({}, ['nope'])).toMatchObject({ code: 2 });
    expect((await logctl({}, ['tail', '--level', 'loud'])).code).toBe(2);
  });
});

describe('logctl tail', () => {
  it('prints the stream filtered by app, level and grep, as JSON or text, and takes nothing from the servers', async () => {
    const channel = nextChannel();
    await xadd(
      channel,
      frame({ seq: 1 }, [
        { time: at, level: 'info', message: 'order placed', fields: { orderId: 1 } },
        { time: at + 1, level: 'debug', message: 'cache miss' },
        { time: at + 2, level: 'error', message: 'payment failed', error: { name: 'Error', message: 'declined' } },
        { time: at + 3, level: 'debug', levelName: 'verbose', message: 'verbose line' },
      ]),
    );
    await xadd(channel, frame({ seq: 1, producer: 'eeeeffffeeeeffff', app: 'billing' }, [{ time: at + 4, level: 'warn', message: 'invoice late\u001b[31m' }]));
    const all = await logctl(env(channel), ['tail', '--no-follow', '--json']);
    expect(all.code).toBe(0);
    const records = all.out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.map((r) => r.message)).toEqual(['order placed', 'cache miss', 'payment failed', 'verbose line', 'invoice late\u001b[31m']);
    expect(records[0]).toMatchObject({ time: '2026-11-25T13:00:00.000Z', level: 'info', app: 'shop', host: 'web1', seq: 1, orderId: 1 });
    expect(records[3]).toMatchObject({ level: 'debug', levelName: 'verbose' });
    expect(records[2]).toMatchObject({ err: { message: 'declined' } });
    const filtered = await logctl(env(channel), ['tail', '--no-follow', '--app', 'shop', '--level', 'info', '--grep', 'pay|order']);
    expect(filtered.out.trim().split('\n')).toEqual([
      '2026-11-25T13:00:00.000Z INFO  shop/web1 order placed {"orderId":1}',
      '2026-11-25T13:00:00.002Z ERROR shop/web1 payment failed err="Error: declined"',
    ]);
    // an escape sequence in a record never reaches the terminal raw
    expect((await logctl(env(channel), ['tail', '--no-follow', '--app', 'billing'])).out).toContain('invoice late\\u001b[31m');
    expect(await shared.client.sendCommand(['XINFO', 'GROUPS', streamKey(channel)])).toEqual([]);
  });

  it('follows new records from now, from an id or since a time, and stops after --count', async () => {
    const channel = nextChannel();
    const first = await xadd(channel, frame({ seq: 1 }, [{ time: Date.now(), level: 'info', message: 'before' }]));
    const following = logctl(env(channel), ['tail', '--count', '2', '--json']);
    await sleep(300); // tail is blocked in XREAD from $ by now (a late start would only miss 'live 1': the assertion says so)
    await xadd(channel, frame({ seq: 2 }, [{ time: Date.now(), level: 'info', message: 'live 1' }]));
    await xadd(channel, frame({ seq: 3 }, [{ time: Date.now(), level: 'info', message: 'live 2' }]));
    const live = await following;
    expect(
      live.out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { message: string }).message),
    ).toEqual(['live 1', 'live 2']);
    const fromId = await logctl(env(channel), ['tail', '--no-follow', '--from', first, '--json']);
    expect(fromId.out.trim().split('\n')).toHaveLength(2);
    const since = await logctl(env(channel), ['tail', '--since', '10m', '--count', '3', '--json']);
    expect(since.out.trim().split('\n')).toHaveLength(3);
  });
});

describe('logctl dead', () => {
  it('lists, shows, replays (under a new producer) and purges dead letters, asking before it purges', async () => {
    const channel = nextChannel();
    const key = deadLetterKey(channel);
    const badFrame = frame({ seq: 5 }, [{ time: at, level: 'info', message: 'kept in a frame' }]);
    await shared.client.sendCommand(deadLetterCommand(key, '1-1', 'DELIVERY_LIMIT', 'delivered 11 times', Buffer.from(badFrame)));
    await shared.client.sendCommand(deadLetterCommand(key, '1-2', 'RECORD_INVALID', 'level (l) must be one of ...', Buffer.from('{"t":1764075600000,"l":"info","m":"lone line"}')));
    await shared.client.sendCommand(deadLetterCommand(key, '1-3', 'UNSAFE_PATH', 'app ../x', undefined));
    const list = await logctl(env(channel), ['dead', 'list', '--json']);
    const letters = list.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; reason: string; entry: string });
    expect(letters.map((l) => l.reason)).toEqual(['UNSAFE_PATH', 'RECORD_INVALID', 'DELIVERY_LIMIT']);
    const [noPayload, line, whole] = letters as unknown as [{ id: string }, { id: string }, { id: string }];
    const show = await logctl(env(channel), ['dead', 'show', whole.id]);
    expect(show.out).toContain('reason  DELIVERY_LIMIT');
    expect(show.out).toContain('kept in a frame');

    // a lone record line needs --app; one without payload cannot be replayed
    const refused = await logctl(env(channel), ['dead', 'replay', line.id, noPayload.id]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('give --app');
    const replayed = await logctl(env(channel), ['dead', 'replay', whole.id, line.id, '--app', 'shop']);
    expect(replayed).toMatchObject({ code: 0 });
    const tail = await logctl(env(channel), ['tail', '--no-follow', '--json']);
    const records = tail.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => [r.message, r.app, r.seq])).toEqual([
      ['kept in a frame', 'shop', 1],
      ['lone line', 'shop', 1],
    ]);
    expect(records[0]!.producer).not.toBe('aaaabbbbccccdddd');

    // purge: no terminal and no --yes refuses; a "no" keeps them; --yes deletes
    expect((await logctl(env(channel), ['dead', 'purge', '--all'])).code).toBe(2);
    expect((await logctl(env(channel), ['dead', 'purge', '--all'], { ask: () => Promise.resolve('no') })).code).toBe(1);
    expect(Number(await shared.client.sendCommand(['XLEN', key]))).toBe(1);
    expect((await logctl(env(channel), ['dead', 'purge', '--all'], { ask: () => Promise.resolve('yes') })).out).toContain('deleted 1 dead letters');
    expect(Number(await shared.client.sendCommand(['XLEN', key]))).toBe(0);
  });
});

describe('logctl stats', () => {
  const servers = useServer();

  it("prints the group's loss report as the server computes it, and exits 1 when records are missing", async () => {
    const channel = nextChannel();
    const { httpPort } = await servers.start({ REDIS_URL: shared.redis.url, LOG_CHANNEL: channel, LOG_DIR: tempDir('logctl-stats') });
    // producer A: seqs 1-3 and 6-8 (4 and 5 never arrive); producer B: 1-2, complete
    await xadd(
      channel,
      frame(
        { seq: 1 },
        [1, 2, 3].map((n) => ({ time: Date.now(), level: 'info', message: `a${n}` })),
      ),
    );
    await xadd(
      channel,
      frame(
        { seq: 6 },
        [6, 7, 8].map((n) => ({ time: Date.now(), level: 'info', message: `a${n}` })),
      ),
    );
    await xadd(
      channel,
      frame(
        { seq: 1, producer: 'bbbbbbbbbbbbbbbb', app: 'billing' },
        [1, 2].map((n) => ({ time: Date.now(), level: 'warn', message: `b${n}` })),
      ),
    );
    let report: { totals: Record<string, number>; producers: Array<Record<string, unknown>> } | undefined;
    const deadline = Date.now() + 20_000;
    let result = await logctl(env(channel), ['stats', '--json']);
    while (Date.now() < deadline) {
      result = await logctl(env(channel), ['stats', '--json']);
      report = JSON.parse(result.out) as typeof report;
      if (report!.totals.received === 8) break;
      await sleep(100);
    }
    expect(report!.totals).toEqual({ producers: 2, received: 8, duplicates: 0, deadLettered: 0, reportedDrops: 0, missing: 2, conflicts: 0 });
    expect(result.code).toBe(1);
    const a = report!.producers.find((p) => p.producer === 'aaaabbbbccccdddd');
    expect(a).toMatchObject({ app: 'shop', host: 'web1', received: 6, missing: 2, highest: 8 });
    // the same numbers as the server's /stats
    const served = (await (await fetch(`http://127.0.0.1:${httpPort}/stats`)).json()) as { totals: unknown };
    expect(served.totals).toEqual(report!.totals);
    const table = await logctl(env(channel), ['stats']);
    expect(table.code).toBe(1);
    expect(table.out).toMatch(/^producer\s+app\s+host\s+received\s+duplicates\s+dead\s+dropped\s+missing\s+last seen$/m);
    expect(table.out).toMatch(/^aaaabbbbccccdddd\s+shop\s+web1\s+6\s+0\s+0\s+0\s+2\s/m);
    expect(table.out).toContain('2 producers, 8 received, 0 duplicates, 0 dead-lettered, 0 dropped by producers, 2 missing');
  }, 40_000);
});
