// BGP EVPN against real FRR and kernel VXLAN: host C runs FRR (zebra + bgpd, advertise-all-vni)
// beside a kernel vxlan device in a bridge, host B runs gobgpd and vtep (--evpn-gobgp); no static
// remote anywhere. Type-3 routes become both sides' flood lists, type-2 routes their MAC tables;
// a MAC that moves to B is announced with a higher sequence number and FRR follows; one that
// ages out on B is withdrawn; gobgpd killed and restarted takes vtep's routes away (after the
// hold time) and brings them back once; FRR's bgpd killed takes its routes away at once; a
// second vtep (host E) makes a full mesh of three.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request } from '../../src/control/client.js';
import type { EvpnStatus } from '../../src/evpn/status.js';
import { Frr, Gobgpd } from '../../src/lab/evpn.js';
import { Netns, veth } from '../../src/lab/netns.js';
import { vtepSide } from '../../src/lab/peers.js';
import { sleep, until } from '../../src/lab/sh.js';
import { Topology, UNDERLAY, VM } from '../../src/lab/topology.js';
import { needs } from '../helpers/prereq.js';

const ready = needs(t, {
  root: true,
  commands: [
    'ip',
    'bridge',
    'ping',
    'gobgpd',
    'gobgp',
    'vtysh',
    '/usr/lib/frr/bgpd',
    '/usr/lib/frr/zebra',
  ],
});

const VNI = 100;
const AS = 65000;
const B = UNDERLAY.vtep;
const C = UNDERLAY.kernel;
const E = '192.0.2.5';
const VM_E = { ip: '10.0.0.5', mac: '52:54:00:00:00:0e' };
const MOVER = { ip: '10.0.0.9', mac: '52:54:00:00:00:99' };
const HOLD = 3;

interface Row {
  mac: string;
  remote: string;
  source: string;
  flood?: boolean;
}

t.test('vtep in an EVPN fabric with FRR and kernel VXLAN', async (t) => {
  if (!ready) return;
  const topo = await Topology.build({
    prefix: `e${process.pid % 10000}`,
    peers: ['kernel'],
    vni: VNI,
    noRemotes: true,
    kernelVxlanOpts: 'nolearning',
    reap: true,
  });
  const extra: { close(): void }[] = [];
  t.teardown(() => {
    for (const x of extra.reverse()) x.close();
    topo.teardown();
  });
  const hostC = topo.get('hostC');
  hostC.exec('ip link set dev vx0 type bridge_slave learning off');
  const frr = await Frr.start(hostC, {
    asn: AS,
    routerId: C,
    neighbours: [
      { address: B, asn: AS },
      { address: E, asn: AS },
    ],
  });
  extra.push({ close: () => frr.stop() });
  const gobgpB = await Gobgpd.start(topo.get('hostB'), topo.dir, {
    asn: AS,
    routerId: B,
    neighbours: [
      { address: C, asn: AS },
      { address: E, asn: AS },
    ],
  });
  extra.push({ close: () => void gobgpB.stop() });
  await topo.startVtep([
    '--evpn-gobgp',
    gobgpB.api,
    '--evpn-hold-time',
    String(HOLD),
    '--ageing',
    '5',
    '--suppress-arp',
    '--workers',
    '2',
  ]);

  const fdb = async (control = topo.control) =>
    (await request(control, { cmd: 'fdb.show' })) as Row[];
  const flood = async (control = topo.control) =>
    (await fdb(control)).filter((r) => r.flood).map((r) => r.remote);
  const evpn = async (control = topo.control) =>
    ((await request(control, { cmd: 'stats' })) as { evpn: EvpnStatus }).evpn;
  const kernelFlood = () =>
    hostC
      .exec('bridge fdb show dev vx0')
      .split('\n')
      .filter((l) => l.startsWith('00:00:00:00:00:00'));
  /** B floods to C and C to B again (a BGP session back), within 30 s. */
  const bothFloodingAgain = () =>
    until(
      async () =>
        (await flood()).includes(`${C}:4789`) && kernelFlood().some((l) => l.includes(`dst ${B}`)),
      30_000,
      200,
    );
  const ping = (from: string, to: string) =>
    topo.get(from).exec(`ping -c 3 -i 0.2 -W 1 ${to}`, { allowFail: true });
  const frrMac = (mac: string) =>
    frr.json(`show evpn mac vni ${VNI} mac ${mac}`)[mac] as
      | { type: string; remoteVtep?: string; localSequence: number; remoteSequence: number }
      | undefined;

  await t.test('no static remote: the routes build both flood lists', async (t) => {
    const up = await until(
      async () => (await evpn()).peers.find((p) => p.address === C)?.state === 'established',
      30_000,
      200,
    );
    t.ok(up, `gobgpd's session with FRR is established (${JSON.stringify((await evpn()).peers)})`);
    const ours = await until(
      () => frr.vtysh('show bgp l2vpn evpn route type multicast').includes(`[3]:[0]:[32]:[${B}]`),
      10_000,
      200,
    );
    t.ok(ours, 'FRR has our type-3 route');
    t.ok(
      await until(() => kernelFlood().some((l) => l.includes(`dst ${B}`)), 10_000, 200),
      `the kernel's flood entry for B: ${kernelFlood().join('; ')}`,
    );
    t.ok(
      await until(async () => (await flood()).includes(`${C}:4789`), 10_000, 200),
      'our flood list has C',
    );
    const fl = (await fdb()).filter((r) => r.flood);
    t.same(
      fl.map((r) => [r.remote, r.source]),
      [[`${C}:4789`, 'evpn']],
      'from EVPN, and nothing else',
    );
    t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'B → C');
    t.match(ping('vmC', VM.vtep.ip), / 0% packet loss/, 'C → B');
    const theirs = await until(() => frrMac(VM.vtep.mac)?.remoteVtep === B, 10_000, 200);
    t.ok(theirs, `FRR: vmB's MAC is remote at B (${JSON.stringify(frrMac(VM.vtep.mac))})`);
    // ARP snooping knows vmB's address: a MAC+IP route, in FRR's ARP cache as remote at B.
    const arp = await until(
      () =>
        (frr.json(`show evpn arp-cache vni ${VNI}`)[VM.vtep.ip] as { type?: string } | undefined)
          ?.type === 'remote',
      10_000,
      200,
    );
    t.ok(
      arp,
      `FRR: ${VM.vtep.ip} at vmB's MAC, remote (${JSON.stringify(frr.json(`show evpn arp-cache vni ${VNI}`)[VM.vtep.ip])})`,
    );
    t.match(frr.json(`show evpn arp-cache vni ${VNI}`)[VM.vtep.ip], {
      mac: VM.vtep.mac,
      remoteVtep: B,
    });
    const vmC = await until(
      async () => (await fdb()).find((r) => r.mac === VM.kernel.mac && !r.flood),
      10_000,
      200,
    );
    t.match(vmC, { remote: `${C}:4789`, source: 'evpn' }, "our FDB: vmC's MAC at C, from EVPN");
    const s = await evpn();
    t.match(s.vnis[0], {
      vni: VNI,
      rd: `${B}:${VNI}`,
      rt: [`${AS}:${VNI}`],
      flood: [C],
    });
    t.ok(
      s.vnis[0]!.routesOut.multicast === 1 && s.vnis[0]!.routesOut.mac >= 1,
      'routes out counted',
    );
    t.ok(s.vnis[0]!.routesIn.multicast === 1 && s.vnis[0]!.routesIn.mac >= 1, 'routes in counted');
  });

  await t.test('a MAC moves to B: higher sequence number, FRR follows; it ages out', async (t) => {
    // The mover first lives behind C, in a namespace of its own on C's bridge.
    const mv = Netns.create(`${topo.prefix}mv`, { reap: true });
    extra.push({ close: () => mv.delete() });
    mv.exec('sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
    veth(hostC, 'mv', mv, 'eth0', { mtu: 1450, mac: MOVER.mac });
    hostC.exec('ip link set mv master br0');
    mv.exec(`ip addr add ${MOVER.ip}/24 dev eth0`);
    t.match(ping('vmB', MOVER.ip), / 0% packet loss/, 'B reaches the mover behind C');
    t.ok(
      await until(
        async () => (await fdb()).some((r) => r.mac === MOVER.mac && r.remote === `${C}:4789`),
        10_000,
        200,
      ),
      'our FDB has it at C',
    );
    t.equal(frrMac(MOVER.mac)?.type, 'local', 'FRR: local');
    // Now it shows up behind B (a VM migrated: silent at C, whose bridge still has it).
    mv.exec('ip addr flush dev eth0 && ip link set eth0 arp off');
    const vmB = topo.get('vmB');
    vmB.exec('sysctl -qw net.ipv4.conf.all.arp_ignore=1');
    vmB.exec(
      `ip link add mv link ${topo.tap} address ${MOVER.mac} type macvlan mode bridge && ip addr add ${MOVER.ip}/32 dev mv && ip link set mv up`,
    );
    vmB.exec(`ping -I mv -c 2 -i 0.2 -W 1 ${VM.kernel.ip}`, { allowFail: true });
    const moved = await until(() => frrMac(MOVER.mac)?.type === 'remote', 10_000, 200);
    t.ok(moved, `FRR moved it: ${JSON.stringify(frrMac(MOVER.mac))}`);
    t.match(
      frrMac(MOVER.mac),
      { remoteVtep: B, localSequence: 0, remoteSequence: 1 },
      'to B, sequence 1 over its 0',
    );
    t.notOk(
      (await fdb()).some((r) => r.mac === MOVER.mac),
      'our FDB no longer sends it to C (it is local)',
    );
    mv.delete();
    const after = await until(
      () => / 0% packet loss/.test(ping('vmC', MOVER.ip)) && 'ok',
      10_000,
      500,
    );
    t.ok(after, 'C reaches it at B: the ping recovers');
    // Silence: it ages out of B's TAP-side table (--ageing 5) and the route is withdrawn.
    vmB.exec('ip link del mv');
    const t0 = Date.now();
    const gone = await until(() => frrMac(MOVER.mac) === undefined, 20_000, 250);
    t.ok(gone, `FRR no longer lists it, ${Date.now() - t0} ms after the last frame`);
  });

  await t.test(
    'gobgpd killed: routes gone after the hold time; back once on restart',
    async (t) => {
      await gobgpB.stop();
      const t0 = Date.now();
      t.ok(
        await until(() => !kernelFlood().some((l) => l.includes(`dst ${B}`)), 10_000, 100),
        'FRR removes B at once (the TCP session is gone)',
      );
      t.ok((await flood()).includes(`${C}:4789`), 'vtep keeps C for the hold time');
      const removed = await until(async () => (await flood()).length === 0, (HOLD + 5) * 1000, 100);
      const ms = Date.now() - t0;
      t.ok(removed, `vtep removed the EVPN entries ${ms} ms after gobgpd went (hold ${HOLD} s)`);
      t.ok(ms >= HOLD * 1000 - 200, 'not before the hold time');
      t.notOk(
        (await fdb()).some((r) => r.source === 'evpn'),
        'no EVPN entry left',
      );
      t.match((await evpn()).state, /backoff|connecting/, 'status says so');

      await gobgpB.run();
      const back = await bothFloodingAgain();
      t.ok(back, 'both flood lists back after the restart');
      t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'and traffic');
      await sleep(1000);
      const rows = await fdb();
      t.equal(rows.filter((r) => r.flood).length, 1, 'one flood entry, not two');
      t.equal(
        rows.filter((r) => r.mac === VM.kernel.mac && !r.flood).length,
        1,
        "one row for vmC's MAC",
      );
      t.equal(
        kernelFlood().filter((l) => l.includes(`dst ${B}`)).length,
        1,
        'the kernel has B once',
      );
      t.ok((await evpn()).connects >= 2, 'a second session');
    },
  );

  await t.test(
    "FRR's bgpd killed: its routes withdrawn by gobgpd at once; back on restart",
    async (t) => {
      const steady = topo.get('vmB').exec(`ping -c 1 -W 1 ${VM.kernel.ip}`, { allowFail: true });
      t.match(steady, / 0% packet loss/);
      frr.stopBgpd();
      const t0 = Date.now();
      const gone = await until(async () => !(await flood()).includes(`${C}:4789`), 15_000, 100);
      t.ok(
        gone,
        `C left our flood list ${Date.now() - t0} ms after bgpd died (gobgpd saw the session go)`,
      );
      t.notOk(
        (await fdb()).some((r) => r.source === 'evpn'),
        "and vmC's MAC with it",
      );
      await frr.startBgpd();
      const back = await bothFloodingAgain();
      t.ok(back, 'the session back: both flood lists again');
      t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'and traffic');
    },
  );

  await t.test('three VTEPs, full mesh: every pair pings, two flood entries each', async (t) => {
    const hostE = Netns.create(`${topo.prefix}hostE`, { reap: true });
    const vmE = Netns.create(`${topo.prefix}vmE`, { reap: true });
    topo.ns.set('hostE', hostE);
    topo.ns.set('vmE', vmE);
    veth(hostE, 'eth0', topo.get('ul'), 'phostE');
    topo.get('ul').exec('ip link set phostE master ulbr');
    const dirE = mkdtempSync(join(tmpdir(), 'vtep-e-'));
    const gobgpE = await Gobgpd.start(hostE, dirE, {
      asn: AS,
      routerId: E,
      neighbours: [
        { address: B, asn: AS },
        { address: C, asn: AS },
      ],
    });
    extra.push({ close: () => void gobgpE.stop() });
    const controlE = join(dirE, 'vtep.sock');
    const vtepE: ChildProcess = await vtepSide(
      {
        host: hostE,
        vm: vmE,
        local: E,
        remotes: [],
        vni: VNI,
        mtu: 1450,
        vmIp: VM_E.ip,
        vmMac: VM_E.mac,
      },
      {
        tap: `${topo.prefix}tapE`.slice(0, 15),
        control: controlE,
        log: join(dirE, 'vtep.log'),
        extra: ['--evpn-gobgp', gobgpE.api, '--suppress-arp'],
      },
    );
    extra.push({ close: () => vtepE.kill('SIGKILL') });
    const meshed = await until(
      async () =>
        (await flood()).length === 2 &&
        (await flood(controlE)).length === 2 &&
        kernelFlood().length === 2,
      30_000,
      250,
    );
    t.ok(meshed, 'every flood list has the two others');
    t.same((await flood()).sort(), [`${C}:4789`, `${E}:4789`], 'B: C and E');
    t.same((await flood(controlE)).sort(), [`${B}:4789`, `${C}:4789`], 'E: B and C');
    t.same(
      kernelFlood()
        .map((l) => /dst (\S+)/.exec(l)?.[1])
        .sort(),
      [B, E],
      'C (kernel): B and E',
    );
    // vmB speaks again (its MAC aged out on B meanwhile, --ageing 5): B announces MAC and IP.
    topo.get('vmB').exec(`ip neigh flush dev ${topo.tap}`);
    t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'B → C');
    // E has vmB's address from B's MAC+IP route: its first ARP for it is answered by E itself.
    const supE = async () =>
      (
        (await request(controlE, { cmd: 'stats' })) as {
          vnis: { suppress: { entries: number; answered: number } }[];
        }
      ).vnis[0]!.suppress;
    t.ok(
      await until(async () => (await supE()).entries >= 1, 10_000, 200),
      `E pinned vmB's address from the route (${JSON.stringify(await supE())})`,
    );
    t.equal((await supE()).answered, 0, 'nothing asked yet');
    t.match(ping('vmE', VM.vtep.ip), / 0% packet loss/, 'E → B');
    t.ok((await supE()).answered >= 1, "vmE's ARP for vmB answered by E, from the route");
    t.match(ping('vmB', VM_E.ip), / 0% packet loss/, 'B → E');
    t.match(ping('vmC', VM_E.ip), / 0% packet loss/, 'C → E');
    t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'B → C');
  });
});
