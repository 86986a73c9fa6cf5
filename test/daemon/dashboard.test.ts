// The Grafana dashboard in contrib/: valid JSON, and every query names metrics vtep exports
// (a renamed metric would otherwise leave an empty panel behind).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { RunningStats } from '../../src/control/api.js';
import { metricsRegistry } from '../../src/daemon/metrics.js';
import { packageRoot } from '../../src/util/package.js';

interface Panel {
  title: string;
  targets: { expr: string }[];
}

t.test('every metric a panel queries is one vtep exports', async (t) => {
  const dash = JSON.parse(
    readFileSync(join(packageRoot(), 'contrib', 'grafana', 'vtep.json'), 'utf8'),
  ) as { panels: Panel[]; templating: { list: { query: unknown }[] } };
  const { register } = metricsRegistry(() => ({}) as RunningStats, { ovsdb: true });
  const exported = new Set(register.getMetricsAsArray().map((m) => m.name));
  // A histogram's series carry suffixes.
  const known = (n: string) =>
    exported.has(n) || exported.has(n.replace(/_(bucket|sum|count)$/, ''));
  const FUNCTIONS = new Set([
    'sum',
    'rate',
    'increase',
    'count',
    'min',
    'vector',
    'histogram_quantile',
    'label_values',
    'by',
    'or',
  ]);
  const queries = [
    ...dash.panels.flatMap((p) => p.targets.map((x) => ({ where: p.title, expr: x.expr }))),
    ...dash.templating.list
      .filter((v) => typeof v.query === 'string' && v.query.includes('('))
      .map((v) => ({ where: 'variable', expr: v.query as string })),
  ];
  t.ok(dash.panels.length >= 8, `${dash.panels.length} panels`);
  for (const q of queries) {
    // metric names: identifiers not followed by "(" and outside braces and strings
    const bare = q.expr
      .replace(/"[^"]*"/g, '')
      .replace(/\{[^}]*\}/g, '')
      .replace(/\[[^\]]*\]/g, '');
    const names = [...bare.matchAll(/[a-zA-Z_:][\w:]*/g)]
      .map((m) => m[0])
      .filter((n) => !FUNCTIONS.has(n) && !/^(le|source|vni|reason|target|instance)$/.test(n));
    t.ok(names.length > 0, `${q.where}: names a metric`);
    for (const n of names) t.ok(known(n), `${q.where}: ${n} is exported`);
  }
});
