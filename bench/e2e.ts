// End-to-end benchmark: our vtep vs Open vSwitch (userspace) vs Linux kernel VXLAN, measured in
// one run on this machine. `npm run bench:e2e` (or `vtep bench`); needs root and the Debian
// packages from scripts/setup.sh. Writes bench/results/e2e.json and e2e.svg.
import { formatE2e, runE2e, writeE2e } from '../src/lab/e2e.js';
import { resultsDir } from './results.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const started = Date.now();
const r = await runE2e({
  rounds,
  seconds,
  // BENCH_PROFILE=DIR: a V8 CPU profile of the vtep process (open it in Chrome DevTools)
  profileDir: process.env.BENCH_PROFILE,
  // BENCH_GRO=1: GRO on the underlay links, as a NIC has it
  gro: process.env.BENCH_GRO === '1',
  // BENCH_VTEP_ARGS="--ttl inherit --tos inherit": what a setting costs, against the same peers
  vtepArgs: process.env.BENCH_VTEP_ARGS?.split(/\s+/).filter(Boolean),
  log: (l) => process.stderr.write(`${l}\n`),
  progress: (done, total, what) => {
    const width = 30;
    const fill = Math.round((done / total) * width);
    process.stderr.write(
      `\r[${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${done}/${total} ${what.padEnd(20)}`,
    );
    if (done === total) process.stderr.write('\n');
  },
});
console.log(formatE2e(r));
// A GRO run, or one with other vtep flags, is written beside the default one, not over it.
const files = writeE2e(
  r,
  r.underlayGro
    ? `${resultsDir}/gro`
    : process.env.BENCH_VTEP_ARGS
      ? `${resultsDir}/args`
      : resultsDir,
);
console.log(
  `\nwritten: ${files.json}, ${files.svg} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
);
