import { ipv6Bytes } from '../io/addr.js';
import { parseIpv4Address } from '../wire/ipv4.js';

/**
 * IP → MAC per VNI, for ARP/ND suppression (Linux `neigh_suppress`): learned from the ARP and
 * ND messages seen on either side, aged like the FDB, bounded (the least recently updated goes
 * first). Keys: IPv4 addresses as numbers; IPv6 ones as hex text, made only for ND messages,
 * which are rare next to data.
 */
interface Neigh {
  mac: number;
  updated: number;
  /** When it was last news for other threads' copies (learned, changed, or half aged since). */
  told: number;
}

export class NeighTable {
  private readonly entries = new Map<number | string, Neigh>();
  /** Set by a control plane (EVPN MAC+IP routes): never aged, not overridden by snooping. */
  private readonly pinned = new Map<number | string, number>();

  constructor(
    readonly ageingMs: number,
    readonly max = 4096,
  ) {}

  get size(): number {
    return this.entries.size + this.pinned.size;
  }

  /** `ip` is at `mac` until unpinned (undefined: unpin; snooping takes over again). */
  pin(ip: number | string, mac: number | undefined): void {
    if (mac === undefined) this.pinned.delete(ip);
    else this.pinned.set(ip, mac);
  }

  /**
   * Returns whether this is news for copies of the table elsewhere (workers): a new address, a
   * new MAC, or a confirmation half an ageing time after the last news; not every confirmation.
   */
  learn(ip: number | string, mac: number, now: number): boolean {
    if (this.pinned.has(ip)) return false;
    const old = this.entries.get(ip);
    const news = old === undefined || old.mac !== mac || now - old.told >= this.ageingMs / 2;
    // Re-inserted at the end: the map's order is the order of updates.
    this.entries.delete(ip);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(ip, { mac, updated: now, told: news ? now : old.told });
    return news;
  }

  /** The MAC for `ip`, unless unknown or not confirmed for `ageingMs`. */
  /** `lookup` without forgetting an aged entry (`vtep trace`). */
  peek(ip: number | string, now: number): number | undefined {
    const p = this.pinned.get(ip);
    if (p !== undefined) return p;
    const e = this.entries.get(ip);
    return e === undefined || now - e.updated >= this.ageingMs ? undefined : e.mac;
  }

  /** The addresses snooped at `mac` and not aged (EVPN announces them with the MAC). */
  addressesOf(mac: number, now: number): (number | string)[] {
    const out: (number | string)[] = [];
    for (const [ip, e] of this.entries)
      if (e.mac === mac && now - e.updated < this.ageingMs) out.push(ip);
    return out;
  }

  lookup(ip: number | string, now: number): number | undefined {
    const p = this.pinned.get(ip);
    if (p !== undefined) return p;
    const e = this.entries.get(ip);
    if (e === undefined) return undefined;
    if (now - e.updated >= this.ageingMs) {
      this.entries.delete(ip);
      return undefined;
    }
    return e.mac;
  }
}

/** An IPv6 address's key in the table. */
export function key6(addr: Uint8Array): string {
  return Buffer.from(addr.buffer, addr.byteOffset, 16).toString('hex');
}

/** The table's key for an address given as text (IPv4 dotted, or IPv6). */
export function neighKey(ip: string): number | string {
  return parseIpv4Address(ip) ?? key6(ipv6Bytes(ip));
}
