#!/usr/bin/env node
// `pnpm soak`: a randomized, seeded fault run of the whole pipeline, then a checker over
// everything stored. Exit codes: 0 the checker found nothing, 1 it found a failure (lost,
// duplicated or unknown records, false loss, an unclean exit), 2 the harness itself failed.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { cpSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { removeDir, sleep } from '@log/test-kit';
import { deadLetterKey, shardsOf, streamKey } from '@log/protocol';
import { createRedisClient } from '@log/protocol/redis';
import type { RedisClientType } from 'redis';
import { check, type Source, type StatsReport } from './checker';
import { BUCKET, CHANNEL, Cluster, GROUP } from './cluster';
import { deadLetteredRids, fetchStats, groupState, readArchive, readLocal } from './collect';
import { OptionError, SoakError } from './errors';
import { readHistories } from './history';
import { Nemesis } from './nemesis';
import { parseOptions, USAGE, type SoakOptions } from './options';
import { startProducers, type ProducerProcess } from './producers';
import { formatReport, seconds, type RunSummary } from './report';
import { describeFault, planFaults, QUIET_MS } from './schedule';

const PRODUCER_LOAD_MS = 2000;

/** Set by SIGINT/SIGTERM: the clean-up under way, which must finish before the process exits (mounts, children). */
let interrupted: Promise<void> | undefined;
const PRODUCER_EXIT_TIMEOUT_MS = 90_000;
const DRAIN_TIMEOUT_MS = 90_000;
const ARCHIVE_WAIT_MS = 20_000;

async function main(): Promise<number> {
  let options: SoakOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (error instanceof OptionError) {
      process.stderr.write(`${error.message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  // With --json, stdout carries the result alone; progress goes to stderr.
  const progress = options.json ? process.stderr : process.stdout;
  const plan = planFaults({ seed: options.seed, durationMs: options.durationMs, servers: options.servers, claimIdleMs: options.claimIdleMs, faults: options.faults });
  const header = `soak: seed ${options.seed}, ${seconds(options.durationMs)}, ${options.producers} producers x ${options.rate}/s in ${options.processes} processes, ${options.servers} servers, ${plan.length} faults planned`;
  progress.write(`${header}\n`);
  if (options.plan) {
    for (const fault of plan) progress.write(`  +${seconds(fault.atMs).padStart(6)} ${fault.lane.padEnd(7)} ${describeFault(fault)}\n`);
    return 0;
  }

  const began = Date.now();
  let startAt = Date.now() + PRODUCER_LOAD_MS;
  const clock = () => Date.now() - startAt;
  const say = (line: string) => progress.write(`[${seconds(clock()).padStart(6)}] ${line}\n`);
  const workDir = mkdtempSync(join(tmpdir(), `soak-${options.seed}-`));
  const historyDir = join(workDir, 'history');
  mkdirSync(historyDir);
  progress.write(`work directory: ${workDir}\n`);

  let cluster: Cluster | undefined;
  let producers: ProducerProcess[] = [];
  let redisClient: RedisClientType | undefined;
  let s3Client: S3Client | undefined;
  let removeWorkDir = false;
  const onSignal = () => {
    progress.write('\ninterrupted: stopping everything the soak started\n');
    for (const p of producers) p.child.kill('SIGKILL');
    interrupted = (cluster?.dispose() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    cluster = await Cluster.start(options, workDir, clock, say);
    const diskFault = cluster.disks.available ? 'on (tmpfs LOG_DIRs)' : `SKIPPED: ${cluster.disks.reason ?? 'tmpfs unavailable'}`;
    if (options.faults.includes('disk-full')) progress.write(`disk-full fault: ${diskFault}\n`);
    progress.write(
      `redis ${cluster.redisUrl}, ${cluster.s3.implementation} ${cluster.s3.endpoint} (servers via ${cluster.s3Proxy.endpoint}), servers ${cluster.servers.map((s) => `${s.name} http://127.0.0.1:${s.httpPort}`).join(', ')}\n`,
    );

    startAt = Date.now() + PRODUCER_LOAD_MS;
    producers = startProducers(
      {
        redisUrl: cluster.redisUrl,
        channel: CHANNEL,
        apps: options.apps,
        shards: options.shards,
        rate: options.rate,
        startAt,
        durationMs: options.durationMs,
        bufferBytes: options.bufferBytes,
        seed: options.seed,
      },
      options.producers,
      options.processes,
      historyDir,
    );
    const nemesis = new Nemesis(cluster, plan, clock, say);
    const faultsDone = nemesis.run();
    const heartbeat = setInterval(() => say(`running: ${nemesis.events.length} faults so far; servers ${cluster?.servers.map((s) => `${s.name}:${s.running ? 'up' : 'down'}`).join(' ')}`), 15_000);
    // Every fault is planned to heal QUIET_MS before the producers stop; stop() is the backstop.
    const stopTimer = setTimeout(() => nemesis.stop(), Math.max(0, options.durationMs - QUIET_MS / 2 - clock()));
    await faultsDone;
    clearTimeout(stopTimer);
    nemesis.stop();
    say(`faults over (${nemesis.events.filter((e) => !e.skipped).length} injected); waiting for the producers to finish and flush`);

    const exits = await Promise.race([Promise.all(producers.map((p) => p.exited)), sleep(options.durationMs - clock() + PRODUCER_EXIT_TIMEOUT_MS).then(() => undefined)]);
    clearInterval(heartbeat);
    const extraFailures: string[] = [];
    if (exits === undefined) {
      for (const p of producers) p.child.kill('SIGKILL');
      extraFailures.push(`producers did not finish within ${seconds(PRODUCER_EXIT_TIMEOUT_MS)} after the end (a publisher could not flush)`);
    } else {
      exits.forEach((code, i) => {
        if (code !== 0) extraFailures.push(`producer process ${i} exited ${code}: ${producers[i]?.output().trim().slice(-500)}`);
      });
    }

    // Drain: every server up, the group has delivered the last entry and nothing is pending.
    for (const server of cluster.servers) if (!server.running) await server.release();
    redisClient = createRedisClient({ url: cluster.redisUrl });
    await redisClient.connect();
    const drainStart = Date.now();
    // Every shard's stream drained (a shard no publisher picked has no stream: nothing to wait for).
    const shards = shardsOf(options.shards);
    for (;;) {
      let state: Awaited<ReturnType<typeof groupState>> = undefined;
      let drained = true;
      for (const shard of shards) {
        const key = streamKey(CHANNEL, shard);
        if (options.shards > 1 && (await redisClient.exists(key)) === 0) continue;
        state = await groupState(redisClient, key, GROUP).catch(() => undefined);
        if (!(state && state.pending === 0 && state.lastDelivered === state.lastGenerated)) {
          drained = false;
          break;
        }
      }
      if (drained) break;
      if (Date.now() - drainStart > DRAIN_TIMEOUT_MS) {
        extraFailures.push(
          `drain timed out after ${seconds(DRAIN_TIMEOUT_MS)}: ${state ? `${state.pending} entries pending, last delivered ${state.lastDelivered} of ${state.lastGenerated}` : 'no group state'}`,
        );
        break;
      }
      await sleep(250);
    }
    // Let the archivers catch up, so the end state is mostly in S3, as in production.
    const archiveStart = Date.now();
    while (Date.now() - archiveStart < ARCHIVE_WAIT_MS && !(await archivesIdle(cluster))) await sleep(500);
    const drainMs = Date.now() - drainStart;
    say(`drained in ${seconds(drainMs)}; reading /stats and stopping the servers`);

    const stats: StatsReport[] = await Promise.all(cluster.servers.map((s) => fetchStats(s.name, s.httpPort)));
    const finalExits = await Promise.all(cluster.servers.map((s) => s.shutdown()));
    cluster.servers.forEach((s, i) => {
      if (finalExits[i] !== 0) extraFailures.push(`server ${s.name} exited ${finalExits[i]} at the final SIGTERM (expected 0 after a drain)`);
    });

    say('collecting every line on disk and in S3');
    const sources: Source[] = [];
    const strayFiles: string[] = [];
    cluster.servers.forEach((s, i) => {
      const local = readLocal(s.name, cluster?.logDirs[i] as string);
      for (const source of local.sources) sources.push(source);
      for (const name of local.other) strayFiles.push(name);
    });
    s3Client = new S3Client({ ...cluster.s3.clientConfig, maxAttempts: 3 });
    const archive = await readArchive(s3Client, BUCKET);
    for (const source of archive.sources) sources.push(source);
    const dead = await deadLetteredRids(
      redisClient,
      shardsOf(options.shards).map((shard) => deadLetterKey(CHANNEL, shard)),
    );
    const histories = readHistories(readdirSync(historyDir).map((name) => join(historyDir, name)));
    const verdict = check({ histories, sources: sources, stats, deadLettered: dead.rids });
    if (strayFiles.length > 0) progress.write(`note: files under LOG_DIR that are neither records nor manifests: ${strayFiles.slice(0, 5).join(', ')}\n`);

    const summary: RunSummary = {
      options,
      verdict,
      events: nemesis.events,
      servers: cluster.servers.map((s, i) => ({
        name: s.name,
        finalExit: finalExits[i] ?? null,
        crashes: s.exits.filter((e) => !e.expected).length,
        restarts: s.exits.length,
      })),
      extraFailures,
      deadLetters: { entries: dead.entries, reasons: Object.fromEntries(dead.reasons) },
      archive: { objects: archive.sources.length, manifests: archive.manifests },
      diskFault: options.faults.includes('disk-full') ? diskFault : '',
      s3: cluster.s3.implementation,
      drainMs,
      elapsedMs: Date.now() - began,
      workDir,
    };
    const ok = verdict.ok && extraFailures.length === 0;
    progress.write(formatReport(summary) + '\n');
    if (options.json) process.stdout.write(JSON.stringify({ ok, seed: options.seed, ...summary }, null, 2) + '\n');
    if (!ok || options.keep) {
      for (const source of archive.sources) {
        const path = join(workDir, 'kept', 's3', source.location.slice('s3:'.length));
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, source.data);
      }
    }
    removeWorkDir = ok && !options.keep;
    return ok ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const p of producers) p.child.kill('SIGKILL');
    s3Client?.destroy();
    redisClient?.destroy();
    // On failure the files are the evidence: copy them out of the tmpfs before it is unmounted.
    if (cluster && !removeWorkDir && !interrupted) keepLogs(cluster, workDir);
    if (!interrupted) await cluster?.dispose();
    if (removeWorkDir) removeDir(workDir);
  }
}

function keepLogs(cluster: Cluster, workDir: string): void {
  for (const [i, dir] of cluster.logDirs.entries()) {
    const target = join(workDir, 'kept', `s${i}`);
    mkdirSync(target, { recursive: true });
    // the filler of a disk-full fault in progress is not evidence
    cpSync(dir, target, { recursive: true, filter: (path) => !path.endsWith('.soak-filler') });
  }
}

/** True when no server has closed files waiting for S3 (their /metrics say so). */
async function archivesIdle(cluster: Cluster): Promise<boolean> {
  for (const server of cluster.servers) {
    try {
      const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
      const match = /^logger_archive_backlog_files(?:\{[^}]*\})? (\d+)/m.exec(text);
      if (match && Number(match[1]) > 0) return false;
    } catch {
      return false;
    }
  }
  return true;
}

main().then(
  (code) => (interrupted ? undefined : process.exit(code)),
  (error: unknown) => {
    if (interrupted) return; // the run failed because it was interrupted: the clean-up exits
    const code = error instanceof SoakError ? error.code : 'INTERNAL';
    process.stderr.write(`soak: harness error ${code}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
