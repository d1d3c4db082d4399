// `pnpm new-app` (scripts/new-app.mjs) makes an app like this one: checked here by making one in
// the real workspace, building it and running its own test, then taking it out again.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '../../..');
const name = `zz-new-app-${process.pid}`;
const appDir = join(root, 'apps', name);
const lockfile = join(root, 'pnpm-lock.yaml');
let lockBefore: string;

function run(command: string, args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
}

beforeAll(() => {
  lockBefore = readFileSync(lockfile, 'utf8');
});
afterAll(() => {
  rmSync(appDir, { recursive: true, force: true });
  writeFileSync(lockfile, lockBefore);
  run('pnpm', ['install', '--offline', '--frozen-lockfile']);
});

describe('pnpm new-app', () => {
  it.each([['../../etc'], ['Billing'], ['a b'], ['-x'], ['shop']])('refuses %j with a clear message and writes nothing', (bad) => {
    const result = run('node', ['scripts/new-app.mjs', bad]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(bad === 'shop' ? /apps\/shop already exists/ : /is not an app name/);
    expect(readFileSync(lockfile, 'utf8')).toBe(lockBefore);
  });

  it('makes an app that builds, passes its own test against real Redis and is run by pnpm dev', () => {
    // CI=true: pnpm freezes the lockfile by default there; the script must still link the app.
    const made = run('node', ['scripts/new-app.mjs', name], { CI: 'true' });
    expect({ status: made.status, stderr: made.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    const manifest = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8'));
    expect(manifest).toMatchObject({ name: `@log/${name}`, dependencies: { '@log/publisher': 'workspace:*' }, scripts: { dev: `node ../../scripts/dev-run.mjs ${name}` } });
    expect(existsSync(join(appDir, 'dist/main.js'))).toBe(true);
    expect(readFileSync(lockfile, 'utf8')).toContain(`apps/${name}:`);

    const tested = run('pnpm', ['--filter', `@log/${name}`, 'test']);
    expect(tested.status).toBe(0);
    expect(tested.stdout + tested.stderr).toMatch(/Tests:\s+1 passed, 1 total/);

    const typed = run('pnpm', ['--filter', `@log/${name}`, 'lint']);
    expect(typed.status).toBe(0);
    const styled = run('pnpm', ['exec', 'prettier', '--check', `apps/${name}`]);
    expect(styled.stdout + styled.stderr).toContain('All matched files use Prettier code style');
    const linted = run('pnpm', ['exec', 'eslint', `apps/${name}`]);
    expect({ status: linted.status, out: linted.stdout }).toEqual({ status: 0, out: '' });

    // `pnpm dev` is `turbo run dev`: the new app's dev script is one of its tasks, nothing else edited.
    const dry = run('pnpm', ['exec', 'turbo', 'run', 'dev', '--dry=json']);
    const tasks = (JSON.parse(dry.stdout) as { tasks: Array<{ taskId: string; command: string }> }).tasks;
    expect(tasks.find((task) => task.taskId === `@log/${name}#dev`)?.command).toBe(`node ../../scripts/dev-run.mjs ${name}`);
  }, 300_000);
});
