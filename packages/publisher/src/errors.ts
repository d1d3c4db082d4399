/**
 * Codes of the publisher's errors. It throws only at construction (INVALID_OPTION), never from a
 * log call; the others are reported to the `onError` option (stderr by default).
 */
export type PublisherErrorCode = 'INVALID_OPTION' | 'REDIS_UNREACHABLE' | 'RECORDS_GIVEN_UP' | 'REPLICAS_BEHIND';

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

/**
 * Redis cannot be reached (refused, unresolvable, wrong credentials, timed out). Reported once per
 * outage: records wait in memory (up to maxBufferBytes, then they are dropped and counted) and are
 * sent when Redis is back.
 */
export class RedisUnreachableError extends PublisherError {
  readonly url: string;
  constructor(url: string, cause: unknown) {
    // duck-typed: errors of node's own modules may come from another realm (jest, vm)
    const { code, message } = (typeof cause === 'object' && cause !== null ? cause : {}) as { code?: unknown; message?: unknown };
    const detail = typeof code === 'string' ? code : typeof message === 'string' ? message : String(cause);
    super('REDIS_UNREACHABLE', `cannot reach Redis at ${url} (${detail}); records wait in memory and are sent when it is back`, { cause });
    this.url = url;
  }
}

/** close() gave up on records Redis had not accepted within its timeout: counted in stats().dropped. */
export class RecordsGivenUpError extends PublisherError {
  readonly records: number;
  constructor(records: number, timeoutMs: number) {
    super('RECORDS_GIVEN_UP', `close(): ${records} records were not accepted by Redis within ${timeoutMs} ms; they are counted as dropped`);
    this.records = records;
  }
}

/**
 * waitReplicas: fewer replicas than asked confirmed a frame within the WAIT's timeout. The frame
 * is sent again (the server drops the copy); reported once per outage, like RedisUnreachableError.
 */
export class ReplicasBehindError extends PublisherError {
  readonly replicas: number;
  readonly wanted: number;
  constructor(replicas: number, wanted: number, timeoutMs: number) {
    super('REPLICAS_BEHIND', `only ${replicas} of ${wanted} replicas confirmed a frame within ${timeoutMs} ms (waitReplicas); it is sent again`);
    this.replicas = replicas;
    this.wanted = wanted;
  }
}
