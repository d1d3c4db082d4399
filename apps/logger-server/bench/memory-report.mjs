// What a server's peak RSS was made of, from memory-sampler.cjs's samples:
//   node apps/logger-server/bench/memory-report.mjs /tmp/memory-<pid>.jsonl [...]
// "rest" is RSS less the V8 heap and the ArrayBuffers: node's own code and data (~45 MiB here:
// the binary's pages are most of it) and memory glibc keeps after freeing (it grows when freed
// Buffers are not given back to the system).
import { readFileSync } from 'node:fs';

const round = (n) => Math.round(n * 10) / 10;
const highest = (values) => values.reduce((a, b) => Math.max(a, b), -Infinity);
const lowest = (values) => values.reduce((a, b) => Math.min(a, b), Infinity);

for (const path of process.argv.slice(2)) {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  const samples = lines.filter((s) => s.gc === undefined);
  if (samples.length === 0) continue;
  let peak = samples[0];
  for (const s of samples) if (s.rss > peak.rss) peak = s;
  const max = (key) => round(highest(samples.map((s) => s[key])));
  const fullGcs = lines.filter((s) => s.gc === 'mark-compact');
  const scavenges = lines.filter((s) => s.gc === 'scavenge').length;
  const last = samples.at(-1);
  console.log(`${path}: ${round(last.t / 1000)} s, peak RSS (VmHWM) ${last.hwm} MiB; ${fullGcs.length} full GCs, ${scavenges} scavenges`);
  console.log(
    `  at the highest RSS sample (${peak.rss} MiB, t ${peak.t} ms): V8 heap ${peak.heapTotal} (${Object.entries(peak.spaces)
      .map(([name, size]) => `${name} ${size}`)
      .join(', ')}), ArrayBuffers ${peak.arrayBuffers}, rest ${round(peak.rss - peak.heapTotal - peak.arrayBuffers)}; glibc's brk heap ${peak.brkHeap}`,
  );
  console.log(`  highest of each: V8 heap ${max('heapTotal')}, ArrayBuffers ${max('arrayBuffers')}, brk heap ${max('brkHeap')}`);
  if (fullGcs.length > 0) {
    const after = fullGcs.map((s) => s.arrayBuffers);
    const used = fullGcs.map((s) => s.heapUsed);
    console.log(`  after each full GC: V8 heap used ${round(lowest(used))}-${round(highest(used))}, ArrayBuffers ${round(lowest(after))}-${round(highest(after))}`);
  }
}
