import type { ClosedFile } from './closed-file';
import { DiskError } from './errors';
import type { LocalCheckpoints } from './recovery';
import type { FileSink, RotationPolicy } from './sink';

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
    /** True while a batch is written but not committed. */
    private readonly uncommitted: () => boolean,
    /** Told of a disk failure: the server stops without acknowledging. */
    private readonly fail: (error: DiskError) => void,
  ) {}

  /**
   * Returns false when the disk failed: the server is stopping then, and the caller's loop must
   * end instead of taking the failure for a Redis one. Files closed before the failure stay on
   * disk for the archiver's next scan.
   */
  run(all = false, now = Date.now()): boolean {
    if (this.uncommitted()) return true;
    let closed: ClosedFile[];
    try {
      closed = this.sink.rotate(this.policy, now, all);
    } catch (error) {
      if (!(error instanceof DiskError)) throw error;
      this.fail(error);
      return false;
    }
    for (const file of closed) {
      this.local.forget(file.app);
      this.archive?.add(file);
    }
    return true;
  }
}
