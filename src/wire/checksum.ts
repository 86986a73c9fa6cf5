/**
 * The Internet checksum (RFC 1071): one's complement sum of 16-bit big-endian words.
 * `sum` returns the unfolded 32-bit-ish accumulator so pseudo headers and payloads can be
 * summed separately; `fold` finishes it.
 */

/** The byte-pair loop: the reference, and the path for short inputs. */
export function sumBytes(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  let acc = initial;
  const end = offset + length - 1;
  let i = offset;
  for (; i < end; i += 2) acc += (buf[i] << 8) | buf[i + 1];
  if (i === end) acc += buf[i] << 8; // odd length: pad with a zero byte
  // Keep the accumulator well inside 2^53 even for jumbo inputs.
  return (acc & 0xffff) + Math.floor(acc / 0x10000);
}

/** 32-bit word views of the buffers we sum, made once per ArrayBuffer (slabs live long). */
const words = new WeakMap<ArrayBufferLike, Uint32Array>();
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Sum for checksums. Long inputs (segment payloads, whole frames whose checksum we finish) are
 * read four bytes at a time through a Uint32Array over the slab, in the host's (little-endian)
 * order: the one's complement sum does not depend on byte order (RFC 1071 §2(B)), so the sum of
 * byte-swapped words is the byte-swapped sum, swapped back once at the end.
 */
export function sum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  if (length < 128 || !LITTLE_ENDIAN) return sumBytes(buf, offset, length, initial);
  const base = buf.byteOffset;
  const end = offset + length;
  let acc = initial;
  let i = offset;
  // Bytes until the address is 4-aligned: even positions (from `offset`) are high bytes.
  for (; (base + i) & 3; i++) acc += (i - offset) & 1 ? buf[i] : buf[i] << 8;
  let w = words.get(buf.buffer);
  if (w === undefined) {
    w = new Uint32Array(buf.buffer, 0, buf.buffer.byteLength >>> 2);
    words.set(buf.buffer, w);
  }
  const first = (base + i) >>> 2;
  const last = (base + end) >>> 2;
  let s = 0;
  for (let j = first; j < last; j++) {
    const x = w[j];
    s += (x & 0xffff) + (x >>> 16);
  }
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  // Words starting at an even position were read byte-swapped.
  acc += (i - offset) & 1 ? s : ((s & 0xff) << 8) | (s >>> 8);
  for (i = (last << 2) - base; i < end; i++) acc += (i - offset) & 1 ? buf[i] : buf[i] << 8;
  return (acc & 0xffff) + Math.floor(acc / 0x10000);
}

/** Fold carries and complement: the value to put in a checksum field. */
export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return ~acc & 0xffff;
}

export function checksum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  return fold(sum(buf, offset, length, initial));
}

/** Sum of the IPv4 pseudo header for TCP/UDP (RFC 768). Addresses as uint32. */
export function ipv4PseudoSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/** Sum of the IPv6 pseudo header (RFC 8200 §8.1). Addresses as 16-byte arrays. */
export function ipv6PseudoSum(
  src: Uint8Array,
  dst: Uint8Array,
  nextHeader: number,
  length: number,
): number {
  let acc = sum(src, 0, 16) + sum(dst, 0, 16);
  acc += Math.floor(length / 0x10000) + (length & 0xffff) + nextHeader;
  return acc;
}
