import { closeSync, constants, fdatasyncSync, fstatSync, ftruncateSync, lstatSync, openSync, readSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isValidName } from '@log/protocol';
import type { DedupCache } from './dedup';
import { DiskError } from './errors';
import type { Checkpoint, ShardedGroupState } from './group-state';
import type { ServerLog } from './log';
import { originKey, parseOrigin } from './origin';
import { openStateFile, type FileSink } from './sink';

const CHUNK = 1024 * 1024;
/** Longer than any line the server writes (a record is at most 256 KiB before escaping). */
const IDENTITY_WINDOW = 2 * 1024 * 1024;

/**
 * How much of each open file a restarted server trusts (see "Recovery" in the README):
 *  - `checkpoints` (stream mode): what Redis says each of this consumer's files had
 *    acknowledged, atomically with the acknowledgement (one per shard of a sharded channel), or undefined when Redis knows no
 *    checkpoint of the group at all (it lost its data): then the files are the only copy and
 *    are kept whole;
 *  - `local`: the same, as this process last wrote it beside the files (not fsynced: it survives
 *    a kill, not a power cut); it is ahead of Redis only when Redis lost acknowledgements, and
 *    those bytes are then the only copy.
 * Pub/Sub mode passes neither: nothing is ever redelivered, so every complete line is kept.
 */
export interface TrustSources {
  checkpoints: ReadonlyMap<string, readonly Checkpoint[]> | undefined;
  local: ReadonlyMap<string, Checkpoint>;
  mode: 'acknowledged' | 'complete-lines';
}

export interface RecoveredFile {
  app: string;
  /** Bytes kept. */
  trusted: number;
  /** Bytes cut off: written after the last acknowledgement (or a torn line); their entries are redelivered. */
  cut: number;
  records: number;
  last: { origin: string; seq: number } | undefined;
}

/**
 * Recovers the open files at start, before anything is read: in stream mode each is cut back to
 * its acknowledged prefix (what Redis and this process last recorded; the rest is redelivered), in
 * Pub/Sub mode to its last complete line (nothing is ever redelivered). Says what it cut.
 */
export async function recoverAtStart(
  transport: 'stream' | 'pubsub',
  sink: FileSink,
  dedup: DedupCache,
  group: Pick<ShardedGroupState, 'checkpoints'>,
  local: LocalCheckpoints,
  log: ServerLog,
): Promise<void> {
  const stream = transport === 'stream';
  const trust: TrustSources = { mode: stream ? 'acknowledged' : 'complete-lines', checkpoints: stream ? await group.checkpoints() : undefined, local: local.read() };
  for (const file of recoverOpenFiles(sink, dedup, trust, log)) if (file.cut > 0 || file.records > 0) log('info', 'recovered an open file', { ...file });
}

/**
 * Recovers the open files a previous run left: each is cut back to the part it can trust, then
 * read once, line by line in 1 MiB chunks (memory stays bounded whatever its size), to rebuild
 * the dedup cache and the file's summary. Nothing data-sized is held.
 */
export function recoverOpenFiles(sink: FileSink, dedup: DedupCache, trust: TrustSources, log: ServerLog): RecoveredFile[] {
  const recovered: RecoveredFile[] = [];
  let apps: string[];
  try {
    apps = readdirSync(sink.logDir);
  } catch {
    return recovered;
  }
  for (const app of apps) {
    if (!isValidName(app)) continue;
    const path = sink.pathOf(app);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new DiskError('DISK_WRITE_FAILED', path, error);
    }
    try {
      const size = fstatSync(fd).size;
      const complete = lastNewline(fd, size);
      const trusted = trustedLength(fd, path, app, complete, trust, log);
      if (trusted < size) {
        ftruncateSync(fd, trusted);
        fdatasyncSync(fd);
      }
      const summary = sink.summaryOf(app);
      let records = 0;
      let last: RecoveredFile['last'];
      forEachLine(fd, trusted, (line) => {
        const own = ownKeys(line);
        if (own === undefined) return;
        dedup.remember(own.origin, own.seq);
        summary.add(own.time, own.origin, own.seq);
        records++;
        last = own;
      });
      sink.setLast(app, last);
      if (trusted > 0) sink.adopt(app);
      recovered.push({ app, trusted, cut: size - trusted, records, last });
    } finally {
      closeSync(fd);
    }
  }
  return recovered;
}

function trustedLength(fd: number, path: string, app: string, complete: number, trust: TrustSources, log: ServerLog): number {
  if (trust.mode === 'complete-lines' || trust.checkpoints === undefined) return complete;
  let trusted = 0;
  // A sharded channel has one checkpoint per shard (each shard's commit records the file as it
  // was then; the latest commit has the largest offset); a shard's may be left from a file
  // since rotated, and fails the identity check. The smallest first: the largest that holds wins.
  const sources: Array<readonly ['redis' | 'local', Checkpoint | undefined]> = [];
  for (const checkpoint of trust.checkpoints.get(app) ?? []) sources.push(['redis', checkpoint]);
  sources.push(['local', trust.local.get(app)]);
  sources.sort(([, a], [, b]) => (a?.offset ?? 0) - (b?.offset ?? 0));
  for (const [source, checkpoint] of sources) {
    if (checkpoint === undefined || checkpoint.offset <= trusted) continue;
    if (checkpoint.offset > complete) {
      // Taken of a file closed since (rotated, or moved away by logrotate) with no commit of this
      // one after it: it acknowledges nothing of this file, as one that fails the identity check.
      if (ofAnotherFile(path, checkpoint)) continue;
      // The disk lost bytes that were fsynced and acknowledged: nothing better than what is left.
      log('error', 'an open file is shorter than what was acknowledged of it; keeping all of it', { app, source, acknowledged: checkpoint.offset, size: complete });
      return complete;
    }
    const ok = lineEndingAt(fd, checkpoint.offset, checkpoint);
    if (ok) trusted = checkpoint.offset;
  }
  return trusted;
}

/**
 * True when a file beside the open one at `path` (closed by a rotation, or moved there by
 * logrotate) is the one the checkpoint was taken of: its size is the checkpoint's offset and its
 * last line the checkpoint's record. Redis keeps a file's checkpoint until a commit writes to the
 * app's next file: a restart in between finds the new file shorter than it.
 */
function ofAnotherFile(path: string, checkpoint: Checkpoint): boolean {
  const dir = dirname(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return false;
  }
  for (const name of names) {
    const other = join(dir, name);
    if (other === path) continue;
    let fd: number;
    try {
      const stat = lstatSync(other);
      if (!stat.isFile() || stat.size !== checkpoint.offset) continue;
      fd = openSync(other, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      continue; // gone meanwhile, or not readable: not the file it was taken of, as far as can be told
    }
    try {
      if (lineEndingAt(fd, checkpoint.offset, checkpoint)) return true;
    } finally {
      closeSync(fd);
    }
  }
  return false;
}

/** True when the line that ends at byte `offset` is the checkpoint's record: the file is the one it was taken of. */
function lineEndingAt(fd: number, offset: number, checkpoint: Checkpoint): boolean {
  if (offset === 0) return true;
  const start = Math.max(0, offset - IDENTITY_WINDOW);
  const window = Buffer.allocUnsafe(offset - start);
  const n = readSync(fd, window, 0, window.length, start);
  if (n !== window.length || window[n - 1] !== 0x0a) return false;
  const lineStart = window.lastIndexOf(0x0a, n - 2) + 1;
  const own = ownKeys(window.toString('utf8', lineStart, n - 1));
  if (own === undefined || own.seq !== checkpoint.seq) return false;
  // A checkpoint written before origins (a bare producer id) still identifies its line.
  return own.origin === checkpoint.origin || parseOrigin(own.origin).producer === checkpoint.origin;
}

/** Bytes up to and including the last newline: a torn last line was never fsynced whole. */
function lastNewline(fd: number, size: number): number {
  const chunk = Buffer.allocUnsafe(Math.min(CHUNK, size));
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - chunk.length);
    const n = readSync(fd, chunk, 0, end - start, start);
    const newline = chunk.lastIndexOf(0x0a, n - 1);
    if (newline !== -1) return start + newline + 1;
    end = start;
  }
  return 0;
}

/**
 * Calls `onLine` for each line of the first `length` bytes (which end with a newline). One buffer
 * for the whole file: the part of a line left at a chunk's end is moved to its front and the next
 * read goes after it (a new buffer per chunk cost about half a 64 MiB file in garbage).
 */
function forEachLine(fd: number, length: number, onLine: (line: string) => void): void {
  let buffer = Buffer.allocUnsafe(CHUNK);
  let kept = 0; // bytes of an unfinished line at the buffer's front
  let position = 0;
  while (position < length) {
    if (kept === buffer.length) {
      // a line longer than the buffer (never more than a record): grow once for it
      const bigger = Buffer.allocUnsafe(buffer.length * 2);
      buffer.copy(bigger, 0, 0, kept);
      buffer = bigger;
    }
    const n = readSync(fd, buffer, kept, Math.min(buffer.length - kept, length - position), position);
    if (n === 0) break;
    position += n;
    const end = kept + n;
    let start = 0;
    for (let newline = buffer.indexOf(0x0a, kept); newline !== -1 && newline < end; newline = buffer.indexOf(0x0a, start)) {
      onLine(buffer.toString('utf8', start, newline));
      start = newline + 1;
      if (start >= end) break;
    }
    kept = end - start;
    if (kept > 0 && start > 0) buffer.copy(buffer, 0, start, end);
  }
}

const APP_KEY = ',"app":"';
const HOST_KEY = '","host":"';
const PID_KEY = '","pid":';
const PRODUCER_KEY = ',"producer":"';
const SEQ_KEY = '","seq":';

/**
 * time, origin (see origin.ts) and seq of a line the server wrote (format.ts puts them before
 * the message and the fields, in this order, so the first match is them), or undefined for a
 * line that is not one.
 */
export function ownKeys(line: string): { time: number; origin: string; seq: number } | undefined {
  if (!line.startsWith('{"time":"')) return undefined;
  const a = line.indexOf(APP_KEY);
  if (a === -1) return undefined;
  const appStart = a + APP_KEY.length;
  const h = line.indexOf(HOST_KEY, appStart);
  if (h === -1) return undefined;
  const hostStart = h + HOST_KEY.length;
  const i = line.indexOf(PID_KEY, hostStart);
  if (i === -1) return undefined;
  const p = line.indexOf(PRODUCER_KEY, i);
  if (p === -1) return undefined;
  const producerStart = p + PRODUCER_KEY.length;
  const s = line.indexOf(SEQ_KEY, producerStart);
  if (s === -1) return undefined;
  const seqStart = s + SEQ_KEY.length;
  const seqEnd = line.indexOf(',', seqStart);
  const seq = Number(line.slice(seqStart, seqEnd === -1 ? undefined : seqEnd));
  if (!Number.isSafeInteger(seq)) return undefined;
  const origin = originKey(line.slice(producerStart, s), line.slice(appStart, h), line.slice(hostStart, i));
  return { time: Date.parse(line.slice(9, line.indexOf('"', 9))), origin, seq };
}

/**
 * This consumer's checkpoints as it last committed them, in `LOG_DIR/.state/acknowledged-
 * <consumer>.json`. Written after every commit without fsync: one small write per batch, never
 * per record.
 */
export class LocalCheckpoints {
  private readonly current = new Map<string, Checkpoint>();

  constructor(readonly path: string) {}

  read(): Map<string, Checkpoint> {
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as Record<string, Checkpoint>;
      for (const [app, checkpoint] of Object.entries(parsed)) {
        // `producer`: the name of the field before origins
        const origin = checkpoint?.origin ?? (checkpoint as { producer?: unknown } | undefined)?.producer;
        if (isValidName(app) && Number.isSafeInteger(checkpoint?.offset) && typeof origin === 'string') this.current.set(app, { offset: checkpoint.offset, origin, seq: checkpoint.seq });
      }
    } catch {
      // none yet, or torn by a crash mid-write: Redis's checkpoints decide alone
    }
    return new Map(this.current);
  }

  update(checkpoints: ReadonlyMap<string, Checkpoint>): void {
    if (checkpoints.size === 0) return;
    for (const [app, checkpoint] of checkpoints) this.current.set(app, checkpoint);
    this.write();
  }

  /**
   * Files were closed for archiving: their apps start new files with nothing acknowledged. One
   * write for all of them (a shutdown closes thousands: one write each would rewrite the whole
   * file thousands of times).
   */
  forget(apps: Iterable<string>): void {
    let changed = false;
    for (const app of apps) changed = this.current.delete(app) || changed;
    if (changed) this.write();
  }

  private write(): void {
    try {
      const fd = openStateFile(this.path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC);
      try {
        writeSync(fd, JSON.stringify(Object.fromEntries(this.current)));
      } finally {
        closeSync(fd);
      }
    } catch {
      // best effort: Redis holds the authoritative checkpoints
    }
  }
}
