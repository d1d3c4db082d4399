// `node scripts/check-docs.mjs` (part of `pnpm lint`): keeps the docs true to the code.
// - every environment variable the logger server reads (apps/logger-server/src/config.ts) is
//   documented in the root README's configuration section, and every variable that section's
//   table documents is read;
// - every file a README, CONTRIBUTING.md or BENCHMARKS.md names (`path/file.ts`, relative links)
//   exists;
// - every export a package README quotes (`createPublisher(...)`, `StreamReader`) is exported by
//   a package of the workspace.
// Prints one line per problem and exits 1 when there is any. `node scripts/check-docs.mjs <dir>`
// checks another checkout.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// The repository checked: this script's, or the directory given as the first argument (tests).
const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (path) => readFileSync(join(root, path), 'utf8');

/** Names of files the docs use as examples of a kind of file, not as files of this repository. */
const EXAMPLE_FILES = new Set(['src/foo.ts', 'src/foo.test.ts', 'x.manifest.json']);
/** Capitalised names READMEs quote that belong to other libraries (node-redis, the AWS SDK, Node, winston). */
const FOREIGN_NAMES = new Set([
  'Error',
  'Buffer',
  'Upload',
  'S3Client',
  'AbortSignal',
  'AbortController',
  'Date',
  'Promise',
  'JSON',
  'HeadObject',
  'ListObjectsV2',
  'TransportStream',
  'RedisClientOptions',
  'IsTruncated',
  'NextKeyMarker',
  'NextUploadIdMarker',
]);

export function docs() {
  const list = [];
  for (const group of ['packages', 'apps']) {
    if (!existsSync(join(root, group))) continue;
    for (const name of readdirSync(join(root, group))) if (existsSync(join(root, group, name, 'README.md'))) list.push(`${group}/${name}/README.md`);
  }
  return ['README.md', 'CONTRIBUTING.md', 'BENCHMARKS.md'].filter((doc) => existsSync(join(root, doc))).concat(list);
}

/** The environment variables config.ts reads: ENV_KEYS, and `env.NAME` read directly (LOG_CONFIG). */
export function envRead(configSource) {
  const names = new Set();
  const keys = /ENV_KEYS\s*=\s*\[([^\]]*)\]/.exec(configSource);
  if (!keys) throw new Error('apps/logger-server/src/config.ts: no ENV_KEYS array found; update scripts/check-docs.mjs');
  for (const m of keys[1].matchAll(/'([A-Z][A-Z0-9_]*)'/g)) names.add(m[1]);
  for (const m of configSource.matchAll(/\benv\.([A-Z][A-Z0-9_]*)\b/g)) names.add(m[1]);
  return names;
}

/** From the README's server configuration section: the variables its table documents, and every variable it mentions. */
export function envDocumented(readme) {
  const start = readme.indexOf('## Configuration of the logger server');
  if (start < 0) throw new Error('README.md: no "## Configuration of the logger server" section; update scripts/check-docs.mjs');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const table = new Set();
  const mentioned = new Set();
  for (const line of section.split('\n')) {
    const firstCell = line.startsWith('| `') ? line.split('|')[1] : undefined;
    for (const m of line.matchAll(/`([A-Z][A-Z0-9_]{2,})`/g)) {
      mentioned.add(m[1]);
      if (firstCell?.includes(m[0])) table.add(m[1]);
    }
  }
  return { table, mentioned };
}

/** Files a doc names: backticked paths with a source-like extension, and relative Markdown links. */
export function namedFiles(text) {
  const files = new Set();
  for (const m of text.matchAll(/`([\w./-]+\.(?:ts|mjs|cjs|js|lua|json|md|sh|yaml))`/g)) files.add(m[1]);
  for (const m of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) if (!/^[a-z]+:/.test(m[1])) files.add(m[1]);
  return [...files].filter((file) => !EXAMPLE_FILES.has(file) && !file.includes('dist/'));
}

/** Where a name in the doc at `docPath` may point: beside it, from the root, or in its package's usual folders. */
function exists(docPath, file) {
  const dir = dirname(docPath);
  const candidates = [join(dir, file), join(root, file)];
  if (!file.includes('/')) {
    for (const sub of ['src', 'lua', 'test', 'bench', 'scripts']) candidates.push(join(dir, sub, file));
    // A bare name such as `tsconfig.json` in CONTRIBUTING.md: a file every package or app has.
    for (const group of ['packages', 'apps']) if (existsSync(join(root, group))) for (const name of readdirSync(join(root, group))) candidates.push(join(root, group, name, file));
  }
  return candidates.some((path) => existsSync(path));
}

/** Names quoted as exports in a package README: `name(...)` calls and capitalised identifiers. */
export function quotedExports(text) {
  const names = new Set();
  for (const m of text.matchAll(/`([^`\n]+)`/g)) {
    const code = m[1];
    const call = /^(?:new\s+)?([A-Za-z_$][\w$]*)\(/.exec(code);
    if (call) names.add(call[1]);
    else if (/^[A-Z][a-z][A-Za-z0-9]*$/.test(code)) names.add(code);
  }
  return names;
}

/** Everything the workspace's packages export from their entry points (package.json `exports`). */
export function workspaceExports() {
  const names = new Set();
  const visit = (file, seen) => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
      for (const part of m[1].split(',')) {
        const name = part
          .trim()
          .split(/\s+as\s+/)
          .pop()
          ?.trim();
        if (name) names.add(name);
      }
    }
    for (const m of source.matchAll(/export\s+(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:class|function|const|let|interface|type|enum)\s+([A-Za-z_$][\w$]*)/g)) names.add(m[1]);
  };
  for (const group of ['packages', 'apps']) {
    if (!existsSync(join(root, group))) continue;
    for (const name of readdirSync(join(root, group))) {
      const dir = join(root, group, name);
      if (!existsSync(join(dir, 'package.json'))) continue;
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      const entries = pkg.exports ? Object.values(pkg.exports).map((e) => (typeof e === 'string' ? e : e.default)) : [pkg.main ?? './dist/index.js'];
      for (const entry of entries) visit(join(dir, entry.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')), new Set());
    }
  }
  return names;
}

/** Members of exported classes and objects (`reader.ack()`) are quoted too: methods declared anywhere in the package's sources count. */
function packageMembers(dir) {
  const names = new Set();
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
        for (const m of readFileSync(path, 'utf8').matchAll(/^\s+(?:async\s+|static\s+|get\s+)*([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\(/gm)) names.add(m[1]);
      }
    }
  };
  if (existsSync(join(dir, 'src'))) walk(join(dir, 'src'));
  return names;
}

export function check() {
  const problems = [];
  const read_ = envRead(read('apps/logger-server/src/config.ts'));
  const { table, mentioned } = envDocumented(read('README.md'));
  for (const name of read_) if (!mentioned.has(name)) problems.push(`README.md: the server reads ${name} (apps/logger-server/src/config.ts) but the configuration section does not document it`);
  for (const name of table) if (!read_.has(name)) problems.push(`README.md: the configuration table documents ${name}, which apps/logger-server/src/config.ts does not read`);

  const exported = workspaceExports();
  for (const doc of docs()) {
    const text = read(doc);
    for (const file of namedFiles(text)) if (!exists(join(root, doc), file)) problems.push(`${doc}: names ${file}, which does not exist`);
    if (!doc.startsWith('packages/')) continue;
    const members = packageMembers(join(root, dirname(doc)));
    for (const name of quotedExports(text)) {
      if (!exported.has(name) && !members.has(name) && !FOREIGN_NAMES.has(name)) problems.push(`${doc}: quotes \`${name}\`, which no package exports`);
    }
  }
  return problems;
}

if (process.argv[1] && relative(process.argv[1], fileURLToPath(import.meta.url)) === '') {
  const problems = check();
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) {
    console.error(`check-docs: ${problems.length} problem(s); fix the docs or the code so they agree`);
    process.exit(1);
  }
  console.log('check-docs: docs agree with the code');
}
