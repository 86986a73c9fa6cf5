import { sum, fold, ipv4PseudoSum } from './checksum.js';

/**
 * Offloads at the TAP (IFF_VNET_HDR): the virtio-net header the kernel puts in front of each
 * frame, and the two jobs it leaves to us. A frame marked NEEDS_CSUM carries a partial L4
 * checksum (the pseudo-header sum) that we finish; a TCP "super-frame" of up to 64 KiB (TSO,
 * `gso_type` TCPV4/TCPV6) is cut into `gso_size`-byte segments, each a whole frame with its own
 * IP and TCP headers, lengths, IDs, sequence numbers and checksums, as the kernel's
 * `tcp_gso_segment` would; a UDP one (USO, `gso_type` UDP_L4: a socket's `UDP_SEGMENT` send)
 * into datagrams with their own IP and UDP headers, lengths and checksums, as
 * `__udp_gso_segment` would. Segments are written into a caller's slab, each behind `headroom`
 * bytes for the tunnel headers, so the engine encapsulates them like any frame. Pure and
 * allocation-free; never throws on packet contents (returns 0 for "cannot", a drop).
 *
 * The header's 16-bit fields are little-endian: the virtio "legacy" layout in the byte order of
 * the host, and the hosts we run on (x86-64, arm64) are little-endian.
 */

export const VNET_HDR_LEN = 12;

/**
 * Copy `len` bytes from `src[srcOff]` to `dst[dstOff]`. The default makes a view for each copy
 * between two arrays (an allocation); the composition root passes the addon's `copyBytes`, a
 * memmove that makes none.
 */
export type CopyFn = (
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
) => void;

export const jsCopy: CopyFn = (dst, dstOff, src, srcOff, len) => {
  if (dst === src) dst.copyWithin(dstOff, srcOff, srcOff + len);
  else dst.set(src.subarray(srcOff, srcOff + len), dstOff);
};

/**
 * Copy like `CopyFn` and return the one's complement sum of the bytes copied, folded to 16 bits
 * (`sum` of the range from 0): a segment's payload is copied and summed in one pass. The
 * composition root passes the addon's `copySum`.
 */
export type CopySumFn = (
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
) => number;

export const jsCopySum: CopySumFn = (dst, dstOff, src, srcOff, len) => {
  jsCopy(dst, dstOff, src, srcOff, len);
  let s = sum(dst, dstOff, len);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
};

/**
 * The copies that cut a super-frame into `n` segments: for each k, the `hdrLen` header bytes at
 * `src[srcOff]` to `dst[dstOff + k * stride]` and payload piece k (`size` bytes from
 * `src[srcOff + hdrLen + k * size]`, the last one what is left of `payload`) right behind them;
 * `sums[k]` gets the piece's sum as `CopySumFn` returns it. The composition root passes the
 * addon's `copySegments`, one call a super-frame instead of two a segment.
 */
export type CopySegmentsFn = (
  dst: Uint8Array,
  dstOff: number,
  stride: number,
  src: Uint8Array,
  srcOff: number,
  hdrLen: number,
  size: number,
  payload: number,
  n: number,
  sums: Uint32Array,
) => void;

/** `CopySegmentsFn` with `copy` and `copySum`, segment by segment. */
export function copySegmentsWith(copy: CopyFn, copySum: CopySumFn): CopySegmentsFn {
  return (dst, dstOff, stride, src, srcOff, hdrLen, size, payload, n, sums) => {
    for (let k = 0; k < n; k++) {
      const o = dstOff + k * stride;
      copy(dst, o, src, srcOff, hdrLen);
      sums[k] = copySum(
        dst,
        o + hdrLen,
        src,
        srcOff + hdrLen + k * size,
        Math.min(size, payload - k * size),
      );
    }
  };
}

export const jsCopySegments: CopySegmentsFn = copySegmentsWith(jsCopy, jsCopySum);

export const VnetFlags = { NEEDS_CSUM: 1, DATA_VALID: 2 } as const;
export const GsoType = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

/**
 * The kernel's TUNSETOFFLOAD bits (linux/if_tun.h). USO4 and USO6 (Linux 6.2) go together: the
 * kernel turns on UDP segmentation offload only with both, and refuses bits it does not know.
 */
export const TunOffload = {
  CSUM: 0x01,
  TSO4: 0x02,
  TSO6: 0x04,
  TSO_ECN: 0x08,
  UFO: 0x10,
  USO4: 0x20,
  USO6: 0x40,
} as const;

export interface VnetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function readVnetHdr(b: Uint8Array, o: number, out: VnetHdr): VnetHdr {
  out.flags = b[o];
  out.gsoType = b[o + 1];
  out.hdrLen = b[o + 2] | (b[o + 3] << 8);
  out.gsoSize = b[o + 4] | (b[o + 5] << 8);
  out.csumStart = b[o + 6] | (b[o + 7] << 8);
  out.csumOffset = b[o + 8] | (b[o + 9] << 8);
  return out;
}

export function writeVnetHdr(b: Uint8Array, o: number, h: VnetHdr): void {
  b[o] = h.flags;
  b[o + 1] = h.gsoType;
  b[o + 2] = h.hdrLen & 0xff;
  b[o + 3] = h.hdrLen >> 8;
  b[o + 4] = h.gsoSize & 0xff;
  b[o + 5] = h.gsoSize >> 8;
  b[o + 6] = h.csumStart & 0xff;
  b[o + 7] = h.csumStart >> 8;
  b[o + 8] = h.csumOffset & 0xff;
  b[o + 9] = h.csumOffset >> 8;
  b[o + 10] = 0;
  b[o + 11] = 0;
}

/**
 * Finish a partial checksum (NEEDS_CSUM): the field at `csumStart + csumOffset` holds the
 * pseudo-header sum; the one's complement sum from `csumStart` to the end goes there. Returns
 * false (nothing written) when the offsets do not fit the frame.
 */
export function finishChecksum(
  b: Uint8Array,
  off: number,
  len: number,
  csumStart: number,
  csumOffset: number,
): boolean {
  const at = csumStart + csumOffset;
  if (csumStart >= len || at + 2 > len) return false;
  const c = fold(sum(b, off + csumStart, len - csumStart));
  b[off + at] = c >> 8;
  b[off + at + 1] = c & 0xff;
  return true;
}

/** Where the IP header starts after Ethernet (and one 802.1Q/802.1ad tag), and its version. */
function l3(b: Uint8Array, off: number, len: number): { at: number; v: 4 | 6 } | undefined {
  if (len < 14) return undefined;
  let at = 12;
  let type = (b[off + at] << 8) | b[off + at + 1];
  if (type === 0x8100 || type === 0x88a8) {
    at += 4;
    if (len < at + 2) return undefined;
    type = (b[off + at] << 8) | b[off + at + 1];
  }
  at += 2;
  if (type === 0x0800) return { at, v: 4 };
  if (type === 0x86dd) return { at, v: 6 };
  return undefined;
}

/** Where `segment` put the segments: offsets into the destination and lengths. */
export interface Segments {
  offsets: Uint32Array;
  lengths: Uint32Array;
}

const TCP = 6;
const UDP = 17;
/** Each segment's payload sum, filled by `copySegments` (grown once if `out` holds more). */
let sums = new Uint32Array(1024);

/**
 * Cut a super-frame (`b[off .. off+len)`, header `h`: gso_type TCPV4 or TCPV6 for TCP, UDP_L4
 * for UDP) into segments of at most `h.gsoSize` payload bytes, written one after another into
 * `dst[dstOff .. dstOff+room)`, each behind `headroom` free bytes. Returns the number of segments
 * (their offsets and lengths in `out`); -1 when they need more than `room` (flush and call again
 * with more); 0 when the frame cannot be segmented (not TCP or UDP over IPv4/IPv6 as the header
 * says, a segment size of 0, more than `out` holds): a drop for the caller. Segments start
 * `align` bytes apart at least; with `align` 1 they are packed exactly `headroom + hdrLen + size`
 * apart, the layout UDP GSO sends in one call (each datagram: our header in the headroom, then a
 * segment).
 */
export function segment(
  b: Uint8Array,
  off: number,
  len: number,
  h: VnetHdr,
  dst: Uint8Array,
  dstOff: number,
  room: number,
  headroom: number,
  out: Segments,
  align = 8,
  copySegments: CopySegmentsFn = jsCopySegments,
): number {
  const net = l3(b, off, len);
  if (net === undefined || h.gsoSize === 0) return 0;
  const proto = (h.gsoType & ~GsoType.ECN) === GsoType.UDP_L4 ? UDP : TCP;
  const ipHdrLen = net.v === 4 ? (b[off + net.at] & 0x0f) * 4 : 40;
  const l4 = net.v === 4 ? net.at + ipHdrLen : h.csumStart;
  if (net.v === 4 && (ipHdrLen < 20 || b[off + net.at + 9] !== proto)) return 0;
  if (net.v === 6 && (l4 < net.at + 40 || (l4 === net.at + 40 && b[off + net.at + 6] !== proto)))
    return 0;
  if (l4 + (proto === TCP ? 20 : 8) > len) return 0;
  const l4HdrLen = proto === TCP ? (b[off + l4 + 12] >> 4) * 4 : 8;
  const hdrLen = l4 + l4HdrLen;
  if ((proto === TCP && l4HdrLen < 20) || hdrLen > len) return 0;
  const payload = len - hdrLen;
  const size = h.gsoSize;
  const n = Math.max(1, Math.ceil(payload / size));
  if (n > out.lengths.length) return 0;
  const stride = Math.ceil((headroom + hdrLen + Math.min(size, payload)) / align) * align;
  if (n * stride > room) return -1;

  const id0 = net.v === 4 ? (b[off + net.at + 4] << 8) | b[off + net.at + 5] : 0;
  // Pseudo-header parts that do not change between segments.
  const pseudo = l4PseudoSum(b, off + net.at, net.v, proto, 0);
  if (n > sums.length) sums = new Uint32Array(n);
  copySegments(dst, dstOff + headroom, stride, b, off, hdrLen, size, payload, n, sums);

  for (let k = 0; k < n; k++) {
    const o = dstOff + k * stride + headroom;
    const segLen = hdrLen + Math.min(size, payload - k * size);
    // the L4 header is a whole number of 32-bit words: the payload's sum adds as it is
    const payloadSum = sums[k];
    if (net.v === 4) {
      const ip = o + net.at;
      writeU16(dst, ip + 2, segLen - net.at);
      writeU16(dst, ip + 4, (id0 + k) & 0xffff);
      setIpv4Checksum(dst, ip, ipHdrLen);
    } else writeU16(dst, o + net.at + 4, segLen - net.at - 40);
    const t = o + l4;
    const l4Len = segLen - l4;
    if (proto === TCP) tcpFields(dst, t, b, off + l4, k, n, size);
    else writeU16(dst, t + 4, l4Len);
    const csum = t + (proto === TCP ? 16 : 6);
    dst[csum] = 0;
    dst[csum + 1] = 0;
    const c = fold(sum(dst, t, l4HdrLen, pseudo + l4Len + payloadSum));
    // UDP: a computed 0 goes as 0xffff, 0 meaning "no checksum" (RFC 768)
    writeU16(dst, csum, proto === UDP && c === 0 ? 0xffff : c);
    out.offsets[k] = o;
    out.lengths[k] = segLen;
  }
  return n;
}

/**
 * The TCP fields of segment `k` of `n` (header at `dst[t]`, the super-frame's at `b[src]`): its
 * sequence number, FIN and PSH only on the last, CWR only on the first.
 */
function tcpFields(
  dst: Uint8Array,
  t: number,
  b: Uint8Array,
  src: number,
  k: number,
  n: number,
  mss: number,
): void {
  writeU32(dst, t + 4, (readU32(b, src + 4) + k * mss) >>> 0);
  let flags = b[src + 13];
  if (k < n - 1) flags &= ~0x09;
  if (k > 0) flags &= ~0x80;
  dst[t + 13] = flags;
}

/** Recompute the IPv4 header checksum of the `len`-byte header at `ip`. */
export function setIpv4Checksum(b: Uint8Array, ip: number, len: number): void {
  b[ip + 10] = 0;
  b[ip + 11] = 0;
  writeU16(b, ip + 10, fold(sum(b, ip, len)));
}

/**
 * The pseudo-header sum (RFC 768/793/8200) for the IP header at `ip` and `l4Len` bytes of
 * protocol `proto` (6 TCP, 17 UDP).
 */
export function l4PseudoSum(
  b: Uint8Array,
  ip: number,
  v: 4 | 6,
  proto: number,
  l4Len: number,
): number {
  if (v === 4) return ipv4PseudoSum(readU32(b, ip + 12), readU32(b, ip + 16), proto, l4Len);
  return sum(b, ip + 8, 32) + proto + Math.floor(l4Len / 0x10000) + (l4Len & 0xffff);
}

/** A virtio-net header asking for nothing, to fill (`readVnetHdr`) or to write. */
export function emptyVnetHdr(): VnetHdr {
  return { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
}

export function readU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >> 8;
  b[o + 1] = v & 0xff;
}
