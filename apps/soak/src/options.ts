import { OptionError } from './errors';
import { randomSeed } from './rng';

/** Every fault the nemesis knows. Process faults and storage faults run in two lanes, so they overlap. */
export const PROCESS_FAULTS = ['kill-server', 'pause-server', 'term-server', 'restart-redis', 'pause-redis', 'partition-redis'] as const;
export const STORAGE_FAULTS = ['s3-refuse', 's3-freeze', 'disk-full'] as const;
export const FAULT_KINDS = [...PROCESS_FAULTS, ...STORAGE_FAULTS] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SoakOptions {
  seed: number;
  durationMs: number;
  producers: number;
  /** Child processes the producers are spread over (several publishers per process). */
  processes: number;
  /** Records per second, per producer. */
  rate: number;
  apps: number;
  servers: number;
  /** LOG_SHARDS of the servers and `shards` of the publishers: the channel's streams. */
  shards: number;
  rotateBytes: number;
  rotateSeconds: number;
  claimIdleMs: number;
  /** The publishers' maxBufferBytes: small, so Redis outages make them drop (and count) records. */
  bufferBytes: number;
  /** Size of each server's tmpfs LOG_DIR (only when mounting works). */
  diskBytes: number;
  /** auto: moto_server where installed (an aborted PUT leaves no object, as on S3), else s3rver. */
  s3: 'auto' | 's3rver' | 'moto';
  faults: FaultKind[];
  json: boolean;
  keep: boolean;
  /** Print the fault schedule and exit. */
  plan: boolean;
  help: boolean;
}

export const USAGE = `usage: pnpm soak [options]

  --seed N             seed of the fault schedule and the records (default: random, printed)
  --duration 60s       how long producers log and faults are injected (ms, s, m)
  --producers N        publisher instances (default 8)
  --processes N        producer child processes they are spread over (default min(producers, 4))
  --rate R             records per second per producer (default 50)
  --apps N             apps the producers log as (default 3)
  --servers N          logger-server processes in the group (default 2)
  --shards N           LOG_SHARDS: the channel split in N streams, servers reading them all,
                       each publisher on one (default 1)
  --rotate-bytes B     ROTATE_BYTES (default 256k)
  --rotate-seconds S   ROTATE_SECONDS (default 3)
  --claim-idle-ms MS   CLAIM_IDLE_MS (default 2000)
  --buffer-bytes B     publishers' maxBufferBytes (default 64k: Redis outages cause counted drops)
  --disk-size B        tmpfs size of each LOG_DIR for the disk-full fault (default 64m)
  --s3 IMPL            auto (default: moto_server where installed, else s3rver), s3rver or moto;
                       s3rver commits a PUT cut short as a truncated object, which S3 never does
  --faults a,b,...     fault kinds to use (default all): ${FAULT_KINDS.join(', ')}
  --no-faults          no faults: a baseline run
  --ci                 preset for CI: --seed 1 --duration 45s --producers 6 --processes 2 --rate 80
  --json               print the result as JSON on stdout (progress goes to stderr)
  --keep               keep the work directory even when the run passes
  --plan               print the fault schedule for the seed and exit
`;

const DEFAULTS: Omit<SoakOptions, 'seed' | 'processes'> = {
  durationMs: 60_000,
  producers: 8,
  rate: 50,
  apps: 3,
  servers: 2,
  shards: 1,
  rotateBytes: 256 * 1024,
  rotateSeconds: 3,
  claimIdleMs: 2000,
  bufferBytes: 64 * 1024,
  diskBytes: 64 * 1024 * 1024,
  s3: 'auto',
  faults: [...FAULT_KINDS],
  json: false,
  keep: false,
  plan: false,
  help: false,
};

const CI_PRESET: Partial<SoakOptions> = { seed: 1, durationMs: 45_000, producers: 6, processes: 2, rate: 80 };

/** "45s", "2m", "1500ms", or plain seconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  return Math.round(unit === 'ms' ? value : unit === 's' ? value * 1000 : value * 60_000);
}

/** "256k", "1m", "4096". */
export function parseBytes(text: string): number | undefined {
  const match = /^(\d+)([kmg])?b?$/i.exec(text.trim());
  if (!match) return undefined;
  const scale = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  return Number(match[1]) * scale;
}

export function parseOptions(argv: readonly string[]): SoakOptions {
  const problems: string[] = [];
  const given: Partial<SoakOptions> = {};
  let ci = false;
  const args = [...argv];
  while (args.length > 0) {
    const raw = args.shift() as string;
    if (raw === '--') continue; // pnpm passes it through
    const [flag, inline] = raw.includes('=') ? [raw.slice(0, raw.indexOf('=')), raw.slice(raw.indexOf('=') + 1)] : [raw, undefined];
    const value = (): string => {
      const v = inline ?? args.shift();
      if (v === undefined) problems.push(`${flag} needs a value`);
      return v ?? '';
    };
    const count = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < min) problems.push(`${flag} ${JSON.stringify(v)}: must be a whole number >= ${min}`);
      return n;
    };
    const bytes = (): number => {
      const v = value();
      const n = parseBytes(v);
      if (n === undefined || n < 1) problems.push(`${flag} ${JSON.stringify(v)}: must be a size like 4096, 256k or 1m`);
      return n ?? 1;
    };
    switch (flag) {
      case '--seed':
        given.seed = count(0);
        break;
      case '--duration': {
        const v = value();
        const ms = parseDuration(v);
        if (ms === undefined || ms < 5000) problems.push(`--duration ${JSON.stringify(v)}: must be at least 5s (like 45s, 2m)`);
        given.durationMs = ms ?? 0;
        break;
      }
      case '--producers':
        given.producers = count(1);
        break;
      case '--processes':
        given.processes = count(1);
        break;
      case '--rate':
        given.rate = count(1);
        break;
      case '--apps':
        given.apps = count(1);
        break;
      case '--servers':
        given.servers = count(1);
        break;
      case '--shards':
        given.shards = count(1);
        break;
      case '--rotate-bytes':
        given.rotateBytes = bytes();
        break;
      case '--rotate-seconds':
        given.rotateSeconds = count(1);
        break;
      case '--claim-idle-ms':
        given.claimIdleMs = count(100);
        break;
      case '--buffer-bytes':
        given.bufferBytes = bytes();
        break;
      case '--disk-size':
        given.diskBytes = bytes();
        break;
      case '--s3': {
        const v = value();
        if (v !== 'auto' && v !== 's3rver' && v !== 'moto') problems.push(`--s3 ${JSON.stringify(v)}: must be auto, s3rver or moto`);
        else given.s3 = v;
        break;
      }
      case '--faults': {
        const kinds = value()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        for (const kind of kinds) if (!(FAULT_KINDS as readonly string[]).includes(kind)) problems.push(`--faults: unknown kind ${JSON.stringify(kind)} (known: ${FAULT_KINDS.join(', ')})`);
        given.faults = kinds as FaultKind[];
        break;
      }
      case '--no-faults':
        given.faults = [];
        break;
      case '--ci':
        ci = true;
        break;
      case '--json':
        given.json = true;
        break;
      case '--keep':
        given.keep = true;
        break;
      case '--plan':
        given.plan = true;
        break;
      case '--help':
      case '-h':
        given.help = true;
        break;
      default:
        problems.push(`unknown option ${JSON.stringify(raw)}`);
    }
  }
  if (problems.length > 0) throw new OptionError(problems);
  // Explicit options win over the preset, so `--ci --seed 7` replays CI's shape with another schedule.
  const merged = { ...DEFAULTS, ...(ci ? CI_PRESET : {}), ...given };
  const options: SoakOptions = {
    ...merged,
    seed: merged.seed ?? randomSeed(),
    processes: Math.min(merged.processes ?? Math.min(merged.producers, 4), merged.producers),
  };
  if (options.bufferBytes < 4096) problems.push('--buffer-bytes must be at least 4k (a frame is a quarter of it)');
  if (problems.length > 0) throw new OptionError(problems);
  return options;
}
