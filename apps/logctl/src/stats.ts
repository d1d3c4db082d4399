import { parseArgs } from 'node:util';
import { LossReportReader, type ProducerReport } from '@log/subscriber';
import type { Io } from './io';
import { connect } from './redis';
import type { Settings } from './settings';

export const STATS_HELP = `logctl stats [options]: the group's loss report, merged over every server of the group and
every shard of the channel (the numbers the servers' /stats serve, read from the same Redis keys;
REDIS_CLUSTER_NODES and LOG_SHARDS as the servers have them). Exit code 1 when any record is
missing.

  --json       { totals, producers } as JSON
  -h, --help   this help`;

const COLUMNS: Array<[string, (p: ProducerReport) => string]> = [
  ['producer', (p) => p.producer],
  ['app', (p) => p.app],
  ['host', (p) => p.host],
  ['received', (p) => String(p.received)],
  ['duplicates', (p) => String(p.duplicates)],
  ['dead', (p) => String(p.deadLettered)],
  ['dropped', (p) => String(p.reportedDrops)],
  ['missing', (p) => String(p.missing)],
  ['last seen', (p) => p.lastSeen ?? ''],
];

export async function stats(args: string[], settings: Settings, io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const client = await connect(settings);
  try {
    // Over every shard of the channel (LOG_SHARDS): a producer's row is on its shard's keys.
    const reader = new LossReportReader(client, settings.channel, settings.group, settings.shards);
    const producers: ProducerReport[] = [];
    let page = await reader.report(0, 500);
    for (const p of page.producers) producers.push(p);
    while (page.cursor !== undefined) {
      page = await reader.report(page.cursor, 500);
      for (const p of page.producers) producers.push(p);
    }
    const totals = page.totals;
    if (values.json) io.stdout.write(JSON.stringify({ channel: settings.channel, group: settings.group, totals, producers }, null, 2) + '\n');
    else {
      const rows = [COLUMNS.map(([name]) => name), ...producers.map((p) => COLUMNS.map(([, cell]) => cell(p)))];
      const widths = COLUMNS.map((_, c) => rows.reduce((w, row) => Math.max(w, (row[c] ?? '').length), 0));
      for (const row of rows)
        io.stdout.write(
          row
            .map((cell, c) => cell.padEnd(widths[c] ?? 0))
            .join('  ')
            .trimEnd() + '\n',
        );
      io.stdout.write(
        `\ngroup ${settings.group} on ${settings.channel}: ${totals.producers} producers, ${totals.received} received, ${totals.duplicates} duplicates, ` +
          `${totals.deadLettered} dead-lettered, ${totals.reportedDrops} dropped by producers, ${totals.missing} missing\n`,
      );
    }
    return totals.missing > 0 ? 1 : 0;
  } finally {
    client.destroy();
  }
}
