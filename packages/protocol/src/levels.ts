/**
 * pino's six levels, ordered, with pino's numbers, so tools that read pino read ours. A producer
 * whose logger has other names (winston's verbose, http, silly; pino's custom levels) sends the
 * nearest of these as the level and its own name beside it (`levelName`, see WireRecord).
 */
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type Level = (typeof LEVELS)[number];

export const LEVEL_VALUES: Readonly<Record<Level, number>> = Object.freeze({
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
});

export function isLevel(value: unknown): value is Level {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(LEVEL_VALUES, value);
}

/**
 * The level a numeric level value falls in: the highest of ours at or below it (pino's custom
 * level 35 is info), trace below 10. NaN is info.
 */
export function levelOfValue(value: number): Level {
  if (Number.isNaN(value)) return 'info';
  let found: Level = 'trace';
  for (const level of LEVELS) if (LEVEL_VALUES[level] <= value) found = level;
  return found;
}
