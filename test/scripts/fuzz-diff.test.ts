// `npm run fuzz:diff` refuses bad input before it builds anything: exit 2, naming the argument.
import { spawnSync } from 'node:child_process';
import t from 'tap';

const run = (...args: string[]) =>
  spawnSync(process.execPath, ['scripts/fuzz-diff.js', ...args], { encoding: 'utf8' });

for (const [args, message] of [
  [['--runs', '0'], /invalid --runs "0": must be a positive integer/],
  [['--runs', 'many'], /invalid --runs "many"/],
  [['--seed', '1.5'], /invalid --seed "1.5": must be an integer/],
  [['--seed'], /unexpected argument "--seed" \(no value\)/],
  [['--run', '5'], /unexpected argument "--run"; usage: npm run fuzz:diff -- \[--runs N\]/],
] as const) {
  t.test(args.join(' '), async (t) => {
    const r = run(...args);
    t.equal(r.status, 2, 'exit status 2');
    t.match(r.stderr, message);
  });
}
