import { InvalidNameError, type ProtocolErrorContext } from './errors';
import { LIMITS } from './limits';

/** Longest accepted app, host or channel name. */
export const MAX_NAME_LENGTH = LIMITS.maxNameLength;

// One rule for everything that may become a path segment, an S3 key part or a Redis key part:
// letters, digits, '.', '_' and '-', starting with a letter or digit (so never '.', '..' or a
// hidden file), never a separator, NUL or anything a shell or a URL would treat specially.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Why `value` is not a valid name, or undefined when it is. */
export function nameProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.length > MAX_NAME_LENGTH) return `must be at most ${MAX_NAME_LENGTH} characters`;
  if (!NAME_PATTERN.test(value)) {
    return "may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit";
  }
  return undefined;
}

export function isValidName(value: unknown): value is string {
  return nameProblem(value) === undefined;
}

/**
 * Checks a name that will become part of a path or key (app, host, channel).
 * The publisher calls it at construction and the server on every frame: one rule on both ends.
 * @throws InvalidNameError
 */
export function assertValidName(kind: string, value: unknown, context?: ProtocolErrorContext): string {
  const problem = nameProblem(value);
  if (problem !== undefined) throw new InvalidNameError(kind, String(value), problem, context);
  return value as string;
}

/**
 * Turns any string into a valid name (for host names and other values the user did not choose):
 * invalid characters become '-', the result is cut to the maximum length.
 */
export function toValidName(value: string, fallback = 'unknown'): string {
  let name = value
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[._-]+/, '')
    .slice(0, MAX_NAME_LENGTH);
  if (name.length === 0) name = fallback;
  return name;
}
