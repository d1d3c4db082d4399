import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** A name the server never takes for an app directory (a leading dot is not a valid name), so it never touches it. */
const FILLER = '.soak-filler';
const TOP_UP_MS = 200;

/**
 * Small tmpfs mounts as the servers' LOG_DIRs, so the disk-full fault can fill one for real
 * (ENOSPC from write(2), not a simulation). Needs root and a kernel that lets us mount; where
 * that fails the fault is skipped and the reason printed.
 */
export class Disks {
  private readonly mounted: string[] = [];
  available = true;
  reason: string | undefined;

  constructor(private readonly bytes: number) {}

  /** Creates `dir` and mounts a tmpfs on it when possible; false (and `reason`) when not. */
  prepare(dir: string): boolean {
    mkdirSync(dir, { recursive: true });
    if (!this.available) return false;
    if (process.platform !== 'linux') return this.unavailable(`not Linux (${process.platform})`);
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${this.bytes},mode=0750`, 'soak-tmpfs', dir], { encoding: 'utf8' });
    if (result.error) return this.unavailable(`mount could not run: ${result.error.message}`);
    if (result.status !== 0) return this.unavailable(`mount -t tmpfs failed: ${(result.stderr || result.stdout).trim() || `exit ${result.status}`}`);
    this.mounted.push(dir);
    return true;
  }

  private unavailable(reason: string): false {
    this.available = false;
    this.reason = reason;
    return false;
  }

  /** Fills the file system of `dir` to the last byte and keeps it full (archiving frees space) until released. */
  fill(dir: string): { release(): void } {
    const path = join(dir, FILLER);
    const fd = openSync(path, 'w');
    const big = Buffer.alloc(1024 * 1024);
    const small = Buffer.alloc(4096);
    const topUp = () => {
      for (const chunk of [big, small]) {
        for (;;) {
          try {
            writeSync(fd, chunk);
          } catch {
            break; // ENOSPC: full at this granularity
          }
        }
      }
    };
    topUp();
    const timer = setInterval(topUp, TOP_UP_MS);
    return {
      release: () => {
        clearInterval(timer);
        closeSync(fd);
        unlinkSync(path);
      },
    };
  }

  unmountAll(): void {
    for (const dir of this.mounted.splice(0)) {
      const result = spawnSync('umount', [dir], { encoding: 'utf8' });
      // A lazy unmount still frees it once the last open file (a server killed late) is gone.
      if (result.status !== 0) spawnSync('umount', ['-l', dir]);
    }
  }
}
