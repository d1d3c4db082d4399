// The one spelling of a record time in file and object names: the closed file's name and its
// archive key carry the first record's time this way, and are parsed back from it.

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/;

/** `20261125T130405678Z`: an ISO time without separators, sortable and safe in paths and keys. */
export function timeStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}

/** The time (ms since the epoch) a timeStamp() spells, or undefined for anything else. */
export function parseTimeStamp(text: string): number | undefined {
  const m = STAMP.exec(text);
  if (!m) return undefined;
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, +m[7]!);
  // Date.UTC rolls 20261332 over into the next year: only a stamp that spells itself back is one.
  return timeStamp(ms) === text ? ms : undefined;
}
