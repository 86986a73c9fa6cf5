import type { Remote } from '../fdb/remote.js';
import { ADDR_LEN, addrFamily, addrIpv4, ipv6Bytes } from '../io/addr.js';
import { parseIpv4Address } from '../wire/ipv4.js';

/**
 * Who may send to a VNI: remote VTEPs by underlay address, looked up per received datagram
 * straight from its address slot. IPv4 addresses are numbers; IPv6 ones are hashed from their 16
 * bytes and compared byte for byte, so a lookup builds no string and allocates nothing for either
 * family (text is made only when a new sender is learned).
 */
export class SenderTable {
  private readonly v4 = new Map<number, Remote>();
  /** hash → the IPv6 senders with that hash, each with its 16 address bytes. */
  private readonly v6 = new Map<number, { bytes: Uint8Array; remote: Remote }[]>();
  private count6 = 0;

  get size(): number {
    return this.v4.size + this.count6;
  }

  add(r: Remote): void {
    if (r.family === 4) {
      this.v4.set(parseIpv4Address(r.address)!, r);
      return;
    }
    const bytes = ipv6Bytes(r.address);
    const h = hash6(bytes, 0);
    const bucket = this.v6.get(h);
    const same = bucket?.find((e) => equal16(e.bytes, 0, bytes, 0));
    if (same) same.remote = r;
    else {
      if (bucket) bucket.push({ bytes, remote: r });
      else this.v6.set(h, [{ bytes, remote: r }]);
      this.count6++;
    }
  }

  /** The sender of datagram `slot` in an address array (src/io/addr.ts layout), if known. */
  lookup(addrs: Uint8Array, slot: number): Remote | undefined {
    if (addrFamily(addrs, slot) === 4) return this.v4.get(addrIpv4(addrs, slot));
    const o = slot * ADDR_LEN + 4;
    const bucket = this.v6.get(hash6(addrs, o));
    if (bucket === undefined) return undefined;
    for (let k = 0; k < bucket.length; k++)
      if (equal16(bucket[k].bytes, 0, addrs, o)) return bucket[k].remote;
    return undefined;
  }

  clear(): void {
    this.v4.clear();
    this.v6.clear();
    this.count6 = 0;
  }
}

/** FNV-1a over 16 bytes, as a 32-bit number. */
function hash6(b: Uint8Array, o: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 16; i++) h = Math.imul(h ^ b[o + i], 0x01000193);
  return h >>> 0;
}

function equal16(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < 16; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}
