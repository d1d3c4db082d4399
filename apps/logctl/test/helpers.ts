import { run } from '../src/cli';
import type { Io } from '../src/io';

/** Runs one logctl command line in-process with the given environment; stdout and stderr captured. */
export async function logctl(env: Record<string, string>, argv: string[], extra: Partial<Io> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(argv, {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    env,
    ...extra,
  });
  return { code, out, err };
}
