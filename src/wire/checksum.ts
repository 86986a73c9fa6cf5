/**
 * The Internet checksum (RFC 1071): one's complement sum of 16-bit big-endian words.
 * `sum` returns the unfolded 32-bit-ish accumulator so pseudo headers and payloads can be
 * summed separately; `fold` finishes it.
 */

export function sum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  let acc = initial;
  const end = offset + length - 1;
  let i = offset;
  for (; i < end; i += 2) acc += (buf[i] << 8) | buf[i + 1];
  if (i === end) acc += buf[i] << 8; // odd length: pad with a zero byte
  // Keep the accumulator well inside 2^53 even for jumbo inputs.
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
