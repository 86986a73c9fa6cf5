import type { Command } from 'commander';
import { integer } from '../config/config.js';
import { formatE2e, runE2e, writeE2e } from '../lab/e2e.js';
import { LAB_DIR, LAB_PREFIX, labDown, labUp } from '../lab/lab.js';
import { MAX_VNI } from '../wire/vxlan.js';

/** `vtep lab` (the OVS VXLAN guide's two hosts in namespaces) and `vtep bench` (end to end). */
export function labCommands(p: Command): void {
  const lab = p
    .command('lab')
    .description("the OVS VXLAN guide's two hosts in network namespaces: OVS + vtep, one VM each");
  const labOpts = (cmd: Command) =>
    cmd
      .option('--prefix <name>', 'namespace name prefix', LAB_PREFIX)
      .option('--dir <path>', 'working directory', LAB_DIR);
  labOpts(
    lab
      .command('up')
      .description(
        'build it, ping across, print both FDBs and decoded tunnel packets; leave it running',
      ),
  )
    .option('--vni <n>', 'VNI (OVS options:key)', '5000')
    .option('--down', 'remove it again at the end (npm run lab)')
    .action(async (o) => {
      const vni = integer('--vni', o.vni, 0, MAX_VNI);
      const out = (l: string) => process.stdout.write(l + '\n');
      await labUp({ prefix: o.prefix, dir: o.dir, vni }, out);
      if (o.down) labDown({ prefix: o.prefix, dir: o.dir }, out);
    });
  labOpts(
    lab.command('down').description('stop the vtep and Open vSwitch, delete the namespaces'),
  ).action((o) => {
    labDown({ prefix: o.prefix, dir: o.dir }, (l) => process.stdout.write(l + '\n'));
  });
  p.command('bench')
    .description(
      'end-to-end benchmark: vtep vs Open vSwitch (userspace) vs kernel VXLAN, side by side (root)',
    )
    .option('--rounds <n>', 'alternating rounds (medians are reported)', '3')
    .option('--seconds <n>', 'seconds per TCP run (UDP runs take two thirds)', '3')
    .option('--out <dir>', 'where e2e.json and e2e.svg go', 'bench/results')
    .action(async (o) => {
      const rounds = integer('--rounds', o.rounds, 1, 20);
      const seconds = integer('--seconds', o.seconds, 1, 60);
      const r = await runE2e({
        rounds,
        seconds,
        progress: (done, total, what) =>
          process.stderr.write(
            `\r[${done}/${total}] ${what.padEnd(20)}${done === total ? '\n' : ''}`,
          ),
      });
      process.stdout.write(formatE2e(r) + '\n');
      const files = writeE2e(r, o.out);
      process.stdout.write(`written: ${files.json}, ${files.svg}\n`);
    });
}
