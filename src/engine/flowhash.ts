import { EtherType } from '../wire/ethernet.js';
import { IpProtocol } from '../wire/ipv4.js';

/**
 * Flow hash of an inner Ethernet frame for the outer UDP source port (RFC 7348 §5: "a hash of
 * fields from the inner packet", so that ECMP and RSS on the underlay spread flows while the
 * packets of one flow stay in order). Covers the MACs and EtherType, and for IPv4/IPv6 the
 * addresses, protocol and, for unfragmented TCP/UDP/SCTP, the ports. Reads only inside `len`.
 */
export function flowHash(buf: Uint8Array, off: number, len: number): number {
  let h = 0x9747b28c;
  const end = off + len;
  // MACs and the (outer) EtherType: bytes 0..14
  for (let i = off; i < off + 12; i += 4) h = mix(h, word(buf, i, end));
  let type = ((buf[off + 12] << 8) | buf[off + 13]) >>> 0;
  let l3 = off + 14;
  if ((type === EtherType.VLAN || type === EtherType.QINQ) && l3 + 4 <= end) {
    h = mix(h, ((buf[l3] << 8) | buf[l3 + 1]) & 0x0fff); // the VLAN ID is part of the flow
    type = (buf[l3 + 2] << 8) | buf[l3 + 3];
    l3 += 4;
  }
  h = mix(h, type);
  let proto = -1;
  let l4 = -1;
  if (type === EtherType.IPV4 && l3 + 20 <= end) {
    proto = buf[l3 + 9];
    h = mix(mix(mix(h, word(buf, l3 + 12, end)), word(buf, l3 + 16, end)), proto);
    const fragmented = (((buf[l3 + 6] << 8) | buf[l3 + 7]) & 0x3fff) !== 0;
    if (!fragmented) l4 = l3 + (buf[l3] & 0x0f) * 4;
  } else if (type === EtherType.IPV6 && l3 + 40 <= end) {
    proto = buf[l3 + 6];
    for (let i = l3 + 8; i < l3 + 40; i += 4) h = mix(h, word(buf, i, end));
    h = mix(h, proto);
    l4 = l3 + 40;
  }
  if (
    l4 >= 0 &&
    l4 + 4 <= end &&
    (proto === IpProtocol.TCP || proto === IpProtocol.UDP || proto === 132)
  ) {
    h = mix(h, word(buf, l4, end));
  }
  return finalize(h);
}

/** The source port for a hash, in [min, max] (default 49152..65535, the dynamic range). */
export function sourcePort(hash: number, min: number, max: number): number {
  return min + (hash % (max - min + 1));
}

function word(buf: Uint8Array, i: number, end: number): number {
  if (i + 4 > end) return 0;
  return ((buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) | buf[i + 3]) >>> 0;
}

// murmur3-style mixing: cheap, and every input bit reaches every output bit.
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finalize(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A flow label from a flow hash, never 0 (0 asks the kernel for its own), as Linux folds it. */
export function autoLabel(hash: number): number {
  return (hash ^ (hash >>> 12)) & 0xfffff || 1;
}
