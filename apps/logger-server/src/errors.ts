/** Codes of the logger server's errors; docs/errors table in the README lists how to fix each. */
export type ServerErrorCode = 'CONFIG_INVALID' | 'UNSAFE_PATH' | 'DISK_WRITE_FAILED' | 'FSYNC_FAILED' | 'CONSUMER_IN_USE' | 'REDIS_UNAVAILABLE' | 'REDIS_UNUSABLE' | 'HTTP_PORT_UNUSABLE';

export class ServerError extends Error {
  readonly code: ServerErrorCode;
  constructor(code: ServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One or more configuration values are wrong; `problems` has one line per bad value. */
export class ConfigError extends ServerError {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** A path under LOG_DIR is a symlink or otherwise not what the server created: it refuses to write there. */
export class UnsafePathError extends ServerError {
  // Narrowed for the dead-letter reason it becomes (declare: no field of its own, the base sets it).
  declare readonly code: 'UNSAFE_PATH';
  readonly path: string;
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super('UNSAFE_PATH', `refusing to write ${path}: ${reason}`, options);
    this.path = path;
  }
}

export type DiskErrorCode = 'DISK_WRITE_FAILED' | 'FSYNC_FAILED';

/**
 * Writing, syncing, closing or renaming a file under LOG_DIR failed (EIO, ENOSPC, EROFS ...): the
 * server stops without acknowledging what is not on disk. `operation` names the call in the
 * message (default: write, or fdatasync for FSYNC_FAILED).
 */
export class DiskError extends ServerError {
  readonly path: string;
  readonly errno: string | undefined;
  constructor(code: DiskErrorCode, path: string, cause: unknown, operation?: string) {
    const errno = (cause as NodeJS.ErrnoException)?.code;
    const what = operation ?? (code === 'FSYNC_FAILED' ? 'fdatasync' : 'write');
    super(code, `${what} of ${path} failed (${errno ?? String(cause)})`, { cause });
    this.path = path;
    this.errno = errno;
  }
}

/** Another live server runs under this LOG_CONSUMER: two servers must never share a name (they would split its entries between two directories). */
export class LeaseError extends ServerError {
  readonly consumer: string;
  /** The holder's lease: `<token> <host> <pid> <since>`. */
  readonly holder: string;
  constructor(consumer: string, holder: string) {
    const [, host = '?', pid = '?', since = '?'] = holder.split(' ');
    super('CONSUMER_IN_USE', `LOG_CONSUMER=${consumer} is held by another live server (host ${host}, pid ${pid}, since ${since}); give each server its own LOG_CONSUMER`);
    this.consumer = consumer;
    this.holder = holder;
  }
}

/**
 * A setting points at something the server cannot use, and waiting will not change that: a Redis
 * that wants other credentials, is too old, or is not Redis (REDIS_UNUSABLE); an HTTP_PORT another
 * process holds (HTTP_PORT_UNUSABLE). The message starts with the setting at fault.
 */
export class StartupError extends ServerError {
  readonly setting: string;
  constructor(code: 'REDIS_UNUSABLE' | 'HTTP_PORT_UNUSABLE', setting: string, message: string, options?: { cause?: unknown }) {
    super(code, `${setting}: ${message}`, options);
    this.setting = setting;
  }
}
