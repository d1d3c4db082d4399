import type { DeadLetterReason } from '@log/protocol';

/** Dead-letter streams keep the newest this many entries (approximately): bad input must not fill Redis. */
export const DEAD_LETTER_MAX_LENGTH = 100_000;

/**
 * The XADD that stores a bad payload in a dead-letter stream, with why it was refused: `entry`
 * (the stream entry id it came from, or `pubsub`), `reason`, `detail`, and `payload` when there
 * is one.
 */
export function deadLetterCommand(key: string, entry: string, reason: DeadLetterReason, detail: string, payload: Buffer | undefined): Array<string | Buffer> {
  const args: Array<string | Buffer> = ['XADD', key, 'MAXLEN', '~', String(DEAD_LETTER_MAX_LENGTH), '*', 'entry', entry, 'reason', reason, 'detail', detail];
  if (payload !== undefined) args.push('payload', payload);
  return args;
}
