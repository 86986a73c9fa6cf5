/**
 * ECN through a tunnel, RFC 6040 normal mode (what Linux `ip_tunnel_ecn_encap` /
 * `INET_ECN_decapsulate` and Open vSwitch do), and the inner IP header's traffic-class byte,
 * TTL and DF as an encapsulator reads them. The inner packet is located from the Ethernet header
 * (one 802.1Q tag at most); nothing here throws on packet contents.
 */

/** The two ECN bits of an IPv4 TOS / IPv6 traffic class (RFC 3168). */
export const Ecn = { NOT_ECT: 0, ECT1: 1, ECT0: 2, CE: 3 } as const;
export const ECN_MASK = 3;

/**
 * The outer ECN field for an inner one (RFC 6040 §4.1, normal mode): copied, except CE, which
 * becomes ECT(0) so that a congestion mark set before the tunnel is not counted twice.
 */
export function encapEcn(inner: number): number {
  const e = inner & ECN_MASK;
  return e === Ecn.CE ? Ecn.ECT0 : e;
}

/** What decapsulation does with an inner ECN field under an outer one (RFC 6040 §4.2). */
export const EcnVerdict = {
  /** Forward with the inner field as `decapEcn` returned it. */
  FORWARD: 0,
  /** Forward, but the combination is one the RFC marks (!!!): a peer or the path misbehaves. */
  UNEXPECTED: 1,
  /** Outer CE over a Not-ECT inner packet: the transport cannot be told; drop it. */
  DROP: 2,
} as const;

/**
 * RFC 6040 Figure 4 as data: index outer * 4 + inner → the resulting inner ECN field (low two
 * bits) and the verdict (bits 2..3).
 *
 *                    outer:  Not-ECT  ECT(0)  ECT(1)  CE
 *   inner Not-ECT            Not-ECT  Not-ECT! Not-ECT! drop
 *   inner ECT(0)             ECT(0)   ECT(0)   ECT(1)   CE
 *   inner ECT(1)             ECT(1)   ECT(1)!  ECT(1)   CE
 *   inner CE                 CE       CE       CE!      CE
 *
 * (! = forwarded, but marked "(!)" or "(!!!)" in the RFC: logged and counted as unexpected). Linux differs on one cell: it leaves an
 * inner ECT(0) under an outer ECT(1) as ECT(0) (it only ever propagates CE); we follow the RFC.
 */
const TABLE = new Uint8Array(16);
{
  const V = EcnVerdict;
  const cell = (outer: number, inner: number, result: number, verdict: number) => {
    TABLE[outer * 4 + inner] = result | (verdict << 2);
  };
  for (let inner = 0; inner < 4; inner++) cell(Ecn.NOT_ECT, inner, inner, V.FORWARD);
  cell(Ecn.ECT0, Ecn.NOT_ECT, Ecn.NOT_ECT, V.UNEXPECTED);
  cell(Ecn.ECT0, Ecn.ECT0, Ecn.ECT0, V.FORWARD);
  cell(Ecn.ECT0, Ecn.ECT1, Ecn.ECT1, V.UNEXPECTED);
  cell(Ecn.ECT0, Ecn.CE, Ecn.CE, V.FORWARD);
  cell(Ecn.ECT1, Ecn.NOT_ECT, Ecn.NOT_ECT, V.UNEXPECTED);
  cell(Ecn.ECT1, Ecn.ECT0, Ecn.ECT1, V.FORWARD);
  cell(Ecn.ECT1, Ecn.ECT1, Ecn.ECT1, V.FORWARD);
  cell(Ecn.ECT1, Ecn.CE, Ecn.CE, V.UNEXPECTED);
  cell(Ecn.CE, Ecn.NOT_ECT, Ecn.NOT_ECT, V.DROP);
  cell(Ecn.CE, Ecn.ECT0, Ecn.CE, V.FORWARD);
  cell(Ecn.CE, Ecn.ECT1, Ecn.CE, V.FORWARD);
  cell(Ecn.CE, Ecn.CE, Ecn.CE, V.FORWARD);
}

/** The inner ECN field after decapsulation under `outer` (RFC 6040 Figure 4). */
export function decapEcn(outer: number, inner: number): number {
  return TABLE[(outer & ECN_MASK) * 4 + (inner & ECN_MASK)] & ECN_MASK;
}

export function decapVerdict(outer: number, inner: number): number {
  return TABLE[(outer & ECN_MASK) * 4 + (inner & ECN_MASK)] >>> 2;
}

const ETHERTYPE = 12;
const TPID_8021Q = 0x8100;
const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;

/**
 * Where the inner IP header of the frame at `off` starts, with its version in the top bits:
 * `(version << 24) | offset` (version 4 or 6), or -1 when the frame does not carry IPv4/IPv6
 * or is too short for the fields read here (TOS/traffic class, TTL, DF, flow label).
 */
export function innerIp(b: Uint8Array, off: number, len: number): number {
  if (len < 34) return -1;
  let et = (b[off + ETHERTYPE] << 8) | b[off + ETHERTYPE + 1];
  let l3 = off + 14;
  if (et === TPID_8021Q) {
    et = (b[off + 16] << 8) | b[off + 17];
    l3 += 4;
  }
  if (et === ETH_IPV4 && l3 + 20 <= off + len && b[l3] >>> 4 === 4) return (4 << 24) | l3;
  if (et === ETH_IPV6 && l3 + 40 <= off + len && b[l3] >>> 4 === 6) return (6 << 24) | l3;
  return -1;
}

/** The version (4 or 6) of an `innerIp` result. */
export const ipVersion = (ip: number): number => ip >>> 24;
/** The offset of an `innerIp` result. */
export const ipOffset = (ip: number): number => ip & 0xffffff;

/** The IPv4 TOS or IPv6 traffic class byte of the header at `ip` (an `innerIp` result). */
export function trafficClass(b: Uint8Array, ip: number): number {
  const o = ipOffset(ip);
  return ipVersion(ip) === 4 ? b[o + 1] : ((b[o] & 0x0f) << 4) | (b[o + 1] >>> 4);
}

/** The IPv4 TTL or IPv6 hop limit. */
export function hopLimit(b: Uint8Array, ip: number): number {
  const o = ipOffset(ip);
  return b[o + (ipVersion(ip) === 4 ? 8 : 7)];
}

/** IPv4: the DF bit is set. IPv6 packets are never fragmented on the way: true. */
export function dontFragment(b: Uint8Array, ip: number): boolean {
  return ipVersion(ip) === 6 || (b[ipOffset(ip) + 6] & 0x40) !== 0;
}

/** The IPv6 flow label (20 bits); 0 for IPv4. */
export function flowLabel(b: Uint8Array, ip: number): number {
  if (ipVersion(ip) !== 6) return 0;
  const o = ipOffset(ip);
  return ((b[o + 1] & 0x0f) << 16) | (b[o + 2] << 8) | b[o + 3];
}

/**
 * Set the ECN field of the header at `ip`, fixing the IPv4 header checksum incrementally
 * (RFC 1624: HC' = ~(~HC + ~m + m')), so that a header that verified still does.
 */
export function setEcn(b: Uint8Array, ip: number, ecn: number): void {
  const o = ipOffset(ip);
  if (ipVersion(ip) === 6) {
    // traffic class = low nibble of byte 0 and high nibble of byte 1; ECN = its low two bits
    b[o + 1] = (b[o + 1] & ~0x30) | ((ecn & ECN_MASK) << 4);
    return;
  }
  const oldWord = (b[o] << 8) | b[o + 1];
  b[o + 1] = (b[o + 1] & ~ECN_MASK) | (ecn & ECN_MASK);
  const newWord = (b[o] << 8) | b[o + 1];
  const hc = (b[o + 10] << 8) | b[o + 11];
  let acc = (~hc & 0xffff) + (~oldWord & 0xffff) + newWord;
  acc = (acc & 0xffff) + (acc >>> 16);
  acc = (acc & 0xffff) + (acc >>> 16);
  const sum = ~acc & 0xffff;
  b[o + 10] = sum >>> 8;
  b[o + 11] = sum & 0xff;
}
