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

  constructor(
    readonly ageingMs: number,
    readonly max = 4096,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Returns whether this is news for copies of the table elsewhere (workers): a new address, a
   * new MAC, or a confirmation half an ageing time after the last news; not every confirmation.
   */
  learn(ip: number | string, mac: number, now: number): boolean {
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
    const e = this.entries.get(ip);
    return e === undefined || now - e.updated >= this.ageingMs ? undefined : e.mac;
  }

  lookup(ip: number | string, now: number): number | undefined {
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
