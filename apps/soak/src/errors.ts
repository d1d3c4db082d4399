/** Codes of the soak harness's own failures (never the findings about the system under test: those are the verdict). */
export type SoakErrorCode = 'BAD_OPTION' | 'SERVICE_START_FAILED' | 'PRODUCER_FAILED' | 'HISTORY_INVALID' | 'COLLECT_FAILED' | 'DRAIN_TIMEOUT';

/** The harness could not do its job; exit code 2, so a failing run of the harness is never read as a verdict. */
export class SoakError extends Error {
  readonly code: SoakErrorCode;
  constructor(code: SoakErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Command-line options that cannot be used; `problems` has one line per bad option. */
export class OptionError extends SoakError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('BAD_OPTION', `bad options:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}
