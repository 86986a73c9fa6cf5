// `vtep lab up|down`, the project's demo, run as a user would run it: the compiled CLI.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LabError, checkPing } from '../../src/lab/lab.js';
import { Netns } from '../../src/lab/netns.js';
import { vtepBin } from '../../src/lab/topology.js';
import { sh } from '../../src/lab/sh.js';
import { needs } from '../helpers/prereq.js';

/** Command lines of live processes that mention `text`. */
function processesMentioning(text: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .map((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        return '';
      }
    })
    .filter((cmd) => cmd.includes(text));
}

t.test('a lab whose ping fails is a failed lab up, not a success', async (t) => {
  t.doesNotThrow(() => checkPing('3 packets transmitted, 3 received, 0% packet loss, time 601ms'));
  t.throws(
    () => checkPing('3 packets transmitted, 0 received, 100% packet loss, time 2033ms'),
    new LabError(
      'ERR_LAB_PING',
      'the VMs did not reach each other across the overlay (100% packet loss); the lab was removed',
    ),
  );
  t.throws(() => checkPing('3 packets transmitted, 2 received, 33.3333% packet loss'), {
    code: 'ERR_LAB_PING',
  });
  t.throws(() => checkPing(''), { message: /\(no answer\)/ });
});

t.test('lab up --down (npm run lab): options reach it, and it leaves nothing', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'ovs-vsctl', 'tshark', 'tcpdump', 'ping'] })) return;
  const prefix = `ld${process.pid % 10000}`;
  const dir = join(mkdtempSync(join(tmpdir(), 'vtep-lab-')), 'lab');
  const r = spawnSync(
    process.execPath,
    [vtepBin(), 'lab', 'up', '--down', '--prefix', prefix, '--dir', dir],
    { encoding: 'utf8', timeout: 120_000 },
  );
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, / 0% packet loss/);
  t.match(r.stdout, /removed 5 namespaces/, 'and down at the end');
  t.match(r.stdout, new RegExp(`${prefix}vmB`), 'the given prefix was used');
  t.notOk(sh('ip netns list').includes(prefix), 'namespaces gone');
  t.notOk(existsSync(dir), 'directory gone');
});

t.test(
  'lab up builds the guide scenario, pings, shows FDBs and packets; lab down removes it',
  async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'ovs-vsctl', 'tshark', 'tcpdump', 'ping'] }))
      return;
    const prefix = `lb${process.pid % 10000}`;
    const dir = join(mkdtempSync(join(tmpdir(), 'vtep-lab-')), 'lab');
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [vtepBin(), 'lab', ...args, '--prefix', prefix, '--dir', dir], {
        encoding: 'utf8',
        timeout: 120_000,
      });
    t.teardown(() => cli('down'));
    const up = cli('up');
    t.equal(up.status, 0, `lab up exits 0 ${up.stderr}`);
    t.match(up.stdout, /3 packets transmitted, 3 received, 0% packet loss/);
    t.match(
      up.stdout,
      /52:54:00:00:00:0a dev \S+ dst 192\.0\.2\.1 port 4789 vni 5000 self/,
      'our FDB: VM A behind host A',
    );
    t.match(
      up.stdout,
      /port\s+VLAN\s+MAC\s+Age[\s\S]*52:54:00:00:00:0b/,
      'OVS fdb/show: VM B learned',
    );
    t.match(
      up.stdout,
      /10\.0\.0\.2 → 10\.0\.0\.1\s+ICMP \d+ Echo \(ping\) request/,
      'tshark decodes the inner ping',
    );
    t.match(up.stdout, /VXLAN Network Identifier \(VNI\): 5000/);
    t.match(up.stdout, /Remove it with: vtep lab down --dir /);
    t.ok(sh('ip netns list').includes(`${prefix}vmB`), 'left running to explore');
    const again = cli('up');
    t.equal(again.status, 1, 'a second lab up refuses');
    t.match(again.stderr, /a lab is already up/);
    const down = cli('down');
    t.equal(down.status, 0);
    t.match(down.stdout, /removed 5 namespaces/);
    t.notOk(sh('ip netns list').includes(prefix), 'namespaces gone');
    t.notOk(existsSync(dir), 'directory gone');
    t.same(processesMentioning(dir), [], 'no process of the lab left');
  },
);

t.test(
  'lab down removes only what the lab state file lists; lab up needs a fresh directory',
  async (t) => {
    if (!needs(t, { root: true, commands: ['ip'] })) return;
    const prefix = `ld${process.pid % 10000}`;
    const base = mkdtempSync(join(tmpdir(), 'vtep-labdown-'));
    t.teardown(() => rmSync(base, { recursive: true, force: true }));
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [vtepBin(), 'lab', ...args], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    writeFileSync(join(base, 'precious'), 'keep me\n');

    const notLab = cli('down', '--dir', base, '--prefix', prefix);
    t.equal(notLab.status, 1, 'a directory without lab.json is not a lab');
    t.match(notLab.stderr, /no lab in .* \(no readable lab\.json there\); nothing removed/);
    t.equal(readFileSync(join(base, 'precious'), 'utf8'), 'keep me\n', 'and it is left alone');

    for (const bad of ['', 'a b', 'x'.repeat(9), '-v', 'A']) {
      const r = cli('down', '--dir', base, '--prefix', bad);
      t.equal(r.status, 2, `--prefix ${JSON.stringify(bad)} is refused`);
      t.match(r.stderr, /invalid --prefix .*must be 1\.\.8 lower-case letters and digits/);
    }

    const listed = Netns.create(`${prefix}a`, { reap: true });
    const unlisted = Netns.create(`${prefix}b`, { reap: true });
    t.teardown(() => unlisted.delete());
    const lab = join(base, 'lab');
    mkdirSync(lab);
    writeFileSync(join(lab, 'lab.json'), JSON.stringify({ prefix, namespaces: [listed.name] }));
    const wrongPrefix = cli('down', '--dir', lab, '--prefix', 'other');
    t.equal(wrongPrefix.status, 2);
    t.match(wrongPrefix.stderr, /was made with --prefix ld/);
    const down = cli('down', '--dir', lab, '--prefix', prefix);
    t.equal(down.status, 0, down.stderr);
    t.match(down.stdout, new RegExp(`removed 1 namespaces \\(${listed.name}\\)`));
    const left = sh('ip netns list');
    t.notOk(left.includes(listed.name), 'the listed namespace is gone');
    t.ok(left.includes(unlisted.name), 'a namespace with the same prefix but not listed stays');
    t.notOk(existsSync(lab), "the lab's directory is gone");
    t.ok(existsSync(join(base, 'precious')), 'its parent is untouched');

    const up = cli('up', '--dir', base, '--prefix', prefix);
    t.equal(up.status, 2, 'lab up refuses a directory that has other files');
    t.match(up.stderr, /invalid --dir .*exists and is not empty/);
  },
);
