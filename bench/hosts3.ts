// The three-host lab as a benchmark: host A Open vSwitch (userspace), host C kernel VXLAN, host
// B our vtep or a kernel VXLAN in its place, measured alternately in one run. `npm run
// bench:3hosts`; needs root and the Debian packages from scripts/setup.sh. Writes
// bench/results/hosts3.json. BENCH_ROUNDS, BENCH_SECONDS, BENCH_VTEP_ARGS as for bench:e2e.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatHosts3, runHosts3 } from '../src/lab/hosts3.js';
import { resultsDir } from './results.js';

const started = Date.now();
const r = await runHosts3({
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  seconds: Number(process.env.BENCH_SECONDS ?? 3),
  vtepArgs: process.env.BENCH_VTEP_ARGS?.split(/\s+/).filter(Boolean),
  log: (l) => process.stderr.write(`${l}\n`),
});
console.log(formatHosts3(r));
const dir = process.env.BENCH_VTEP_ARGS ? join(resultsDir, 'args') : resultsDir;
mkdirSync(dir, { recursive: true });
const file = join(dir, 'hosts3.json');
writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
console.log(`\nwritten: ${file} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
