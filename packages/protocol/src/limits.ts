/**
 * What the server accepts, in one place: the publisher reads the same object to fit every record
 * it sends inside these bounds, so a record is never reported `sent` by one end and refused by
 * the other.
 */
export interface Limits {
  /** Largest accepted frame in bytes. @defaultValue 8 MiB */
  maxFrameBytes: number;
  /** Largest accepted record line in bytes. @defaultValue 256 KiB */
  maxRecordBytes: number;
  /** Deepest accepted nesting of fields and errors; the fields object itself is depth 1. @defaultValue 20 */
  maxDepth: number;
  /**
   * Most object keys and array elements accepted in one record, counted over all levels of its
   * fields and its error together (so it also bounds every array's length). @defaultValue 1000
   */
  maxKeys: number;
  /** Longest app, host, channel or producer name. @defaultValue 64 */
  maxNameLength: number;
  /** Earliest record time (ms since the epoch) taken as given: 2000-01-01T00:00:00Z. */
  minTime: number;
  /** How far past the receive time a record time is taken as given. @defaultValue one day */
  maxFutureMs: number;
  /**
   * Most drops one frame header may report. Large enough for any real outage between two frames,
   * small enough that a hostile header cannot push a counter past exact integers.
   * @defaultValue 2^32
   */
  maxDropped: number;
  /** Largest process id a header may carry (32 bits covers every operating system). */
  maxPid: number;
}

export const LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 8 * 1024 * 1024,
  maxRecordBytes: 256 * 1024,
  maxDepth: 20,
  maxKeys: 1000,
  maxNameLength: 64,
  minTime: Date.UTC(2000, 0, 1),
  maxFutureMs: 24 * 60 * 60 * 1000,
  maxDropped: 2 ** 32,
  maxPid: 2 ** 32 - 1,
});
