import { createHash } from 'node:crypto';
/**
 * MAC addresses as 48-bit numbers: they fit exactly in a double, are cheap map keys and need
 * no allocation. Byte 0 of the address is the most significant byte of the number.
 */

export const BROADCAST = 0xffff_ffff_ffff;
const TWO_POW_32 = 0x1_0000_0000;
const TWO_POW_40 = 0x100_0000_0000;

/** Read 6 bytes at `offset` as a MAC number. The caller has checked the length. */
export function readMac(buf: Uint8Array, offset: number): number {
  return (
    (buf[offset] * 256 + buf[offset + 1]) * TWO_POW_32 +
    ((buf[offset + 2] << 24) >>> 0) +
    (buf[offset + 3] << 16) +
    (buf[offset + 4] << 8) +
    buf[offset + 5]
  );
}

/**
 * The upper and lower 24 bits of the MAC at `offset`: small integers, which cross a call that
 * V8 does not inline without being boxed, where a 48-bit number is (see `Fdb.lookupHalves`).
 */
export function macHi(buf: Uint8Array, offset: number): number {
  return (buf[offset] << 16) | (buf[offset + 1] << 8) | buf[offset + 2];
}
export function macLo(buf: Uint8Array, offset: number): number {
  return (buf[offset + 3] << 16) | (buf[offset + 4] << 8) | buf[offset + 5];
}

/** Write a MAC number as 6 bytes at `offset`. */
export function writeMac(buf: Uint8Array, offset: number, mac: number): void {
  const hi = Math.floor(mac / TWO_POW_32);
  const lo = mac - hi * TWO_POW_32;
  buf[offset] = hi >>> 8;
  buf[offset + 1] = hi & 0xff;
  buf[offset + 2] = lo >>> 24;
  buf[offset + 3] = (lo >>> 16) & 0xff;
  buf[offset + 4] = (lo >>> 8) & 0xff;
  buf[offset + 5] = lo & 0xff;
}

/** Group bit (I/G) of the first octet: multicast, including broadcast. */
export function isMulticast(mac: number): boolean {
  return (Math.floor(mac / TWO_POW_40) & 1) === 1;
}

export function isBroadcast(mac: number): boolean {
  return mac === BROADCAST;
}

export function isZero(mac: number): boolean {
  return mac === 0;
}

/** A source MAC that may be learned: not zero and not a group address (vxlan_snoop rules). */
export function isValidUnicast(mac: number): boolean {
  return mac !== 0 && !isMulticast(mac);
}

/** `aa:bb:cc:dd:ee:ff`, lower case, as `bridge fdb show` prints it. Not for the data path. */
export function formatMac(mac: number): string {
  const bytes = new Uint8Array(6);
  writeMac(bytes, 0, mac);
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + bytes[i].toString(16).padStart(2, '0');
  return s;
}

const MAC_RE =
  /^([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/** Parse `aa:bb:cc:dd:ee:ff` (or with `-`, or bare hex); `undefined` when it is not a MAC. */
export function parseMac(text: string): number | undefined {
  const m = MAC_RE.exec(text.trim());
  if (!m) return undefined;
  const bytes = [m[1], m[3], m[4], m[5], m[6], m[7]].map((h) => parseInt(h, 16));
  return readMac(Uint8Array.from(bytes), 0);
}

/**
 * A locally administered unicast MAC derived from `seed` (vtep uses the TAP name and the VNI),
 * so a TAP re-created after a restart or after `ip link del` comes back with the MAC its peers
 * have learned, instead of a random one they keep stale entries for until those age out.
 */
export function stableMac(seed: string): number {
  const b = createHash('sha256').update(seed).digest();
  b[0] = (b[0] & 0xfc) | 0x02; // locally administered, unicast
  return readMac(b, 0);
}
