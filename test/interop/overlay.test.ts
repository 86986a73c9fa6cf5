// Interop with real peers: Open vSwitch (userspace datapath) and Linux kernel VXLAN on either
// side of our vtep, in namespaces this test builds and tears down (see src/lab/topology.ts).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { UNDERLAY, VM, Topology, vtepBin } from '../../src/lab/topology.js';
import { bg, sleep, until } from '../../src/lab/sh.js';
import { checksum, ipv4PseudoSum } from '../../src/wire/checksum.js';
import { emitEthernet } from '../../src/wire/ethernet.js';
import { IpProtocol, emitIpv4, parseIpv4Address } from '../../src/wire/ipv4.js';
import { parseMac as mac } from '../../src/wire/mac.js';
import { emitVxlan } from '../../src/wire/vxlan.js';
import { inject, udpPacket } from '../helpers/inject.js';
import { readPcap } from '../helpers/pcapread.js';
import { VXLAN_FIELDS, tsharkFields } from '../helpers/tshark.js';
import { needs } from '../helpers/prereq.js';
import { tcpTransfer } from '../helpers/tcp.js';
import { CAPTURE_BUFFER_KIB, underlayCapture } from '../helpers/capture.js';

const VNI = 5000;
const MARKER = 0x88b5; // local experimental EtherType: frames the tests craft

const ready = needs(t, {
  root: true,
  commands: [
    'ip',
    'ovs-vsctl',
    'ovs-vswitchd',
    'ovsdb-server',
    'tshark',
    'tcpdump',
    'ping',
    'bridge',
    'ethtool',
    'setpriv',
  ],
});
// Everything below needs the topology; without the prerequisites `needs` has failed (CI) or
// skipped the file, and nothing is built.
const topo = ready
  ? await Topology.build({
      prefix: `o${process.pid % 10000}`,
      injector: true,
      vtepArgs: ['--max-entries', '1024', '--nice', '-5'],
      reap: true,
    })
  : (undefined as unknown as Topology);
if (ready) {
  t.teardown(() => topo.teardown());
  await topo.startVtep();
}

type Stats = {
  vnis: { rx: { packets: number }; tx: { packets: number }; fdbEntries: number }[];
  drops: Record<string, number>;
  fdb: Record<string, number>;
};
const stats = async () => (await topo.ask('stats')) as Stats;
const vtepCli = (...args: string[]) =>
  spawnSync(process.execPath, [vtepBin(), ...args, '--control', topo.control], {
    encoding: 'utf8',
  });

function ping(from: string, to: string): boolean {
  return topo
    .get(from)
    .exec(`ping -c 3 -i 0.2 -W 2 ${to}`, { allowFail: true })
    .includes(' 0% packet loss');
}

/** A VXLAN payload: header (flags, reserved bytes, VNI) + a marker frame. */
function vxlanPayload(
  o: {
    vni?: number;
    flags?: number;
    r1?: number[];
    r2?: number;
    src?: number;
    type?: number;
    frameLen?: number;
  } = {},
): Buffer {
  const frameLen = o.frameLen ?? 60;
  const b = Buffer.alloc(8 + frameLen, 0x5a);
  emitVxlan(o.vni ?? VNI, b, 0);
  if (o.flags !== undefined) b[0] = o.flags;
  if (o.r1) b.set(o.r1, 1);
  if (o.r2 !== undefined) b[7] = o.r2;
  if (frameLen >= 14)
    emitEthernet(
      { dst: 0xffffffffffff, src: o.src ?? 0x02bad0000001, ethertype: o.type ?? MARKER },
      b,
      8,
    );
  return b;
}

/** Wait until tcpdump says it is capturing. */
async function listening(dump: ReturnType<typeof bg>): Promise<void> {
  let err = '';
  dump.stderr!.on('data', (d) => (err += d));
  await until(() => err.includes('listening on'), 5000);
}

/** Register a subtest only when the topology exists. */
const test = (name: string, fn: (t: Test) => Promise<void>) =>
  ready ? t.test(name, fn) : undefined;

const fromRemote = (payload: Buffer, src: string = UNDERLAY.ovs) =>
  udpPacket(src, UNDERLAY.vtep, 51234, 4789, payload);

test('ping in every direction across the overlay', async (t) => {
  t.ok(ping('vmB', VM.ovs.ip), 'vtep VM → OVS VM');
  t.ok(ping('vmA', VM.vtep.ip), 'OVS VM → vtep VM');
  t.ok(ping('vmB', VM.kernel.ip), 'vtep VM → kernel VM');
  t.ok(ping('vmC', VM.vtep.ip), 'kernel VM → vtep VM');
});

/** The niceness of every thread of process `pid` (field 19 of /proc/PID/task/TID/stat). */
function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

test('--nice -5: every thread runs at -5', async (t) => {
  const nices = threadNices(topo.vtep!.pid!);
  t.ok(nices.length >= 4, `${nices.length} threads (main, workers, V8's and libuv's)`);
  t.same([...new Set(nices)], [-5], `every thread at -5: ${nices.join(' ')}`);
  t.equal(((await topo.ask('stats')) as { nice: number }).nice, -5, 'stats says so');
  t.match(vtepCli('stats').stdout, /^underlay .* nice -5$/m);
});

test('ARP resolves across the overlay', async (t) => {
  const neigh = (ns: string, ip: string) => topo.get(ns).exec(`ip neigh show ${ip}`);
  t.match(neigh('vmB', VM.ovs.ip), VM.ovs.mac);
  t.match(neigh('vmB', VM.kernel.ip), VM.kernel.mac);
  t.match(neigh('vmA', VM.vtep.ip), VM.vtep.mac);
  t.match(neigh('vmC', VM.vtep.ip), VM.vtep.mac);
});

test('1 MB over TCP through the tunnel arrives byte for byte, both peers', async (t) => {
  type Off = { superFrames: number; gsoSends: number; coalesced: number };
  const offload = async () => ((await topo.ask('stats')) as { offload: Off }).offload;
  const before = await offload();
  const file = await underlayCapture(
    topo,
    'udp port 4789',
    async () => {
      for (const [server, ip] of [
        ['vmA', VM.ovs.ip],
        ['vmC', VM.kernel.ip],
      ] as const) {
        const r = await tcpTransfer(topo.get(server), ip, topo.get('vmB'));
        t.equal(r.received, 1 << 20, `${server}: 1 MiB received`);
        t.ok(r.sameSha, `${server}: same SHA-256 as sent`);
        const back = await tcpTransfer(topo.get('vmB'), VM.vtep.ip, topo.get(server));
        t.equal(back.received, 1 << 20, `${server} → vmB: 1 MiB received`);
        t.ok(back.sameSha, `${server} → vmB: same SHA-256 as sent`);
      }
    },
    undefined,
    { sample: true },
  );
  // The offloads did the work: TSO super-frames from the TAP, UDP GSO to the peers, received
  // segments coalesced into the TAP.
  const after = await offload();
  t.ok(after.superFrames > before.superFrames, `${after.superFrames} TCP super-frames cut`);
  t.ok(after.gsoSends > before.gsoSends, `${after.gsoSends} UDP GSO sends`);
  t.ok(after.coalesced > before.coalesced, `${after.coalesced} coalesced writes into the TAP`);
  // And the wire is what a peer expects: every datagram of ours at most the path MTU, from the
  // source port range, with IP, UDP (where present) and inner TCP checksums tshark verifies.
  const { rows } = tsharkFields(
    file,
    [
      'frame.len',
      'udp.srcport',
      'ip.checksum.status',
      'udp.checksum.status',
      'tcp.checksum.status',
    ],
    [
      '-o',
      'ip.check_checksum:TRUE',
      '-o',
      'udp.check_checksum:TRUE',
      '-o',
      'tcp.check_checksum:TRUE',
      '-Y',
      `ip.src == ${UNDERLAY.vtep} && tcp`,
    ],
  );
  t.ok(rows.length > 500, `${rows.length} datagrams of ours carrying TCP`);
  const bad = rows.filter(
    ([len, sport, ip, udp, tcp]) =>
      Number(len) > 1514 ||
      Number(sport) < 49152 ||
      ip !== '1' ||
      !['1', '3'].includes(udp) || // verified, or absent (IPv4 allows a zero checksum)
      tcp !== '1',
  );
  t.same(bad.slice(0, 3), [], 'no datagram too big, off range or with a bad checksum');
});

test("USO: a UDP_SEGMENT send from vtep's VM arrives at both peers' VMs as the datagrams sent", async (t) => {
  // The TAP offers uso4/uso6 (Linux 6.2 on): the VM's kernel hands vtep the whole send as one
  // frame, which vtep cuts into the datagrams the sender asked for (10 of 1000 bytes and one of
  // 500, each filled with its own byte), with their own UDP headers and checksums.
  const features = topo.get('vmB').exec(`ethtool -k ${topo.tap}`);
  t.match(features, /tx-udp-segmentation: on/, 'the TAP took USO');
  const sizes = [...Array(10).fill(1000), 500];
  const receiver = (vm: string, ip: string) =>
    bg(
      `${topo.get(vm).prefix} python3 -c "
import socket, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('${ip}', 9100)); s.settimeout(5); print('ready', flush=True)
got = []
try:
    while len(got) < ${sizes.length}: got.append(s.recv(65535))
except socket.timeout: pass
print(json.dumps([[len(d), d[0], len(set(d))] for d in got]), flush=True)"`,
    );
  type Off = { superFrames: number; gsoSends: number };
  const offload = async () => ((await topo.ask('stats')) as { offload: Off }).offload;
  const before = await offload();
  const peers = [
    ['vmA', VM.ovs.ip],
    ['vmC', VM.kernel.ip],
  ] as const;
  const file = await underlayCapture(
    topo,
    `udp port 4789 and src host ${UNDERLAY.vtep}`,
    async () => {
      for (const [vm, ip] of peers) {
        const rx = receiver(vm, ip);
        let out = '';
        rx.stdout!.on('data', (d) => (out += d));
        await until(() => out.includes('ready'), 5000);
        topo.get('vmB').exec(
          `python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT
s.sendto(b''.join(bytes([65 + k]) * n for k, n in enumerate(${JSON.stringify(sizes)})), ('${ip}', 9100))"`,
        );
        await until(() => out.includes('[['), 8000);
        rx.kill();
        const got = JSON.parse(out.split('\n').find((l) => l.startsWith('[[')) ?? '[]');
        t.same(
          got,
          sizes.map((n, k) => [n, 65 + k, 1]),
          `${vm}: ${sizes.length} datagrams, each the size and bytes sent`,
        );
      }
    },
  );
  const after = await offload();
  t.ok(after.superFrames >= before.superFrames + 2, 'each send reached vtep as one super-frame');
  t.ok(after.gsoSends >= before.gsoSends + 2, 'and left by UDP GSO');
  // tshark verifies the inner UDP checksums (the last UDP header of each packet)
  const { rows } = tsharkFields(
    file,
    ['udp.length', 'udp.checksum.status'],
    ['-E', 'occurrence=l', '-o', 'udp.check_checksum:TRUE', '-Y', 'udp.dstport == 9100'],
  );
  t.equal(rows.length, 2 * sizes.length, 'every datagram on the wire');
  t.same(
    rows.map(([len]) => Number(len)).sort((a, b) => a - b),
    [...sizes, ...sizes].map((n) => n + 8).sort((a, b) => a - b),
    'the inner UDP headers read (their lengths: 8 + what was sent)',
  );
  t.same(
    rows.filter(([, status]) => status !== '1'),
    [],
    'every inner UDP checksum verifies',
  );
});

test('segments with bad checksums never reach the application; good ones around them coalesce', async (t) => {
  // A live connection kernel VM (vmC) → vtep VM (vmB). While vtep is stopped, the test queues
  // ten segments of it on vtep's socket, as from the kernel peer, so that one receive batch
  // takes them all: 0 1 bad 3 4 bad 6 7 bad 9. A bad one carries other bytes than its checksum
  // was computed over (corrupted on the way); then the good versions of the three follow.
  const vmB = topo.get('vmB');
  const vmC = topo.get('vmC');
  const PORT = 5002;
  const L = 1000;
  const good = (k: number) => Buffer.alloc(L, 0x61 + k);
  const expected = Buffer.concat([Buffer.from('hello'), ...[...Array(10).keys()].map(good)]);
  const csumErrors = () => {
    const [names, values] = vmB
      .exec('cat /proc/net/snmp')
      .split('\n')
      .filter((l) => l.startsWith('Tcp:'))
      .map((l) => l.split(/\s+/));
    return Number(values[names.indexOf('InCsumErrors')]);
  };
  const srv = bg(
    `${vmB.prefix} ${process.execPath} -e "let b=Buffer.alloc(0);require('net').createServer(k=>k.on('data',d=>{b=Buffer.concat([b,d]);console.log('got '+b.length);if(b.length>=${expected.length}){console.log('data '+b.toString('hex'));process.exit(0)}})).listen(${PORT},'${VM.vtep.ip}',()=>console.log('ready'))"`,
  );
  let out = '';
  srv.stdout!.on('data', (d) => (out += d));
  // without timestamps a crafted segment needs no TSval the receiver would check
  vmC.exec('sysctl -qw net.ipv4.tcp_timestamps=0');
  let cli: ReturnType<typeof bg> | undefined;
  try {
    t.ok(await until(() => out.includes('ready'), 5000), 'server listening');
    const file = join(topo.dir, 'conn.pcap');
    const dump = bg(
      `${vmB.prefix} tcpdump -i ${topo.tap} --immediate-mode -B ${CAPTURE_BUFFER_KIB} -U -n -w ${file} tcp port ${PORT}`,
    );
    await listening(dump);
    cli = bg(
      `${vmC.prefix} ${process.execPath} -e "const k=require('net').connect(${PORT},'${VM.vtep.ip}',()=>k.write('hello'));k.on('error',()=>{});setTimeout(()=>{},60000)"`,
    );
    t.ok(await until(() => out.includes('got 5'), 5000), '"hello" arrived');
    await sleep(300);
    dump.kill('SIGINT');
    await sleep(300);
    const { rows } = tsharkFields(
      file,
      ['tcp.srcport', 'tcp.seq', 'tcp.ack', 'tcp.len'],
      ['-o', 'tcp.relative_sequence_numbers:FALSE', '-Y', `tcp.dstport==${PORT} && tcp.len>0`],
    );
    t.equal(rows.length, 1, "the client's one data segment seen on the TAP");
    const [sport, seq, ack, len] = rows[0].map(Number);
    const segment = (k: number, payload: Buffer, checksummed = payload) => {
      const f = Buffer.alloc(14 + 20 + 20 + L);
      emitEthernet({ dst: mac(VM.vtep.mac)!, src: mac(VM.kernel.mac)!, ethertype: 0x0800 }, f, 0);
      emitIpv4(
        {
          src: parseIpv4Address(VM.kernel.ip)!,
          dst: parseIpv4Address(VM.vtep.ip)!,
          protocol: IpProtocol.TCP,
          payloadLen: 20 + L,
          ident: 1000 + k,
        },
        f,
        14,
      );
      f.writeUInt16BE(sport, 34);
      f.writeUInt16BE(PORT, 36);
      f.writeUInt32BE((seq + len + k * L) >>> 0, 38);
      f.writeUInt32BE(ack, 42);
      f[46] = 0x50;
      f[47] = 0x10; // ACK
      f.writeUInt16BE(0xffff, 48);
      checksummed.copy(f, 54);
      const pseudo = ipv4PseudoSum(
        parseIpv4Address(VM.kernel.ip)!,
        parseIpv4Address(VM.vtep.ip)!,
        6,
        20 + L,
      );
      f.writeUInt16BE(checksum(f, 34, 20 + L, pseudo), 50);
      payload.copy(f, 54);
      const v = Buffer.alloc(8);
      emitVxlan(VNI, v, 0);
      return udpPacket(UNDERLAY.kernel, UNDERLAY.vtep, 51234, 4789, Buffer.concat([v, f]));
    };
    const evil = Buffer.alloc(L, 0x45); // "EEEE…": what a corrupted segment would hand over
    const BAD = [2, 5, 8];
    const burst = [...Array(10).keys()].map((k) =>
      BAD.includes(k) ? segment(k, evil, good(k)) : segment(k, good(k)),
    );
    type Off = { coalesced: number; coalescedSegments: number; checksumBad: number };
    const offload = async () => ((await topo.ask('stats')) as { offload: Off }).offload;
    const before = await offload();
    const errorsBefore = csumErrors();
    process.kill(topo.vtep!.pid!, 'SIGSTOP');
    try {
      t.same(inject(topo.get('inj'), burst), { sent: 10, failed: 0 });
      await sleep(300); // all of them queued on the socket
    } finally {
      process.kill(topo.vtep!.pid!, 'SIGCONT');
    }
    const got = () => Math.max(0, ...[...out.matchAll(/got (\d+)/g)].map((m) => Number(m[1])));
    t.ok(await until(() => got() >= 5 + 2 * L, 5000), 'segments 0 and 1 read');
    t.equal(got(), 5 + 2 * L, 'and nothing after the first bad one');
    inject(
      topo.get('inj'),
      BAD.map((k) => segment(k, good(k))),
    );
    t.ok(await until(() => out.includes('data '), 5000), 'the whole stream read');
    const data = Buffer.from(/data ([0-9a-f]+)/.exec(out)![1], 'hex');
    t.ok(data.equals(expected), 'the application read exactly the good bytes, in order');
    t.equal(data.indexOf(evil.subarray(0, 16)), -1, 'no corrupted byte reached it');
    t.equal(csumErrors() - errorsBefore, 3, 'the guest counted the three bad segments');
    const after = await offload();
    t.equal(after.checksumBad - before.checksumBad, 3, 'vtep counted them');
    t.equal(after.coalescedSegments - before.coalescedSegments, 6, '0+1, 3+4, 6+7 coalesced');
    t.equal(after.coalesced - before.coalesced, 3, 'as three frames');
  } finally {
    srv.kill();
    cli?.kill();
    vmC.exec('sysctl -qw net.ipv4.tcp_timestamps=1');
  }
});

test('vtep fdb show --json lists both remote VMs behind the right remotes', async (t) => {
  ping('vmB', VM.ovs.ip);
  ping('vmB', VM.kernel.ip);
  const r = vtepCli('fdb', 'show', '--json');
  t.equal(r.status, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as {
    vni: number;
    mac: string;
    remote: string;
    static: boolean;
  }[];
  t.ok(Array.isArray(rows), 'a list');
  t.match(
    rows.find((x) => x.mac === VM.ovs.mac),
    { vni: VNI, remote: `${UNDERLAY.ovs}:4789`, static: false },
    'the OVS VM behind 192.0.2.1',
  );
  t.match(
    rows.find((x) => x.mac === VM.kernel.mac),
    { vni: VNI, remote: `${UNDERLAY.kernel}:4789`, static: false },
    'the kernel VM behind 192.0.2.3',
  );
  const text = vtepCli('fdb', 'show');
  t.match(
    text.stdout,
    new RegExp(`${VM.ovs.mac} dev ${topo.tap} dst ${UNDERLAY.ovs} port 4789 vni ${VNI} self age`),
  );
  // and the peers learned ours behind us
  t.ok(
    topo.ovs!.fdb('br0').some((e) => e.mac === VM.vtep.mac),
    'OVS learned the vtep VM',
  );
  const kfdb = JSON.parse(topo.get('hostC').exec('bridge -j fdb show dev vx0')) as {
    mac: string;
    dst?: string;
  }[];
  t.ok(
    kfdb.some((e) => e.mac === VM.vtep.mac && e.dst === UNDERLAY.vtep),
    'the kernel learned the vtep VM behind 192.0.2.2',
  );
  const st = vtepCli('stats');
  t.match(st.stdout, /vni 5000 dev \S+ remotes 192\.0\.2\.1:4789,192\.0\.2\.3:4789/);
  // Kernel-side losses: the socket's count is known; the TAP lives in the VM's namespace.
  t.match(st.stdout, /^kernel drops: udp-receive \d+, tap-queue vni 5000 \?$/m);
  const js = JSON.parse(vtepCli('stats', '--json').stdout) as {
    kernel: { udpReceiveDrops: number; tapQueueDrops: { drops: number | null }[] };
  };
  t.equal(typeof js.kernel.udpReceiveDrops, 'number');
  t.same(js.kernel.tapQueueDrops, [{ vni: VNI, drops: null }]);
});

test('static entries through the CLI; bad input gives a clear error', async (t) => {
  t.equal(
    vtepCli('fdb', 'add', '02:00:00:00:99:01', '--vni', '5000', '--remote', UNDERLAY.kernel).status,
    0,
  );
  const rows = JSON.parse(vtepCli('fdb', 'show', '--vni', '5000', '--json').stdout) as {
    mac: string;
    static: boolean;
  }[];
  t.ok(rows.find((r) => r.mac === '02:00:00:00:99:01')?.static);
  t.equal(vtepCli('fdb', 'del', '02:00:00:00:99:01', '--vni', '5000').status, 0);
  const bad = vtepCli('fdb', 'add', 'zz:00', '--vni', '5000', '--remote', UNDERLAY.kernel);
  t.equal(bad.status, 2, 'bad input exits 2');
  t.match(bad.stderr, /^vtep: invalid MAC "zz:00": must be a MAC address/);
  const badVni = vtepCli('fdb', 'show', '--vni', '77');
  t.equal(badVni.status, 2);
  t.match(badVni.stderr, /^vtep: invalid --vni 77: is not configured \(configured: 5000\)/);
});

test('tshark decodes our tunnel packets: I flag, VNI 5000, zero reserved, per-flow source ports', async (t) => {
  const file = join(topo.dir, 'underlay.pcap');
  const dump = bg(
    `${topo.get('hostB').prefix} tcpdump -i eth0 -B ${CAPTURE_BUFFER_KIB} -U -n -w ${file} src ${UNDERLAY.vtep} and udp port 4789`,
  );
  await listening(dump);
  ping('vmB', VM.ovs.ip);
  ping('vmB', VM.kernel.ip);
  await until(() => readPcap(file).length >= 6, 5000);
  dump.kill('SIGINT');
  await sleep(300);
  const { rows } = tsharkFields(
    file,
    [...VXLAN_FIELDS, 'udp.srcport', 'ip.dst'],
    ['-Y', `ip.src==${UNDERLAY.vtep}`],
  );
  t.ok(rows.length >= 6, `${rows.length} packets of ours decoded`);
  for (const [flags, i, vni, res, gbp, res8, sport] of rows) {
    if (
      Number(flags) !== 0x0800 ||
      i !== '1' ||
      Number(vni) !== VNI ||
      Number(res) ||
      Number(gbp) ||
      Number(res8) ||
      Number(sport) < 49152
    ) {
      t.fail(`bad packet: ${[flags, i, vni, res, gbp, res8, sport]}`);
    }
  }
  t.pass('every packet: flags 0x08, VNI 5000, reserved zero, source port in 49152..65535');
  t.ok(new Set(rows.map((r) => r[7])).size === 2, 'sent to both peers');
});

test('hostile input is dropped and counted under its reason; valid traffic keeps flowing', async (t) => {
  const file = join(topo.dir, 'tap.pcap');
  const dump = bg(
    `${topo.get('vmB').prefix} tcpdump -i ${topo.tap} -B ${CAPTURE_BUFFER_KIB} -U -n -w ${file} ether proto ${MARKER}`,
  );
  await listening(dump);
  const before = await stats();
  // positive control: a valid packet from a configured remote does arrive
  inject(topo.get('inj'), [fromRemote(vxlanPayload())]);
  t.ok(
    await until(() => readPcap(file).length === 1, 3000),
    'the valid crafted frame reached the TAP',
  );

  const cases: Record<string, Buffer[]> = {
    vxlan_no_i_flag: [
      fromRemote(vxlanPayload({ flags: 0x00 })),
      fromRemote(vxlanPayload({ flags: 0xf7 })),
    ],
    vxlan_reserved_flags: [0, 1, 2, 4, 5, 6, 7].map((bit) =>
      fromRemote(vxlanPayload({ flags: 0x08 | (1 << bit) })),
    ),
    vxlan_reserved_field: [
      ...[0, 1, 2].flatMap((byte) =>
        [0, 1, 2, 3, 4, 5, 6, 7].map((bit) =>
          fromRemote(vxlanPayload({ r1: [0, 1, 2].map((b) => (b === byte ? 1 << bit : 0)) })),
        ),
      ),
      ...[0, 1, 2, 3, 4, 5, 6, 7].map((bit) => fromRemote(vxlanPayload({ r2: 1 << bit }))),
    ],
    vxlan_truncated: [0, 1, 2, 3, 4, 5, 6, 7].map((n) => fromRemote(vxlanPayload().subarray(0, n))),
    inner_truncated: Array.from({ length: 14 }, (_, n) =>
      fromRemote(vxlanPayload().subarray(0, 8 + n)),
    ),
    vni_unknown: [fromRemote(vxlanPayload({ vni: 4242 }))],
    sender_not_remote: [fromRemote(vxlanPayload(), UNDERLAY.injector)],
  };
  const random = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 1400, size: 'max' }), {
    numRuns: 200,
    seed: 7348,
  });
  const randomPackets = random.map((b) => fromRemote(Buffer.from(b), UNDERLAY.injector));
  const all = [...Object.values(cases).flat(), ...randomPackets];
  const sent = inject(topo.get('inj'), all);
  t.same(sent, { sent: all.length, failed: 0 }, `${all.length} hostile packets sent`);
  const sum = (s: Stats) => Object.values(s.drops).reduce((a, b) => a + b, 0);
  await until(async () => sum(await stats()) - sum(before) >= all.length, 5000);
  const after = await stats();
  for (const [reason, pkts] of Object.entries(cases)) {
    const delta = after.drops[reason] - before.drops[reason];
    if (
      reason === 'sender_not_remote' ||
      reason === 'vxlan_no_i_flag' ||
      reason === 'vxlan_truncated' ||
      reason === 'vxlan_reserved_flags' ||
      reason === 'vxlan_reserved_field' ||
      reason === 'inner_truncated'
    ) {
      t.ok(
        delta >= pkts.length,
        `${reason}: +${delta} (≥ ${pkts.length}; random bytes land here too)`,
      );
    } else {
      t.equal(delta, pkts.length, `${reason}: +${pkts.length}`);
    }
  }
  t.equal(sum(after) - sum(before), all.length, 'every hostile packet counted exactly once');
  await sleep(300);
  dump.kill('SIGINT');
  await sleep(200);
  t.equal(readPcap(file).length, 1, 'none of them reached the TAP');
  t.equal(topo.vtep!.exitCode, null, 'vtep still running');
  t.ok(ping('vmB', VM.ovs.ip) && ping('vmC', VM.vtep.ip), 'valid traffic keeps flowing');
});

test('a MAC flood keeps the FDB at its cap, memory bounded, pings working', async (t) => {
  const rss = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${topo.vtep!.pid}/status`, 'utf8'))![1]);
  const rssBefore = rss();
  const flood: Buffer[] = [];
  for (let i = 0; i < 30_000; i++)
    flood.push(fromRemote(vxlanPayload({ src: 0x02f100000000 + i, type: MARKER + 1 })));
  const sent = inject(topo.get('inj'), flood);
  t.equal(sent.sent, 30_000);
  await until(async () => (await stats()).fdb.learned >= 20_000, 10_000);
  const s = await stats();
  t.ok(s.fdb.entries <= 1024, `FDB at ${s.fdb.entries} entries (cap 1024)`);
  t.ok(s.fdb.evicted > 10_000, `${s.fdb.evicted} evicted`);
  const grown = rss() - rssBefore;
  t.ok(grown < 64 * 1024, `RSS grew ${grown} KiB (< 64 MiB)`);
  t.ok(ping('vmB', VM.ovs.ip), 'vtep VM → OVS VM still works');
  t.ok(ping('vmC', VM.vtep.ip), 'kernel VM → vtep VM still works');
});

test('SIGTERM: clean exit 0, TAP gone', async (t) => {
  const code = await topo.stopVtep();
  t.equal(code, 0, 'exit status 0');
  t.notOk(
    topo.get('vmB').exec('ip -o link', { allowFail: true }).includes(topo.tap),
    'TAP removed with the process',
  );
  t.notOk(spawnSync('test', ['-e', topo.control]).status === 0, 'control socket removed');
});

test('without CAP_SYS_NICE: it runs where it started, says why, and forwards', async (t) => {
  // root less one capability: setpriority may raise the niceness but not lower it
  await topo.startVtep([], {
    wrap: ['setpriv', '--inh-caps=-sys_nice', '--bounding-set=-sys_nice', '--'],
  });
  t.teardown(() => topo.stopVtep());
  const mine = getPriority(0);
  t.same([...new Set(threadNices(topo.vtep!.pid!))], [mine], `every thread still at ${mine}`);
  t.match(
    readFileSync(topo.vtepLog, 'utf8'),
    new RegExp(`cannot run at nice -5 \\(EACCES\\): staying at ${mine}; .*CAP_SYS_NICE`),
  );
  t.ok(ping('vmB', VM.kernel.ip), 'vtep VM → kernel VM');
  t.equal(((await topo.ask('stats')) as { nice: number }).nice, mine, 'stats says where it runs');
});
