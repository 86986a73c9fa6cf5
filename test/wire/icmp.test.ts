// ICMP "too big" answers (src/wire/icmp.ts), checked field by field and by an independent
// decoder (scapy), and for every case in which no answer is due.
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import t from 'tap';
import { checksum, ipv6PseudoSum } from '../../src/wire/checksum.js';
import { TOO_BIG_MAX_LEN, emitTooBig } from '../../src/wire/icmp.js';
import { needs } from '../helpers/prereq.js';

const SRC_MAC = '525400000002';
const DST_MAC = '525400000001';

function ipv4Frame(o: {
  size: number;
  df?: boolean;
  frag?: number;
  proto?: number;
  dst?: string;
  vlan?: boolean;
  icmpType?: number;
}): Buffer {
  const l2 = o.vlan ? 18 : 14;
  const f = Buffer.alloc(o.size, 0x5a);
  Buffer.from(DST_MAC + SRC_MAC, 'hex').copy(f, 0);
  if (o.vlan) f.writeUInt32BE(0x81000064, 12); // VLAN 100
  f.writeUInt16BE(0x0800, l2 - 2);
  f.fill(0, l2, l2 + 20);
  f[l2] = 0x45;
  f.writeUInt16BE(o.size - l2, l2 + 2);
  f.writeUInt16BE((o.df === false ? 0 : 0x4000) | (o.frag ?? 0), l2 + 6);
  f[l2 + 8] = 64;
  f[l2 + 9] = o.proto ?? 6;
  Buffer.from('0a000002', 'hex').copy(f, l2 + 12);
  Buffer.from(o.dst ?? '0a000001', 'hex').copy(f, l2 + 16);
  f.writeUInt16BE(checksum(f, l2, 20), l2 + 10);
  if (o.icmpType !== undefined) f[l2 + 20] = o.icmpType;
  return f;
}

function ipv6Frame(o: { size: number; next?: number; dst?: string; icmpType?: number }): Buffer {
  const f = Buffer.alloc(o.size, 0x5a);
  Buffer.from(DST_MAC + SRC_MAC + '86dd', 'hex').copy(f, 0);
  f.fill(0, 14, 54);
  f[14] = 0x60;
  f.writeUInt16BE(o.size - 54, 18);
  f[20] = o.next ?? 6;
  f[21] = 64;
  Buffer.from('20010db8000000000000000000000002', 'hex').copy(f, 22);
  Buffer.from(o.dst ?? '20010db8000000000000000000000001', 'hex').copy(f, 38);
  if (o.icmpType !== undefined) f[54] = o.icmpType;
  return f;
}

/** The answer in a buffer poisoned with 0xa5, so bytes we forgot to write show up. */
function answer(frame: Buffer, mtu: number): Buffer {
  const out = Buffer.alloc(TOO_BIG_MAX_LEN + 8, 0xa5);
  const n = emitTooBig(frame, 0, frame.length, mtu, out, 4);
  return out.subarray(4, 4 + n);
}

t.test('IPv4: fragmentation needed, from the destination to the sender', async (t) => {
  const f = ipv4Frame({ size: 1514 });
  const a = answer(f, 1450);
  t.equal(a.length, 14 + 576, 'capped at 576 bytes of IP (RFC 1812 §4.3.2.3)');
  t.equal(a.subarray(0, 12).toString('hex'), SRC_MAC + DST_MAC, 'MACs swapped');
  t.equal(a.readUInt16BE(12), 0x0800);
  t.equal(a[14], 0x45);
  t.equal(a.readUInt16BE(16), 576, 'total length');
  t.equal(a[23], 1, 'protocol ICMP');
  t.equal(a.subarray(26, 30).toString('hex'), '0a000001', 'source: the unreachable destination');
  t.equal(a.subarray(30, 34).toString('hex'), '0a000002', 'destination: the sender');
  t.equal(checksum(a, 14, 20), 0, 'IP checksum');
  t.same([a[34], a[35], a.readUInt16BE(38), a.readUInt16BE(40)], [3, 4, 0, 1450]);
  t.equal(checksum(a, 34, a.length - 34), 0, 'ICMP checksum');
  t.same(a.subarray(42), f.subarray(14, 14 + 548), 'as much of the original as fits');
  const small = answer(ipv4Frame({ size: 200 }), 100);
  t.equal(small.length, 14 + 20 + 8 + 186, 'a short original is quoted whole');
  t.equal(checksum(small, 34, small.length - 34), 0);
});

t.test('an 802.1Q-tagged frame: the tag is kept and the MTU is 4 bytes smaller', async (t) => {
  const a = answer(ipv4Frame({ size: 1468, vlan: true }), 1450);
  t.equal(a.readUInt32BE(12), 0x81000064, 'same VLAN');
  t.equal(a.readUInt16BE(16), 0x0800);
  t.equal(a.readUInt16BE(44), 1446, 'the IP packet may be 4 bytes smaller in a tagged frame');
  t.equal(checksum(a, 38, a.length - 38), 0);
});

t.test('IPv6: packet too big, with the pseudo-header checksum, at least 1280', async (t) => {
  const f = ipv6Frame({ size: 1514 });
  const a = answer(f, 1430);
  t.equal(a.length, 14 + 1280, 'capped at the IPv6 minimum MTU');
  t.equal(a.subarray(0, 12).toString('hex'), SRC_MAC + DST_MAC);
  t.equal(a.readUInt16BE(12), 0x86dd);
  t.equal(a.readUInt16BE(18), 1240, 'payload length');
  t.same([a[20], a[21]], [58, 64]);
  t.equal(a.subarray(22, 38).toString('hex'), '20010db8000000000000000000000001');
  t.equal(a.subarray(38, 54).toString('hex'), '20010db8000000000000000000000002');
  t.same([a[54], a[55], a.readUInt32BE(58)], [2, 0, 1430]);
  const pseudo = ipv6PseudoSum(a.subarray(22, 38), a.subarray(38, 54), 58, 1240);
  t.equal(checksum(a, 54, 1240, pseudo), 0, 'ICMPv6 checksum');
  t.equal(answer(f, 1200).readUInt32BE(58), 1280, 'never below 1280 (RFC 8200)');
});

t.test('no answer is due', async (t) => {
  const cases: [string, Buffer][] = [
    ['IPv4 without DF (the kernel would fragment it)', ipv4Frame({ size: 1514, df: false })],
    ['a non-first fragment', ipv4Frame({ size: 1514, frag: 10 })],
    ['an ICMPv4 error', ipv4Frame({ size: 1514, proto: 1, icmpType: 3 })],
    ['an IPv4 multicast destination', ipv4Frame({ size: 1514, dst: 'e0000001' })],
    ['the IPv4 broadcast address', ipv4Frame({ size: 1514, dst: 'ffffffff' })],
    ['an ICMPv6 error', ipv6Frame({ size: 1514, next: 58, icmpType: 1 })],
    [
      'an IPv6 multicast destination',
      ipv6Frame({ size: 1514, dst: 'ff020000000000000000000000000001' }),
    ],
    [
      'a group destination MAC',
      Buffer.concat([Buffer.from('ffffffffffff', 'hex'), ipv4Frame({ size: 1514 }).subarray(6)]),
    ],
    ['ARP', Buffer.concat([Buffer.from(DST_MAC + SRC_MAC + '0806', 'hex'), Buffer.alloc(28)])],
    ['a runt', Buffer.from(DST_MAC, 'hex')],
    ['a cut IPv4 header', ipv4Frame({ size: 1514 }).subarray(0, 30)],
    ['a cut IPv6 header', ipv6Frame({ size: 1514 }).subarray(0, 40)],
  ];
  for (const [what, f] of cases) t.equal(answer(f, 1450).length, 0, what);
  t.ok(
    answer(ipv4Frame({ size: 1514, proto: 1, icmpType: 8 }), 1450).length > 0,
    'an echo request does get one',
  );
  t.ok(
    answer(ipv6Frame({ size: 1514, next: 58, icmpType: 128 }), 1430).length > 0,
    'so does an echo request over IPv6',
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 1600 }),
      fc.integer({ min: 68, max: 9000 }),
      (bytes, mtu) => {
        const f = Buffer.from(bytes);
        const out = Buffer.alloc(TOO_BIG_MAX_LEN);
        const n = emitTooBig(f, 0, f.length, mtu, out, 0);
        return n >= 0 && n <= TOO_BIG_MAX_LEN;
      },
    ),
  );
});

t.test('scapy decodes our answers as what they claim to be', async (t) => {
  // Debian's python3-scapy belongs to Debian's python, whatever else `python3` on PATH may be.
  const python = '/usr/bin/python3';
  if (!needs(t, { commands: [python] })) return;
  const probe = spawnSync(python, ['-c', 'import scapy.all'], { encoding: 'utf8' });
  if (probe.status !== 0) return void t.fail(`python3-scapy missing: ${probe.stderr}`);
  const a4 = answer(ipv4Frame({ size: 1514 }), 1450).toString('hex');
  const a6 = answer(ipv6Frame({ size: 1514 }), 1430).toString('hex');
  const script = `
from scapy.all import Ether, IP, ICMP, IPv6, ICMPv6PacketTooBig
import sys
p = Ether(bytes.fromhex(sys.argv[1]))
c4 = p[IP].chksum; c4i = p[ICMP].chksum
del p[IP].chksum; del p[ICMP].chksum
q = Ether(bytes(p))
print(p[ICMP].type, p[ICMP].code, p[ICMP].nexthopmtu, c4 == q[IP].chksum, c4i == q[ICMP].chksum, p[IP].src, p[IP].dst)
p6 = Ether(bytes.fromhex(sys.argv[2]))
c6 = p6[ICMPv6PacketTooBig].cksum
del p6[ICMPv6PacketTooBig].cksum
q6 = Ether(bytes(p6))
print(p6[ICMPv6PacketTooBig].type, p6[ICMPv6PacketTooBig].mtu, c6 == q6[ICMPv6PacketTooBig].cksum, p6[IPv6].src, p6[IPv6].dst)
`;
  const r = spawnSync(python, ['-c', script, a4, a6], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), [
    '3 4 1450 True True 10.0.0.1 10.0.0.2',
    '2 1430 True 2001:db8::1 2001:db8::2',
  ]);
});
