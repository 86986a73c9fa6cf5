import fc from 'fast-check';
import t from 'tap';
import { checksum, fold, sum } from '../../src/wire/checksum.js';
import { Drop, DROP_REASON_COUNT, dropReasonName } from '../../src/wire/drop.js';
import {
  EthernetFrame,
  EtherType,
  emitEthernet,
  ethernetBufferLen,
  parseEthernet,
  type EthernetRepr,
} from '../../src/wire/ethernet.js';
import {
  Ipv4Packet,
  IpProtocol,
  emitIpv4,
  formatIpv4Address,
  parseIpv4,
  parseIpv4Address,
} from '../../src/wire/ipv4.js';
import { Ipv6Packet, emitIpv6, parseIpv6 } from '../../src/wire/ipv6.js';
import {
  BROADCAST,
  formatMac,
  isBroadcast,
  isMulticast,
  isValidUnicast,
  isZero,
  parseMac,
  stableMac,
  readMac,
  writeMac,
} from '../../src/wire/mac.js';
import {
  UdpDatagram,
  emitUdp,
  parseUdp,
  udpIpv6PseudoSum,
  verifyUdpChecksum,
} from '../../src/wire/udp.js';
import { hex, poisoned } from '../helpers/hex.js';

const mac48 = fc.integer({ min: 0, max: 0xffff_ffff_ffff });

t.test('MAC numbers round-trip through bytes and text', async (t) => {
  fc.assert(
    fc.property(mac48, (m) => {
      const b = Buffer.alloc(8);
      writeMac(b, 1, m);
      return readMac(b, 1) === m && parseMac(formatMac(m)) === m && b[0] === 0 && b[7] === 0;
    }),
  );
  t.equal(parseMac('AA-BB-CC-DD-EE-FF'), 0xaabbccddeeff);
  t.equal(parseMac('aabbccddeeff'), 0xaabbccddeeff);
  t.equal(parseMac(' 00:00:5e:00:53:01 '), 0x00005e005301);
  t.equal(parseMac('aa:bb-cc:dd:ee:ff'), undefined, 'mixed separators');
  t.equal(parseMac('aa:bb:cc:dd:ee'), undefined);
  t.equal(parseMac('gg:bb:cc:dd:ee:ff'), undefined);
  t.equal(formatMac(0x0000000000ff), '00:00:00:00:00:ff');
});

t.test('stable TAP MACs: same seed, same MAC; always locally administered unicast', async (t) => {
  t.equal(stableMac('vtep:vtep0:5000'), stableMac('vtep:vtep0:5000'), 'stable across restarts');
  t.not(stableMac('vtep:vtep0:5000'), stableMac('vtep:vtep0:5001'), 'differs per VNI');
  // A golden value: changing the derivation would change every deployed TAP's MAC.
  t.equal(formatMac(stableMac('vtep:vtep0:5000')), '5e:31:cf:1a:92:fe');
  fc.assert(
    fc.property(fc.string(), (seed) => {
      const m = stableMac(seed);
      const first = Math.floor(m / 2 ** 40);
      return isValidUnicast(m) && (first & 0x02) === 0x02 && (first & 0x01) === 0;
    }),
  );
});

t.test('MAC classes as vxlan_snoop sees them', async (t) => {
  t.ok(isBroadcast(BROADCAST) && isMulticast(BROADCAST));
  t.ok(isMulticast(parseMac('01:00:5e:00:00:01')!));
  t.ok(isMulticast(parseMac('33:33:00:00:00:01')!));
  t.notOk(isMulticast(parseMac('02:00:00:00:00:01')!), 'locally administered unicast');
  t.ok(isZero(0));
  t.notOk(isValidUnicast(0));
  t.notOk(isValidUnicast(BROADCAST));
  t.ok(isValidUnicast(parseMac('52:54:00:12:34:56')!));
});

t.test('Ethernet with and without an 802.1Q tag', async (t) => {
  const tagged = hex('ffffffffffff 525400000001 8100 0064 0806 0001');
  const eth = new EthernetFrame().bind(tagged);
  t.equal(eth.checkLen(), Drop.NONE);
  t.equal(eth.vlanTagged, true);
  t.equal(eth.vlanId, 100);
  t.equal(eth.payloadType, EtherType.ARP);
  t.equal(eth.headerLen, 18);
  t.same(parseEthernet(eth), {
    dst: BROADCAST,
    src: 0x525400000001,
    ethertype: EtherType.ARP,
    vlanId: 100,
  });
  t.equal(new EthernetFrame().bind(tagged, 0, 17).checkLen(), Drop.ETHERNET_TRUNCATED);
  t.equal(new EthernetFrame().bind(tagged, 0, 13).checkLen(), Drop.ETHERNET_TRUNCATED);
  t.equal(parseEthernet(new EthernetFrame().bind(tagged, 0, 13)), Drop.ETHERNET_TRUNCATED);

  const qinq = hex('ffffffffffff 525400000001 88a8 0fff 86dd');
  t.equal(new EthernetFrame().bind(qinq).vlanId, 0xfff);

  const plain = new EthernetFrame().bind(hex('ffffffffffff 525400000001 0800'));
  t.equal(plain.vlanId, 0);
  t.equal(plain.payloadType, EtherType.IPV4);
  plain.dst = 0x020000000009;
  plain.src = 0x02000000000a;
  plain.ethertype = EtherType.IPV6;
  t.same(plain.buf, hex('020000000009 02000000000a 86dd'));
});

t.test('Ethernet repr emits into a poisoned buffer and parses back', async (t) => {
  fc.assert(
    fc.property(
      mac48,
      mac48,
      fc.integer({ min: 0x0600, max: 0xffff }).filter((x) => x !== 0x8100 && x !== 0x88a8),
      fc.option(fc.integer({ min: 0, max: 4095 }), { nil: undefined }),
      (dst, src, ethertype, vlanId) => {
        const repr: EthernetRepr = { dst, src, ethertype };
        if (vlanId !== undefined) repr.vlanId = vlanId;
        const buf = poisoned(ethernetBufferLen(repr));
        const n = emitEthernet(repr, buf, 0);
        if (n !== buf.length || buf.includes(0xa5, 0) !== anyA5(repr)) return false;
        const back = parseEthernet(new EthernetFrame().bind(buf));
        return JSON.stringify(back) === JSON.stringify(repr);
      },
    ),
  );
  t.pass();
});

/** A repr may legitimately contain 0xa5 bytes; only then may the buffer. */
function anyA5(repr: EthernetRepr): boolean {
  const b = Buffer.alloc(18);
  emitEthernet(repr, b, 0);
  return b.subarray(0, ethernetBufferLen(repr)).includes(0xa5);
}

t.test('IPv4 header: emit, parse, checksum, malformed cases', async (t) => {
  const buf = poisoned(40);
  const repr = {
    src: parseIpv4Address('192.0.2.1')!,
    dst: parseIpv4Address('198.51.100.7')!,
    protocol: IpProtocol.UDP,
    payloadLen: 20,
    ttl: 17,
    ident: 0x1234,
    dontFragment: false,
    dscpEcn: 0xb8,
  };
  t.equal(emitIpv4(repr, buf, 0), 20);
  const ip = new Ipv4Packet().bind(buf);
  t.ok(ip.verifyChecksum());
  t.same(parseIpv4(ip), repr);
  t.equal(formatIpv4Address(ip.dst), '198.51.100.7');
  t.equal(ip.payloadOffset, 20);

  const bad = (mutate: (b: Buffer) => void, len = 40) => {
    const b = Buffer.from(buf);
    mutate(b);
    return new Ipv4Packet().bind(b, 0, len).checkLen();
  };
  t.equal(
    bad(() => {}, 19),
    Drop.IPV4_MALFORMED,
    'short',
  );
  t.equal(
    bad((b) => (b[0] = 0x65)),
    Drop.IPV4_MALFORMED,
    'version 6',
  );
  t.equal(
    bad((b) => (b[0] = 0x44)),
    Drop.IPV4_MALFORMED,
    'IHL 4',
  );
  t.equal(
    bad((b) => (b[0] = 0x4f)),
    Drop.IPV4_MALFORMED,
    'IHL beyond the buffer',
  );
  t.equal(
    bad((b) => b.writeUInt16BE(41, 2)),
    Drop.IPV4_MALFORMED,
    'total length too big',
  );
  t.equal(
    bad((b) => b.writeUInt16BE(19, 2)),
    Drop.IPV4_MALFORMED,
    'total length < IHL',
  );
  t.equal(parseIpv4(new Ipv4Packet().bind(buf, 0, 10)), Drop.IPV4_MALFORMED);
  buf.writeUInt16BE(0x2001, 6);
  t.ok(ip.isFragment);
  t.notOk(ip.verifyChecksum(), 'mutated header fails the checksum');

  t.equal(parseIpv4Address('256.0.0.1'), undefined);
  t.equal(parseIpv4Address('1.2.3'), undefined);
  t.equal(parseIpv4Address('255.255.255.255'), 0xffffffff);
  t.equal(formatIpv4Address(0xffffffff), '255.255.255.255');
});

t.test('IPv6 header and UDP checksum over the IPv6 pseudo header', async (t) => {
  const src = hex('fd000000000000000000000000000001');
  const dst = hex('fd000000000000000000000000000002');
  const payload = hex('0102030405');
  const buf = poisoned(40 + 8 + payload.length);
  emitIpv6(
    {
      src,
      dst,
      nextHeader: IpProtocol.UDP,
      payloadLen: 8 + payload.length,
      flowLabel: 0xabcde,
      trafficClass: 0x12,
    },
    buf,
    0,
  );
  payload.copy(buf, 48);
  const pseudo = udpIpv6PseudoSum(src, dst, 8 + payload.length);
  emitUdp({ srcPort: 1, dstPort: 4789, payloadLen: payload.length }, buf, 40, pseudo);
  t.notOk(buf.includes(0xa5));
  const ip6 = new Ipv6Packet().bind(buf);
  t.equal(ip6.checkLen(), Drop.NONE);
  const repr = parseIpv6(ip6);
  t.same(repr, {
    src: Uint8Array.from(src),
    dst: Uint8Array.from(dst),
    nextHeader: 17,
    payloadLen: 13,
    hopLimit: 64,
    trafficClass: 0x12,
    flowLabel: 0xabcde,
  });
  t.equal(ip6.payloadOffset, 40);
  t.same(ip6.dst, dst);
  const udp = new UdpDatagram().bind(buf, 40);
  t.ok(verifyUdpChecksum(udp, pseudo), 'checksum verifies');
  t.not(udp.checksum, 0, 'IPv6 UDP never carries a zero checksum');

  t.equal(new Ipv6Packet().bind(buf, 0, 39).checkLen(), Drop.IPV6_MALFORMED);
  t.equal(
    parseIpv6(new Ipv6Packet().bind(buf, 0, 50)),
    Drop.IPV6_MALFORMED,
    'payload beyond buffer',
  );
  const v4 = Buffer.from(buf);
  v4[0] = 0x45;
  t.equal(new Ipv6Packet().bind(v4).checkLen(), Drop.IPV6_MALFORMED);
});

t.test('UDP header: parse and malformed lengths', async (t) => {
  const b = hex('c350 12b5 000c 0000 deadbeef');
  t.same(parseUdp(new UdpDatagram().bind(b)), { srcPort: 50000, dstPort: 4789, payloadLen: 4 });
  t.equal(new UdpDatagram().bind(b, 0, 7).checkLen(), Drop.UDP_MALFORMED);
  b.writeUInt16BE(7, 4);
  t.equal(parseUdp(new UdpDatagram().bind(b)), Drop.UDP_MALFORMED, 'length < 8');
  b.writeUInt16BE(13, 4);
  t.equal(new UdpDatagram().bind(b).checkLen(), Drop.UDP_MALFORMED, 'length > datagram');
});

t.test('a UDP checksum that folds to zero is sent as 0xffff', async (t) => {
  // Search a payload whose checksum computes to zero; RFC 768 says send all ones.
  const buf = Buffer.alloc(10);
  for (let x = 0; x < 0x10000; x++) {
    buf.writeUInt16BE(x, 8);
    emitUdp({ srcPort: 0, dstPort: 0, payloadLen: 2 }, buf, 0, 0);
    if (buf.readUInt16BE(6) === 0xffff) {
      t.ok(verifyUdpChecksum(new UdpDatagram().bind(buf), 0));
      return;
    }
  }
  t.fail('no payload folded to zero');
});

t.test('random bytes never make a view throw', async (t) => {
  const eth = new EthernetFrame();
  const ip = new Ipv4Packet();
  const ip6 = new Ipv6Packet();
  const udp = new UdpDatagram();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) => {
      const b = Buffer.from(bytes);
      if (eth.bind(b).checkLen() === Drop.NONE)
        void [eth.dst, eth.src, eth.vlanId, eth.payloadType];
      if (ip.bind(b).checkLen() === Drop.NONE)
        void [ip.src, ip.dst, ip.payloadLen, ip.verifyChecksum()];
      if (ip6.bind(b).checkLen() === Drop.NONE) void [ip6.src, ip6.flowLabel, ip6.hopLimit];
      if (udp.bind(b).checkLen() === Drop.NONE) void [udp.srcPort, udp.payloadLen];
      return true;
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

t.test('Internet checksum (RFC 1071 example) and odd lengths', async (t) => {
  // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2
  const b = hex('0001f203f4f5f6f7');
  t.equal(fold(sum(b, 0, 8)), ~0xddf2 & 0xffff);
  t.equal(checksum(hex('01'), 0, 1), ~0x0100 & 0xffff);
  const big = Buffer.alloc(70000, 0xff);
  t.equal(checksum(big, 0, big.length), 0, 'all-ones data sums to negative zero');
});

t.test('drop reason names', async (t) => {
  t.equal(dropReasonName(Drop.VXLAN_NO_I_FLAG), 'vxlan_no_i_flag');
  t.equal(dropReasonName(999), 'unknown_999');
  t.equal(Math.max(...Object.values(Drop)) + 1, DROP_REASON_COUNT);
});
