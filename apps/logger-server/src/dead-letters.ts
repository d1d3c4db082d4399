import type { DeadLetterReason } from '@log/protocol';
import { closeSync, constants, fsyncSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { openStateFile } from './sink';
import { DiskError } from './errors';
import { describeError, type ServerLog } from './log';
import type { Metrics } from './metrics';
import type { Rejected } from './records';

/** Stores one dead letter in Redis: (entry id or 'pubsub', reason, detail, payload). */
export type SendDeadLetter = (entry: string, reason: DeadLetterReason, detail: string, payload: Buffer | undefined) => Promise<void>;

interface Spooled {
  entry: string;
  reason: DeadLetterReason;
  detail: string;
  payload: string | undefined;
}

/**
 * The dead-letter stream, with a local spool for when Redis refuses to take a letter because it
 * is out of memory (maxmemory with noeviction): the letter goes to a local spool (fsynced) so the batch can still be acknowledged and the stream trimmed,
 * which is what frees the memory. retry() moves spooled letters into the stream later.
 */
export class DeadLetters {
  private spooled = 0;

  /** @param path the spool, `LOG_DIR/.state/dead-letters-<consumer>.jsonl` */
  constructor(
    readonly path: string,
    private readonly send: SendDeadLetter,
    private readonly metrics: Metrics,
    private readonly log: ServerLog,
  ) {
    this.spooled = this.readSpool().length;
    this.metrics.deadLettersSpooled.set(this.spooled);
  }

  /** Stores a letter in Redis, or in the spool when Redis is out of memory. Throws on other Redis failures, and DiskError. */
  async store(entry: string, rejected: Rejected): Promise<void> {
    const { reason, detail, payload } = rejected;
    this.metrics.deadLetters.inc({ reason });
    try {
      await this.send(entry, reason, detail, payload);
    } catch (error) {
      if (!isOutOfMemory(error)) throw error;
      this.append({ entry, reason, detail, payload: payload?.toString('base64') });
      if (this.spooled === 1) this.log('warn', 'redis is out of memory: dead letters are kept on local disk until it has room', { path: this.path, ...describeError(error) });
    }
  }

  /** Moves spooled letters into the stream; keeps the rest when Redis still refuses. */
  async retry(): Promise<void> {
    if (this.spooled === 0) return;
    const letters = this.readSpool();
    let sent = 0;
    try {
      for (const letter of letters) {
        await this.send(letter.entry, letter.reason, letter.detail, letter.payload === undefined ? undefined : Buffer.from(letter.payload, 'base64'));
        sent++;
      }
    } catch {
      // still refused: the rest stays spooled
    }
    if (sent === 0) return;
    this.rewrite(letters.slice(sent));
    this.log('info', 'moved spooled dead letters into the dead-letter stream', { sent, left: letters.length - sent });
  }

  private append(letter: Spooled): void {
    this.writeLines(constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, this.path, JSON.stringify(letter) + '\n');
    this.spooled++;
    this.metrics.deadLettersSpooled.set(this.spooled);
  }

  private rewrite(letters: Spooled[]): void {
    const temp = `${this.path}.tmp`;
    this.writeLines(constants.O_WRONLY | constants.O_TRUNC | constants.O_CREAT, temp, letters.map((l) => JSON.stringify(l) + '\n').join(''));
    renameSync(temp, this.path);
    this.spooled = letters.length;
    this.metrics.deadLettersSpooled.set(this.spooled);
  }

  private writeLines(flags: number, path: string, text: string): void {
    let fd: number | undefined;
    try {
      fd = openStateFile(path, flags);
      writeSync(fd, text);
      fsyncSync(fd);
    } catch (error) {
      throw new DiskError('DISK_WRITE_FAILED', path, error);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  private readSpool(): Spooled[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    const letters: Spooled[] = [];
    for (const line of text.split('\n')) {
      try {
        if (line) letters.push(JSON.parse(line) as Spooled);
      } catch {
        // a torn last line: it was never fsynced, and its batch was never acknowledged
      }
    }
    return letters;
  }
}

function isOutOfMemory(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) if (e.message.startsWith('OOM')) return true;
  return false;
}
