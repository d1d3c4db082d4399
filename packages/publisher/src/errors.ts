/** Codes of the errors the publisher throws. It throws only at construction, never from a log call. */
export type PublisherErrorCode = 'INVALID_OPTION';

export class PublisherError extends Error {
  readonly code: PublisherErrorCode;
  constructor(code: PublisherErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option is missing, has the wrong type, or contradicts another. One error lists every problem. */
export class InvalidOptionError extends PublisherError {
  readonly problems: readonly string[];
  constructor(problems: string[], options?: { cause?: unknown }) {
    super('INVALID_OPTION', `invalid publisher options:\n  - ${problems.join('\n  - ')}`, options);
    this.problems = problems;
  }
}
