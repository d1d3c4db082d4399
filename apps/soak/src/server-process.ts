import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

/** The logger server's entry point, as operators run it (resolved through the workspace dependency). */
export const SERVER_MAIN = require.resolve('@log/logger-server');

export interface ServerExit {
  atMs: number;
  code: number | null;
  signal: string | null;
  /** True when the harness caused it (kill -9, SIGTERM); false for a crash (disk full, a bug). */
  expected: boolean;
}

const READY_TIMEOUT_MS = 20_000;
const RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 5000;

/**
 * One logger-server process under a supervisor, as systemd would run it: an exit the harness did
 * not cause is a crash, recorded and followed by a restart after a backoff. The nemesis holds a
 * server down (kill -9 then restart) with `hold`; while held it is not restarted.
 */
export class SupervisedServer {
  readonly exits: ServerExit[] = [];
  private child: ChildProcess | undefined;
  private held = false;
  private shuttingDown = false;
  private expectingExit = false;
  private paused = false;
  private restartDelayMs = RESTART_DELAY_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly out: WriteStream;
  private tail = '';

  constructor(
    readonly name: string,
    readonly httpPort: number,
    private readonly env: Record<string, string>,
    logFile: string,
    private readonly clock: () => number,
    private readonly say: (line: string) => void,
  ) {
    this.out = createWriteStream(logFile, { flags: 'a' });
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns the server; resolves true once it serves HTTP (false if it did not within the timeout or exited). */
  start(): Promise<boolean> {
    if (this.child) return Promise.resolve(true);
    this.paused = false;
    const child = spawn(process.execPath, [SERVER_MAIN], {
      env: { PATH: process.env.PATH, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...this.env, HTTP_PORT: String(this.httpPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.out.write(`--- soak: started pid ${child.pid} at +${(this.clock() / 1000).toFixed(1)}s\n`);
    let ready = false;
    let resolveReady: (ok: boolean) => void = () => {};
    const readyPromise = new Promise<boolean>((resolve) => (resolveReady = resolve));
    const keep = (data: Buffer) => {
      this.out.write(data);
      if (!ready) {
        this.tail = (this.tail + data.toString('utf8')).slice(-8000);
        if (this.tail.includes('"logger server started"')) {
          ready = true;
          this.restartDelayMs = RESTART_DELAY_MS;
          resolveReady(true);
        }
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', (code, signal) => {
      this.child = undefined;
      this.tail = '';
      const expected = this.expectingExit || this.shuttingDown;
      this.expectingExit = false;
      this.exits.push({ atMs: this.clock(), code, signal, expected });
      this.out.write(`--- soak: pid ${child.pid} exited code=${code} signal=${signal}${expected ? '' : ' (CRASH)'}\n`);
      resolveReady(false);
      if (!expected) {
        this.say(`server ${this.name} exited on its own (code ${code ?? signal}); supervisor restarts it in ${this.restartDelayMs} ms`);
        this.scheduleRestart();
      }
    });
    const timer = setTimeout(() => resolveReady(false), READY_TIMEOUT_MS);
    return readyPromise.finally(() => clearTimeout(timer));
  }

  private scheduleRestart(): void {
    if (this.held || this.shuttingDown || this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.held || this.shuttingDown || this.child) return;
      void this.start();
    }, this.restartDelayMs);
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, MAX_RESTART_DELAY_MS);
  }

  /** kill -9 and keep it down until release(). */
  async kill9(): Promise<void> {
    this.held = true;
    await this.signalAndWait('SIGKILL');
  }

  /** SIGTERM (a graceful drain) and keep it down until release(). Resolves with the exit code. */
  async terminate(graceMs = 15_000): Promise<number | string | null> {
    this.held = true;
    return this.signalAndWait('SIGTERM', graceMs);
  }

  /** Lets the supervisor run it again, starting it now. */
  async release(): Promise<boolean> {
    this.held = false;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    return this.start();
  }

  pause(): void {
    if (this.child && !this.paused) {
      this.paused = true;
      this.child.kill('SIGSTOP');
    }
  }

  resume(): void {
    if (this.child && this.paused) {
      this.paused = false;
      this.child.kill('SIGCONT');
    }
  }

  /** The final stop: SIGTERM, and no restart whatever happens. Resolves with the exit code (or signal). */
  async shutdown(graceMs = 30_000): Promise<number | string | null> {
    this.shuttingDown = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    return this.signalAndWait('SIGTERM', graceMs);
  }

  /** Kills it at once, for cleanup after an error. */
  async destroy(): Promise<void> {
    this.shuttingDown = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.signalAndWait('SIGKILL');
    await new Promise<void>((resolve) => this.out.end(resolve));
  }

  private signalAndWait(signal: 'SIGKILL' | 'SIGTERM', graceMs = 0): Promise<number | string | null> {
    const child = this.child;
    if (!child) return Promise.resolve(this.exits[this.exits.length - 1]?.code ?? null);
    this.expectingExit = true;
    return new Promise((resolve) => {
      const force = graceMs > 0 ? setTimeout(() => child.kill('SIGKILL'), graceMs) : undefined;
      child.once('exit', (code, sig) => {
        clearTimeout(force);
        resolve(code ?? sig);
      });
      // A stopped process cannot act on SIGTERM; SIGKILL works on it as it is.
      if (signal === 'SIGTERM' && this.paused) child.kill('SIGCONT');
      this.paused = false;
      child.kill(signal);
    });
  }
}
