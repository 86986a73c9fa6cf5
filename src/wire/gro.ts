import { fold, sum } from './checksum.js';
import {
  GsoType,
  VnetFlags,
  jsCopy,
  jsCopySum,
  readU32,
  setIpv4Checksum,
  l4PseudoSum,
  writeVnetHdr,
  type CopyFn,
  type CopySumFn,
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
 * segment but the last of the same size, 64 KiB at most, and only segments whose checksums
 * verify. Pure and allocation-free.
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

/** What `coalesce` wrote: the frame's length and how many segments it holds. */
export interface Coalesced {
  len: number;
  segments: number;
  /** It stopped before segment `from + segments`, whose IPv4 header or TCP checksum is wrong. */
  bad: boolean;
}

/**
 * Write segments `from`.. of the run as one frame at `dst[dstOff]`: the first one's headers,
 * then the payloads (`offs`/`lens` in `slab`, each a whole frame with `f.hdrLen` bytes of
 * headers), with the lengths, PSH (from the last) and the IPv4 header checksum fixed, and the TCP
 * checksum field holding the pseudo-header sum (CHECKSUM_PARTIAL); its virtio-net header goes to
 * `meta[metaOff]`. CHECKSUM_PARTIAL tells the stack behind the TAP that the data is as the
 * sender sent it, so each segment's own checksums must verify before it joins, as the kernel's
 * GRO checks them before it merges: the payload is summed during its copy (`copySum`), and the
 * frame stops before the first segment that does not verify (`out.bad`; the caller delivers that
 * one alone, untouched, for the guest to drop and count). `out.segments` may then be 0 or 1.
 */
export function coalesce(
  slab: Uint8Array,
  offs: Uint32Array,
  lens: Uint32Array,
  from: number,
  count: number,
  f: TcpSeg,
  dst: Uint8Array,
  dstOff: number,
  meta: Uint8Array,
  metaOff: number,
  h: VnetHdr,
  out: Coalesced,
  copy: CopyFn = jsCopy,
  copySum: CopySumFn = jsCopySum,
): void {
  copy(dst, dstOff, slab, offs[from], f.hdrLen);
  let at = dstOff + f.hdrLen;
  let psh = 0;
  let k = from;
  out.bad = false;
  for (; k < count; k++) {
    const o = offs[k];
    const payload = lens[k] - f.hdrLen;
    const payloadSum = copySum(dst, at, slab, o + f.hdrLen, payload);
    if (!verifies(slab, o, lens[k], f, payloadSum)) {
      out.bad = true;
      break;
    }
    at += payload;
    psh |= slab[o + f.l4 + 13] & PSH;
  }
  out.segments = k - from;
  out.len = at - dstOff;
  if (out.segments < 2) return;
  const len = out.len;
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
  const partial = ~fold(l4PseudoSum(dst, ip, f.v, 6, tcpLen)) & 0xffff;
  dst[t + 16] = partial >> 8;
  dst[t + 17] = partial & 0xff;
  h.flags = VnetFlags.NEEDS_CSUM;
  h.gsoType = f.v === 4 ? GsoType.TCPV4 : GsoType.TCPV6;
  h.hdrLen = f.hdrLen;
  h.gsoSize = lens[from] - f.hdrLen;
  h.csumStart = f.l4;
  h.csumOffset = 16;
  writeVnetHdr(meta, metaOff, h);
}

/**
 * Do the segment's IPv4 header checksum (20 bytes: `tcpSegment` takes no options) and its TCP
 * checksum verify? `payloadSum` is its payload's sum; the headers are whole 32-bit words, so the
 * sums add as they are.
 */
function verifies(b: Uint8Array, off: number, len: number, f: TcpSeg, payloadSum: number): boolean {
  const ip = off + L3;
  if (f.v === 4 && fold(sum(b, ip, 20)) !== 0) return false;
  const tcpLen = len - f.l4;
  const acc = l4PseudoSum(b, ip, f.v, 6, tcpLen) + sum(b, off + f.l4, f.hdrLen - f.l4, payloadSum);
  return fold(acc) === 0;
}
