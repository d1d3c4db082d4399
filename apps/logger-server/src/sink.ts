import { constants, closeSync, fdatasync, fstatSync, fsyncSync, ftruncateSync, linkSync, lstatSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync, writev, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import { basename, dirname, join } from 'node:path';
import { DiskError, UnsafePathError, type DiskErrorCode } from './errors';
import { LineBatch } from './line-batch';
import { FileSummary, manifestPathOf, newClosedFile, type ClosedFile } from './closed-file';

interface OpenFile {
  app: string;
  path: string;
  /** -1 while the descriptor is closed (see FileSink.descriptor): the file stays open to the sink. */
  fd: number;
  /** The inode opened first: a reopen that finds another file there (deleted, replaced) fails loudly. */
  ino: number;
  /** The device of that inode: with it, what identifies the file at its path (see atItsPath). */
  dev: number;
  size: number;
  /** When this process opened it: ROTATE_SECONDS and the hour boundary count from here. */
  openedAt: number;
  /** Time of the first record in the file: names the closed file and its archive. */
  firstTime: number | undefined;
  pending: LineBatch;
  /** The lines of the last commit and the size before it, until the batch is acknowledged (see dropFromLastBatch). */
  last: LineBatch;
  sizeBefore: number;
}

/** The record of the last line of a file: with the file's size, it identifies how far the file was acknowledged. */
export interface LastLine {
  origin: string;
  seq: number;
}

/** An open file that was no longer at its path when the sink went to close it for archiving (see FileSink.rotate). */
export interface MovedAwayFile {
  app: string;
  /** Where it was open: the file is wherever whoever moved it put it. */
  path: string;
  /** What found it: closing it for archiving, or a commit reopening its descriptor (closed for MAX_OPEN_FILES). */
  foundBy: 'rotation' | 'reopen';
}

/** What one FileSink.rotate did. */
export interface Rotated {
  /** Renamed to their closed names beside their manifests: for the archiver. */
  closed: ClosedFile[];
  /**
   * Moved away from their paths by someone else (logrotate's mv before its SIGHUP): left there, no
   * manifest. Found by this rotation, or by a commit that reopened a descriptor since the last one.
   */
  movedAway: MovedAwayFile[];
}

/** When open files are closed for archiving. */
export interface RotationPolicy {
  maxBytes: number;
  maxAgeMs: number;
}

/** How many files the sink keeps descriptors open for when not told otherwise (MAX_OPEN_FILES). */
export const DEFAULT_MAX_OPEN_FILES = 256;

/** Line batches of closed files kept for the next ones opened (two per file). */
const SPARE_BATCHES = 4;

const DIR_MODE = 0o750;
const FILE_MODE = 0o640;
// O_NOFOLLOW: a symlink planted at the file's path makes open fail instead of writing through it.
const OPEN_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

/**
 * The files under LOG_DIR/<app>/: lines are collected per file in memory, then commit() writes
 * each touched file once and fdatasyncs it once (group commit). Only after commit() resolves may
 * the entries behind those lines be acknowledged. The writes and fdatasyncs run on libuv's
 * threads, so the event loop meanwhile takes in the next batch's read (replies parsed, further
 * reads sent) instead of waiting for the disk.
 *
 * `app` must already be a validated name (the protocol's rule: no separators, no leading dot).
 *
 * Descriptors are bounded: at most `maxOpenFiles` are open at once, the least recently written
 * closed first (every line of theirs is already fdatasynced) and opened again on the next write,
 * so thousands of app names never run the process out of descriptors (EMFILE).
 */
export class FileSink {
  private readonly files = new Map<string, OpenFile>();
  /** Files whose descriptor is open, least recently used first (a Map keeps insertion order). */
  private readonly descriptors = new Map<OpenFile, true>();
  private readonly touched = new Set<OpenFile>();
  /** Per app, what its open file holds; kept across close() (SIGHUP) and reset when a file is closed for archiving or starts empty. */
  private readonly summaries = new Map<string, FileSummary>();
  /** Per app, the last line of its open file as of the last commit, and before it (until acknowledged). */
  private readonly lastLines = new Map<string, LastLine>();
  private readonly lastLinesBefore = new Map<string, LastLine | undefined>();
  /** True while commit() or takeBack() waits for the disk: close() then waits for them (see close). */
  private writing = false;
  /** Files with a write or fdatasync in flight: their descriptors are never closed to make room (see makeRoom). */
  private readonly inFlight = new Set<OpenFile>();
  private closeWhenWritten = false;
  /**
   * From commit() until acknowledged(): the batch may still have to be taken back (takeBack), so
   * its files stay open through a SIGHUP until then (see close).
   */
  private unacknowledged = false;
  /**
   * Line batches of files closed (rotated, or closed by SIGHUP), cleared, for the next file opened:
   * their chunks are reused instead of left to the garbage collector (~2 x a batch's lines per
   * rotated file, freed only at a full GC) while fresh ones are allocated and touched.
   */
  private readonly spareBatches: LineBatch[] = [];
  /** Files found moved away when a commit reopened their descriptor (see startOver), until rotate reports them. */
  private readonly movedAwayOnReopen: MovedAwayFile[] = [];

  constructor(
    readonly logDir: string,
    private readonly maxOpenFiles = DEFAULT_MAX_OPEN_FILES,
  ) {
    mkdirSync(logDir, { recursive: true, mode: DIR_MODE });
  }

  /** How many descriptors are open now (at most maxOpenFiles). */
  get openDescriptors(): number {
    return this.descriptors.size;
  }

  /**
   * The file's descriptor, opened again if it was closed to stay within maxOpenFiles; marks it
   * the most recently used. Throws DiskError, also when another file now stands at the path or
   * its size is not `expectedSize` (what this sink has written to it so far). With `batch` (a
   * commit's, not written yet): a file moved away meanwhile, the path now empty or holding an
   * empty file (logrotate's mv and `create` before its SIGHUP), is let go as rotate does, and the
   * batch starts the file at the path.
   */
  private descriptor(file: OpenFile, expectedSize = file.size, batch?: LineBatch): number {
    if (file.fd !== -1) {
      this.descriptors.delete(file);
      this.descriptors.set(file, true);
      return file.fd;
    }
    this.makeRoom();
    let fd: number;
    try {
      fd = openSync(file.path, OPEN_FLAGS, FILE_MODE);
    } catch (error) {
      if (batch === undefined || !isGone((error as NodeJS.ErrnoException).code)) throw new DiskError('DISK_WRITE_FAILED', file.path, error, 'reopen');
      // the directory was moved away with the file: made again, as for a first open
      fd = this.openPath(file.app).fd;
    }
    const stat = fstatSync(fd);
    if (batch !== undefined && !isOpenFile(file, stat) && stat.size === 0) this.startOver(file, stat, batch);
    else if (!isOpenFile(file, stat) || stat.size !== expectedSize) {
      closeSync(fd);
      // Someone put a file with data at the path, or changed the open file: writing on would put
      // acknowledged offsets on the wrong bytes. Stopping makes the restart recover the file as it
      // now is. (A file moved away, the path left empty, is let go above: see startOver.)
      throw new DiskError('DISK_WRITE_FAILED', file.path, new Error(`the open file was removed or replaced (inode ${file.ino} -> ${stat.ino}, size ${expectedSize} -> ${stat.size})`), 'reopen');
    }
    file.fd = fd;
    this.descriptors.set(file, true);
    return fd;
  }

  /**
   * The open file of `file.app` was moved away while its descriptor was closed, and `batch` goes
   * to the empty file now at its path (`stat`): from here on that one is the open file, holding
   * only the batch, with a summary of its own (the moved file's goes with it) and no manifest
   * for the moved one. Reported with the next rotate's movedAway.
   */
  private startOver(file: OpenFile, stat: Stats, batch: LineBatch): void {
    this.movedAwayOnReopen.push({ app: file.app, path: file.path, foundBy: 'reopen' });
    this.summaries.delete(file.app);
    this.lastLinesBefore.set(file.app, undefined);
    file.ino = stat.ino;
    file.dev = stat.dev;
    file.sizeBefore = 0;
    file.size = batch.length;
    file.firstTime = batch.times[0];
    file.openedAt = Date.now();
  }

  /**
   * Closes least recently used descriptors until one more may be opened, never one with a write
   * in flight (the write could land in whatever file reuses its number). With fewer files in
   * flight than maxOpenFiles (see canOpenWhileWriting) there is always one to close.
   */
  private makeRoom(): void {
    for (const file of this.descriptors.keys()) {
      if (this.descriptors.size < this.maxOpenFiles) return;
      if (!this.inFlight.has(file)) this.closeDescriptor(file);
    }
  }

  private closeDescriptor(file: OpenFile): void {
    if (file.fd === -1) return;
    const fd = file.fd;
    file.fd = -1;
    this.descriptors.delete(file);
    // Every line was fdatasynced at commit: a failing close says the disk is failing, nothing is lost yet.
    onDisk('DISK_WRITE_FAILED', file.path, 'close', () => closeSync(fd));
  }

  /**
   * Path of a file of the server's own state (checkpoints, spooled dead letters) in
   * `LOG_DIR/.state/`: on the same disk as the logs, and never taken for an app (not a valid name).
   * The directory is made by the first write (see openStateFile): a server that never needs it uses
   * no inode for it.
   */
  statePath(name: string): string {
    return join(this.logDir, '.state', name);
  }

  /** Path of an app's open file. */
  pathOf(app: string): string {
    return join(this.logDir, app, `${app}.log`);
  }

  /** Queues a record's line; returns its index among the app's lines of this batch. */
  append(app: string, line: string, time: number, origin: string, seq: number): number {
    const file = this.files.get(app) ?? this.open(app);
    file.firstTime ??= time;
    this.touched.add(file);
    return file.pending.add(line, origin, seq, time);
  }

  /**
   * The app's lines of this batch, for a writer that encodes them in place (LineBatch.room,
   * addEncoded); marks the file for the next commit. Throws UnsafePathError as append does.
   */
  linesOf(app: string): LineBatch {
    const file = this.files.get(app) ?? this.open(app);
    this.touched.add(file);
    return file.pending;
  }

  /** The summary of an app's open file (rebuilt at start by recoverOpenFiles). */
  summaryOf(app: string): FileSummary {
    let summary = this.summaries.get(app);
    if (!summary) this.summaries.set(app, (summary = new FileSummary()));
    return summary;
  }

  /** The last batch is final (acknowledged, nothing more to take out): count it into the summary. */
  private settle(file: OpenFile): void {
    const { origins, seqs, times, count } = file.last;
    if (count > 0) {
      const summary = this.summaryOf(file.app);
      for (let i = 0; i < count; i++) summary.add(times[i] as number, origins[i] as string, seqs[i] as number);
    }
    file.last.clear();
  }

  /**
   * Opens an app's file left by a previous run (recovery, at start), so it is rotated and archived
   * when due even if its app never writes again.
   */
  adopt(app: string): void {
    if (!this.files.has(app)) this.open(app);
  }

  /** The last line of an app's open file (set by recovery at start, then by each commit). */
  setLast(app: string, last: LastLine | undefined): void {
    if (last) this.lastLines.set(app, last);
    else this.lastLines.delete(app);
  }

  /** How far an app's open file is written and fsynced, identified by its last line; undefined for an empty file. */
  checkpointOf(app: string): { offset: number; origin: string; seq: number } | undefined {
    const file = this.files.get(app);
    const last = this.lastLines.get(app);
    if (!file || !last || file.size === 0) return undefined;
    return { offset: file.size, origin: last.origin, seq: last.seq };
  }

  /**
   * Writes and fdatasyncs every touched file. Rejects with DiskError; then nothing may be
   * acknowledged. Resolves with the apps whose files it wrote. Lines appended while it writes
   * are the next commit's; the next commit must not start before this one has settled (its
   * batch is then the last one, kept for takeBack until the next commit).
   */
  async commit(): Promise<{ apps: string[]; bytes: number }> {
    this.unacknowledged = true;
    let bytes = 0;
    const apps: string[] = [];
    const written: OpenFile[] = [];
    for (const file of this.files.values()) this.settle(file);
    // Every file's batch is taken at once, before the first wait: lines queued while this commit
    // writes (the next batch's, see StreamConsumer) go to the next commit, never into this one.
    for (const file of this.touched) {
      // linesOf marks a file before its lines come, and they may all be duplicates.
      if (file.pending.count === 0) continue;
      file.firstTime ??= file.pending.times[0];
      // The batch becomes the last one (kept until acknowledged); the cleared last one takes the next.
      const batch = file.pending;
      file.pending = file.last;
      file.last = batch;
      file.sizeBefore = file.size;
      file.size += batch.length;
      bytes += batch.length;
      this.lastLinesBefore.set(file.app, this.lastLines.get(file.app));
      const n = batch.count - 1;
      if (n >= 0) this.lastLines.set(file.app, { origin: batch.origins[n] as string, seq: batch.seqs[n] as number });
      apps.push(file.app);
      written.push(file);
    }
    this.touched.clear();
    return this.whileWriting(async (writes) => {
      for (const file of written) {
        const fd = await this.descriptorBeside(file, writes, file.sizeBefore, file.last);
        this.inFlight.add(file);
        writes.push(writeAndSync(file.path, fd, file.last.data()));
      }
      return { apps, bytes };
    });
  }

  /**
   * True when files may be opened (lines queued for new apps) while this commit writes: fewer
   * files are in flight than maxOpenFiles, so opening one can close another that is not (see
   * makeRoom). The next batch's lines are queued during a commit only then (see StreamConsumer).
   */
  get canOpenWhileWriting(): boolean {
    return this.inFlight.size < this.maxOpenFiles;
  }

  /**
   * The batch of the last commit() is acknowledged (or given up): nothing of it will be taken
   * back. A close() asked for meanwhile (SIGHUP) happens now, unless lines are queued.
   */
  acknowledged(): void {
    this.unacknowledged = false;
    if (this.closeWhenWritten) this.close();
  }

  /** True when close() was asked for and waits for a moment without lines queued, written or unacknowledged (see close). */
  get closeRequested(): boolean {
    return this.closeWhenWritten;
  }

  /** True when rotate() would close a file now (the same conditions, for files without queued lines). */
  rotationDue(policy: RotationPolicy, now = Date.now()): boolean {
    for (const file of this.files.values()) if (file.size > 0 && file.pending.count === 0 && isDue(file, policy, now)) return true;
    return false;
  }

  /**
   * Takes lines back out of the last committed batch: those `drop` returns true for (given the
   * app, the line's index in the app's batch, its origin and seq). Each touched file is cut back
   * to its size before the batch and the kept lines written and fdatasynced again. Used when
   * entries turned out to be another server's, or records already committed by the group.
   * Resolves with how many lines went; rejects with DiskError.
   */
  async takeBack(drop: (app: string, index: number, origin: string, seq: number) => boolean): Promise<number> {
    let dropped = 0;
    return this.whileWriting(async (writes) => {
      for (const file of this.files.values()) {
        const batch = file.last;
        if (batch.count === 0) continue;
        const removed = batch.remove((index) => drop(file.app, index, batch.origins[index] as string, batch.seqs[index] as number));
        if (removed === 0) continue;
        dropped += removed;
        const fd = await this.descriptorBeside(file, writes);
        this.inFlight.add(file);
        onDisk('DISK_WRITE_FAILED', file.path, 'truncate', () => ftruncateSync(fd, file.sizeBefore));
        writes.push(writeAndSync(file.path, fd, batch.data()));
        file.size = file.sizeBefore + batch.length;
        const n = batch.count - 1;
        this.setLast(file.app, n >= 0 ? { origin: batch.origins[n] as string, seq: batch.seqs[n] as number } : this.lastLinesBefore.get(file.app));
      }
      return dropped;
    });
  }

  /**
   * descriptor() while `writes` are in flight: when opening this file would close another's
   * descriptor (maxOpenFiles), the writes are waited for first, as no descriptor may be closed
   * under a write in flight.
   */
  private async descriptorBeside(file: OpenFile, writes: ReadonlyArray<Promise<void>>, expectedSize = file.size, batch?: LineBatch): Promise<number> {
    if (file.fd === -1 && this.descriptors.size >= this.maxOpenFiles) {
      await Promise.allSettled(writes);
      this.inFlight.clear();
    }
    return this.descriptor(file, expectedSize, batch);
  }

  /**
   * Runs `start`, which starts writes (one per file, in parallel on libuv's threads) and pushes
   * them to `writes`, and waits for every one of them, also when one failed or `start` threw: a
   * descriptor must not be closed (stop, SIGHUP) while a write on it is in flight, or the write
   * could land in whatever file reuses its number. Rejects with the first failure.
   */
  private async whileWriting<T>(start: (writes: Array<Promise<void>>) => Promise<T>): Promise<T> {
    const writes: Array<Promise<void>> = [];
    this.writing = true;
    try {
      const started = await start(writes).then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const failed = (await Promise.allSettled(writes)).find((outcome) => outcome.status === 'rejected');
      if (!started.ok) throw started.error;
      if (failed) throw failed.reason;
      return started.value;
    } finally {
      this.inFlight.clear();
      this.writing = false;
      if (this.closeWhenWritten) this.close();
    }
  }

  /**
   * Opens (creating) the file at an app's path, making its directory when missing. Throws
   * UnsafePathError for a symlink or anything but a directory and a regular file there, DiskError.
   */
  private openPath(app: string): { fd: number; stat: Stats } {
    const dir = join(this.logDir, app);
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    const dirStat = lstatSync(dir);
    if (!dirStat.isDirectory()) throw new UnsafePathError(dir, 'not a directory (a symlink?)');
    const path = this.pathOf(app);
    let fd: number;
    try {
      fd = openSync(path, OPEN_FLAGS, FILE_MODE);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsafePathError(path, 'it is a symlink', { cause: error });
      throw new DiskError('DISK_WRITE_FAILED', path, error);
    }
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      closeSync(fd);
      throw new UnsafePathError(path, 'not a regular file');
    }
    return { fd, stat };
  }

  private open(app: string): OpenFile {
    this.makeRoom();
    const path = this.pathOf(app);
    const { fd, stat: fileStat } = this.openPath(app);
    // A file left from a previous run keeps its age; its first record time is about its birth.
    const firstTime = fileStat.size > 0 ? Math.min(fileStat.birthtimeMs || fileStat.mtimeMs, fileStat.mtimeMs) : undefined;
    if (fileStat.size === 0) this.summaries.delete(app);
    const file: OpenFile = {
      app,
      path,
      fd,
      ino: fileStat.ino,
      dev: fileStat.dev,
      size: fileStat.size,
      openedAt: firstTime ?? Date.now(),
      firstTime,
      pending: this.spareBatches.pop() ?? new LineBatch(),
      last: this.spareBatches.pop() ?? new LineBatch(),
      sizeBefore: fileStat.size,
    };
    this.files.set(app, file);
    this.descriptors.set(file, true);
    return file;
  }

  /**
   * Closes the open files that are due (size, age, or a new UTC hour; every non-empty file when
   * `all`): they are already fsynced; each is renamed to its closed name and the directory
   * fsynced, so the rename survives a crash. Call between batches, after the acknowledgement.
   * A file no longer at its path (moved away by logrotate or an operator) is let go instead (see
   * closeForArchive). Throws DiskError; the files closed before the failure are on disk for the
   * archiver's next scan. No file is closed after `stopAt` (ms since the epoch): the rest stay
   * open files, whole and acknowledged, recovered as such by the next start.
   */
  rotate(policy: RotationPolicy, now = Date.now(), all = false, stopAt = Number.POSITIVE_INFINITY): Rotated {
    const closed: ClosedFile[] = [];
    const movedAway = this.movedAwayOnReopen.splice(0);
    for (const file of [...this.files.values()]) {
      if (file.size === 0 || file.pending.count > 0) continue;
      if (Date.now() >= stopAt) break;
      if (!all && !isDue(file, policy, now)) continue;
      this.settle(file);
      const closedFile = this.closeForArchive(file);
      if (closedFile) closed.push(closedFile);
      else movedAway.push({ app: file.app, path: file.path, foundBy: 'rotation' });
    }
    return { closed, movedAway };
  }

  /**
   * Renames a settled open file to a new closed name, its manifest written first; undefined when
   * the file is no longer at its path. logrotate moves the open file and then sends SIGHUP: a move
   * that lands before the SIGHUP is handled leaves the path empty, or holding logrotate's new file
   * (its `create` mode); an operator may move the whole directory. The file then belongs to whoever
   * moved it, whole and fsynced: no disk failure, and nothing at the path is renamed (see letGo).
   * Throws DiskError.
   */
  private closeForArchive(file: OpenFile): ClosedFile | undefined {
    if (!atItsPath(file)) return this.letGo(file);
    const dir = join(this.logDir, file.app);
    const closedFile = newClosedFile(file.app, dir, file.firstTime ?? file.openedAt);
    const path = closedFile.path;
    const manifest = manifestPathOf(path);
    // The manifest first, while nothing has changed yet: when it cannot be written the file stays
    // open with its summary, and a crash before the rename leaves only a stray manifest (removed
    // by the archiver's scan), never a closed file without its manifest.
    try {
      writeDurably(manifest, JSON.stringify(this.summaryOf(file.app).manifest(file.app, basename(path))) + '\n');
    } catch (error) {
      // the directory was moved since the check
      if (error instanceof DiskError && isGone(error.errno) && !atItsPath(file)) return this.letGo(file);
      throw error;
    }
    this.release(file);
    const renamed = renameToClosed(file, path, manifest, dir);
    // Only now is the summary no longer the open file's: a rotation that failed before this point
    // leaves it for the manifest of the file's next rotation.
    this.summaries.delete(file.app);
    this.lastLines.delete(file.app);
    return renamed ? closedFile : undefined;
  }

  /**
   * Lets go of an open file moved away from its path, as a SIGHUP's reopen does: its descriptor is
   * closed and the file left where it is, without a manifest. Its summary and last line go with
   * it: the app's next line starts a new file at the path (or logrotate's new one), counted from
   * nothing, as after a rotation.
   */
  private letGo(file: OpenFile): undefined {
    this.release(file);
    this.summaries.delete(file.app);
    this.lastLines.delete(file.app);
    return undefined;
  }

  /** The sink is done with an open file (closed or let go): once only, or its line batches would be given to two files. */
  private release(file: OpenFile): void {
    this.files.delete(file.app);
    this.keepBatches(file);
    this.closeDescriptor(file);
  }

  /** Keeps a closed file's (settled, empty) line batches for the next file opened, a few at most. */
  private keepBatches(file: OpenFile): void {
    // Files are closed with nothing written in flight; were one, its chunks must not be written over.
    if (this.inFlight.has(file)) return;
    for (const batch of [file.pending, file.last]) {
      if (this.spareBatches.length >= SPARE_BATCHES || batch.count > 0) continue;
      batch.clear();
      this.spareBatches.push(batch);
    }
  }

  /** How many open files hold records (what a rotation of all would close). */
  get nonEmptyFiles(): number {
    let count = 0;
    for (const file of this.files.values()) if (file.size > 0) count++;
    return count;
  }

  /**
   * Closes every file; the next append reopens it (SIGHUP, logrotate). While a commit writes or
   * waits to be acknowledged (its lines may still have to be taken back out of these files), or
   * lines are queued for the next one, the files are closed once the first commit after which
   * none are queued is acknowledged (closing would drop the queued lines).
   */
  close(): void {
    if (this.writing || this.unacknowledged || this.touched.size > 0) {
      this.closeWhenWritten = true;
      return;
    }
    this.closeWhenWritten = false;
    for (const file of this.files.values()) {
      this.settle(file);
      this.keepBatches(file);
      try {
        this.closeDescriptor(file);
      } catch {
        // closing is best effort: every line was fsynced at commit
      }
    }
    this.files.clear();
    this.touched.clear();
  }
}

/**
 * Renames a released open file to its closed name (`path`, beside its `manifest`) and fsyncs the
 * directory; false when it turns out to have been moved away after all (see closeForArchive): a
 * rename that finds nothing (ENOENT), or that took logrotate's new file, made at the path since the
 * check (that one goes back), or a directory moved right after the rename (the closed file and its
 * manifest went with it). Throws DiskError.
 */
function renameToClosed(file: OpenFile, path: string, manifest: string, dir: string): boolean {
  try {
    renameSync(file.path, path);
  } catch (error) {
    if (!isGone((error as NodeJS.ErrnoException).code)) throw new DiskError('DISK_WRITE_FAILED', file.path, error, `rename to ${path}`);
    removeStray(manifest);
    return false;
  }
  const renamed = statIfThere(path);
  if (renamed !== undefined && !isOpenFile(file, renamed)) {
    removeStray(manifest);
    onDisk('DISK_WRITE_FAILED', file.path, `link back from ${path}`, () => linkSync(path, file.path));
    onDisk('DISK_WRITE_FAILED', path, 'unlink', () => unlinkSync(path));
  }
  try {
    syncDirectory(dir);
  } catch (error) {
    if (error instanceof DiskError && isGone(error.errno)) return false;
    throw error;
  }
  return renamed !== undefined && isOpenFile(file, renamed);
}

/** True when the file at its path is the open file, false when there is none or another one. Throws DiskError. */
function atItsPath(file: OpenFile): boolean {
  const stat = statIfThere(file.path);
  return stat !== undefined && isOpenFile(file, stat);
}

/** lstat of `path`, undefined when nothing is there. Throws DiskError. */
function statIfThere(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if (isGone((error as NodeJS.ErrnoException).code)) return undefined;
    throw new DiskError('DISK_WRITE_FAILED', path, error, 'lstat');
  }
}

/** The same inode on the same device: the open file, whatever its name now. */
function isOpenFile(file: OpenFile, stat: Stats): boolean {
  return stat.ino === file.ino && stat.dev === file.dev;
}

/** ENOENT, or ENOTDIR (the directory replaced by a file): nothing is at the path. */
function isGone(errno: string | undefined): boolean {
  return errno === 'ENOENT' || errno === 'ENOTDIR';
}

/** Removes a manifest written for a file that was moved away before its rename; one left (a crash, a failing unlink, a moved directory) is a stray, which the archiver's scan removes. */
function removeStray(manifest: string): void {
  try {
    unlinkSync(manifest);
  } catch {
    // see above: harmless
  }
}

/** ROTATE_BYTES, ROTATE_SECONDS or a new UTC hour since the file was opened. */
function isDue(file: OpenFile, policy: RotationPolicy, now: number): boolean {
  return file.size >= policy.maxBytes || now - file.openedAt >= policy.maxAgeMs || Math.floor(now / 3_600_000) !== Math.floor(file.openedAt / 3_600_000);
}

/**
 * Runs one file system call on `path`; its failure becomes a DiskError, so the server stops as
 * for any disk failure (instead of taking it for a Redis error and going on).
 */
function onDisk<T>(code: DiskErrorCode, path: string, operation: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw new DiskError(code, path, error, operation);
  }
}

const writevAsync = promisify(writev);
const fdatasyncAsync = promisify(fdatasync);

/** Appends all of `data` and fdatasyncs. Rejects with DiskError; the caller must not acknowledge then. */
async function writeAndSync(path: string, fd: number, data: Buffer[]): Promise<void> {
  try {
    await writeAll(fd, data);
  } catch (error) {
    throw new DiskError('DISK_WRITE_FAILED', path, error, 'write');
  }
  try {
    await fdatasyncAsync(fd);
  } catch (error) {
    // After a failed fsync the page cache may have dropped the dirty pages: never retry on this
    // descriptor. The caller stops; the entries stay pending in Redis.
    throw new DiskError('FSYNC_FAILED', path, error, 'fdatasync');
  }
}

/** IOV_MAX on Linux: the most buffers one writev takes. */
const MAX_IOV = 1024;

/** Writes all of `chunks` in order with as few writev calls as the kernel allows (a short write continues where it stopped). */
async function writeAll(fd: number, chunks: readonly Buffer[]): Promise<void> {
  let first = 0;
  let skip = 0; // bytes of chunks[first] already written
  while (first < chunks.length) {
    const iov: Buffer[] = [];
    for (let i = first; i < chunks.length && iov.length < MAX_IOV; i++) iov.push(i === first && skip > 0 ? (chunks[i] as Buffer).subarray(skip) : (chunks[i] as Buffer));
    let written = (await writevAsync(fd, iov)).bytesWritten;
    while (first < chunks.length && written >= (chunks[first] as Buffer).length - skip) {
      written -= (chunks[first] as Buffer).length - skip;
      skip = 0;
      first++;
    }
    skip += written;
  }
}

/** Creates a small file (never over an existing one) and fsyncs it. Throws DiskError. */
function writeDurably(path: string, text: string): void {
  const fd = onDisk('DISK_WRITE_FAILED', path, 'create', () => openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, FILE_MODE));
  try {
    onDisk('DISK_WRITE_FAILED', path, 'write', () => writeSync(fd, text));
    onDisk('FSYNC_FAILED', path, 'fsync', () => fsyncSync(fd));
  } finally {
    closeSync(fd);
  }
}

/** Opens a file under LOG_DIR/.state/ (see FileSink.statePath), making the directory the first time. */
export function openStateFile(path: string, flags: number): number {
  try {
    return openSync(path, flags | constants.O_NOFOLLOW, FILE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    mkdirSync(dirname(path), { recursive: true, mode: DIR_MODE });
    return openSync(path, flags | constants.O_NOFOLLOW, FILE_MODE);
  }
}

/** fsync of a directory: makes a rename or an unlink in it durable. Throws DiskError. */
export function syncDirectory(dir: string): void {
  const fd = onDisk('FSYNC_FAILED', dir, 'open', () => openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY));
  try {
    onDisk('FSYNC_FAILED', dir, 'fsync', () => fsyncSync(fd));
  } finally {
    closeSync(fd);
  }
}
