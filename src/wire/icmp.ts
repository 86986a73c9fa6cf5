import { checksum, ipv6PseudoSum } from './checksum.js';
import { Drop } from './drop.js';
import {
  EtherType,
  EthernetFrame,
  emitAnswerHeader,
  HEADER_LEN as ETHERNET_HEADER_LEN,
  VLAN_HEADER_LEN,
} from './ethernet.js';
import { FLAG_DF, HEADER_LEN as IPV4_HEADER_LEN, IpProtocol, Ipv4Packet } from './ipv4.js';
import { HEADER_LEN as IPV6_HEADER_LEN, Ipv6Packet } from './ipv6.js';
import { isMulticast } from './mac.js';

/**
 * "Your packet does not fit": ICMP type 3 code 4 (fragmentation needed, RFC 1191) for IPv4 and
 * ICMPv6 type 2 (packet too big, RFC 8201) for IPv6, sent back into the TAP on behalf of the
 * inner destination when a frame is too big for the underlay path. A VTEP must not fragment
 * (RFC 7348 §4.3); this is how the inner host's path MTU discovery learns the tunnel's MTU, as
 * Linux does in `skb_tunnel_check_pmtu` / `iptunnel_pmtud_build_icmp`. No ICMP is due for an
 * IPv4 packet without DF (the kernel would fragment it; we drop it), a non-first fragment, an
 * ICMP error (RFC 1122 §3.2.2), a group destination, or anything that is not IP.
 */

const icmp = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: [2, 4],
  /** IPv4: 2 unused bytes then the next-hop MTU; IPv6: the 32-bit MTU. */
  MTU4: [6, 8],
  MTU6: [4, 8],
} as const;
const ICMP_HEADER_LEN = icmp.MTU6[1];

const ICMP4_DEST_UNREACH = 3;
const ICMP4_FRAG_NEEDED = 4;
const ICMP6_PACKET_TOO_BIG = 2;
/** ICMPv4 types that are errors: no error is sent about them. */
const ICMP4_ERRORS = new Set([3, 4, 5, 11, 12]);
/** ICMPv6 errors are types 0..127. */
const ICMP6_INFO_MIN = 128;

/** RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes; RFC 8200: ICMPv6 at most 1280. */
const IPV4_ERROR_MAX = 576;
const IPV6_MIN_MTU = 1280;

/** Bytes an ICMP answer can take at most, with the Ethernet header and an 802.1Q tag. */
export const TOO_BIG_MAX_LEN = VLAN_HEADER_LEN + IPV6_MIN_MTU;

const eth = new EthernetFrame();
const ip4 = new Ipv4Packet();
const ip6 = new Ipv6Packet();

/**
 * Build the "too big" answer to the frame `frame[off, off+len)` into `out` at `outOff` (room for
 * TOO_BIG_MAX_LEN bytes), telling the sender that `mtu` (the largest IP packet that fits, for an
 * untagged frame) is the path MTU. Returns the answer's length, or 0 when none is due. Never
 * throws on frame contents.
 */
export function emitTooBig(
  frame: Buffer,
  off: number,
  len: number,
  mtu: number,
  out: Buffer,
  outOff: number,
): number {
  eth.bind(frame, off, len);
  if (eth.checkLen() !== Drop.NONE || isMulticast(eth.dst)) return 0;
  const l2 = eth.headerLen;
  // A tag takes 4 bytes of the same frame: the IP packet may be that much smaller.
  const ipMtu = mtu - (l2 - ETHERNET_HEADER_LEN);
  const type = eth.payloadType;
  if (type === EtherType.IPV4) return tooBig4(frame, off + l2, off + len, ipMtu, out, outOff, l2);
  if (type === EtherType.IPV6) return tooBig6(frame, off + l2, off + len, ipMtu, out, outOff, l2);
  return 0;
}

function tooBig4(
  frame: Buffer,
  ipOff: number,
  end: number,
  mtu: number,
  out: Buffer,
  outOff: number,
  l2: number,
): number {
  ip4.bind(frame, ipOff, end - ipOff);
  if (ip4.checkLen() !== Drop.NONE) return 0;
  if ((ip4.flagsFragment & FLAG_DF) === 0 || (ip4.flagsFragment & 0x1fff) !== 0) return 0;
  if (ip4.protocol === IpProtocol.ICMP) {
    const t = ip4.payloadLen > 0 ? frame[ip4.payloadOffset] : -1;
    if (t < 0 || ICMP4_ERRORS.has(t)) return 0;
  }
  const dst = ip4.dst;
  if (dst >>> 28 === 0xe || dst === 0xffffffff) return 0; // multicast, broadcast
  const quoted = Math.min(ip4.totalLen, IPV4_ERROR_MAX - IPV4_HEADER_LEN - 8);
  const total = IPV4_HEADER_LEN + 8 + quoted;
  const o = outOff + emitAnswerHeader(frame, ipOff - l2, out, outOff, EtherType.IPV4);
  out.fill(0, o, o + IPV4_HEADER_LEN + 8);
  out[o] = 0x45;
  out.writeUInt16BE(total, o + 2);
  out.writeUInt16BE(FLAG_DF, o + 6);
  out[o + 8] = 64;
  out[o + 9] = IpProtocol.ICMP;
  out.writeUInt32BE(dst, o + 12); // from the destination the packet could not reach
  out.writeUInt32BE(ip4.src, o + 16);
  out.writeUInt16BE(checksum(out, o, IPV4_HEADER_LEN), o + 10);
  const m = o + IPV4_HEADER_LEN;
  out[m + icmp.TYPE] = ICMP4_DEST_UNREACH;
  out[m + icmp.CODE] = ICMP4_FRAG_NEEDED;
  out.writeUInt16BE(mtu, m + icmp.MTU4[0]);
  frame.copy(out, m + 8, ipOff, ipOff + quoted);
  out.writeUInt16BE(checksum(out, m, 8 + quoted), m + icmp.CHECKSUM[0]);
  return l2 + total;
}

function tooBig6(
  frame: Buffer,
  ipOff: number,
  end: number,
  mtu: number,
  out: Buffer,
  outOff: number,
  l2: number,
): number {
  ip6.bind(frame, ipOff, end - ipOff);
  if (ip6.checkLen() !== Drop.NONE) return 0;
  if (frame[ipOff + 24] === 0xff) return 0; // multicast destination
  if (ip6.nextHeader === IpProtocol.ICMPV6) {
    const t = ip6.payloadLen > 0 ? frame[ip6.payloadOffset] : -1;
    if (t < ICMP6_INFO_MIN) return 0;
  }
  const packetLen = IPV6_HEADER_LEN + ip6.payloadLen;
  const quoted = Math.min(packetLen, IPV6_MIN_MTU - IPV6_HEADER_LEN - ICMP_HEADER_LEN);
  const icmpLen = ICMP_HEADER_LEN + quoted;
  const o = outOff + emitAnswerHeader(frame, ipOff - l2, out, outOff, EtherType.IPV6);
  out.fill(0, o, o + IPV6_HEADER_LEN + ICMP_HEADER_LEN);
  out[o] = 0x60;
  out.writeUInt16BE(icmpLen, o + 4);
  out[o + 6] = IpProtocol.ICMPV6;
  out[o + 7] = 64;
  frame.copy(out, o + 8, ipOff + 24, ipOff + 40); // from the unreachable destination
  frame.copy(out, o + 24, ipOff + 8, ipOff + 24); // to the sender
  const m = o + IPV6_HEADER_LEN;
  out[m + icmp.TYPE] = ICMP6_PACKET_TOO_BIG;
  out.writeUInt32BE(Math.max(mtu, IPV6_MIN_MTU), m + icmp.MTU6[0]);
  frame.copy(out, m + ICMP_HEADER_LEN, ipOff, ipOff + quoted);
  const pseudo = ipv6PseudoSum(
    out.subarray(o + 8, o + 24),
    out.subarray(o + 24, o + 40),
    IpProtocol.ICMPV6,
    icmpLen,
  );
  out.writeUInt16BE(checksum(out, m, icmpLen, pseudo), m + icmp.CHECKSUM[0]);
  return l2 + IPV6_HEADER_LEN + icmpLen;
}
