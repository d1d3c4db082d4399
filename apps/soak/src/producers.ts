import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { ProducerConfig } from './producer-main';

export interface ProducerProcess {
  id: number;
  child: ChildProcess;
  historyPath: string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  output(): string;
}

/** Spreads producer indexes 0..producers-1 over `processes` child processes, round robin. */
export function startProducers(base: Omit<ProducerConfig, 'indexes' | 'historyPath'>, producers: number, processes: number, historyDir: string): ProducerProcess[] {
  const result: ProducerProcess[] = [];
  for (let id = 0; id < processes; id++) {
    const indexes: number[] = [];
    for (let index = id; index < producers; index += processes) indexes.push(index);
    const historyPath = join(historyDir, `producers-${id}.jsonl`);
    const config: ProducerConfig = { ...base, indexes, historyPath };
    const child = spawn(process.execPath, [join(__dirname, 'producer-main.js')], {
      env: { ...process.env, SOAK_PRODUCER: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (data: Buffer) => {
      output = (output + data.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    result.push({ id, child, historyPath, exited, output: () => output });
  }
  return result;
}
