import { existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createPublisher } from '@log/publisher';
import { removeDir, sleep, tempDir, within } from '@log/test-kit';
import { closedNameOfManifest, manifestPathOf, parseClosedName } from '../src/closed-file';
import { expectExactlyOnce, httpGet, rng, startServer, useRedis, type ServerProcess } from './harness';

// logrotate's way (mv the open file, then SIGHUP) beside the server's own rotation (ROTATE_BYTES):
// a move that lands after a file became due and before the SIGHUP is handled meets the server's
// rotation with the file gone from its path (mv), another file there (logrotate's `create` mode),
// or its directory gone (an operator's mv). History: every record logged; checker: each one is on
// disk exactly once (moved, closed and open files), the server never stopped, every moved file is
// still where it was put, every closed file's manifest counts its lines, and the moves the server
// met are counted as many times as it warned of them.

const SEED = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 31));
const TOTAL = 30_000;
const MOVES = 6;
/** Small: with records flowing, a file is due again within a batch or two of being opened. */
const ROTATE_BYTES = 32 * 1024;
const APP = 'lrot';

type Shape = 'mv' | 'create' | 'dir';
/** The shapes of move to draw from (SHAPES=create replays one alone); plain mv and create mode, logrotate's, twice as often. */
const SHAPES = (process.env.SHAPES?.split(',') as Shape[] | undefined) ?? ['mv', 'mv', 'create', 'create', 'dir'];

const shared = useRedis();

/**
 * Every complete line of every file under `path` (recursively): open, closed and moved files
 * alike; manifests left out. A file the running server renames (rotation) while it is read makes
 * the whole read start again, as the harness's readLogs does.
 */
function linesUnder(path: string): Array<Record<string, unknown>> {
  for (let attempt = 1; ; attempt++) {
    const records: Array<Record<string, unknown>> = [];
    try {
      addLinesUnder(path, records);
      return records;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw error;
    }
  }
}

function addLinesUnder(path: string, records: Array<Record<string, unknown>>): void {
  for (const name of readdirSync(path)) {
    if (name.startsWith('.')) continue; // LOG_DIR/.state: the server's own
    const full = join(path, name);
    if (statSync(full).isDirectory()) {
      addLinesUnder(full, records);
      continue;
    }
    if (name.endsWith('.manifest.json')) continue;
    const lines = readFileSync(full, 'utf8').split('\n');
    lines.pop(); // '' after the last newline, or a line being written
    for (const line of lines) records.push(JSON.parse(line) as Record<string, unknown>);
  }
}

/** Renames `from` to `to`, trying again while `from` is not there (the server's rotation renamed it and has not opened the next one yet). */
async function moveWhenThere(from: string, to: string, server: ServerProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      renameSync(from, to);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (server.child.exitCode !== null || Date.now() > deadline) throw new Error(`${from} never came back to move it; the server said:\n${server.output()}`);
    await sleep(1);
  }
}

/** logrotate's `create`: a new empty file at the path, unless the server has already opened one there (logrotate's own create would fail then too). */
function createUnlessThere(path: string): void {
  try {
    writeFileSync(path, '', { mode: 0o640, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** Each closed file (`<time>-<unique>.jsonl`) under `path` has its manifest, counting its lines; with `strays`, no manifest is without its file. */
function expectManifestsRight(path: string, { strays }: { strays: boolean }): number {
  let closed = 0;
  for (const name of readdirSync(path)) {
    const full = join(path, name);
    if (parseClosedName(APP, path, name)) {
      const lines = readFileSync(full, 'utf8').split('\n').length - 1;
      const manifest = JSON.parse(readFileSync(manifestPathOf(full), 'utf8')) as { records: number };
      expect({ file: full, records: manifest.records }).toEqual({ file: full, records: lines });
      closed++;
    }
    const of = closedNameOfManifest(name);
    if (strays && of !== undefined) expect({ manifest: name, file: existsSync(join(path, of)) }).toEqual({ manifest: name, file: true });
  }
  return closed;
}

/**
 * One app alone (its file met moved by the rotation); and beside a second app with one descriptor
 * allowed (MAX_OPEN_FILES=1), so the file's descriptor is closed between batches and a commit's
 * reopen may meet the move first.
 */
const VARIANTS: Array<{ label: string; env: Record<string, string>; beside: boolean }> = [
  { label: 'one app', env: {}, beside: false },
  { label: 'MAX_OPEN_FILES=1 beside a second app', env: { MAX_OPEN_FILES: '1' }, beside: true },
];

it.each(VARIANTS)(
  `a logrotate mv (plain, create mode, or of the directory) before its SIGHUP, beside ROTATE_BYTES, $label: no exit, every record once, moved files left where they were put (seed ${SEED})`,
  async ({ label, env, beside }) => {
    console.log(`logrotate race (${label}) seed ${SEED} (replay: SEED=${SEED})`);
    const random = rng(SEED);
    const dir = tempDir('logrotate');
    const logDir = join(dir, 'log');
    const appDir = join(logDir, APP);
    const open = join(appDir, `${APP}.log`);
    const channel = `logrotate${SEED}`;
    const running = await startServer({ REDIS_URL: shared.redis.url, LOG_DIR: logDir, LOG_CHANNEL: channel, ROTATE_BYTES: String(ROTATE_BYTES), ...env });
    const log = createPublisher(channel, { app: APP, url: shared.redis.url, onError: () => {} });
    const besideLog = beside ? createPublisher(channel, { app: 'beside', url: shared.redis.url, onError: () => {} }) : undefined;
    let stopped = false;
    try {
      await movesAndChecks();
    } finally {
      stopped = true;
      await log.close();
      await besideLog?.close();
      await running.stop();
      removeDir(dir);
    }

    async function movesAndChecks(): Promise<void> {
      // The history: records flow steadily (~100 every 10 ms) while the moves happen.
      const publishing = (async () => {
        for (let i = 0; i < TOTAL && !stopped; i++) {
          log.info('rotating', { i, pad: 'x'.repeat(100) });
          besideLog?.info('beside', { i });
          if (i % 100 === 99) await sleep(10);
        }
        await log.flush();
        await besideLog?.flush();
      })();

      const moves: Array<{ shape: Shape; to: string; hupAfterMs: number }> = [];
      for (let n = 0; n < MOVES; n++) {
        const shape = random.pick(SHAPES);
        const waitMs = 100 + random.int(400);
        // Long enough, most times, for the server to meet the moved file in its own rotation first.
        const hupAfterMs = 20 + random.int(230);
        await sleep(waitMs);
        while (!existsSync(open)) {
          if (running.child.exitCode !== null) break;
          await sleep(1);
        }
        let to: string;
        if (shape === 'dir') {
          to = join(dir, `moved-dir-${n}`);
          renameSync(appDir, to);
          // the files moved within the directory before went with it
          for (const move of moves) if (dirname(move.to) === appDir) move.to = join(to, basename(move.to));
        } else {
          to = join(appDir, `${APP}.log.${n}`);
          await moveWhenThere(open, to, running);
          // logrotate's `create`: a new empty file at the path, before the SIGHUP
          if (shape === 'create') createUnlessThere(open);
        }
        moves.push({ shape, to, hupAfterMs });
        await sleep(hupAfterMs);
        running.child.kill('SIGHUP');
      }
      console.log(`moves: ${moves.map((m) => `${m.shape} (SIGHUP after ${m.hupAfterMs} ms)`).join(', ')}`);
      await publishing;
      expect(log.stats()).toMatchObject({ logged: TOTAL, dropped: 0 });

      // Every record reaches the disk, and the server is still running.
      const deadline = Date.now() + 60_000;
      const everything = () => [...linesUnder(logDir).filter((r) => r.app === APP), ...moves.filter((m) => m.shape === 'dir').flatMap((m) => linesUnder(m.to))];
      const besides = () => (besideLog ? linesUnder(join(logDir, 'beside')).length : TOTAL);
      for (let records = everything().length; records < TOTAL || besides() < TOTAL; records = everything().length) {
        if (running.child.exitCode !== null) throw new Error(`the server exited with ${running.child.exitCode}; it said:\n${running.output()}`);
        if (Date.now() > deadline) throw new Error(`${records} of ${TOTAL} records on disk (${besides()} beside); the server said:\n${running.output()}`);
        await sleep(100);
      }
      expect(running.child.exitCode).toBeNull();
      expect(running.output()).not.toMatch(/disk failure/);

      // The moves the server met (in its own rotation, or reopening a descriptor): warned of once each, counted as many times.
      const warned = running.output().match(/"message":"an open file was moved away[^\n]*/g) ?? [];
      const metrics = await httpGet(running.httpPort, '/metrics');
      const counted = Number(/^logger_files_moved_away_total (\d+)$/m.exec(metrics.body)?.[1]);
      expect(counted).toBe(warned.length);
      expect(counted).toBeLessThanOrEqual(MOVES);
      // The race this test is about happened (a SIGHUP 20-250 ms after each move, a file due every few batches).
      expect(counted).toBeGreaterThan(0);
      const byReopen = warned.filter((line) => line.includes('"foundBy":"reopen"')).length;
      console.log(`the server met ${counted} of ${MOVES} moves: ${counted - byReopen} closing the file for archiving, ${byReopen} reopening its descriptor`);

      // A clean stop closes the open file for archiving too: every record ends in a closed or moved file.
      await running.stop();
      expect(await within(running.exited, 1000)).toEqual({ value: 0 });

      expectExactlyOnce(everything(), log.producer, TOTAL);
      if (besideLog) expectExactlyOnce(linesUnder(join(logDir, 'beside')), besideLog.producer, TOTAL);
      for (const { shape, to } of moves) {
        // left where the operator put it, not renamed by the server
        expect({ shape, to, moved: existsSync(to) }).toEqual({ shape, to, moved: true });
      }
      const closedHere = expectManifestsRight(appDir, { strays: true });
      for (const { shape, to } of moves) if (shape === 'dir') expectManifestsRight(to, { strays: false });
      expect(closedHere).toBeGreaterThan(0);
    }
  },
  120_000,
);
