/** A service a test needs could not be started or did not do what was asked. `code` says which and the message says how to fix it. */
export class TestKitError extends Error {
  readonly code: 'REDIS_SERVER_MISSING' | 'SERVICE_START_FAILED' | 'MOTO_MISSING' | 'COMMAND_FAILED' | 'OPENSSL_MISSING' | 'OPENSSL_FAILED';
  constructor(code: TestKitError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestKitError';
    this.code = code;
  }
}
