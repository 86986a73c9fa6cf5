// The outer header as the kernel writes it, against real peers: the same inner frames sent
// through vtep and through a Linux kernel VXLAN device (`ttl inherit tos inherit df inherit`)
// and an Open vSwitch port (`options:ttl/tos/df_default`) must leave with the same outer TTL,
// DSCP, ECN, DF and UDP checksum (tshark reads them on the underlay), and every row of the RFC
// 6040 decapsulation table, crafted by a UDP socket with per-datagram IP_TOS on the kernel
// peer's host, must reach the VM behind vtep as the RFC says. IPv6: flow label and traffic class.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Topology, UNDERLAY, UNDERLAY6, VM } from '../../src/lab/topology.js';
import { checksum } from '../../src/wire/checksum.js';
import { decapEcn, decapVerdict, EcnVerdict, encapEcn } from '../../src/wire/ecn.js';
import { parseMac } from '../../src/wire/mac.js';
import { encapsulate } from '../../src/wire/vxlan.js';
import { sendFrames } from '../helpers/afpacket.js';
import { underlayCapture } from '../helpers/capture.js';
import { needs } from '../helpers/prereq.js';
import { tcpBetween } from '../helpers/tcp.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ovs-vsctl', 'ovs-vswitchd', 'tcpdump', 'tshark', 'python3'],
});

interface Inner {
  /** Identifies the frame: inner UDP destination port (IP), ARP target 10.9.9.(id % 250). */
  id: number;
  kind: 'v4' | 'v6' | 'arp';
  tc: number;
  hop: number;
  df: boolean;
  label: number;
}

/** An inner frame from `src` to `dst` (MACs as text): IPv4 or IPv6 UDP to port `id`, or ARP. */
function build(x: Inner, src: string, dst = 'ff:ff:ff:ff:ff:ff'): Buffer {
  const f = Buffer.alloc(x.kind === 'v6' ? 14 + 40 + 8 + 18 : 14 + 28 + 18, 0);
  f.writeUIntBE(parseMac(dst)!, 0, 6);
  f.writeUIntBE(parseMac(src)!, 6, 6);
  if (x.kind === 'arp') {
    f.writeUInt16BE(0x0806, 12);
    f.writeUInt32BE(0x00010800, 14);
    f.writeUInt32BE(0x06040001, 18);
    f.writeUIntBE(parseMac(src)!, 22, 6);
    f.writeUInt32BE(0x0a000063, 28);
    f.writeUInt32BE((0x0a090900 | (x.id % 250)) >>> 0, 38);
    return f;
  }
  const udp = (o: number) => {
    f.writeUInt16BE(40000, o);
    f.writeUInt16BE(x.id, o + 2);
    f.writeUInt16BE(f.length - o, o + 4);
  };
  if (x.kind === 'v6') {
    f.writeUInt16BE(0x86dd, 12);
    f.writeUInt32BE(((6 << 28) | (x.tc << 20) | x.label) >>> 0, 14);
    f.writeUInt16BE(f.length - 54, 18);
    f[20] = 17;
    f[21] = x.hop;
    f.writeUInt32BE(0xfd000000, 22);
    f[37] = 0x63;
    f.writeUInt32BE(0xfd000000, 38);
    f[53] = 0x64;
    udp(54);
    return f;
  }
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f[15] = x.tc;
  f.writeUInt16BE(f.length - 14, 16);
  f.writeUInt16BE(x.id, 18);
  f.writeUInt16BE(x.df ? 0x4000 : 0, 20);
  f[22] = x.hop;
  f[23] = 17;
  f.writeUInt32BE(0x0a000063, 26);
  f.writeUInt32BE(0x0a000064, 30);
  f.writeUInt16BE(checksum(f, 14, 20), 24);
  udp(34);
  return f;
}

/** Inner frames over the interesting values: every ECN field, DSCPs, TTLs, DF on and off, ARP. */
function frames(base: number, withV6: boolean): Inner[] {
  const out: Inner[] = [];
  let id = base;
  for (const tc of [0x00, 0x01, 0x02, 0x03, 0x28, 0x2b, 0xb9])
    for (const df of [true, false])
      out.push({ id: id++, kind: 'v4', tc, hop: df ? 17 : 200, df, label: 0 });
  if (withV6)
    for (const tc of [0x00, 0x2a, 0x2b])
      out.push({ id: id++, kind: 'v6', tc, hop: 9, df: true, label: 0x1000 + id });
  out.push({ id: id++, kind: 'arp', tc: 0, hop: 0, df: false, label: 0 });
  return out;
}

interface Outer {
  src: string;
  id: number;
  tos: number;
  ttl: number;
  df: boolean;
  sum: number;
  sumOk: string;
  label: number;
}

/** The outer header of every VXLAN datagram in the capture whose inner frame has an id. */
function outers(file: string, family: 4 | 6): Outer[] {
  const ip = family === 4 ? 'ip' : 'ipv6';
  const r = spawnSync(
    'tshark',
    [
      '-r',
      file,
      '-d',
      'udp.port==4789,vxlan',
      '-o',
      'udp.check_checksum:TRUE',
      '-Y',
      'vxlan',
      '-T',
      'fields',
      '-E',
      'separator=;',
      '-E',
      'occurrence=a',
      '-E',
      'aggregator=|',
      ...[
        `${ip}.src`,
        family === 4 ? 'ip.dsfield' : 'ipv6.tclass',
        family === 4 ? 'ip.ttl' : 'ipv6.hlim',
        'ip.flags.df',
        'udp.checksum',
        'udp.checksum.status',
        'udp.dstport',
        'arp.dst.proto_ipv4',
        'ipv6.flow',
      ].flatMap((f) => ['-e', f]),
    ],
    { encoding: 'utf8' },
  );
  const first = (v: string) => v.split(/[|\\/]/)[0];
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [src, tos, ttl, df, sum, sumOk, ports, arp, flow] = line.split(';');
      const inner = ports.split(/[|\\/]/)[1];
      return {
        src: first(src),
        id: inner ? Number(inner) : arp ? Number(arp.split('.')[3]) : -1,
        tos: Number(first(tos)),
        ttl: Number(first(ttl)),
        df: first(df) === '1' || first(df) === 'True',
        sum: Number(first(sum)),
        sumOk: first(sumOk),
        label: family === 6 ? Number(first(flow)) : 0,
      };
    });
}

/** What Linux VXLAN writes with `ttl inherit tos inherit df inherit` (and RFC 6040). */
function inherited(x: Inner) {
  const ip = x.kind !== 'arp';
  return {
    tos: ((ip ? x.tc : 0) & 0xfc) | encapEcn(ip ? x.tc : 0),
    ttl: ip ? x.hop : 64,
    df: x.kind === 'v6' || (x.kind === 'v4' && x.df),
  };
}

/** The VMs' MACs: vmB is behind vtep's TAP, vmA behind OVS, vmC behind the kernel peer. */
const MAC_OF = { vmA: VM.ovs.mac, vmB: VM.vtep.mac, vmC: VM.kernel.mac } as const;

/** `list` as frames from the VM `who`: onto vtep's TAP (vmB) or out of its own eth0. */
function send(topo: Topology, who: keyof typeof MAC_OF, list: Inner[]): void {
  sendFrames(
    topo.get(who),
    who === 'vmB' ? topo.tap : 'eth0',
    list.map((x) => build(x, MAC_OF[who]).toString('hex')),
  );
}

const key = (x: Inner) => (x.kind === 'arp' ? x.id % 250 : x.id);

t.test(
  'IPv4 underlay: outer TTL, DSCP, ECN, DF and checksum as the kernel and OVS write them',
  async (t) => {
    if (!ready) return;
    const topo = await Topology.build({
      prefix: `q${process.pid % 10000}`,
      kernelVxlanOpts: 'ttl inherit tos inherit df inherit',
      reap: true,
    });
    t.teardown(() => topo.teardown());
    const config = join(topo.dir, 'vtep.yaml');
    const write = (outer: string) =>
      writeFileSync(
        config,
        `local: ${UNDERLAY.vtep}\n${outer}vnis:\n  - vni: ${topo.vni}\n    tap: ${topo.tap}\n` +
          `    remotes: [${UNDERLAY.ovs}, ${UNDERLAY.kernel}]\n`,
      );
    write('ttl: inherit\ntos: inherit\ndf: inherit\n');
    await topo.startVtep([], { config });

    // 1. inherit everything: vtep against the kernel, frame for frame
    const set = frames(2000, true);
    const file = await underlayCapture(topo, 'udp port 4789', () => {
      send(topo, 'vmB', set);
      send(topo, 'vmC', set);
    });
    const seen = outers(file, 4);
    for (const x of set) {
      const ours = seen.filter((o) => o.src === UNDERLAY.vtep && o.id === key(x));
      const kernel = seen.find((o) => o.src === UNDERLAY.kernel && o.id === key(x));
      const want = inherited(x);
      const what = `${x.kind} tc 0x${x.tc.toString(16)} ttl ${x.hop} df ${x.df}`;
      t.equal(ours.length, 2, `${what}: flooded to both peers`);
      t.same(
        ours.map((o) => ({ tos: o.tos, ttl: o.ttl, df: o.df })),
        [want, want],
        `${what}: vtep wrote tos 0x${want.tos.toString(16)} ttl ${want.ttl} df ${want.df}`,
      );
      t.same(
        kernel && { tos: kernel.tos, ttl: kernel.ttl, df: kernel.df },
        want,
        `${what}: as the kernel`,
      );
      t.ok(
        ours.every((o) => o.sum !== 0 && o.sumOk === '1'),
        `${what}: a UDP checksum tshark verifies (kernel: ${kernel?.sum !== 0 ? 'one too' : 'none'})`,
      );
    }

    // 2. live reload to fixed values, against OVS configured the same way
    topo.ovs!.vsctl(
      'set interface vx_node1 options:tos=40 options:ttl=33 options:df_default=false',
    );
    write('ttl: 33\ntos: 0x28\ndf: unset\nudpCsum: false\n');
    const r = (await topo.ask('reload')) as { changes: string[] };
    t.match(
      r.changes.join('\n'),
      /outer ttl inherit tos inherit df inherit -> ttl 33 tos 0x28 df unset udpCsum false/,
    );
    const fixed = frames(2100, false);
    const file2 = await underlayCapture(topo, 'udp port 4789', () => {
      send(topo, 'vmB', fixed);
      send(topo, 'vmA', fixed);
    });
    const seen2 = outers(file2, 4);
    for (const x of fixed) {
      const ours = seen2.find((o) => o.src === UNDERLAY.vtep && o.id === key(x));
      const ovs = seen2.find((o) => o.src === UNDERLAY.ovs && o.id === key(x));
      const want = {
        tos: 0x28 | encapEcn(x.kind === 'arp' ? 0 : x.tc),
        ttl: 33,
        df: false,
        sum: 0,
      };
      const what = `${x.kind} tc 0x${x.tc.toString(16)}`;
      t.same(
        ours && { tos: ours.tos, ttl: ours.ttl, df: ours.df, sum: ours.sum },
        want,
        `${what}: vtep`,
      );
      t.same(
        ovs && { tos: ovs.tos, ttl: ovs.ttl, df: ovs.df, sum: ovs.sum },
        want,
        `${what}: OVS the same`,
      );
    }

    // 2b. bulk traffic with the zero checksum: the kernel does no UDP GSO without a checksum,
    // so TCP super-frames and runs of a flow's datagrams go one datagram per message (they were
    // all refused, and nothing but pings got through)
    const drops0 = ((await topo.ask('stats')) as { drops: Record<string, number> }).drops;
    const bulk = await underlayCapture(
      topo,
      `udp port 4789 and src host ${UNDERLAY.vtep}`,
      () =>
        tcpBetween(
          t,
          topo,
          [
            ['vmC', VM.kernel.ip, 'vmB'],
            ['vmA', VM.ovs.ip, 'vmB'],
          ],
          ' with zero UDP checksums',
        ),
      undefined,
      { sample: true },
    );
    const sums = outers(bulk, 4).filter((o) => o.src === UNDERLAY.vtep);
    t.ok(sums.length > 300, `${sums.length} datagrams of ours seen`);
    t.same(sums.filter((o) => o.sum !== 0).slice(0, 3), [], 'every one with a zero UDP checksum');
    const drops1 = ((await topo.ask('stats')) as { drops: Record<string, number> }).drops;
    t.equal(
      (drops1.underlay_send_failed ?? 0) - (drops0.underlay_send_failed ?? 0),
      0,
      'no send refused',
    );

    // 3. every row of the RFC 6040 decapsulation table, into the VM behind vtep
    const rows: { outer: number; inner: number; kind: 'v4' | 'v6'; id: number }[] = [];
    let id = 3000;
    for (const kind of ['v4', 'v6'] as const)
      for (let outer = 0; outer < 4; outer++)
        for (let inner = 0; inner < 4; inner++) rows.push({ outer, inner, kind, id: id++ });
    const before = (await topo.ask('stats')) as { drops: Record<string, number> };
    const py =
      'import socket,sys,json\n' +
      's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n' +
      `s.bind(('${UNDERLAY.kernel}',0))\n` +
      'for tos,h in json.load(sys.stdin):\n' +
      ' s.setsockopt(socket.IPPROTO_IP,socket.IP_TOS,tos)\n' +
      ` s.sendto(bytes.fromhex(h),('${UNDERLAY.vtep}',4789))\n`;
    const datagrams = rows.map((row) => {
      const inner = build(
        { id: row.id, kind: row.kind, tc: 0xb8 | row.inner, hop: 9, df: true, label: 5 },
        VM.kernel.mac,
        VM.vtep.mac,
      );
      const d = Buffer.alloc(8 + inner.length);
      inner.copy(d, 8);
      return [
        0x20 | row.outer,
        Buffer.from(encapsulate(d, 8, inner.length, topo.vni)).toString('hex'),
      ];
    });
    const delivered = await underlayCapture(
      topo,
      'udp portrange 3000-3100',
      () => {
        const p = spawnSync('ip', ['netns', 'exec', topo.get('hostC').name, 'python3', '-c', py], {
          input: JSON.stringify(datagrams),
          encoding: 'utf8',
        });
        t.equal(p.status, 0, `crafted datagrams sent ${p.stderr}`);
      },
      { role: 'vmB', dev: topo.tap },
    );
    const got = new Map(
      spawnSync(
        'tshark',
        [
          '-r',
          delivered,
          '-T',
          'fields',
          '-E',
          'separator=;',
          '-e',
          'udp.dstport',
          '-e',
          'ip.dsfield',
          '-e',
          'ipv6.tclass',
          '-e',
          'ip.checksum.status',
          '-o',
          'ip.check_checksum:TRUE',
        ],
        { encoding: 'utf8' },
      )
        .stdout.trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [port, v4, v6, sum] = l.split(';');
          return [Number(port), { tc: Number(v4 || v6), sum }] as const;
        }),
    );
    let drops = 0;
    for (const row of rows) {
      const what = `${row.kind} inner ECN ${row.inner} under outer ${row.outer}`;
      const g = got.get(row.id);
      if (decapVerdict(row.outer, row.inner) === EcnVerdict.DROP) {
        drops++;
        t.equal(g, undefined, `${what}: dropped`);
        continue;
      }
      t.equal(
        g?.tc,
        0xb8 | decapEcn(row.outer, row.inner),
        `${what}: delivered as ${decapEcn(row.outer, row.inner)}, DSCP kept`,
      );
      if (row.kind === 'v4') t.equal(g?.sum, '1', `${what}: IPv4 checksum valid`);
    }
    const after = (await topo.ask('stats')) as {
      drops: Record<string, number>;
      ecn: { marked: number };
    };
    t.equal(
      (after.drops.ecn_ce_not_ect ?? 0) - (before.drops.ecn_ce_not_ect ?? 0),
      drops,
      `${drops} dropped and counted as ecn_ce_not_ect`,
    );
    t.ok(
      after.ecn.marked >= 4,
      `CE marks carried into inner packets counted (${after.ecn.marked})`,
    );
  },
);

t.test(
  'IPv6 underlay: flow label fixed as the kernel, inherited, or a hash per flow',
  async (t) => {
    if (!ready) return;
    const topo = await Topology.build({
      prefix: `l${process.pid % 10000}`,
      family: 6,
      peers: ['kernel'],
      kernelVxlanOpts: 'flowlabel 0x12345 tos inherit ttl inherit',
      reap: true,
    });
    t.teardown(() => topo.teardown());
    const config = join(topo.dir, 'vtep.yaml');
    const write = (outer: string) =>
      writeFileSync(
        config,
        `local: ${UNDERLAY6.vtep}\n${outer}vnis:\n  - vni: ${topo.vni}\n    tap: ${topo.tap}\n` +
          `    remotes: ['${UNDERLAY6.kernel}']\n`,
      );
    write('flowLabel: 0x12345\ntos: inherit\nttl: inherit\n');
    await topo.startVtep([], { config });
    const set = frames(4000, true);
    const file = await underlayCapture(topo, 'udp port 4789', () => {
      send(topo, 'vmB', set);
      send(topo, 'vmC', set);
    });
    const seen = outers(file, 6);
    for (const x of set) {
      const ours = seen.find((o) => o.src === UNDERLAY6.vtep && o.id === key(x));
      const kernel = seen.find((o) => o.src === UNDERLAY6.kernel && o.id === key(x));
      const want = inherited(x);
      const what = `${x.kind} tc 0x${x.tc.toString(16)}`;
      const view = (o?: Outer) => o && { label: o.label, tclass: o.tos, hlim: o.ttl };
      t.same(view(ours), { label: 0x12345, tclass: want.tos, hlim: want.ttl }, `${what}: vtep`);
      t.same(view(kernel), view(ours), `${what}: as the kernel`);
      t.ok(ours && ours.sumOk === '1', `${what}: a valid checksum`);
    }
    write('flowLabel: inherit\n');
    await topo.ask('reload');
    const v6 = set.filter((x) => x.kind === 'v6');
    const file2 = await underlayCapture(topo, 'udp port 4789', () => send(topo, 'vmB', set));
    const seen2 = outers(file2, 6).filter((o) => o.src === UNDERLAY6.vtep);
    for (const x of v6)
      t.equal(
        seen2.find((o) => o.id === x.id)?.label,
        x.label,
        `inherit: IPv6 inner label 0x${x.label.toString(16)}`,
      );
    const v4label = seen2.find((o) => o.id === key(set[0]))?.label;
    t.ok(
      v4label !== undefined && v4label !== 0,
      'inherit, IPv4 inner: no label to take, the automatic one',
    );
    write('');
    await topo.ask('reload');
    const file3 = await underlayCapture(topo, 'udp port 4789', () => send(topo, 'vmB', set));
    const labels = new Set(
      outers(file3, 6)
        .filter((o) => o.src === UNDERLAY6.vtep)
        .map((o) => o.label),
    );
    t.ok(
      labels.size > 1 && !labels.has(0),
      `default: the kernel's automatic label, per flow (${labels.size} labels for ${set.length} flows)`,
    );
  },
);
