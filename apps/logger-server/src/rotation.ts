import type { ClosedFile } from './closed-file';
import { DiskError } from './errors';
import type { ServerLog } from './log';
import type { Metrics } from './metrics';
import type { LocalCheckpoints } from './recovery';
import type { FileSink, Rotated, RotationPolicy } from './sink';

/**
 * How long one rotation between batches may take: closing a file is a manifest, a rename and
 * three fsyncs, and thousands of app names all due at a UTC hour would hold reading up for
 * seconds; the files left are still due and are closed between the next batches.
 */
const ROTATION_SLICE_MS = 250;

/** Where a closed file goes next: the ArchiveQueue when S3_BUCKET is set. */
export interface ClosedFileTaker {
  add(file: ClosedFile): void;
}

/**
 * Closes the open files that are due (ROTATE_BYTES, ROTATE_SECONDS, a new UTC hour, or all of them
 * at shutdown) and hands them on. Only between committed batches: a written but uncommitted batch
 * must stay in its open file, where a restart cuts it and its entries are redelivered; in a closed
 * file it would be archived and then written again.
 */
export class FileRotation {
  constructor(
    private readonly sink: FileSink,
    private readonly policy: RotationPolicy,
    private readonly local: LocalCheckpoints,
    private readonly archive: ClosedFileTaker | undefined,
    /** True while a batch is queued or written but not committed. */
    private readonly uncommitted: () => boolean,
    /** Told of a disk failure: the server stops without acknowledging. */
    private readonly fail: (error: DiskError) => void,
    /** Told of open files found moved away, by the rotation or by a commit's reopen (see FileSink.rotate). */
    private readonly told: { log: ServerLog; metrics: Pick<Metrics, 'filesMovedAway'> },
  ) {}

  /** True when a file is due to be closed (ROTATE_BYTES, ROTATE_SECONDS, a new UTC hour): the consumer then commits what it has before writing on. */
  due(now = Date.now()): boolean {
    return this.sink.rotationDue(this.policy, now);
  }

  /**
   * Returns false when the disk failed: the server is stopping then, and the caller's loop must
   * end instead of taking the failure for a Redis one. Files closed before the failure stay on
   * disk for the archiver's next scan. No file is closed after `stopAt`: a shutdown with thousands
   * of open files must not outlast its drain deadline, and a file left open is recovered whole.
   */
  run(all = false, now = Date.now(), stopAt = all ? Number.POSITIVE_INFINITY : Date.now() + ROTATION_SLICE_MS): boolean {
    if (this.uncommitted()) return true;
    let rotated: Rotated;
    try {
      rotated = this.sink.rotate(this.policy, now, all, stopAt);
    } catch (error) {
      if (!(error instanceof DiskError)) throw error;
      this.fail(error);
      return false;
    }
    const { closed, movedAway } = rotated;
    // An app whose file was moved away starts a new one too: the checkpoint was of the moved file.
    const apps = closed.map((file) => file.app);
    for (const file of movedAway) {
      apps.push(file.app);
      this.told.metrics.filesMovedAway.inc();
      this.told.log('warn', 'an open file was moved away (logrotate before its SIGHUP?): left where it was put, not archived; a new file is started at its path', { ...file });
    }
    this.local.forget(apps);
    for (const file of closed) this.archive?.add(file);
    return true;
  }
}
