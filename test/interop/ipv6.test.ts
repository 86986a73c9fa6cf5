// An IPv6 underlay, against real peers: Open vSwitch (remote_ip=2001:db8::2) and kernel VXLAN
// (local 2001:db8::3), both directions, with the outer UDP checksum present and valid (IPv6
// requires it), and the RFC 6935 zero-checksum mode against a kernel peer configured with
// udp6zerocsumtx/udp6zerocsumrx.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Topology, UNDERLAY6, VM } from '../../src/lab/topology.js';
import { underlayCapture } from '../helpers/capture.js';
import { needs } from '../helpers/prereq.js';
import { FAR, rawSocketsOnSelf, routedPeer } from '../helpers/routed.js';
import { BOTH_WAYS, tcpBetween } from '../helpers/tcp.js';
import { tsharkFields } from '../helpers/tshark.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ovs-vsctl', 'ovs-vswitchd', 'ping', 'bridge', 'ethtool', 'tcpdump', 'tshark'],
});

function ping(topo: Topology, from: string, to: string): boolean {
  // The first probes may go to neighbour discovery on a fresh underlay; then all must arrive.
  topo.get(from).exec(`ping -c 2 -i 0.2 -W 2 ${to}`, { allowFail: true });
  return topo
    .get(from)
    .exec(`ping -c 3 -i 0.2 -W 2 ${to}`, { allowFail: true })
    .includes(' 0% packet loss');
}

/** UDP checksum and its verdict (1 good, 0 bad, 2 not checked) of each datagram from `src`. */
function checksums(file: string, src: string): { sum: number; status: string }[] {
  return tsharkFields(
    file,
    ['udp.checksum', 'udp.checksum.status'],
    ['-o', 'udp.check_checksum:TRUE', '-Y', `ipv6.src == ${src} && udp.dstport == 4789`],
  ).rows.map(([sum, status]) => ({ sum: Number(sum), status }));
}

t.test('IPv6 underlay with OVS and kernel VXLAN: both directions, valid checksums', async (t) => {
  if (!ready) return;
  const topo = await Topology.build({ prefix: `s${process.pid % 10000}`, family: 6, reap: true });
  t.teardown(() => topo.teardown());
  // Both peers written in other spellings: their datagrams must match all the same (they were
  // all dropped as sender_not_remote when remotes were compared as text).
  const config = join(topo.dir, 'vtep.yaml');
  writeFileSync(
    config,
    `local: 2001:0DB8::2\nvnis:\n  - vni: ${topo.vni}\n    tap: ${topo.tap}\n` +
      `    remotes: ['2001:DB8:0:0::1', '[2001:0db8:0000::3]:4789']\n`,
  );
  await topo.startVtep([], { config });
  const st = (await topo.ask('stats')) as {
    pathMaxFrame: number;
    underlay: string;
    vnis: { remotes: string[]; mtu?: number }[];
    drops: Record<string, number>;
  };
  t.same(st.vnis[0].remotes, ['[2001:db8::1]:4789', '[2001:db8::3]:4789'], 'canonical');
  t.equal(st.underlay, '[2001:db8::2]:4789', 'our own address in brackets too');
  t.equal(st.pathMaxFrame, 1500 - 56, 'IPv6 takes 70 bytes: 1444-byte frames, MTU 1430');
  const file = await underlayCapture(topo, 'udp port 4789', async () => {
    t.ok(ping(topo, 'vmB', VM.ovs.ip), 'vtep VM → OVS VM');
    t.ok(ping(topo, 'vmA', VM.vtep.ip), 'OVS VM → vtep VM');
    t.ok(ping(topo, 'vmB', VM.kernel.ip), 'vtep VM → kernel VM');
    t.ok(ping(topo, 'vmC', VM.vtep.ip), 'kernel VM → vtep VM');
  });
  await tcpBetween(t, topo, BOTH_WAYS(VM));
  t.equal(
    ((await topo.ask('stats')) as typeof st).drops.sender_not_remote,
    0,
    'no datagram of the peers was taken for a stranger',
  );
  t.equal(
    JSON.parse(topo.get('vmB').exec(`ip -j link show ${topo.tap}`))[0].mtu,
    1430,
    'the TAP MTU defaulted to the underlay MTU less 70',
  );
  const ours = checksums(file, UNDERLAY6.vtep);
  t.ok(ours.length >= 12, `${ours.length} datagrams of ours`);
  t.ok(
    ours.every((c) => c.sum !== 0 && c.status === '1'),
    'every one carries a UDP checksum tshark verifies',
  );
  for (const peer of [UNDERLAY6.ovs, UNDERLAY6.kernel]) {
    const theirs = checksums(file, peer);
    t.ok(theirs.length >= 3 && theirs.every((c) => c.status === '1'), `${peer}: valid too`);
  }

  // A router between vtep and a third peer, its far link 1400 bytes: IPv6 routers do not
  // fragment, they answer with ICMPv6 "packet too big". It is about a datagram from one of our
  // GSO senders' ports, so it reaches that socket (the raw one is connected to itself, and gets
  // no copy): the kernel keeps the path MTU, our next send fails with EMSGSIZE, and the VM is
  // told the path MTU less our 70 bytes.
  routedPeer(topo, 1400, 6);
  await topo.ask('remote.add', { vni: topo.vni, remote: FAR[6].host });
  const vmB = topo.get('vmB');
  const farPing = (size: number) =>
    vmB.exec(`ping -M do -s ${size} -c 3 -i 0.2 -W 2 ${FAR.vm}`, { allowFail: true });
  t.match(farPing(56), / 0% packet loss/, 'vmB reaches vmE through the IPv6 router');
  farPing(1380);
  t.match(
    topo.get('hostB').exec(`ip -6 route get ${FAR[6].host}`),
    /mtu 1400/,
    "the vtep host's kernel keeps the router's path MTU",
  );
  const raw = rawSocketsOnSelf(topo, 6);
  t.ok(
    raw.all > 0 && raw.onSelf === raw.all,
    `though every raw socket of vtep's is connected to itself: ${JSON.stringify(raw)}`,
  );
  t.match(vmB.exec(`ip route get ${FAR.vm}`), /mtu 1330/, 'the VM was told 1400 less 70');
  t.match(farPing(1302), / 0% packet loss/, 'packets that fit the narrow path pass');
  t.same(
    ((await topo.ask('stats')) as { narrowPaths: Record<string, number> }).narrowPaths,
    { [`[${FAR[6].host}]:4789`]: 1344 },
    'vtep stats shows the path (inner frames up to 1400 - 70 + 14)',
  );
});

t.test('RFC 6935 zero UDP checksums with a udp6zerocsumtx/rx kernel peer', async (t) => {
  if (!ready) return;
  const topo = await Topology.build({
    prefix: `z${process.pid % 10000}`,
    family: 6,
    peers: ['kernel'],
    kernelVxlanOpts: 'udp6zerocsumtx udp6zerocsumrx',
    reap: true,
  });
  t.teardown(() => topo.teardown());
  // Without the option, the kernel under our socket drops the peer's zero-checksum datagrams.
  await topo.startVtep();
  t.notOk(ping(topo, 'vmB', VM.kernel.ip), 'without --udp6-zero-checksum-rx: no answer gets in');
  t.equal(await topo.stopVtep(), 0);
  await topo.startVtep(['--udp6-zero-checksum-tx', '--udp6-zero-checksum-rx']);
  // bulk too: no UDP GSO without a checksum, so super-frames go segment by segment
  const file = await underlayCapture(
    topo,
    'udp port 4789',
    async () => {
      t.ok(ping(topo, 'vmB', VM.kernel.ip), 'vtep VM → kernel VM');
      t.ok(ping(topo, 'vmC', VM.vtep.ip), 'kernel VM → vtep VM');
      await tcpBetween(
        t,
        topo,
        [
          ['vmC', VM.kernel.ip, 'vmB'],
          ['vmB', VM.vtep.ip, 'vmC'],
        ],
        ' with zero UDP checksums',
      );
    },
    undefined,
    { sample: true },
  );
  t.equal(
    ((await topo.ask('stats')) as { drops: Record<string, number> }).drops.underlay_send_failed ??
      0,
    0,
    'no send refused',
  );
  for (const who of [UNDERLAY6.vtep, UNDERLAY6.kernel]) {
    const sums = checksums(file, who);
    t.ok(sums.length >= 3, `${who}: ${sums.length} datagrams`);
    t.ok(
      sums.every((c) => c.sum === 0),
      `${who}: zero checksums`,
    );
  }
});
