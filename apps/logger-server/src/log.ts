/** The server's own log: one JSON object per line on stdout, like the records it writes. */
export type ServerLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export const serverLog: ServerLog = (level, message, fields) => {
  let line: string;
  try {
    line = JSON.stringify({ time: new Date().toISOString(), level, app: 'logger-server', message, ...fields });
  } catch {
    line = JSON.stringify({ time: new Date().toISOString(), level, app: 'logger-server', message });
  }
  process.stdout.write(line + '\n');
};

/** A short description of an error for log lines: class, code and message, with the cause's. */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { error: String(error) };
  const out: Record<string, unknown> = { error: error.message, errorName: error.name };
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) out.errorCode = code;
  if (error.cause instanceof Error) out.cause = error.cause.message;
  return out;
}
