import { constants, gunzipSync } from 'node:zlib';
import { ridOf, type ProducerHistory } from './history';

/** One file's worth of record lines, wherever it was found. */
export interface Source {
  /** For the report: `s0:soak-1/<name>` for a local file, `s3:<key>` for an object. */
  location: string;
  /** open: a server's `<app>.log`; closed: a rotated `.jsonl` not yet archived (or not yet deleted); archived: an S3 object, gzip. */
  kind: 'open' | 'closed' | 'archived';
  /**
   * The same file wherever it is: `<consumer>/<app>/<time>-<unique>`. A closed file still on
   * disk and its archive in S3 (uploaded and verified, not yet deleted) share it and are one copy.
   */
  fileId: string;
  data: Buffer;
}

/** GET /stats of one server, as it answered (or why it did not). */
export interface StatsReport {
  server: string;
  body: StatsBody | undefined;
  error: string | undefined;
}

export interface StatsBody {
  totals: { received: number; duplicates: number; missing: number; reportedDrops: number; producers: number };
  producers: Array<{ producer: string; app: string; received: number; duplicates: number; missing: number; reportedDrops: number }>;
}

export interface CheckInput {
  histories: readonly ProducerHistory[];
  sources: readonly Source[];
  stats: readonly StatsReport[];
  /** rids found in the dead-letter stream: still lost (not stored), but the report says where they went. */
  deadLettered?: ReadonlySet<string>;
}

export interface LostSample {
  rid: string;
  producer: string;
  loggedAtMs: number;
  deadLettered: boolean;
}

export interface DuplicateSample {
  rid: string;
  loggedAtMs: number;
  copies: number;
  locations: string[];
}

export interface ServerClaim {
  server: string;
  error: string | undefined;
  received: number;
  duplicatesDropped: number;
  reportedMissing: number;
  reportedDrops: number;
  /** Records this server says are missing beyond what the checker found lost, summed over producers. */
  falseLoss: number;
  /**
   * Of the false loss, how much another server of the group stored (below this server's highest
   * sequence number of the producer): each server counts only its own share of the stream, so the
   * other's share looks missing. The rest has another cause (state forgotten over a restart, say).
   */
  falseLossStoredElsewhere: number;
}

export interface Verdict {
  ok: boolean;
  /** One line per failed property. */
  failures: string[];
  producers: number;
  logged: number;
  /** Calls the producers saw dropped (their `dropped` counter went up during the call). */
  dropped: number;
  /** logged - dropped: what must be stored exactly once. */
  expected: number;
  /** Distinct expected records found on disk or in S3. */
  stored: number;
  lost: number;
  /** Of the lost: found in the dead-letter stream. */
  lostDeadLettered: number;
  /** Extra copies (a record found 3 times adds 2). */
  duplicates: number;
  duplicatedRecords: number;
  /** Lines whose rid no producer logged (or that have none). */
  unknown: number;
  /** Records a producer counted as dropped that were stored anyway: its drop count is wrong. */
  droppedButStored: number;
  /** Lines that are not JSON, or a torn last line. */
  corrupt: number;
  /** Records still in a publisher's buffer after close (neither sent nor dropped). */
  unsent: number;
  /** Producers whose final stats disagree with their history (logged or dropped), or that never finished. */
  producerStatsMismatches: number;
  /** A record whose copies differ in (producer, seq), or two records sharing one (producer, seq). */
  seqConflicts: number;
  /** Record lines read: local files, S3 objects (a file in both counted once). */
  linesLocal: number;
  linesArchived: number;
  /** Files found both on disk and in S3 with equal content: counted once (archived, deletion pending). */
  archivedAndLocal: number;
  /** Files found both on disk and in S3 with different content: both counted. */
  archiveMismatches: number;
  /** S3 objects that are not a whole gzip stream and the only copy of their file (what could be decompressed is counted). */
  brokenArchives: number;
  /**
   * S3 objects that are not a whole gzip stream while their file is still on disk: the data is
   * safe, but the archive is stuck (an S3 store that committed an aborted PUT; the server then
   * sees a CONFLICT at the key). A warning, not a failure: the local copy is counted instead.
   */
  strandedArchives: number;
  /** Findings that are not failures of the properties checked. */
  warnings: string[];
  reportedMissing: number;
  reportedDrops: number;
  falseLoss: number;
  /** Lost records no server's `missing` accounts for. */
  unreportedLoss: number;
  servers: ServerClaim[];
  samples: { lost: LostSample[]; duplicates: DuplicateSample[]; unknown: string[]; corrupt: string[]; falseLoss: Array<{ server: string; producer: string; reported: number; lost: number }> };
}

const SAMPLES = 20;

interface Seen {
  copies: number;
  producer: unknown;
  seq: unknown;
  locations: string[];
}

/**
 * The checker: from what the producers did (their histories) and everything the pipeline
 * stored (every line of every local file and S3 object), proves each record was stored exactly
 * once or counted as dropped by its producer, and measures the servers' loss reports against
 * that truth. Pure: no I/O, so it is unit-tested on hand-made input.
 */
export function check(input: CheckInput): Verdict {
  const seen = new Map<string, Seen>();
  /** server (consumer) -> producer -> sequence numbers it stored: which server holds what. */
  const storedBy = new Map<string, Map<string, Set<number>>>();
  const bySeq = new Map<string, string>();
  let unknownLines = 0;
  let corrupt = 0;
  let seqConflicts = 0;
  let linesLocal = 0;
  let linesArchived = 0;
  const unknownSamples: string[] = [];
  const corruptSamples: string[] = [];

  const known = new Map<number, ProducerHistory>();
  for (const h of input.histories) known.set(h.index, h);

  const { copies, archivedAndLocal, archiveMismatches, mismatchLocations, broken, stranded } = resolveCopies(input.sources);
  const warnings: string[] = [];
  if (stranded.length > 0)
    warnings.push(`${stranded.length} S3 object(s) are cut short while their file is still on disk (counted from disk; the archive is stuck): ${stranded.slice(0, 3).join('; ')}`);
  for (const { source, text } of copies) {
    const lines = text.split('\n');
    const tail = lines.pop();
    if (tail !== undefined && tail !== '') {
      corrupt++;
      if (corruptSamples.length < SAMPLES) corruptSamples.push(`${source.location}: torn last line ${JSON.stringify(tail.slice(0, 80))}`);
    }
    for (const line of lines) {
      if (source.kind === 'archived') linesArchived++;
      else linesLocal++;
      let record: { rid?: unknown; producer?: unknown; seq?: unknown };
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        corrupt++;
        if (corruptSamples.length < SAMPLES) corruptSamples.push(`${source.location}: ${JSON.stringify(line.slice(0, 80))}`);
        continue;
      }
      const rid = typeof record.rid === 'string' ? record.rid : undefined;
      const match = rid === undefined ? null : /^(\d+)-(\d+)$/.exec(rid);
      const history = match ? known.get(Number(match[1])) : undefined;
      const n = match ? Number(match[2]) : 0;
      if (rid === undefined || history === undefined || n < 1 || n > history.logged) {
        unknownLines++;
        if (unknownSamples.length < SAMPLES) unknownSamples.push(`${source.location}: ${line.slice(0, 120)}`);
        continue;
      }
      let entry = seen.get(rid);
      if (entry === undefined) {
        entry = { copies: 0, producer: record.producer, seq: record.seq, locations: [] };
        seen.set(rid, entry);
        if (record.producer !== history.producer) seqConflicts++;
        const key = `${String(record.producer)}/${String(record.seq)}`;
        const other = bySeq.get(key);
        if (other !== undefined && other !== rid) seqConflicts++;
        else bySeq.set(key, rid);
      } else if (entry.producer !== record.producer || entry.seq !== record.seq) {
        seqConflicts++;
      }
      entry.copies++;
      if (entry.locations.length < 4) entry.locations.push(source.location);
      if (typeof record.producer === 'string' && typeof record.seq === 'number') {
        const server = source.fileId.slice(0, source.fileId.indexOf('/'));
        const producers = storedBy.get(server) ?? new Map<string, Set<number>>();
        storedBy.set(server, producers);
        const seqs = producers.get(record.producer) ?? new Set<number>();
        producers.set(record.producer, seqs);
        seqs.add(record.seq);
      }
    }
  }

  let logged = 0;
  let dropped = 0;
  let stored = 0;
  let lost = 0;
  let lostDeadLettered = 0;
  let duplicates = 0;
  let duplicatedRecords = 0;
  let droppedButStored = 0;
  let unsent = 0;
  let producerStatsMismatches = 0;
  const lostByProducer = new Map<string, number>();
  const lostSamples: LostSample[] = [];
  const duplicateSamples: DuplicateSample[] = [];
  const failures: string[] = [];
  for (const h of input.histories) {
    logged += h.logged;
    dropped += h.dropped.size;
    if (h.stats === undefined) {
      producerStatsMismatches++;
      failures.push(`producer ${h.index} never finished (no final stats)`);
    } else {
      unsent += h.stats.buffered;
      if (h.stats.logged !== h.logged || h.stats.dropped !== h.dropped.size) {
        producerStatsMismatches++;
        failures.push(`producer ${h.index}: stats say logged ${h.stats.logged} dropped ${h.stats.dropped}, history has ${h.logged} and ${h.dropped.size}`);
      }
    }
    let lostHere = 0;
    for (let n = 1; n <= h.logged; n++) {
      const rid = ridOf(h.index, n);
      const count = seen.get(rid)?.copies ?? 0;
      if (h.dropped.has(n)) {
        if (count > 0) droppedButStored++;
        continue;
      }
      if (count === 0) {
        lostHere++;
        const deadLettered = input.deadLettered?.has(rid) ?? false;
        if (deadLettered) lostDeadLettered++;
        if (lostSamples.length < SAMPLES) lostSamples.push({ rid, producer: h.producer, loggedAtMs: h.loggedAtMs[n - 1] ?? Number.NaN, deadLettered });
        continue;
      }
      stored++;
      if (count > 1) {
        duplicates += count - 1;
        duplicatedRecords++;
        if (duplicateSamples.length < SAMPLES) duplicateSamples.push({ rid, loggedAtMs: h.loggedAtMs[n - 1] ?? Number.NaN, copies: count, locations: seen.get(rid)?.locations ?? [] });
      }
    }
    lost += lostHere;
    lostByProducer.set(h.producer, lostHere);
  }

  // A server's `missing` for a producer claims that many of its records never arrived. Whatever
  // exceeds what was really lost is false loss: an operator would go looking for records that are
  // safely stored.
  // Every server serves the group's one report, merged over all of them: each must equal the truth.
  const servers: ServerClaim[] = [];
  const falseLossSamples: Verdict['samples']['falseLoss'] = [];
  let unreportedLoss = 0;
  const totalsSeen = new Set<string>();
  for (const report of input.stats) {
    const claim: ServerClaim = { server: report.server, error: report.error, received: 0, duplicatesDropped: 0, reportedMissing: 0, reportedDrops: 0, falseLoss: 0, falseLossStoredElsewhere: 0 };
    if (report.body) {
      totalsSeen.add(JSON.stringify(report.body.totals));
      claim.received = report.body.totals.received;
      claim.duplicatesDropped = report.body.totals.duplicates;
      claim.reportedMissing = report.body.totals.missing;
      claim.reportedDrops = report.body.totals.reportedDrops;
      const perProducer = report.body.producers.reduce((sum, p) => sum + p.missing, 0);
      if (perProducer !== report.body.totals.missing) warnings.push(`${report.server}: /stats totals.missing ${report.body.totals.missing} is not the sum over its producers (${perProducer})`);
      const claimed = new Map<string, number>();
      for (const p of report.body.producers) {
        const truth = lostByProducer.get(p.producer) ?? 0;
        claimed.set(p.producer, p.missing);
        const excess = Math.max(0, p.missing - truth);
        claim.falseLoss += excess;
        if (excess > 0) claim.falseLossStoredElsewhere += Math.min(excess, storedElsewhere(storedBy, report.server, p.producer));
        if (excess > 0 && falseLossSamples.length < SAMPLES) falseLossSamples.push({ server: report.server, producer: p.producer, reported: p.missing, lost: truth });
      }
      let unreported = 0;
      for (const [producer, count] of lostByProducer) unreported += Math.max(0, count - (claimed.get(producer) ?? 0));
      unreportedLoss = Math.max(unreportedLoss, unreported);
      if (claim.reportedDrops !== dropped) failures.push(`${report.server}: /stats reports ${claim.reportedDrops} records dropped by producers; they counted ${dropped}`);
    }
    servers.push(claim);
  }
  if (totalsSeen.size === 0) for (const count of lostByProducer.values()) unreportedLoss += count; // no report at all counts nothing
  if (totalsSeen.size > 1) failures.push(`the servers' /stats totals differ: ${[...totalsSeen].join(' vs ')}`);
  const falseLoss = servers.reduce((sum, s) => sum + s.falseLoss, 0);
  if (unreportedLoss > 0) failures.push(`${unreportedLoss} lost record(s) the loss report does not count as missing`);

  if (lost > 0) failures.push(`${lost} record(s) lost: logged, not counted as dropped, stored nowhere${lostDeadLettered ? ` (${lostDeadLettered} of them dead-lettered)` : ''}`);
  if (duplicates > 0) failures.push(`${duplicatedRecords} record(s) stored more than once (${duplicates} extra copies)`);
  if (falseLoss > 0) failures.push(`servers report ${falseLoss} missing record(s) that are stored (false loss)`);
  if (unknownLines > 0) failures.push(`${unknownLines} line(s) with a rid no producer logged`);
  if (droppedButStored > 0) failures.push(`${droppedButStored} record(s) counted as dropped by their producer were stored anyway`);
  if (corrupt > 0) failures.push(`${corrupt} line(s) that are not JSON records (or torn)`);
  if (unsent > 0) failures.push(`${unsent} record(s) were still in a publisher's buffer after close`);
  if (seqConflicts > 0) failures.push(`${seqConflicts} (producer, seq) conflict(s) between copies or records`);
  if (broken.length > 0) failures.push(`${broken.length} S3 object(s) are not whole gzip streams: ${broken.slice(0, 3).join('; ')}`);
  if (archiveMismatches > 0) failures.push(`${archiveMismatches} file(s) differ between disk and S3: ${mismatchLocations.slice(0, 3).join(', ')}`);

  return {
    ok: failures.length === 0,
    failures,
    producers: input.histories.length,
    logged,
    dropped,
    expected: logged - dropped,
    stored,
    lost,
    lostDeadLettered,
    duplicates,
    duplicatedRecords,
    unknown: unknownLines,
    droppedButStored,
    corrupt,
    unsent,
    producerStatsMismatches,
    seqConflicts,
    linesLocal,
    linesArchived,
    archivedAndLocal,
    archiveMismatches,
    brokenArchives: broken.length,
    strandedArchives: stranded.length,
    warnings,
    reportedMissing: servers.reduce((max, s) => Math.max(max, s.reportedMissing), 0),
    reportedDrops: servers.reduce((max, s) => Math.max(max, s.reportedDrops), 0),
    falseLoss,
    unreportedLoss,
    servers,
    samples: { lost: lostSamples, duplicates: duplicateSamples, unknown: unknownSamples, corrupt: corruptSamples, falseLoss: falseLossSamples },
  };
}

/** Sequence numbers of `producer` below the highest `server` stored that only other servers stored. */
function storedElsewhere(storedBy: ReadonlyMap<string, ReadonlyMap<string, ReadonlySet<number>>>, server: string, producer: string): number {
  const own = storedBy.get(server)?.get(producer);
  if (!own) return 0;
  let highest = 0;
  for (const seq of own) if (seq > highest) highest = seq;
  const others = [...storedBy]
    .filter(([name]) => name !== server)
    .map(([, producers]) => producers.get(producer))
    .filter((s) => s !== undefined);
  let count = 0;
  for (let seq = 1; seq < highest; seq++) if (!own.has(seq) && others.some((s) => s.has(seq))) count++;
  return count;
}

/**
 * Decodes every source and folds the copies of one file (closed on disk and archived in S3)
 * into one when their contents are equal; unequal copies are all kept (and counted as a mismatch).
 */
function resolveCopies(sources: readonly Source[]) {
  const groups = new Map<string, Array<{ source: Source; text: string; broken: string | undefined }>>();
  for (const source of sources) {
    let data = source.data;
    let broken: string | undefined;
    if (source.kind === 'archived') {
      try {
        data = gunzipSync(source.data);
      } catch (error) {
        broken = `${source.location} (${(error as Error).message}, ${source.data.length} bytes)`;
        // What a cut-short stream holds is still evidence: decompress as far as it goes.
        try {
          data = gunzipSync(source.data, { finishFlush: constants.Z_SYNC_FLUSH });
        } catch {
          data = Buffer.alloc(0);
        }
      }
    }
    const group = groups.get(source.fileId) ?? [];
    group.push({ source, text: data.toString('utf8'), broken });
    groups.set(source.fileId, group);
  }
  const copies: Array<{ source: Source; text: string }> = [];
  const broken: string[] = [];
  const stranded: string[] = [];
  let archivedAndLocal = 0;
  let archiveMismatches = 0;
  const mismatchLocations: string[] = [];
  for (let group of groups.values()) {
    const whole = group.filter((g) => g.broken === undefined);
    for (const g of group) if (g.broken !== undefined) (whole.length > 0 ? stranded : broken).push(g.broken);
    if (whole.length > 0) group = whole;
    const first = group[0] as { source: Source; text: string };
    if (group.every((g) => g.text === first.text)) {
      // Prefer the archive: it is the copy that stays.
      copies.push(group.find((g) => g.source.kind === 'archived') ?? first);
      archivedAndLocal += group.length - 1;
    } else {
      for (const copy of group) copies.push(copy);
      archiveMismatches++;
      mismatchLocations.push(group.map((g) => g.source.location).join(' vs '));
    }
  }
  return { copies, archivedAndLocal, archiveMismatches, mismatchLocations, broken, stranded };
}
