/** The Redis every part of the pipeline uses when neither an option nor REDIS_URL names one. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** The Redis URL to use: the one given, else the REDIS_URL environment variable, else DEFAULT_REDIS_URL. */
export function resolveRedisUrl(url?: string): string {
  return url ?? process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
}

/** A Redis URL with its password (and user) replaced by `***`, for messages and logs. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
