// A multicast underlay against real peers, as RFC 7348 §4.2 first described VXLAN: vtep and two
// Linux kernel VXLAN devices with `group 239.1.1.1 dev eth0` on one bridged underlay, no remote
// listed anywhere. Broadcasts go to the group once (TTL 1), every VTEP learns the others' unicast
// addresses from what the group carries, and a reload that removes the group leaves it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Topology, UNDERLAY, UNDERLAY6, VM } from '../../src/lab/topology.js';
import { underlayCapture } from '../helpers/capture.js';
import { needs } from '../helpers/prereq.js';
import { tsharkFields } from '../helpers/tshark.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ping', 'bridge', 'tcpdump', 'tshark'],
});

const GROUP = '239.1.1.1';

type FdbRow = { mac: string; remote: string; vni: number };
type Status = { groups?: { group: string; interface: string; vnis: number[] }[] };

t.test(
  'group 239.1.1.1 with two kernel VXLAN peers: flood to the group, learn unicast, leave on reload',
  async (t) => {
    if (!ready) return;
    const topo = await Topology.build({
      prefix: `g${process.pid % 10000}`,
      peers: ['kernel', 'kernel2'],
      group: GROUP,
      reap: true,
    });
    t.teardown(() => topo.teardown());
    const config = join(topo.dir, 'vtep.yaml');
    const write = (vni: string) =>
      writeFileSync(
        config,
        `local: ${UNDERLAY.vtep}\nvnis:\n  - vni: ${topo.vni}\n    tap: ${topo.tap}\n${vni}`,
      );
    write(`    group: ${GROUP}\n    interface: eth0\n`);
    await topo.startVtep([], { config });
    const hostB = topo.get('hostB');
    const joined = () => hostB.exec('ip maddr show dev eth0').includes(`inet  ${GROUP}`);
    t.ok(joined(), `hostB eth0 is a member of ${GROUP} (ip maddr)`);
    t.same(
      ((await topo.ask('status')) as Status).groups,
      [{ group: GROUP, interface: 'eth0', vnis: [topo.vni] }],
      'status says which group, on which interface, for which VNI',
    );

    const ping = (from: string, to: string) =>
      topo.get(from).exec(`ping -c 3 -i 0.2 -W 2 ${to}`, { allowFail: true });
    const file = await underlayCapture(topo, 'udp port 4789', () => {
      for (const [from, to] of [
        ['vmB', VM.kernel.ip],
        ['vmB', VM.kernel2.ip],
        ['vmC', VM.vtep.ip],
        ['vmD', VM.vtep.ip],
        ['vmC', VM.kernel2.ip],
      ])
        t.match(ping(from, to), / 0% packet loss/, `${from} -> ${to}`);
    });
    const rows = tsharkFields(
      file,
      [
        'ip.src',
        'ip.dst',
        'ip.ttl',
        'udp.checksum.status',
        'arp.opcode',
        'arp.src.hw_mac',
        'icmp.type',
        'icmp.seq',
      ],
      ['-o', 'udp.check_checksum:TRUE'],
    ).rows.map(([src, dst, ttl, sum, arp, arpMac, icmp, seq]) => ({
      src,
      dst,
      ttl: Number(ttl),
      sum,
      arp,
      arpMac,
      icmp,
      seq: Number(seq),
    }));
    const ourArp = rows.filter((r) => r.arp === '1' && r.arpMac === VM.vtep.mac);
    t.ok(ourArp.length > 0, 'vmB asked ARP');
    t.ok(
      ourArp.every((r) => r.src === UNDERLAY.vtep && r.dst === GROUP && r.ttl === 1),
      `each of its ARP requests went once, to the group, with TTL 1 (${JSON.stringify(ourArp)})`,
    );
    t.ok(
      ourArp.every((r) => r.sum === '1'),
      'with a UDP checksum tshark verifies (summed over the group as destination)',
    );
    t.ok(
      rows.some((r) => r.arp === '1' && r.src === UNDERLAY.kernel && r.dst === GROUP),
      'the kernel peers flood to the group too',
    );
    const ourIcmp = rows.filter((r) => r.src === UNDERLAY.vtep && r.icmp !== '');
    t.ok(ourIcmp.length >= 12, `vtep's echo requests and replies (${ourIcmp.length})`);
    // A first echo request may still flood (to the group, as any unknown unicast): with
    // workers, the ARP reply that taught vtep the MAC may have been read by another thread a
    // moment before. Everything after the first goes to the peer learned from the group.
    const flooded = ourIcmp.filter((r) => r.dst === GROUP);
    t.ok(
      flooded.every((r) => r.icmp === '8' && r.seq === 1),
      `only a first request flooded, if any (${JSON.stringify(flooded)})`,
    );
    t.ok(
      ourIcmp
        .filter((r) => r.dst !== GROUP)
        .every((r) => r.dst === UNDERLAY.kernel || r.dst === UNDERLAY.kernel2),
      'the rest went unicast, to the peers learned from the group',
    );
    t.ok(ourIcmp.length - flooded.length >= 10, 'most of them');
    const learned = (await topo.ask('fdb.show')) as FdbRow[];
    const at = (mac: string) => learned.find((r) => r.mac === mac)?.remote;
    t.equal(at(VM.kernel.mac), `${UNDERLAY.kernel}:4789`, "vmC's MAC learned behind 192.0.2.3");
    t.equal(at(VM.kernel2.mac), `${UNDERLAY.kernel2}:4789`, "vmD's MAC learned behind 192.0.2.4");
    t.ok(
      learned.some((r) => r.mac === '00:00:00:00:00:00' && r.remote === `${GROUP}:4789`),
      'the flood entry is the group, as `bridge fdb` shows a group VXLAN device',
    );

    // Unicast remotes instead of the group: the membership goes, forwarding stays.
    write(`    remotes: [${UNDERLAY.kernel}, ${UNDERLAY.kernel2}]\n`);
    const r = (await topo.ask('reload')) as { changes: string[] };
    t.match(r.changes.join('\n'), new RegExp(`group ${GROUP} left on eth0`), r.changes.join('; '));
    t.notOk(joined(), `${GROUP} is gone from hostB eth0 (ip maddr)`);
    t.equal(((await topo.ask('status')) as Status).groups, undefined, 'status lists no group');
    t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'vmB -> vmC over the unicast remote');

    // And back: joined again.
    write(`    group: ${GROUP}\n`);
    const back = (await topo.ask('reload')) as { changes: string[] };
    t.match(back.changes.join('\n'), new RegExp(`group ${GROUP} joined on eth0`));
    t.ok(joined(), 'member again (the interface holding local, by default)');
  },
);

t.test(
  'IPv6 group ff05::100: joined (MLD), floods to it with hop limit 1, peers learned',
  async (t) => {
    if (!ready) return;
    const group6 = 'ff05::100';
    const topo = await Topology.build({
      prefix: `h${process.pid % 10000}`,
      peers: ['kernel', 'kernel2'],
      family: 6,
      group: group6,
      reap: true,
    });
    t.teardown(() => topo.teardown());
    await topo.startVtep(['--group', group6]);
    t.match(
      topo.get('hostB').exec('ip maddr show dev eth0'),
      /inet6 ff05::100/,
      'hostB eth0 is a member (ip maddr), on the interface holding local',
    );
    const file = await underlayCapture(topo, 'udp port 4789', () => {
      for (const [from, to] of [
        ['vmB', VM.kernel.ip],
        ['vmD', VM.vtep.ip],
      ])
        t.match(
          topo.get(from).exec(`ping -c 3 -i 0.2 -W 2 ${to}`, { allowFail: true }),
          / 0% packet loss/,
          `${from} -> ${to}`,
        );
    });
    const ours = tsharkFields(
      file,
      ['ipv6.dst', 'ipv6.hlim', 'arp.opcode', 'arp.src.hw_mac'],
      ['-Y', `ipv6.src == ${UNDERLAY6.vtep} && arp.opcode == 1`],
    ).rows;
    t.ok(ours.length > 0, 'vmB asked ARP');
    t.ok(
      ours.every(([dst, hlim]) => dst === group6 && hlim === '1'),
      `to the group with hop limit 1 (${JSON.stringify(ours)})`,
    );
    const learned = (await topo.ask('fdb.show')) as FdbRow[];
    t.equal(
      learned.find((r) => r.mac === VM.kernel.mac)?.remote,
      `[${UNDERLAY6.kernel}]:4789`,
      'vmC learned behind its unicast address',
    );
    t.equal(
      learned.find((r) => r.mac === VM.kernel2.mac)?.remote,
      `[${UNDERLAY6.kernel2}]:4789`,
      'vmD too',
    );
  },
);
