import type { Verdict } from './checker';
import type { FaultEvent } from './nemesis';
import { FAULT_KINDS, type SoakOptions } from './options';

export interface RunSummary {
  options: SoakOptions;
  verdict: Verdict;
  events: FaultEvent[];
  /** Per server: its exit code at the final SIGTERM, and crashes (exits the harness did not cause). */
  servers: Array<{ name: string; finalExit: number | string | null; crashes: number; restarts: number }>;
  /** Failures found outside the checker (a server that did not exit 0 at the end, a drain that timed out). */
  extraFailures: string[];
  deadLetters: { entries: number; reasons: Record<string, number> };
  archive: { objects: number; manifests: number };
  diskFault: string;
  /** Which S3 implementation ran. */
  s3: string;
  drainMs: number;
  elapsedMs: number;
  workDir: string;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** Faults active within `marginMs` of time t: what to look at first for a lost or doubled record. */
export function faultsNear(events: readonly FaultEvent[], t: number, marginMs = 3000): string {
  const near = events.filter((e) => e.skipped === undefined && e.startedMs <= t + marginMs && (e.healedMs ?? Number.POSITIVE_INFINITY) >= t - marginMs);
  return near.map((e) => `${e.kind} ${e.target}@${seconds(e.startedMs)}`).join(', ') || 'none';
}

/** The result table, and samples of every failure with where to look. */
export function formatReport(summary: RunSummary): string {
  const { verdict: v, options: o, events } = summary;
  const injected = events.filter((e) => e.skipped === undefined);
  const byKind = new Map<string, number>();
  for (const e of injected) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  const rows: Array<[string, string | number, string?]> = [
    ['logged', v.logged, `${v.producers} producers x ${o.rate}/s`],
    ['dropped by producer (counted)', v.dropped],
    ['expected exactly once', v.expected],
    ['stored (disk + S3)', v.stored, `lines: ${v.linesLocal} on disk, ${v.linesArchived} in S3 (${summary.archive.objects} objects); ${v.archivedAndLocal} file(s) in both, counted once`],
    ['lost', v.lost, v.lostDeadLettered ? `${v.lostDeadLettered} dead-lettered` : ''],
    ['duplicates (extra copies)', v.duplicates, v.duplicatedRecords ? `${v.duplicatedRecords} records` : ''],
    ['unknown records', v.unknown],
    ['corrupt / torn lines', v.corrupt],
    ['dropped but stored', v.droppedButStored],
    ['unsent at producer close', v.unsent],
    ['reported missing (/stats)', v.reportedMissing, v.servers.map((s) => `${s.server} ${s.error ? `(${s.error})` : s.reportedMissing}`).join(', ')],
    ['false loss', v.falseLoss, v.servers.map((s) => `${s.server} ${s.falseLoss} (${s.falseLossStoredElsewhere} stored by another server)`).join(', ')],
    ['unreported loss', v.unreportedLoss],
    ['reported drops (/stats)', v.reportedDrops, `producers counted ${v.dropped}`],
    ['duplicates dropped by servers', v.servers.reduce((s, c) => s + c.duplicatesDropped, 0)],
    [
      'dead letters',
      summary.deadLetters.entries,
      Object.entries(summary.deadLetters.reasons)
        .map(([r, n]) => `${r} ${n}`)
        .join(', '),
    ],
    ['faults injected', injected.length, [...byKind].map(([k, n]) => `${k} ${n}`).join(', ')],
    ['server crashes (restarted)', summary.servers.reduce((s, x) => s + x.crashes, 0), summary.servers.map((s) => `${s.name} ${s.crashes}`).join(', ')],
    ['server exit at final SIGTERM', summary.servers.map((s) => `${s.name}=${s.finalExit}`).join(' ')],
  ];
  const width = rows.reduce((max, [label]) => Math.max(max, label.length), 0);
  const valueWidth = rows.reduce((max, [, value]) => Math.max(max, String(value).length), 0);
  const out: string[] = [];
  const rule = '-'.repeat(width + valueWidth + 40);
  out.push('');
  out.push(
    `soak seed ${o.seed}  duration ${seconds(o.durationMs)}  producers ${o.producers} (${o.processes} processes)  servers ${o.servers}${o.shards > 1 ? `  shards ${o.shards}` : ''}  elapsed ${seconds(summary.elapsedMs)} (drain ${seconds(summary.drainMs)})`,
  );
  out.push(rule);
  for (const [label, value, note] of rows) out.push(`${label.padEnd(width)}  ${String(value).padStart(valueWidth)}${note ? `   ${note}` : ''}`);
  out.push(rule);
  if (summary.diskFault) out.push(`disk-full fault: ${summary.diskFault}`);
  out.push(`S3: ${summary.s3}`);
  for (const warning of v.warnings) out.push(`warning: ${warning}`);
  const failures = [...v.failures, ...summary.extraFailures];
  for (const sample of v.samples.lost.slice(0, 10)) {
    out.push(
      `  lost ${sample.rid} (producer ${sample.producer}) logged at +${seconds(sample.loggedAtMs)}${sample.deadLettered ? ', dead-lettered' : ''}; faults near: ${faultsNear(events, sample.loggedAtMs)}`,
    );
  }
  for (const sample of v.samples.duplicates.slice(0, 10)) {
    out.push(`  duplicate ${sample.rid} x${sample.copies} logged at +${seconds(sample.loggedAtMs)}; faults near: ${faultsNear(events, sample.loggedAtMs)}`);
    out.push(`      ${sample.locations.join(' | ')}`);
  }
  for (const sample of v.samples.falseLoss.slice(0, 10)) out.push(`  false loss: ${sample.server} says producer ${sample.producer} is missing ${sample.reported}, lost ${sample.lost}`);
  for (const sample of v.samples.unknown.slice(0, 5)) out.push(`  unknown: ${sample}`);
  for (const sample of v.samples.corrupt.slice(0, 5)) out.push(`  corrupt: ${sample}`);
  out.push(failures.length === 0 ? `PASS (seed ${o.seed})` : `FAIL (seed ${o.seed}; replay: pnpm soak ${replayArgs(o)})`);
  for (const failure of failures) out.push(`  - ${failure}`);
  out.push(`work directory: ${summary.workDir}`);
  return out.join('\n');
}

/** The options that reproduce this run's schedule and load. */
export function replayArgs(o: SoakOptions): string {
  const args = [`--seed ${o.seed}`, `--duration ${o.durationMs / 1000}s`, `--producers ${o.producers}`, `--processes ${o.processes}`, `--rate ${o.rate}`];
  if (o.servers !== 2) args.push(`--servers ${o.servers}`);
  if (o.shards !== 1) args.push(`--shards ${o.shards}`);
  if (o.apps !== 3) args.push(`--apps ${o.apps}`);
  if (o.rotateBytes !== 256 * 1024) args.push(`--rotate-bytes ${o.rotateBytes}`);
  if (o.rotateSeconds !== 3) args.push(`--rotate-seconds ${o.rotateSeconds}`);
  if (o.claimIdleMs !== 2000) args.push(`--claim-idle-ms ${o.claimIdleMs}`);
  if (o.bufferBytes !== 64 * 1024) args.push(`--buffer-bytes ${o.bufferBytes}`);
  if (o.s3 !== 'auto') args.push(`--s3 ${o.s3}`);
  if (o.faults.length === 0) args.push('--no-faults');
  else if (o.faults.length !== FAULT_KINDS.length) args.push(`--faults ${o.faults.join(',')}`);
  return args.join(' ');
}
