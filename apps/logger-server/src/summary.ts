import { parseOrigin } from './origin';

/** Sequence numbers of one producer (one origin: producer id and host; the file is its app's) in one file. */
export interface ProducerRange {
  producer: string;
  /** The host its frames named; absent for Pub/Sub text, which has no producer of its own. */
  host?: string;
  minSeq: number;
  maxSeq: number;
  records: number;
}

/** What a closed file holds: written beside it as `<name>.manifest.json` and archived with it. */
export interface FileManifest {
  version: 1;
  app: string;
  /** The closed file's name. */
  file: string;
  records: number;
  /** ISO times of the earliest and latest record (records can arrive late, so not the first and last line). */
  firstTime: string | undefined;
  lastTime: string | undefined;
  /** Per producer: its sequence numbers here. maxSeq - minSeq + 1 - records are numbers in other files or lost. */
  producers: ProducerRange[];
}

/**
 * Counts the records of one file as they become final. add() runs once per record on the
 * server's write path: no allocation unless a producer is new to the file.
 */
export class FileSummary {
  records = 0;
  minTime = Number.POSITIVE_INFINITY;
  maxTime = Number.NEGATIVE_INFINITY;
  /** By origin key (see origin.ts). */
  private readonly producers = new Map<string, ProducerRange>();
  private last: ProducerRange | undefined;
  private lastOrigin: string | undefined;

  add(time: number, origin: string, seq: number): void {
    this.records++;
    if (time < this.minTime) this.minTime = time;
    if (time > this.maxTime) this.maxTime = time;
    let range = this.last;
    if (range === undefined || this.lastOrigin !== origin) {
      range = this.producers.get(origin);
      if (range === undefined) {
        const { producer, host } = parseOrigin(origin);
        range = host === undefined ? { producer, minSeq: seq, maxSeq: seq, records: 0 } : { producer, host, minSeq: seq, maxSeq: seq, records: 0 };
        this.producers.set(origin, range);
      }
      this.last = range;
      this.lastOrigin = origin;
    }
    range.records++;
    if (seq < range.minSeq) range.minSeq = seq;
    if (seq > range.maxSeq) range.maxSeq = seq;
  }

  manifest(app: string, file: string): FileManifest {
    return {
      version: 1,
      app,
      file,
      records: this.records,
      firstTime: this.records > 0 ? isoOrUndefined(this.minTime) : undefined,
      lastTime: this.records > 0 ? isoOrUndefined(this.maxTime) : undefined,
      producers: [...this.producers.values()].map((range) => ({ ...range })),
    };
  }
}

function isoOrUndefined(ms: number): string | undefined {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
