// `bridge:` (the --bridge flag here): the TAP belongs in a Linux bridge, as libvirt VMs on br0
// need it. vtep puts it there at start, after re-creating it under traffic, after a restart,
// and when a bridge that did not exist at start appears; `vtep status` is degraded, saying why,
// while it is out. The peer is Linux kernel VXLAN; the "VM" is a namespace on a veth in br0.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Status } from '../../src/control/api.js';
import { request } from '../../src/control/client.js';
import { Netns, veth } from '../../src/lab/netns.js';
import { kernelSide, underlayAddr, vtepBin } from '../../src/lab/peers.js';
import { sleep, until } from '../../src/lab/sh.js';
import { needs } from '../helpers/prereq.js';

if (needs(t, { root: true, commands: ['ip', 'ping', 'bridge'] })) {
  const p = `g${process.pid % 10000}`;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-bridge-'));
  const ns: Netns[] = [];
  const make = (role: string) => {
    const n = Netns.create(`${p}${role}`, { reap: true });
    ns.push(n);
    return n;
  };
  let vtep: ChildProcess | undefined;
  t.teardown(() => {
    if (vtep && vtep.exitCode === null) vtep.kill('SIGKILL');
    for (const n of ns.reverse()) n.delete();
    rmSync(dir, { recursive: true, force: true });
  });
  const ul = make('ul');
  ul.exec('ip link add ulbr type bridge && ip link set ulbr up');
  const hostB = make('hb');
  const hostC = make('hc');
  for (const [h, r] of [
    [hostB, 'b'],
    [hostC, 'c'],
  ] as const) {
    veth(h, 'eth0', ul, `p${r}`);
    ul.exec(`ip link set p${r} master ulbr`);
  }
  const vmB = make('vb');
  const vmC = make('vc');
  kernelSide({
    host: hostC,
    vm: vmC,
    local: '192.0.2.3',
    remotes: ['192.0.2.2'],
    vni: 5000,
    mtu: 1450,
    vmIp: '10.0.0.3',
    vmMac: '52:54:00:00:00:0c',
  });
  hostB.exec(`ip addr add ${underlayAddr('192.0.2.2', 'eth0')}`);
  // vmB sits on br0 in hostB, as a libvirt VM's vnet does
  veth(hostB, 'vnet0', vmB, 'eth0', { mtu: 1450, mac: '52:54:00:00:00:0b' });
  vmB.exec('ip addr add 10.0.0.2/24 dev eth0');

  const control = join(dir, 'vtep.sock');
  const log = join(dir, 'vtep.log');
  const tap = `${p}tap`;
  const start = async (extra: string[] = []) => {
    vtep = spawn(
      'ip',
      [
        ...['netns', 'exec', hostB.name, process.execPath, vtepBin(), 'run'],
        ...['--local', '192.0.2.2', '--vni', '5000', '--tap', tap, '--mtu', '1450'],
        ...['--remote', '192.0.2.3', '--bridge', 'br0', '--control', control, ...extra],
      ],
      { stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')] },
    );
    t.ok(await until(() => existsSync(control), 10_000), 'vtep started');
  };
  const status = () => request(control, { cmd: 'status' }) as Promise<Status>;
  const master = () =>
    hostB.exec(
      `cat /sys/class/net/${tap}/master 2>/dev/null; readlink /sys/class/net/${tap}/master`,
      {
        allowFail: true,
      },
    );
  const pings = (n = 3) =>
    vmB.exec(`ping -c ${n} -i 0.2 -W 1 10.0.0.3`, { allowFail: true }).includes(' 0% packet loss');

  t.test('no bridge yet: degraded, saying so; the bridge appears: the TAP joins it', async (t) => {
    await start();
    const st = await status();
    t.notOk(st.healthy, 'degraded');
    t.match(
      st.problems.join('\n'),
      new RegExp(`tap ${tap} \\(vni 5000\\) is not in bridge br0: there is no bridge br0`),
    );
    hostB.exec('ip link add br0 type bridge && ip link set br0 up && ip link set vnet0 master br0');
    t.ok(
      await until(async () => (await status()).healthy, 5000),
      'healthy within the health check',
    );
    t.match(master(), /br0/, 'the TAP is in br0');
    t.ok(await until(() => pings(1), 10_000), 'vmB reaches the kernel peer’s VM through br0');
    t.match(readFileSync(log, 'utf8'), /"event":"tap_bridged"/);
  });

  t.test(
    'TAP deleted under traffic: re-created in its bridge; degraded while it was out',
    async (t) => {
      const flow = spawn('ip', [
        'netns',
        'exec',
        vmB.name,
        'ping',
        '-i',
        '0.05',
        '-W',
        '1',
        '10.0.0.3',
      ]);
      t.teardown(() => flow.kill('SIGKILL'));
      await sleep(300);
      hostB.exec(`ip link del ${tap}`);
      const seen: boolean[] = [];
      const back = await until(
        async () => {
          const st = await status();
          seen.push(st.healthy);
          return st.healthy && seen.includes(false);
        },
        10_000,
        50,
      );
      t.ok(back, 'healthy again');
      t.ok(
        seen.includes(false),
        `status was degraded meanwhile (${seen.filter((h) => !h).length} looks)`,
      );
      t.match(master(), /br0/, 'the new TAP is in br0');
      t.ok(pings(), 'vmB pings again');
      t.equal((await status()).taps[0].recreated, 1);
    },
  );

  t.test('taken out of the bridge by hand: back within a second', async (t) => {
    hostB.exec(`ip link set ${tap} nomaster`);
    t.ok(await until(() => /br0/.test(master()), 3000), 'in br0 again');
    t.ok(pings(), 'and forwarding');
  });

  t.test('the whole process restarted: the new TAP is in br0, VM pings again', async (t) => {
    const exited = new Promise((r) => vtep!.once('exit', r));
    vtep!.kill('SIGTERM');
    t.equal(await exited, 0, 'stopped');
    t.notOk(existsSync(`/proc/${vtep!.pid}`));
    // without TAP offloads this time: receive slots sized for the MTU (see the next test)
    await start(['--no-tap-offload']);
    t.ok(await until(async () => (await status()).healthy, 5000), 'healthy');
    t.match(master(), /br0/);
    t.ok(await until(() => pings(1), 10_000), 'vmB pings again');
    const st = await status();
    t.match(st.taps[0], { bridge: 'br0', inBridge: true });
  });

  t.test('ip link set TAP mtu: followed; past the receive slots, said why not', async (t) => {
    const mtu = async () => (await status()).taps[0].mtu;
    t.equal(await mtu(), 1450, 'status has the configured MTU');
    hostB.exec(`ip link set ${tap} mtu 1400`);
    t.ok(await until(async () => (await mtu()) === 1400, 3000), 'then the one set by hand');
    t.match(readFileSync(log, 'utf8'), /mtu 1450 -> 1400 on the device, followed/, 'said');
    t.ok(pings(), 'forwarding');
    hostB.exec(`ip link set ${tap} mtu 9000`);
    t.ok(await until(async () => (await mtu()) === 9000, 3000), 'a jumbo MTU by hand');
    t.match(
      readFileSync(log, 'utf8'),
      /mtu 1400 -> 9000 on the device, over the \d+ its receive slots hold: larger frames are dropped as frame_too_big; put mtu: 9000 in the configuration and restart/,
      'said plainly: the slots were sized at start',
    );
    hostB.exec(`ip link set ${tap} mtu 1450`);
    t.ok(await until(async () => (await mtu()) === 1450, 3000));
  });

  t.test(
    'a reload moves the TAP to another bridge; removing the setting takes it out',
    async (t) => {
      const exited = new Promise((r) => vtep!.once('exit', r));
      vtep!.kill('SIGTERM');
      await exited;
      hostB.exec('ip link add br1 type bridge && ip link set br1 up');
      const file = join(dir, 'vtep.yaml');
      const yaml = (bridge: string) =>
        `local: 192.0.2.2\ncontrol: ${control}\nvnis:\n  - vni: 5000\n    tap: ${tap}\n    mtu: 1450\n    remotes: [192.0.2.3]\n${bridge}`;
      writeFileSync(file, yaml('    bridge: br0\n'));
      vtep = spawn(
        'ip',
        ['netns', 'exec', hostB.name, process.execPath, vtepBin(), 'run', '--config', file],
        { stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')] },
      );
      t.ok(await until(() => existsSync(control) && /br0/.test(master()), 10_000), 'in br0');
      writeFileSync(file, yaml('    bridge: br1\n'));
      const r = (await request(control, { cmd: 'reload' })) as { changes: string[] };
      t.same(r.changes, ['vni 5000 bridge br0 -> br1']);
      t.match(master(), /br1/, 'moved to br1 at once');
      t.ok((await status()).healthy);
      writeFileSync(file, yaml(''));
      t.same(((await request(control, { cmd: 'reload' })) as { changes: string[] }).changes, [
        'vni 5000 bridge br1 -> -',
      ]);
      t.equal(master().trim(), '', 'no bridge configured: out of the one vtep put it in');
      t.ok((await status()).healthy);
    },
  );
}
