/** Where a command writes and what it reads: process's in main.ts, captured ones in tests. */
export interface Io {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Reads one line from the operator (a confirmation); undefined when there is no terminal. */
  ask?: (question: string) => Promise<string>;
  /** Aborted on SIGINT: a following command (tail) stops cleanly. */
  signal?: AbortSignal;
}

/** A bad command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
