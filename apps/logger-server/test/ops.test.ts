import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir, which } from '@log/test-kit';
import { load } from 'js-yaml';
import { httpGet, startServer, useRedis, type ServerProcess } from './harness';

// The ops kit (ops/prometheus, ops/grafana) against the server it watches: every metric an alert
// or a panel queries is one the real server exports, and the rules are valid Prometheus rules
// that fire on the series they should (promtool, where Debian's prometheus package is installed;
// otherwise the rules are parsed and their shape checked here).
const OPS = join(__dirname, '..', '..', '..', 'ops');
const rulesFile = join(OPS, 'prometheus', 'logger-rules.yml');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string; description: string; runbook: string };
}

const rules = (load(readFileSync(rulesFile, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(join(OPS, 'grafana', 'logger-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };

/** Metric names a PromQL expression reads (histogram series by their base name). */
function metricsOf(expr: string): string[] {
  return [...new Set((expr.match(/\blogger_[a-z_]+/g) ?? []).map((name) => name.replace(/_(bucket|sum|count)$/, '')))];
}

describe('ops kit', () => {
  const state = useRedis();

  it('queries only metrics the real server exports', async () => {
    const logDir = tempDir('ops');
    let server: ServerProcess | undefined;
    let body: string;
    try {
      server = await startServer({ REDIS_URL: state.redis.url, LOG_DIR: logDir });
      body = (await httpGet(server.httpPort, '/metrics')).body;
    } finally {
      await server?.stop();
      removeDir(logDir);
    }
    const exported = new Set([...body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const queried = [...rules.map((r) => r.expr), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))].flatMap(metricsOf);
    expect(queried.length).toBeGreaterThan(10);
    expect(queried.filter((name) => !exported.has(name))).toEqual([]);
  }, 30_000);

  it('has one alert per failure the issue names, each with a severity and a runbook section in the README', () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(['LoggerArchiveFailing', 'LoggerArchiveStale', 'LoggerDeadLetters', 'LoggerGroupLagGrowing', 'LoggerNotReady', 'LoggerRecordsMissing']);
    const readme = readFileSync(join(OPS, '..', 'README.md'), 'utf8');
    for (const rule of rules) {
      expect(['page', 'warn', 'info']).toContain(rule.labels.severity);
      expect(rule.annotations.runbook).toBe(`README.md#${rule.alert.toLowerCase()}`);
      expect(readme).toContain(`### ${rule.alert}\n`);
      if (rule.for !== undefined) expect(rule.for).toMatch(/^\d+[smh]$/);
    }
  });

  // promtool where Debian's prometheus package is installed (apt-get install -y prometheus);
  // otherwise the expressions' brackets and quotes are checked here, a weaker parse.
  const promtool = which('promtool');
  it(promtool ? 'passes promtool check rules, and promtool test rules fires each alert on its series' : 'has well-formed expressions (promtool not installed)', () => {
    if (promtool !== undefined) {
      expect(execFileSync(promtool, ['check', 'rules', rulesFile]).toString()).toContain('SUCCESS: 6 rules found');
      expect(execFileSync(promtool, ['test', 'rules', join(OPS, 'prometheus', 'logger-rules.test.yml')]).toString()).toContain('SUCCESS');
      return;
    }
    for (const expr of [...rules.map((r) => r.expr), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))]) {
      const stack: string[] = [];
      for (const c of expr.replace(/"[^"]*"/g, '""')) {
        if ('([{'.includes(c)) stack.push(c);
        else if (')]}'.includes(c)) expect(`${stack.pop()}${c}`).toMatch(/^(\(\)|\[\]|\{\})$/);
      }
      expect(stack).toEqual([]);
    }
  });
});
