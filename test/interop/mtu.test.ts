// MTU at the edges, against real peers: jumbo frames end to end with Open vSwitch and kernel
// VXLAN, and path MTU discovery through our ICMP when the TAP MTU is larger than the underlay
// carries, and through a router whose far link is narrower — with never an outer IP fragment on
// the underlay (RFC 7348 §4.3).
import t from 'tap';
import { Topology, UNDERLAY, VM } from '../../src/lab/topology.js';
import { readPcap } from '../helpers/pcapread.js';
import { underlayCapture } from '../helpers/capture.js';
import { logMessages } from '../helpers/log.js';
import { sendFrames } from '../helpers/afpacket.js';
import { needs } from '../helpers/prereq.js';
import { FAR as FAR_BY_FAMILY, rawSocketsOnSelf, routedPeer } from '../helpers/routed.js';
import { BOTH_WAYS, tcpBetween } from '../helpers/tcp.js';
import { tsharkFields } from '../helpers/tshark.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ovs-vsctl', 'ovs-vswitchd', 'ping', 'bridge', 'ethtool', 'tcpdump', 'tshark'],
});

const FAR = { ...FAR_BY_FAMILY[4], vm: FAR_BY_FAMILY.vm };

type Stats = { drops: Record<string, number>; icmpTooBig: number; pathMaxFrame: number };

/** Outer IP fragments in a capture (more-fragments set, or a non-zero offset). */
function fragments(file: string): number {
  return tsharkFields(file, ['frame.number'], ['-Y', 'ip.flags.mf == 1 || ip.frag_offset > 0']).rows
    .length;
}

t.test('jumbo frames: 9000-byte MTU end to end with OVS and kernel VXLAN', async (t) => {
  if (!ready) return;
  const topo = await Topology.build({
    prefix: `j${process.pid % 10000}`,
    mtu: 9000,
    underlayMtu: 9050,
    reap: true,
  });
  t.teardown(() => topo.teardown());
  await topo.startVtep();
  const st = (await topo.ask('stats')) as Stats;
  t.equal(st.pathMaxFrame, 9050 - 36, 'the underlay MTU came from the interface: 9050');
  const ping = (from: string, to: string) =>
    topo.get(from).exec(`ping -M do -s 8972 -c 3 -i 0.2 -W 2 ${to}`, { allowFail: true });
  const file = await underlayCapture(topo, '-s 128 ip', async () => {
    for (const [from, to] of [
      ['vmB', VM.ovs.ip],
      ['vmA', VM.vtep.ip],
      ['vmB', VM.kernel.ip],
      ['vmC', VM.vtep.ip],
    ]) {
      // A first ping may be lost to ARP through a fresh flow table; the next three must not.
      ping(from, to);
      t.match(ping(from, to), / 0% packet loss/, `${from} → ${to}: 9000-byte packets, DF`);
    }
  });
  const sizes = tsharkFields(file, ['ip.len'], ['-Y', 'udp.port == 4789']).rows.map((r) =>
    Number(r[0]),
  );
  t.ok(
    sizes.some((n) => n === 9000 + 14 + 8 + 8 + 20),
    `whole 9050-byte datagrams on the underlay (largest ${Math.max(...sizes)})`,
  );
  t.equal(fragments(file), 0, 'no fragment');
  await tcpBetween(t, topo, BOTH_WAYS(VM), ' at MTU 9000');
  const after = (await topo.ask('stats')) as Stats;
  t.equal(after.drops.frame_too_big, 0, 'nothing cut or refused as too big');
  t.equal(after.drops.datagram_truncated, 0, 'no datagram cut by a small receive slot');
});

t.test(
  'TAP MTU 1500 on a 1500 underlay: PMTU via our ICMP, TCP completes, no outer fragment',
  async (t) => {
    if (!ready) return;
    // The kernel peer's VM also has MTU 1500: the kernel answers its side with ICMP too.
    const topo = await Topology.build({
      prefix: `p${process.pid % 10000}`,
      peers: ['kernel'],
      mtu: 1500,
      reap: true,
    });
    t.teardown(() => topo.teardown());
    await topo.startVtep();
    const vmB = topo.get('vmB');
    t.equal(
      JSON.parse(vmB.exec(`ip -j link show ${topo.tap}`))[0].mtu,
      1500,
      'the VM behind our TAP has MTU 1500',
    );
    t.match(
      logMessages(topo.vtepLog),
      /vni 5000: mtu 1500 does not fit the underlay \(MTU 1500 on eth0, 50 bytes of VXLAN over IPv4\): packets over 1450 bytes are dropped and answered with ICMP "fragmentation needed"/,
      'vtep said so at start',
    );
    const file = await underlayCapture(topo, '-s 128 ip', async () => {
      await tcpBetween(t, topo, [
        ['vmC', VM.kernel.ip, 'vmB'],
        ['vmB', VM.vtep.ip, 'vmC'],
      ]);
    });
    t.ok(readPcap(file).length > 100, 'the transfer was captured');
    t.equal(fragments(file), 0, 'not one outer IP fragment on the underlay');
    const st = (await topo.ask('stats')) as Stats;
    t.ok(st.icmpTooBig > 0, `our ICMP "fragmentation needed" went to the VM (${st.icmpTooBig})`);
    t.ok(st.drops.path_mtu_exceeded > 0, 'the too-big frames were dropped, counted');
    t.match(
      vmB.exec(`ip route get ${VM.kernel.ip}`),
      /mtu 1450/,
      "the VM's kernel learned the path MTU from us",
    );
    t.equal(st.drops.underlay_send_failed, 0, 'the kernel refused nothing: we checked first');

    // The case that used to leave as two fragments: a VLAN-tagged 1468-byte frame (its datagram
    // would be 1504 bytes). Sent raw from the VM onto our TAP.
    const tagged = await underlayCapture(topo, '-s 128 ip', async () => {
      sendFrames(vmB, topo.tap, [
        `02000000ee01${VM.vtep.mac.replace(/:/g, '')}8100006488b5${'00'.repeat(1468 - 18)}`,
      ]);
    });
    const st2 = (await topo.ask('stats')) as Stats;
    t.equal(
      st2.drops.path_mtu_exceeded,
      st.drops.path_mtu_exceeded + 1,
      'the tagged 1468-byte frame is dropped as path_mtu_exceeded',
    );
    t.equal(fragments(tagged), 0, 'and does not leave as fragments');
    t.equal(
      tsharkFields(
        tagged,
        ['frame.number'],
        ['-Y', `ip.src == ${UNDERLAY.vtep} && ip.len >= ${1468 + 36}`],
      ).rows.length,
      0,
      'nor whole (it could not be: no datagram of that size left)',
    );

    // An operator raises the TAP MTU past what the underlay carries (`ip link set … mtu`, as
    // on a kernel device): the bigger frames are answered with the path MTU, not dropped.
    const answered = st2.icmpTooBig;
    vmB.exec(`ip link set ${topo.tap} mtu 1600 && ip route flush cache`);
    t.notMatch(vmB.exec(`ip route get ${VM.kernel.ip}`), /mtu/, 'the VM forgot the path MTU');
    vmB.exec(`ping -M do -s 1560 -c 2 -i 0.2 -W 2 ${VM.kernel.ip}`, { allowFail: true });
    t.match(
      vmB.exec(`ip route get ${VM.kernel.ip}`),
      /mtu 1450/,
      'TAP MTU 1600 by hand: its 1602-byte frames answered with the path MTU',
    );
    const st4 = (await topo.ask('stats')) as Stats;
    t.ok(st4.icmpTooBig > answered, 'answered by vtep');
    t.equal(st4.drops.frame_too_big ?? 0, 0, 'none dropped as too big');
    vmB.exec(`ip link set ${topo.tap} mtu 1500`);

    // A router between vtep and a second kernel peer, its far link 1400 bytes: the first
    // datagram that does not fit is dropped there and answered with ICMP "fragmentation
    // needed"; the vtep host's kernel keeps that as a route exception, our next sends fail with
    // EMSGSIZE, we read the path MTU and answer the VM with it, less our 50 bytes.
    const far = routedPeer(topo, 1400);
    await topo.ask('remote.add', { vni: topo.vni, remote: FAR.host });
    const farPing = (size: number) =>
      vmB.exec(`ping -M do -s ${size} -c 3 -i 0.2 -W 2 ${FAR.vm}`, { allowFail: true });
    t.match(farPing(56), / 0% packet loss/, 'vmB reaches vmE through the router');
    farPing(1400);
    t.match(
      topo.get('hostB').exec(`ip route get ${FAR.host}`),
      /mtu 1400/,
      "the vtep host's kernel keeps the router's path MTU",
    );
    // though vtep's raw sockets are connected to their own address (they get no clone of the
    // UDP the host receives): the router's ICMP reached the kernel through the GSO pool's
    // socket on the datagram's source port
    const raw = rawSocketsOnSelf(topo, 4);
    t.ok(
      raw.all > 0 && raw.onSelf === raw.all,
      `every raw socket of vtep's is connected to itself: ${JSON.stringify(raw)}`,
    );
    t.match(
      vmB.exec(`ip route get ${FAR.vm}`),
      /mtu 1350/,
      'our ICMP told the VM the path MTU less the VXLAN overhead',
    );
    t.match(farPing(1322), / 0% packet loss/, 'packets that fit the narrow path pass');
    await tcpBetween(t, far, [['vmE', FAR.vm, 'vmB']], ' over the narrow path');
    const st3 = (await topo.ask('stats')) as Stats & { narrowPaths: Record<string, number> };
    t.same(st3.narrowPaths, { [`${FAR.host}:4789`]: 1364 }, 'vtep stats shows the path');
    t.equal(st3.drops.underlay_send_failed, 0, 'the refused send counted as path_mtu_exceeded');
    t.match(
      logMessages(topo.vtepLog),
      new RegExp(`remote ${FAR.host}:4789: path MTU 1400, inner frames up to 1364 bytes`),
      'and said so',
    );
  },
);
