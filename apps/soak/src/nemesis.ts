import { sleep } from '@log/test-kit';
import type { Cluster } from './cluster';
import { SoakError } from './errors';
import { describeFault, type Lane, type PlannedFault } from './schedule';

/** A fault as it happened: when it began and was healed (ms from the start of the run), and anything of note. */
export interface FaultEvent extends PlannedFault {
  startedMs: number;
  healedMs: number | undefined;
  skipped: string | undefined;
  note: string | undefined;
}

type Heal = () => Promise<string | undefined>;

/**
 * Carries out the fault schedule against the cluster, one lane after another fault, both lanes
 * at once. stop() cuts the current holds short and heals: the run's end must meet a whole system.
 */
export class Nemesis {
  readonly events: FaultEvent[] = [];
  private stopping = false;
  private wakeUp = new Set<() => void>();

  constructor(
    private readonly cluster: Cluster,
    private readonly plan: readonly PlannedFault[],
    private readonly clock: () => number,
    private readonly say: (line: string) => void,
  ) {}

  run(): Promise<void> {
    const lanes: Lane[] = ['process', 'storage'];
    return Promise.all(lanes.map((lane) => this.runLane(this.plan.filter((f) => f.lane === lane)))).then(() => undefined);
  }

  /** Ends the schedule: holds in progress are cut short and healed; resolves once run() has. */
  stop(): void {
    this.stopping = true;
    for (const wake of this.wakeUp) wake();
  }

  private async runLane(faults: readonly PlannedFault[]): Promise<void> {
    for (const fault of faults) {
      await this.sleepUntil(fault.atMs);
      if (this.stopping) return;
      const event: FaultEvent = { ...fault, startedMs: this.clock(), healedMs: undefined, skipped: undefined, note: undefined };
      this.events.push(event);
      let heal: Heal | undefined;
      try {
        heal = await this.inject(fault, event);
      } catch (error) {
        event.note = `inject failed: ${(error as Error).message}`;
      }
      if (event.skipped !== undefined) {
        this.say(`fault ${describeFault(fault)}: SKIPPED (${event.skipped})`);
        continue;
      }
      this.say(`fault ${describeFault(fault)}${event.note ? ` [${event.note}]` : ''}`);
      await this.sleepUntil(event.startedMs + fault.holdMs);
      if (heal) {
        const note = await heal();
        if (note) event.note = event.note ? `${event.note}; ${note}` : note;
      }
      event.healedMs = this.clock();
      this.say(`heal  ${fault.kind} ${fault.target}${note(event)}`);
    }
  }

  private sleepUntil(atMs: number): Promise<void> {
    const wait = atMs - this.clock();
    if (wait <= 0 || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp.delete(done);
        resolve();
      };
      const timer = setTimeout(done, wait);
      this.wakeUp.add(done);
    });
  }

  private server(target: string) {
    const server = this.cluster.servers.find((s) => s.name === target);
    if (!server) throw new SoakError('BAD_OPTION', `no server ${target}`);
    return server;
  }

  /** Starts the fault and returns how to heal it. */
  private async inject(fault: PlannedFault, event: FaultEvent): Promise<Heal | undefined> {
    const { cluster } = this;
    switch (fault.kind) {
      case 'kill-server': {
        const server = this.server(fault.target);
        await server.kill9();
        return async () => ((await server.release()) ? undefined : 'did not come back within 20s');
      }
      case 'term-server': {
        const server = this.server(fault.target);
        const code = await server.terminate();
        if (code !== 0) event.note = `SIGTERM exit ${code}`;
        return async () => ((await server.release()) ? undefined : 'did not come back within 20s');
      }
      case 'pause-server': {
        const server = this.server(fault.target);
        server.pause();
        return async () => {
          server.resume();
          return undefined;
        };
      }
      case 'restart-redis': {
        if (fault.variant === 'sigkill') await cluster.redis.kill();
        else await cluster.redis.stop();
        return () => restartRedis(cluster);
      }
      case 'pause-redis': {
        cluster.redis.pause();
        return async () => {
          cluster.redis.resume();
          return undefined;
        };
      }
      case 'partition-redis': {
        const proxy = cluster.redisProxies[Number(fault.target.slice(1))];
        if (!proxy) throw new SoakError('BAD_OPTION', `no redis proxy for ${fault.target}`);
        proxy.setMode('blackhole');
        return async () => {
          if (fault.variant === 'reset') proxy.setMode('reset');
          proxy.setMode('pass');
          return undefined;
        };
      }
      case 's3-refuse':
        cluster.s3Proxy.setMode(fault.variant === '503' ? 'http-503' : 'reset');
        return async () => {
          cluster.s3Proxy.setMode('pass');
          return undefined;
        };
      case 's3-freeze':
        cluster.s3Proxy.setMode('blackhole');
        return async () => {
          cluster.s3Proxy.setMode('pass');
          return undefined;
        };
      case 'disk-full': {
        if (!cluster.disks.available) {
          event.skipped = `no tmpfs: ${cluster.disks.reason ?? 'unavailable'}`;
          return undefined;
        }
        const filler = cluster.disks.fill(cluster.logDirs[Number(fault.target.slice(1))] as string);
        return async () => {
          filler.release();
          return undefined;
        };
      }
    }
  }
}

function note(event: FaultEvent): string {
  return event.note ? ` [${event.note}]` : '';
}

/** Starts Redis again from its AOF; a start that fails (the port still held, a slow AOF load) is retried. */
async function restartRedis(cluster: Cluster): Promise<string | undefined> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      await cluster.redis.start();
      return attempt > 1 ? `redis started on attempt ${attempt}` : undefined;
    } catch (error) {
      lastError = error;
      await sleep(500 * attempt);
    }
  }
  throw new SoakError('SERVICE_START_FAILED', `redis-server did not restart from its AOF: ${(lastError as Error).message}`, { cause: lastError });
}
