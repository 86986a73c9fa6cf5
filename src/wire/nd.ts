import { checksum, ipv6PseudoSum } from './checksum.js';
import { Drop } from './drop.js';
import { EtherType, emitAnswerHeader, type EthernetFrame } from './ethernet.js';
import { IpProtocol } from './ipv4.js';
import { HEADER_LEN as IPV6_HEADER_LEN, Ipv6Packet } from './ipv6.js';
import { readMac, writeMac } from './mac.js';

/**
 * IPv6 Neighbor Discovery (RFC 4861), the two messages that map an address to a MAC: a
 * Neighbor Solicitation (type 135) asks, a Neighbor Advertisement (type 136) answers. vtep reads
 * both to learn, and writes an advertisement when it answers a solicitation itself (ND
 * suppression).
 */
const icmp = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: [2, 4],
  /** NA: R, S, O flags in the first byte of the 4 reserved bytes. */
  FLAGS: 4,
  TARGET: [8, 24],
} as const;
const ND_HEADER_LEN = icmp.TARGET[1];
const NS = 135;
const NA = 136;
const OPT_SOURCE_LLADDR = 1;
const OPT_TARGET_LLADDR = 2;
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;
/** RFC 4861 §7.1: ND messages arrive with hop limit 255, else they crossed a router. */
const ND_HOP_LIMIT = 255;

export interface Nd {
  type: 'ns' | 'na';
  /** The IPv6 source address (`::` for duplicate address detection). */
  src: Buffer;
  /** The address asked about (NS) or advertised (NA). */
  target: Buffer;
  /** The link-layer address option: the sender's MAC (NS) or the target's (NA); 0 if absent. */
  mac: number;
}

const ip6 = new Ipv6Packet();

/** Parse an NS or NA in the frame `eth` is bound to; `undefined` for anything else. */
export function parseNd(eth: EthernetFrame): Nd | undefined {
  if (eth.payloadType !== EtherType.IPV6) return undefined;
  const ipOff = eth.offset + eth.headerLen;
  ip6.bind(eth.buf, ipOff, eth.length - eth.headerLen);
  if (ip6.checkLen() !== Drop.NONE) return undefined;
  if (ip6.nextHeader !== IpProtocol.ICMPV6 || ip6.hopLimit !== ND_HOP_LIMIT) return undefined;
  const m = ip6.payloadOffset;
  const end = m + ip6.payloadLen;
  if (end - m < ND_HEADER_LEN) return undefined;
  const b = eth.buf;
  const t = b[m + icmp.TYPE];
  if ((t !== NS && t !== NA) || b[m + icmp.CODE] !== 0) return undefined;
  const want = t === NS ? OPT_SOURCE_LLADDR : OPT_TARGET_LLADDR;
  let mac = 0;
  for (let o = m + ND_HEADER_LEN; o + 8 <= end;) {
    const len = b[o + 1] * 8;
    if (len === 0 || o + len > end) return undefined; // RFC 4861 §4.6: a zero length is invalid
    if (b[o] === want && len === 8) mac = readMac(b, o + 2);
    o += len;
  }
  return {
    type: t === NS ? 'ns' : 'na',
    src: b.subarray(ipOff + 8, ipOff + 24),
    target: b.subarray(m + icmp.TARGET[0], m + icmp.TARGET[1]),
    mac,
  };
}

/** Bytes of an advertisement with the target link-layer option, before any 802.1Q tag. */
export const NA_FRAME_LEN = 14 + IPV6_HEADER_LEN + ND_HEADER_LEN + 8;

/**
 * The solicited advertisement answering `ns`, the solicitation in `frame[frameOff…]`, on behalf
 * of `mac`, owner of `ns.target`, at `out[off]` (the solicitation's 802.1Q tag kept). Returns
 * its length.
 */
export function emitNa(
  frame: Buffer,
  frameOff: number,
  ns: Nd,
  mac: number,
  out: Buffer,
  off: number,
): number {
  const o = off + emitAnswerHeader(frame, frameOff, out, off, EtherType.IPV6, mac);
  const payload = ND_HEADER_LEN + 8;
  out.fill(0, o, o + IPV6_HEADER_LEN + payload);
  out[o] = 0x60;
  out.writeUInt16BE(payload, o + 4);
  out[o + 6] = IpProtocol.ICMPV6;
  out[o + 7] = ND_HOP_LIMIT;
  out.set(ns.target, o + 8); // from the address asked about
  out.set(ns.src, o + 24); // to the one who asked
  const m = o + IPV6_HEADER_LEN;
  out[m + icmp.TYPE] = NA;
  out[m + icmp.FLAGS] = NA_SOLICITED | NA_OVERRIDE;
  out.set(ns.target, m + icmp.TARGET[0]);
  out[m + ND_HEADER_LEN] = OPT_TARGET_LLADDR;
  out[m + ND_HEADER_LEN + 1] = 1;
  writeMac(out, m + ND_HEADER_LEN + 2, mac);
  const pseudo = ipv6PseudoSum(
    out.subarray(o + 8, o + 24),
    out.subarray(o + 24, o + 40),
    IpProtocol.ICMPV6,
    payload,
  );
  out.writeUInt16BE(checksum(out, m, payload, pseudo), m + icmp.CHECKSUM[0]);
  return m + payload - off;
}
