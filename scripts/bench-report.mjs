// Shared by the packages' benchmarks (pnpm bench): prints a table and records it in BENCHMARKS.md (one section per
// benchmark, replaced on each run) with the command, the machine and the date.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export function table(headers, rows) {
  const lines = [`| ${headers.join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

export function machine() {
  return `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export function record(root, id, title, command, body) {
  const file = join(root, 'BENCHMARKS.md');
  let text = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Benchmarks\n\nWritten by `pnpm bench`; each section is replaced when its benchmark runs again. Ratios are measured side by side in one run; the machines are shared and noisy (±40% from minute to minute), so compare within a section, not across days.\n';
  const section = `<!-- bench:${id} -->\n## ${title}\n\n- command: \`${command}\`\n- machine: ${machine()}\n- date: ${new Date().toISOString()}\n\n${body}\n<!-- /bench:${id} -->`;
  const pattern = new RegExp(`<!-- bench:${id} -->[\\s\\S]*?<!-- /bench:${id} -->`);
  text = pattern.test(text) ? text.replace(pattern, section) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, text);
}
