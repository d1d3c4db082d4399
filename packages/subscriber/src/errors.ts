/** Codes of the subscriber's errors. */
export type SubscriberErrorCode = 'INVALID_OPTION' | 'CLOSED' | 'REDIS' | 'REPLICAS_BEHIND';

export class SubscriberError extends Error {
  readonly code: SubscriberErrorCode;
  /** The stream key or Pub/Sub channel involved. */
  readonly key: string | undefined;
  constructor(code: SubscriberErrorCode, message: string, context: { key?: string; cause?: unknown } = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.code = code;
    this.key = context.key;
  }
}
