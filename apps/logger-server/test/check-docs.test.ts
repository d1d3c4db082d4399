import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { removeDir, tempDir } from '@log/test-kit';

// scripts/check-docs.mjs (run by `pnpm lint`) on a small repository of its own: it passes when
// the docs agree with the code and names each kind of disagreement when they do not.

const script = join(__dirname, '..', '..', '..', 'scripts', 'check-docs.mjs');

function repo(files: Record<string, string>): string {
  const dir = tempDir('check-docs');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

function check(dir: string): { status: number | null; problems: string[] } {
  const result = spawnSync(process.execPath, [script, dir], { encoding: 'utf8' });
  return { status: result.status, problems: result.stderr.split('\n').filter((line) => line.includes(': ') && !line.startsWith('check-docs:')) };
}

const config = "export const ENV_KEYS = [\n  'REDIS_URL',\n  'LOG_DIR',\n] as const;\nconst file = env.LOG_CONFIG;\n";
const readme = (rows: string) =>
  `# x\n\n## Configuration of the logger server\n\nA JSON file named by \`LOG_CONFIG\` may supply the same keys.\n\n| variable | default |\n| --- | --- |\n${rows}\n## Next\n\nSee [the kit](packages/kit/README.md).\n`;
const kit = {
  'packages/kit/package.json': JSON.stringify({ name: '@x/kit', exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } } }),
  'packages/kit/src/index.ts': "export { startThing } from './thing';\nexport type { ThingOptions } from './thing';\n",
  'packages/kit/src/thing.ts': 'export interface ThingOptions {}\nexport function startThing() {}\n',
};

it('passes when the docs agree with the code', () => {
  const dir = repo({
    'README.md': readme('| `REDIS_URL` | x |\n| `LOG_DIR` | y |'),
    'apps/logger-server/src/config.ts': config,
    ...kit,
    'packages/kit/README.md': '# kit\n\n`startThing()` with `ThingOptions`, in `thing.ts`.\n',
  });
  try {
    expect(check(dir)).toEqual({ status: 0, problems: [] });
  } finally {
    removeDir(dir);
  }
});

it('names an undocumented variable, a documented one nobody reads, a missing file and an export that is not there', () => {
  const dir = repo({
    'README.md': readme('| `REDIS_URL` | x |\n| `OLD_SETTING` | y |'),
    'apps/logger-server/src/config.ts': config,
    ...kit,
    'packages/kit/README.md': '# kit\n\n`startThing()`, `stopThing()` and `Gadget`, in `thing.ts` and `gone.ts`; see [more](../../MISSING.md).\n',
  });
  try {
    const { status, problems } = check(dir);
    expect(status).toBe(1);
    expect(problems.sort()).toEqual(
      [
        'README.md: the server reads LOG_DIR (apps/logger-server/src/config.ts) but the configuration section does not document it',
        'README.md: the configuration table documents OLD_SETTING, which apps/logger-server/src/config.ts does not read',
        'packages/kit/README.md: names gone.ts, which does not exist',
        'packages/kit/README.md: names ../../MISSING.md, which does not exist',
        'packages/kit/README.md: quotes `stopThing`, which no package exports',
        'packages/kit/README.md: quotes `Gadget`, which no package exports',
      ].sort(),
    );
  } finally {
    removeDir(dir);
  }
});
