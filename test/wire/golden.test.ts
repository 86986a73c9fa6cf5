import t from 'tap';
import { Drop } from '../../src/wire/drop.js';
import { EthernetFrame, EtherType, emitEthernet } from '../../src/wire/ethernet.js';
import { Ipv4Packet, IpProtocol, emitIpv4, parseIpv4Address } from '../../src/wire/ipv4.js';
import { formatMac, parseMac } from '../../src/wire/mac.js';
import { UdpDatagram, emitUdp, udpIpv4PseudoSum, verifyUdpChecksum } from '../../src/wire/udp.js';
import {
  VxlanHeader,
  decapsulate,
  emitVxlan,
  encapsulate,
  HEADER_LEN as VXLAN_LEN,
} from '../../src/wire/vxlan.js';
import { golden, goldenInnerFrame, goldenPacket } from './golden.js';
import { hex, poisoned } from '../helpers/hex.js';

t.test('decode the golden packet field by field', async (t) => {
  const eth = new EthernetFrame().bind(goldenPacket);
  t.equal(eth.checkLen(), Drop.NONE);
  t.equal(formatMac(eth.dst), '02:00:00:00:00:02');
  t.equal(formatMac(eth.src), '02:00:00:00:00:01');
  t.equal(eth.ethertype, EtherType.IPV4);
  t.equal(eth.vlanTagged, false);
  t.equal(eth.headerLen, 14);

  const ip = new Ipv4Packet().bind(goldenPacket, eth.headerLen);
  t.equal(ip.checkLen(), Drop.NONE);
  t.equal(ip.version, 4);
  t.equal(ip.headerLen, 20);
  t.equal(ip.totalLen, 82);
  t.equal(ip.ident, 0);
  t.equal(ip.flagsFragment, 0x4000, 'DF, no fragment');
  t.equal(ip.isFragment, false);
  t.equal(ip.ttl, 64);
  t.equal(ip.protocol, IpProtocol.UDP);
  t.equal(ip.checksum, 0xb697);
  t.ok(ip.verifyChecksum());
  t.equal(ip.src, parseIpv4Address('192.0.2.1'));
  t.equal(ip.dst, parseIpv4Address('192.0.2.2'));

  const udp = new UdpDatagram().bind(goldenPacket, ip.payloadOffset, ip.payloadLen);
  t.equal(udp.checkLen(), Drop.NONE);
  t.equal(udp.srcPort, 50000);
  t.equal(udp.dstPort, 4789);
  t.equal(udp.len, 62);
  t.equal(udp.checksum, 0);
  t.equal(udp.payloadLen, 54);

  const vx = new VxlanHeader().bind(goldenPacket, udp.payloadOffset, udp.payloadLen);
  t.equal(vx.checkLen(), Drop.NONE);
  t.equal(vx.flags, 0x08);
  t.equal(vx.reserved1, 0);
  t.equal(vx.vni, 42);
  t.equal(vx.reserved2, 0);

  const inner = new EthernetFrame().bind(
    goldenPacket,
    udp.payloadOffset + VXLAN_LEN,
    udp.payloadLen - VXLAN_LEN,
  );
  t.equal(formatMac(inner.dst), '52:54:00:00:00:02');
  t.equal(formatMac(inner.src), '52:54:00:00:00:01');
  t.equal(inner.payloadType, EtherType.IPV4);

  const d = decapsulate(goldenPacket.subarray(udp.payloadOffset, udp.offset + udp.len));
  if (typeof d === 'number') throw new Error(`dropped: ${d}`);
  t.equal(d.vni, 42);
  t.same(d.frame, goldenInnerFrame);
});

t.test('the exact VXLAN header for VNI 42', async (t) => {
  const buf = poisoned(8);
  t.equal(emitVxlan(42, buf, 0), 8);
  t.same(buf, hex('08 00 00 00 00 00 2a 00'));
  t.same(buf, golden.vxlan);
});

t.test('build the golden packet into a 0xa5-filled buffer', async (t) => {
  const buf = poisoned(goldenPacket.length);
  // The inner frame is placed first, as the TAP read would leave it; the headers go in front.
  const innerAt = 14 + 20 + 8 + 8;
  goldenInnerFrame.copy(buf, innerAt);

  const view = encapsulate(buf, innerAt, goldenInnerFrame.length, 42);
  t.equal(view.buffer, buf.buffer, 'encapsulate returns a view over the same memory');
  t.equal(view.byteOffset, buf.byteOffset + innerAt - 8);
  t.equal(view.length, goldenInnerFrame.length + 8);

  const udpLen = 8 + view.length;
  emitUdp({ srcPort: 50000, dstPort: 4789, payloadLen: view.length }, buf, 34);
  emitIpv4(
    {
      src: parseIpv4Address('192.0.2.1')!,
      dst: parseIpv4Address('192.0.2.2')!,
      protocol: IpProtocol.UDP,
      payloadLen: udpLen,
      ident: 0,
      ttl: 64,
    },
    buf,
    14,
  );
  emitEthernet(
    { dst: parseMac('02:00:00:00:00:02')!, src: parseMac('02:00:00:00:00:01')!, ethertype: 0x0800 },
    buf,
    0,
  );
  t.same(buf.toString('hex'), goldenPacket.toString('hex'));
  t.notOk(buf.includes(0xa5), 'no byte left unwritten');
});

t.test('UDP checksum over the IPv4 pseudo header matches the independent encoder', async (t) => {
  const buf = Buffer.from(goldenPacket);
  const src = parseIpv4Address('192.0.2.1')!;
  const dst = parseIpv4Address('192.0.2.2')!;
  emitUdp(
    { srcPort: 50000, dstPort: 4789, payloadLen: 54 },
    buf,
    34,
    udpIpv4PseudoSum(src, dst, 62),
  );
  t.same(buf.subarray(34, 42), golden.udpChecksum);
  const udp = new UdpDatagram().bind(buf, 34, 62);
  t.ok(verifyUdpChecksum(udp, udpIpv4PseudoSum(src, dst, 62)));
  buf[60] ^= 1;
  t.notOk(verifyUdpChecksum(udp, udpIpv4PseudoSum(src, dst, 62)), 'a flipped bit is caught');
});
