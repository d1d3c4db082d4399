import { gzipSync } from 'node:zlib';
import type { PublisherStats } from '@log/publisher';
import { check, type Source, type StatsBody, type StatsReport } from './checker';
import type { ProducerHistory } from './history';

const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';

/** A line as the logger server writes it (own keys first, then the fields). */
function line(producer: string, seq: number, rid: string): string {
  return JSON.stringify({ time: '2026-01-01T00:00:00.000Z', level: 'info', app: 'soak-0', host: 'soak', pid: 1, producer, seq, message: 'soak record', rid, pad: '' });
}

function lines(...ls: string[]): Buffer {
  return Buffer.from(ls.map((l) => l + '\n').join(''));
}

function stats(logged: number, dropped: number, buffered = 0): PublisherStats {
  return { logged, sent: logged - dropped - buffered, dropped, buffered, bufferedBytes: 0, truncated: 0, unserializable: 0, frames: 1, bytes: 1, reconnects: 0, sendErrors: 0, unheard: 0 };
}

function history(index: number, producer: string, logged: number, dropped: number[], final = stats(logged, dropped.length)): ProducerHistory {
  return { index, producer, app: 'soak-0', logged, dropped: new Set(dropped), loggedAtMs: Array.from({ length: logged }, (_, i) => i * 100), stats: final };
}

function report(server: string, producers: Array<[string, number]>, reportedDrops = 0): StatsReport {
  const body: StatsBody = {
    totals: { received: 0, duplicates: 0, missing: producers.reduce((s, [, m]) => s + m, 0), reportedDrops, producers: producers.length },
    producers: producers.map(([producer, missing]) => ({ producer, app: 'soak-0', received: 0, duplicates: 0, missing, reportedDrops: 0 })),
  };
  return { server, body, error: undefined };
}

describe('checker', () => {
  it('judges a hand-made history: an archived record, a lost one, a duplicate, a dropped one, an unknown one, false loss', () => {
    // Producer 0 logged six records: 0-5 was dropped by the publisher (seq numbers skip drops, so 0-6 has seq 5).
    // Producer 1 logged two, both stored.
    const histories = [history(0, A, 6, [5]), history(1, B, 2, [])];
    const closedA = lines(line(A, 1, '0-1'));
    const sources: Source[] = [
      // 0-1 was archived: the object in S3, and the closed file it came from, still on disk (deletion pending): one copy.
      { location: 's3:archive/soak-0/dt=2026-01-01/hour=00/s0-T1-aa.jsonl.gz', kind: 'archived', fileId: 's0/soak-0/T1-aa', data: gzipSync(closedA) },
      { location: 's0:soak-0/T1-aa.jsonl', kind: 'closed', fileId: 's0/soak-0/T1-aa', data: closedA },
      { location: 's0:soak-0/T2-bb.jsonl', kind: 'closed', fileId: 's0/soak-0/T2-bb', data: lines(line(A, 2, '0-2')) },
      // 0-3 is nowhere: lost. 0-4 is in both servers' files: a duplicate.
      { location: 's0:soak-0/soak-0.log', kind: 'open', fileId: 's0/soak-0/open', data: lines(line(A, 4, '0-4'), line(B, 1, '1-1')) },
      { location: 's1:soak-0/soak-0.log', kind: 'open', fileId: 's1/soak-0/open', data: lines(line(A, 4, '0-4'), line(A, 5, '0-6'), line(B, 2, '1-2'), line('cccccccccccccccc', 1, '7-1')) },
    ];
    const verdict = check({
      histories,
      sources,
      // s0 reports producer A missing 1 (true: 0-3) and its drop. s1 reports A missing 3 and B missing 1:
      // 2 + 1 records that are stored, and no drop: its report is not the group's one truth.
      stats: [
        report('s0', [[A, 1]], 1),
        report('s1', [
          [A, 3],
          [B, 1],
        ]),
      ],
      deadLettered: new Set(),
    });
    expect(verdict).toMatchObject({
      ok: false,
      producers: 2,
      logged: 8,
      dropped: 1,
      expected: 7,
      stored: 6,
      lost: 1,
      duplicates: 1,
      duplicatedRecords: 1,
      unknown: 1,
      droppedButStored: 0,
      corrupt: 0,
      unsent: 0,
      seqConflicts: 0,
      archivedAndLocal: 1,
      archiveMismatches: 0,
      linesArchived: 1,
      linesLocal: 7,
      reportedMissing: 4,
      falseLoss: 3,
      unreportedLoss: 0,
    });
    expect(verdict.samples.lost).toEqual([{ rid: '0-3', producer: A, loggedAtMs: 200, deadLettered: false }]);
    expect(verdict.samples.duplicates).toEqual([{ rid: '0-4', loggedAtMs: 300, copies: 2, locations: ['s0:soak-0/soak-0.log', 's1:soak-0/soak-0.log'] }]);
    // All of s1's false loss is records s0 stored: each server of a group sees only its share of a producer's sequence.
    expect(verdict.servers.map((s) => [s.server, s.falseLoss, s.falseLossStoredElsewhere])).toEqual([
      ['s0', 0, 0],
      ['s1', 3, 3],
    ]);
    expect(verdict.failures).toHaveLength(6); // lost, duplicate, false loss, unknown, s1's drops, totals differ
    expect(verdict.failures).toEqual(expect.arrayContaining([expect.stringMatching(/s1: \/stats reports 0 records dropped/), expect.stringMatching(/totals differ/)]));
  });

  it('passes a run where every record is stored exactly once or was dropped, and the reports are true', () => {
    const verdict = check({
      histories: [history(0, A, 3, [2])],
      sources: [{ location: 's3:x', kind: 'archived', fileId: 's0/soak-0/T-1', data: gzipSync(lines(line(A, 1, '0-1'), line(A, 2, '0-3'))) }],
      stats: [report('s0', [[A, 0]], 1), { server: 's1', body: undefined, error: 'ECONNREFUSED' }],
    });
    expect(verdict.failures).toEqual([]);
    expect(verdict).toMatchObject({ ok: true, expected: 2, stored: 2, lost: 0, falseLoss: 0, linesArchived: 2 });
  });

  it('fails what would otherwise hide a problem: a dropped record stored, a file that differs from its archive, a torn line, a dead-lettered loss, unsent records', () => {
    const verdict = check({
      histories: [history(0, A, 4, [1]), history(1, B, 2, [], stats(2, 0, 1))],
      sources: [
        { location: 's3:y', kind: 'archived', fileId: 's0/soak-0/T-2', data: gzipSync(lines(line(A, 1, '0-1'), line(A, 2, '0-2'))) },
        { location: 's0:soak-0/T-2.jsonl', kind: 'closed', fileId: 's0/soak-0/T-2', data: lines(line(A, 2, '0-2')) },
        { location: 's1:soak-0/soak-0.log', kind: 'open', fileId: 's1/soak-0/open', data: Buffer.from(line(A, 3, '0-4') + '\n{"time":"2026') },
        { location: 's1:soak-0/other.log', kind: 'open', fileId: 's1/other/open', data: lines(line(B, 1, '1-1')) },
      ],
      stats: [],
      deadLettered: new Set(['0-3', '1-2']),
    });
    expect(verdict).toMatchObject({
      ok: false,
      droppedButStored: 1,
      archiveMismatches: 1,
      duplicates: 1, // 0-2 in both unequal copies
      corrupt: 1,
      lost: 2,
      lostDeadLettered: 2,
      unsent: 1,
      unreportedLoss: 2,
    });
  });

  it('reads what a cut-short archive holds and fails it', () => {
    const whole = gzipSync(lines(...Array.from({ length: 200 }, (_, i) => line(A, i + 1, `0-${i + 1}`))));
    const verdict = check({
      histories: [history(0, A, 200, [])],
      sources: [{ location: 's3:cut', kind: 'archived', fileId: 's0/soak-0/T-3', data: whole.subarray(0, whole.length - 12) }],
      stats: [],
    });
    expect(verdict.brokenArchives).toBe(1);
    expect(verdict.stored).toBeGreaterThan(0);
    expect(verdict.lost).toBe(200 - verdict.stored);
    expect(verdict.ok).toBe(false);
  });

  it('counts a file from disk when its archive is cut short, and only warns: the data is safe, the archive stuck', () => {
    const file = lines(line(A, 1, '0-1'), line(A, 2, '0-2'));
    const verdict = check({
      histories: [history(0, A, 2, [])],
      sources: [
        { location: 's3:partial', kind: 'archived', fileId: 's0/soak-0/T-4', data: gzipSync(file).subarray(0, 10) },
        { location: 's0:soak-0/T-4.jsonl', kind: 'closed', fileId: 's0/soak-0/T-4', data: file },
      ],
      stats: [],
    });
    expect(verdict).toMatchObject({ ok: true, stored: 2, duplicates: 0, brokenArchives: 0, strandedArchives: 1, archiveMismatches: 0 });
    expect(verdict.warnings).toHaveLength(1);
  });

  it('catches a copy of a record with another (producer, seq), and producer stats that disagree with the history', () => {
    const verdict = check({
      histories: [history(0, A, 2, [], stats(3, 0))],
      sources: [
        { location: 's0:a', kind: 'open', fileId: 's0/a', data: lines(line(A, 1, '0-1'), line(A, 1, '0-2')) },
        { location: 's1:a', kind: 'open', fileId: 's1/a', data: lines(line(A, 9, '0-1')) },
      ],
      stats: [],
    });
    expect(verdict.seqConflicts).toBe(2);
    expect(verdict.producerStatsMismatches).toBe(1);
    expect(verdict.ok).toBe(false);
  });
});
