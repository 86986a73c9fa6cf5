#!/usr/bin/env node
// Long differential runs: `npm run fuzz:diff -- --runs N [--seed S]` feeds N generated batches
// (up to 16 packets each) to Open vSwitch, kernel VXLAN and vtep side by side. A disagreement
// is printed, shrunk by fast-check, as a JSON entry (decap, encap, learning or forwarding) to
// paste into test/diff/regressions.json, where every later `npm test` replays it.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  if (!['--runs', '--seed'].includes(args[i]) || args[i + 1] === undefined) {
    console.error(
      `fuzz:diff: unexpected argument ${JSON.stringify(args[i])}` +
        (args[i + 1] === undefined && args[i].startsWith('--') ? ' (no value)' : '') +
        '; usage: npm run fuzz:diff -- [--runs N] [--seed S]',
    );
    process.exit(2);
  }
}
const value = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const runs = Number(value('--runs', '100'));
const seed = value('--seed', undefined);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(
    `fuzz:diff: invalid --runs ${JSON.stringify(value('--runs'))}: must be a positive integer`,
  );
  process.exit(2);
}
if (seed !== undefined && !/^-?\d+$/.test(seed)) {
  console.error(`fuzz:diff: invalid --seed ${JSON.stringify(seed)}: must be an integer`);
  process.exit(2);
}
// A case takes up to about 4 s (a paced learning sequence). Each property gets twice that per
// run plus a minute, the rest of which shrinking may use; the first disagreement is printed
// before shrinking starts. A file holds at most three properties, and files run one at a time:
// side by side on two cores, the userspace switch misses packets of a burst.
const budgetMs = (60 + runs * 8) * 1000;
const env = {
  ...process.env,
  VTEP_DIFF_RUNS: String(runs),
  VTEP_DIFF_BUDGET_MS: String(budgetMs),
  ...(seed === undefined ? {} : { VTEP_DIFF_SEED: seed }),
};
const r = spawnSync(
  'npx',
  [
    'tap',
    '--disable-coverage',
    '--allow-empty-coverage',
    '--jobs=1',
    `--timeout=${60 + (3 * budgetMs) / 1000}`,
    'test/diff/decap.test.ts',
    'test/diff/encap.test.ts',
    'test/diff/fdb.test.ts',
  ],
  { stdio: 'inherit', env },
);
process.exit(r.status ?? 1);
