import { ARCHIVE_HELP, archive } from './archive';
import { CHECK_HELP, check } from './check';
import { DEAD_HELP, dead } from './dead';
import { UsageError, type Io } from './io';
import { settingsFrom, type Settings } from './settings';
import { STATS_HELP, stats } from './stats';
import { TAIL_HELP, tail } from './tail';

type Command = (args: string[], settings: Settings, io: Io) => Promise<number>;

const COMMANDS: Record<string, { run: Command; help: string; summary: string }> = {
  tail: { run: tail, help: TAIL_HELP, summary: 'records as they arrive from every shard (XREAD, no group: takes nothing from the servers)' },
  stats: { run: stats, help: STATS_HELP, summary: "the group's loss report over every server; exit 1 when records are missing" },
  dead: { run: dead, help: DEAD_HELP, summary: 'dead letters: list, show, replay after a fix, purge' },
  archive: { run: archive, help: ARCHIVE_HELP, summary: 'archives in S3 by app and time: ls, cat, grep' },
  check: { run: check, help: CHECK_HELP, summary: 'Redis, S3 and LOG_DIR as the server would use them; exit 1 on any problem' },
};

export const HELP = `logctl <command> [options]: the log pipeline for operators. Settings come from the server's
environment variables: REDIS_URL (or REDIS_CLUSTER_NODES), LOG_SHARDS, LOG_CHANNEL, LOG_GROUP,
LOG_DIR, LOG_SIGNING_KEYS, S3_BUCKET, S3_PREFIX, S3_ENDPOINT, S3_FORCE_PATH_STYLE, AWS_REGION and
the AWS SDK's credential chain; LOG_SIGNING_KEY (a publisher's) signs what dead replay sends.

${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join('\n')}

logctl <command> --help shows a command's options; --json gives JSON output.
Exit codes: 0 ok, 1 the command found a problem (missing records, a failed check), 2 a usage error.`;

/** Runs one command line; resolves to the exit code. Never throws: errors are printed. */
export async function run(argv: string[], io: Io): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(HELP + '\n');
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.stderr.write(`logctl: unknown command ${JSON.stringify(name)}\n\n${HELP}\n`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(command.help + '\n');
    return 0;
  }
  try {
    return await command.run(args, settingsFrom(io.env), io);
  } catch (error) {
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
    io.stderr.write(`logctl ${name}: ${(error as Error).message}\n`);
    if (usage) io.stderr.write(`\n${command.help}\n`);
    return usage ? 2 : 1;
  }
}
