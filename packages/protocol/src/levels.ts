/** The four levels of the contract, ordered. Numbers follow pino's so tools that read pino read ours. */
export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

export const LEVEL_VALUES: Readonly<Record<Level, number>> = Object.freeze({
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
});

export function isLevel(value: unknown): value is Level {
  return value === 'debug' || value === 'info' || value === 'warn' || value === 'error';
}
