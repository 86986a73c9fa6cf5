import { fold } from './checksum.js';
import {
  GsoType,
  VnetFlags,
  jsCopy,
  readU32,
  setIpv4Checksum,
  tcpPseudoSum,
  writeVnetHdr,
  type CopyFn,
  type VnetHdr,
} from './gso.js';

/**
 * Receive coalescing for the TAP (the kernel's GRO rules, `tcp_gro_receive`): consecutive TCP
 * segments of one flow, decapsulated in one batch, are written into the TAP as one frame with a
 * virtio-net header that says "a TCP super-frame of MSS-sized segments, checksum partial". The
 * stack behind the TAP then handles one packet where it would have handled dozens, and we make
 * one write instead of dozens. Only what the kernel would merge is merged: untagged IPv4 (no
 * options, no fragments) or IPv6 (no extension headers), ACK with at most PSH, the same headers
 * but for lengths, IDs, sequence numbers and checksums, contiguous sequence numbers, every
 * segment but the last of the same size, 64 KiB at most. Pure and allocation-free.
 */

export interface TcpSeg {
  v: 4 | 6;
  l4: number;
  hdrLen: number;
  payload: number;
  seq: number;
  flags: number;
}

const L3 = 14;
const ACK = 0x10;
const PSH = 0x08;

/** Parse a frame for coalescing: true (and `out` filled) when it is a segment that may merge. */
export function tcpSegment(b: Uint8Array, off: number, len: number, out: TcpSeg): boolean {
  if (len < L3 + 40) return false;
  const type = (b[off + 12] << 8) | b[off + 13];
  let l4: number;
  if (type === 0x0800) {
    const ip = off + L3;
    if (b[ip] !== 0x45 || b[ip + 9] !== 6 || ((b[ip + 6] << 8) | b[ip + 7]) & 0x3fff) return false;
    if (((b[ip + 2] << 8) | b[ip + 3]) !== len - L3) return false;
    out.v = 4;
    l4 = L3 + 20;
  } else if (type === 0x86dd) {
    const ip = off + L3;
    if (b[ip + 6] !== 6 || ((b[ip + 4] << 8) | b[ip + 5]) !== len - L3 - 40) return false;
    out.v = 6;
    l4 = L3 + 40;
  } else return false;
  if (len < l4 + 20) return false;
  const t = off + l4;
  const hdrLen = l4 + (b[t + 12] >> 4) * 4;
  const flags = b[t + 13];
  if (hdrLen < l4 + 20 || hdrLen >= len || (flags & ~PSH) !== ACK) return false;
  out.l4 = l4;
  out.hdrLen = hdrLen;
  out.payload = len - hdrLen;
  out.seq = readU32(b, t + 4);
  out.flags = flags;
  return true;
}

function same(a: Uint8Array, ao: number, b: Uint8Array, bo: number, from: number, to: number) {
  for (let i = from; i < to; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/**
 * May segment `s` (at `b[off]`) follow a run that starts with `f` (at `first[fOff]`) and whose
 * next sequence number is `next`? Everything but lengths, IP ID, sequence number, PSH and the
 * checksums must be equal.
 */
export function canFollow(
  first: Uint8Array,
  fOff: number,
  f: TcpSeg,
  b: Uint8Array,
  off: number,
  s: TcpSeg,
  next: number,
): boolean {
  if (s.v !== f.v || s.hdrLen !== f.hdrLen || s.seq !== next) return false;
  if (!same(first, fOff, b, off, 0, L3)) return false;
  if (f.v === 4) {
    if (!same(first, fOff, b, off, L3, L3 + 2) || !same(first, fOff, b, off, L3 + 6, L3 + 10))
      return false;
    if (!same(first, fOff, b, off, L3 + 12, L3 + 20)) return false;
  } else if (!same(first, fOff, b, off, L3, L3 + 4) || !same(first, fOff, b, off, L3 + 6, L3 + 40))
    return false;
  const t = f.l4;
  return (
    same(first, fOff, b, off, t, t + 4) && // ports
    same(first, fOff, b, off, t + 8, t + 13) && // ack, data offset
    (first[fOff + t + 13] & ~PSH) === (b[off + t + 13] & ~PSH) &&
    same(first, fOff, b, off, t + 14, t + 16) && // window
    same(first, fOff, b, off, t + 20, f.hdrLen) // options (timestamps too, as the kernel does)
  );
}

/**
 * Write the run as one frame at `dst[dstOff]`: the first segment's headers, then the payloads
 * of all `count` segments (`offs`/`lens` in `slab`, each a whole frame with `f.hdrLen` bytes of
 * headers), with the lengths, PSH (from the last) and the IPv4 header checksum fixed, and the
 * TCP checksum field holding the pseudo-header sum (CHECKSUM_PARTIAL); its virtio-net header goes
 * to `meta[metaOff]`. Returns the frame's length.
 */
export function coalesce(
  slab: Uint8Array,
  offs: Uint32Array,
  lens: Uint32Array,
  count: number,
  f: TcpSeg,
  dst: Uint8Array,
  dstOff: number,
  meta: Uint8Array,
  metaOff: number,
  h: VnetHdr,
  copy: CopyFn = jsCopy,
): number {
  copy(dst, dstOff, slab, offs[0], f.hdrLen);
  let at = dstOff + f.hdrLen;
  let psh = 0;
  for (let k = 0; k < count; k++) {
    copy(dst, at, slab, offs[k] + f.hdrLen, lens[k] - f.hdrLen);
    at += lens[k] - f.hdrLen;
    psh |= slab[offs[k] + f.l4 + 13] & PSH;
  }
  const len = at - dstOff;
  const ip = dstOff + L3;
  const t = dstOff + f.l4;
  const tcpLen = len - f.l4;
  if (f.v === 4) {
    dst[ip + 2] = (len - L3) >> 8;
    dst[ip + 3] = (len - L3) & 0xff;
    setIpv4Checksum(dst, ip, 20);
  } else {
    dst[ip + 4] = (len - L3 - 40) >> 8;
    dst[ip + 5] = (len - L3 - 40) & 0xff;
  }
  dst[t + 13] = (dst[t + 13] & ~PSH) | psh;
  // CHECKSUM_PARTIAL: the field holds the (uncomplemented) pseudo-header sum.
  const partial = ~fold(tcpPseudoSum(dst, ip, f.v, tcpLen)) & 0xffff;
  dst[t + 16] = partial >> 8;
  dst[t + 17] = partial & 0xff;
  h.flags = VnetFlags.NEEDS_CSUM;
  h.gsoType = f.v === 4 ? GsoType.TCPV4 : GsoType.TCPV6;
  h.hdrLen = f.hdrLen;
  h.gsoSize = lens[0] - f.hdrLen;
  h.csumStart = f.l4;
  h.csumOffset = 16;
  writeVnetHdr(meta, metaOff, h);
  return len;
}
