// The closed-file contract, in one place: what a closed file is called, where its manifest lies,
// how a name is read back, and what the manifest holds. The sink names files by it, the archiver
// finds them and their manifests by it, recovery and `logger-server archive` rely on it.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTimeStamp, timeStamp } from '@log/protocol';
import { parseOrigin } from './origin';

/** A closed file: `LOG_DIR/<app>/<YYYYMMDDTHHMMSSmmmZ>-<unique>.jsonl`, never written again. */
export interface ClosedFile {
  app: string;
  path: string;
  /** Time of the first record written to it: names the file and its archive key. */
  firstTime: number;
  /** 8 hex characters: two files of one app and first time never share a name. */
  unique: string;
}

const CLOSED_NAME = /^(\d{8}T\d{9}Z)-([0-9a-f]{8})\.jsonl$/;
const DATA_SUFFIX = '.jsonl';
const MANIFEST_SUFFIX = '.manifest.json';

/** The name of a closed file whose first record is from `firstTime`. */
export function closedFileName(firstTime: number, unique: string): string {
  return `${timeStamp(firstTime)}-${unique}${DATA_SUFFIX}`;
}

/** A new closed file of `app` in `dir` (LOG_DIR/<app>), with a fresh unique part. */
export function newClosedFile(app: string, dir: string, firstTime: number): ClosedFile {
  const unique = randomBytes(4).toString('hex');
  return { app, path: join(dir, closedFileName(firstTime, unique)), firstTime, unique };
}

/** Parses a closed file's name (in `dir`) back into its first record time and unique part; undefined for any other name. */
export function parseClosedName(app: string, dir: string, name: string): ClosedFile | undefined {
  const match = CLOSED_NAME.exec(name);
  if (!match) return undefined;
  const firstTime = parseTimeStamp(match[1] as string);
  if (firstTime === undefined) return undefined;
  return { app, path: join(dir, name), firstTime, unique: match[2] as string };
}

/** `<closed name>.manifest.json` beside a closed file: its FileManifest, written before the rename. */
export function manifestPathOf(closedPath: string): string {
  return closedPath.endsWith(DATA_SUFFIX) ? closedPath.slice(0, -DATA_SUFFIX.length) + MANIFEST_SUFFIX : closedPath + MANIFEST_SUFFIX;
}

/** The closed file's name a manifest's name belongs to, or undefined when `name` is no manifest of a closed file. */
export function closedNameOfManifest(name: string): string | undefined {
  if (!name.endsWith(MANIFEST_SUFFIX)) return undefined;
  const closed = name.slice(0, -MANIFEST_SUFFIX.length) + DATA_SUFFIX;
  return CLOSED_NAME.test(closed) ? closed : undefined;
}

/** Sequence numbers of one producer in one file. */
export interface ProducerRange {
  producer: string;
  /** The host its frames named (one origin: producer id and host; the file is its app's); absent for Pub/Sub text. */
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

/** A closed file's manifest, or undefined when it is missing or not one (the file is archived without it). */
export function readManifest(path: string): FileManifest | undefined {
  try {
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as FileManifest;
    return manifest.version === 1 && Array.isArray(manifest.producers) ? manifest : undefined;
  } catch {
    return undefined;
  }
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

  /** The manifest of `file` (the closed file's name) of `app`, from what was added. */
  manifest(app: string, file: string): FileManifest {
    const producers: ProducerRange[] = [];
    for (const range of this.producers.values()) producers.push({ ...range });
    return {
      version: 1,
      app,
      file,
      records: this.records,
      firstTime: this.records > 0 ? isoOrUndefined(this.minTime) : undefined,
      lastTime: this.records > 0 ? isoOrUndefined(this.maxTime) : undefined,
      producers,
    };
  }
}

function isoOrUndefined(ms: number): string | undefined {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
