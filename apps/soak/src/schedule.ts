import { PROCESS_FAULTS, STORAGE_FAULTS, type FaultKind } from './options';
import { Rng } from './rng';

export type Lane = 'process' | 'storage';

/** One fault of the schedule: what, against whom, when (from the start of the run) and for how long. */
export interface PlannedFault {
  lane: Lane;
  atMs: number;
  kind: FaultKind;
  /** 's0', 's1', ... for a logger server; 'redis'; 's3'. */
  target: string;
  /** How long the fault holds before it is healed (a killed process stays down this long). */
  holdMs: number;
  /** restart-redis: 'sigterm' | 'sigkill'; s3-refuse: 'reset' | '503'; partition-redis: 'hold' | 'reset'. */
  variant: string | undefined;
}

export interface ScheduleParams {
  seed: number;
  durationMs: number;
  servers: number;
  claimIdleMs: number;
  faults: readonly FaultKind[];
}

/** Nothing is injected before this, so every server and producer is up and the first records flow. */
export const WARMUP_MS = 3000;
/** Every fault is healed this long before the producers stop, so their last records meet a whole system. */
export const QUIET_MS = 3000;

const WEIGHTS: Record<FaultKind, number> = {
  'kill-server': 3,
  'pause-server': 3,
  'term-server': 1,
  'restart-redis': 2,
  'pause-redis': 1,
  'partition-redis': 2,
  's3-refuse': 2,
  's3-freeze': 2,
  'disk-full': 2,
};

/**
 * The whole fault schedule, a pure function of the parameters: the same seed gives the same
 * faults at the same offsets whatever the machine does, which is what makes a failure
 * replayable. (The interleaving with the records is not: that is the machine's.)
 */
export function planFaults(params: ScheduleParams): PlannedFault[] {
  const plan: PlannedFault[] = [];
  for (const [lane, kinds] of [
    ['process', PROCESS_FAULTS],
    ['storage', STORAGE_FAULTS],
  ] as const) {
    const enabled = (kinds as readonly FaultKind[]).filter((kind) => params.faults.includes(kind));
    if (enabled.length === 0) continue;
    const rng = Rng.fork(params.seed, lane);
    const end = params.durationMs - QUIET_MS;
    let t = WARMUP_MS + rng.int(0, 1500);
    for (;;) {
      const kind = rng.weighted(enabled.map((k) => [k, WEIGHTS[k]] as const));
      const fault = shape(rng, kind, params);
      if (t + fault.holdMs > end) break;
      plan.push({ lane, atMs: t, kind, ...fault });
      t += fault.holdMs + rng.int(300, 4000);
    }
  }
  return plan.sort((a, b) => a.atMs - b.atMs);
}

function shape(rng: Rng, kind: FaultKind, params: ScheduleParams): { target: string; holdMs: number; variant: string | undefined } {
  const server = () => `s${rng.int(0, params.servers - 1)}`;
  const idle = params.claimIdleMs;
  // Half the time past CLAIM_IDLE_MS, so the other server claims the stalled one's entries.
  const stall = () => (rng.chance(0.5) ? rng.int(idle + 500, idle * 3) : rng.int(300, Math.max(400, idle - 300)));
  switch (kind) {
    case 'kill-server':
      return { target: server(), holdMs: rng.chance(0.4) ? rng.int(idle + 500, Math.round(idle * 2.5)) : rng.int(0, 1500), variant: undefined };
    case 'pause-server':
      return { target: server(), holdMs: stall(), variant: undefined };
    case 'term-server':
      return { target: server(), holdMs: rng.int(0, 2000), variant: undefined };
    case 'restart-redis':
      return { target: 'redis', holdMs: rng.int(200, 3000), variant: rng.pick(['sigterm', 'sigkill']) };
    case 'pause-redis':
      return { target: 'redis', holdMs: rng.int(300, 4000), variant: undefined };
    case 'partition-redis':
      // hold: TCP rides it out and the bytes arrive late; reset: the connections are given up when it heals.
      return { target: server(), holdMs: stall(), variant: rng.pick(['hold', 'reset']) };
    case 's3-refuse':
      return { target: 's3', holdMs: rng.int(1000, 8000), variant: rng.pick(['reset', '503']) };
    case 's3-freeze':
      return { target: 's3', holdMs: rng.int(1000, 8000), variant: undefined };
    case 'disk-full':
      return { target: server(), holdMs: rng.int(1000, 5000), variant: undefined };
  }
}

export function describeFault(fault: Pick<PlannedFault, 'kind' | 'target' | 'holdMs' | 'variant'>): string {
  const variant = fault.variant ? ` (${fault.variant})` : '';
  return `${fault.kind} ${fault.target}${variant} for ${(fault.holdMs / 1000).toFixed(1)}s`;
}
