import { isIPv4, isIPv6 } from 'node:net';

/**
 * Address slots shared with the addon, one per datagram (ADDR_LEN bytes each):
 * [0] family (4 or 6), [1] flags (bit 0: truncated on receive), [2..4) port big-endian,
 * [4..20) address (IPv4 uses the first 4 bytes). Kept in typed arrays so that receiving
 * and sending allocate nothing per datagram.
 */
export const ADDR_LEN = 20;
export const ADDR_TRUNCATED = 1;

export function addrFamily(addrs: Uint8Array, slot: number): number {
  return addrs[slot * ADDR_LEN];
}

export function addrTruncated(addrs: Uint8Array, slot: number): boolean {
  return (addrs[slot * ADDR_LEN + 1] & ADDR_TRUNCATED) !== 0;
}

export function addrPort(addrs: Uint8Array, slot: number): number {
  const o = slot * ADDR_LEN;
  return (addrs[o + 2] << 8) | addrs[o + 3];
}

/** IPv4 address of a slot as an unsigned 32-bit number (0 for IPv6 slots). */
export function addrIpv4(addrs: Uint8Array, slot: number): number {
  const o = slot * ADDR_LEN + 4;
  return addrs[0 + slot * ADDR_LEN] === 4
    ? ((addrs[o] << 24) | (addrs[o + 1] << 16) | (addrs[o + 2] << 8) | addrs[o + 3]) >>> 0
    : 0;
}

/**
 * A number identifying an IPv4 address:port (address * 65536 + port, < 2^48), for Map keys on
 * the data path; -1 for IPv6 slots (use `addrToString`).
 */
export function addrKey4(addrs: Uint8Array, slot: number): number {
  if (addrs[slot * ADDR_LEN] !== 4) return -1;
  return addrIpv4(addrs, slot) * 65536 + addrPort(addrs, slot);
}

/** Textual address of a slot (`192.0.2.1`, `2001:db8::1`). Not for the per-packet path. */
export function addrToString(addrs: Uint8Array, slot: number): string {
  const o = slot * ADDR_LEN + 4;
  if (addrs[slot * ADDR_LEN] === 4)
    return `${addrs[o]}.${addrs[o + 1]}.${addrs[o + 2]}.${addrs[o + 3]}`;
  return formatIpv6Bytes(addrs, o);
}

/** The 16 bytes of an IPv6 address at `o` as text (RFC 5952). */
export function formatIpv6Bytes(b: Uint8Array, o = 0): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[o + i] << 8) | b[o + i + 1]).toString(16));
  return compressIpv6(groups);
}

function compressIpv6(groups: string[]): string {
  // RFC 5952: the longest run (≥ 2) of zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Write `address`:`port` into a slot. Throws for text that is not an IP address (configuration). */
export function writeAddr(addrs: Uint8Array, slot: number, address: string, port: number): void {
  const o = slot * ADDR_LEN;
  addrs.fill(0, o, o + ADDR_LEN);
  addrs[o + 2] = port >>> 8;
  addrs[o + 3] = port & 0xff;
  if (isIPv4(address)) {
    addrs[o] = 4;
    address.split('.').forEach((p, i) => (addrs[o + 4 + i] = Number(p)));
    return;
  }
  if (!isIPv6(address)) {
    throw Object.assign(new Error(`not an IP address: ${JSON.stringify(address)}`), {
      code: 'ERR_ADDRESS',
    });
  }
  addrs[o] = 6;
  addrs.set(ipv6Bytes(address), o + 4);
}

/** The 16 bytes of a valid IPv6 address (`::`, an embedded IPv4 tail and a zone are handled). */
export function ipv6Bytes(address: string): Uint8Array {
  let text = address.split('%')[0];
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const p = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail.push((p[0] << 8) | p[1], (p[2] << 8) | p[3]);
    text = text.slice(0, lastColon + 1);
  }
  const words = (part: string | undefined) =>
    (part ?? '')
      .split(':')
      .filter((x) => x !== '')
      .map((x) => parseInt(x, 16));
  const [head, rest] = text.split('::');
  const front = words(head);
  const back = [...words(rest), ...tail];
  const zeros = rest === undefined ? [] : new Array<number>(8 - front.length - back.length).fill(0);
  const out = new Uint8Array(16);
  [...front, ...zeros, ...back].forEach((w, i) => {
    out[i * 2] = w >>> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/**
 * The one spelling of an address used everywhere (config, control requests, FDB keys, the
 * sender table): IPv4 as dotted quad, IPv6 in RFC 5952 form (`2001:DB8:0:0::1` → `2001:db8::1`),
 * and an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as the IPv4 address it is. `undefined`
 * for anything else, including a scoped address (`fe80::1%eth0`): a VTEP's remotes are global.
 */
export function canonicalAddress(text: string): string | undefined {
  if (isIPv4(text)) return text;
  if (!isIPv6(text) || text.includes('%')) return undefined;
  const b = ipv6Bytes(text);
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const slot = new Uint8Array(ADDR_LEN);
  slot[0] = 6;
  slot.set(b, 4);
  return addrToString(slot, 0);
}

/** `0.0.0.0` or `::` (canonical text): any address of its family, as a bound `local`. */
export function isUnspecified(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** A multicast group (224.0.0.0/4, ff00::/8), given in canonical text. */
export function isMulticastAddress(address: string): boolean {
  return isIPv4(address) ? /^(22[4-9]|23\d)\./.test(address) : /^ff/i.test(address);
}

/** Copy slot `from` of `src` to slot `to` of `dst`. */
export function copyAddr(src: Uint8Array, from: number, dst: Uint8Array, to: number): void {
  dst.set(src.subarray(from * ADDR_LEN, from * ADDR_LEN + ADDR_LEN), to * ADDR_LEN);
}
