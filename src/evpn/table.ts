import type { EvpnRoute, ImetRoute, MacRoute, RtImport } from './routes.js';
import { PMSI_INGRESS_REPLICATION, routeKey } from './routes.js';

/**
 * The EVPN routes other VTEPs announce, by VNI (route-target import), and what they mean for the
 * data plane: a VNI's flood list (the originators of type-3 routes with ingress replication), the
 * remote behind each MAC (the type-2 route with the highest MAC mobility sequence number, the
 * lower VTEP address on a tie, RFC 7432 §15.1) and the IP → MAC pairs of MAC+IP routes. Pure:
 * routes go in, the VNIs and MACs whose meaning may have changed come out (`takeDirty`), and the
 * caller applies only those.
 */

export interface Dirty {
  flood: boolean;
  macs: Set<number>;
  /** IPs whose MAC may have changed. */
  ips: Set<string>;
}

interface PerVni {
  imet: Map<string, ImetRoute>;
  /** MAC → route key → route. */
  macs: Map<number, Map<string, MacRoute>>;
  /** IP → route key → MAC. */
  ips: Map<string, Map<string, number>>;
  /** Next hops of the type-2 routes, with their route counts: the VTEPs that may send to us. */
  nexthops: Map<string, number>;
}

/** Why a route was not taken: one of ours coming back, no VNI imports it, its label is not the VNI. */
export type Skip = 'own' | 'no_import' | 'label';

export class EvpnTable {
  private readonly byKey = new Map<string, { r: EvpnRoute; vni: number }>();
  /** Routes no VNI imports (yet): kept, so that a VNI added later finds them. */
  private readonly unimported = new Map<string, EvpnRoute>();
  private readonly vnis = new Map<number, PerVni>();
  private dirty = new Map<number, Dirty>();
  /** Keys held over from a lost session and not announced again since (`markStale`). */
  private stale = new Set<string>();

  constructor(
    private imports: RtImport,
    /** Our own VTEP address: routes naming it are ours coming back (eBGP). */
    private readonly own: string,
  ) {}

  /** New import rules: everything is re-filed (the caller then applies every VNI). */
  reimport(imports: RtImport): void {
    const all = [...[...this.byKey.values()].map((e) => e.r), ...this.unimported.values()];
    const stale = this.stale;
    this.clear();
    this.imports = imports;
    for (const r of all) this.add(r);
    this.stale = stale;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Routes held for `vni`: [type-2, type-3]. */
  counts(vni: number): [number, number] {
    const v = this.vnis.get(vni);
    if (!v) return [0, 0];
    let macs = 0;
    for (const m of v.macs.values()) macs += m.size;
    return [macs, v.imet.size];
  }

  private mark(vni: number): Dirty {
    let d = this.dirty.get(vni);
    if (!d) this.dirty.set(vni, (d = { flood: false, macs: new Set(), ips: new Set() }));
    return d;
  }

  private per(vni: number): PerVni {
    let v = this.vnis.get(vni);
    if (!v)
      this.vnis.set(
        vni,
        (v = { imet: new Map(), macs: new Map(), ips: new Map(), nexthops: new Map() }),
      );
    return v;
  }

  /** A route announced (or re-announced: the same key replaces it). Returns why not taken. */
  add(r: EvpnRoute): Skip | undefined {
    if (r.from === '' || (r.type === 2 ? r.nexthop : r.origin) === this.own) return 'own';
    const key = routeKey(r);
    this.stale.delete(key);
    if (this.byKey.has(key)) this.remove(key);
    this.unimported.delete(key);
    const vni = this.imports.vniOf(r.rts);
    const skip =
      vni === undefined ? 'no_import' : r.type === 2 && r.label !== vni ? 'label' : undefined;
    if (skip) {
      this.unimported.set(key, r);
      return skip;
    }
    this.byKey.set(key, { r, vni: vni! });
    const v = this.per(vni!);
    const d = this.mark(vni!);
    if (r.type === 3) {
      v.imet.set(key, r);
      d.flood = true;
      return undefined;
    }
    let m = v.macs.get(r.mac);
    if (!m) v.macs.set(r.mac, (m = new Map()));
    m.set(key, r);
    d.macs.add(r.mac);
    const n = v.nexthops.get(r.nexthop) ?? 0;
    v.nexthops.set(r.nexthop, n + 1);
    if (n === 0) d.flood = true;
    if (r.ip) {
      let i = v.ips.get(r.ip);
      if (!i) v.ips.set(r.ip, (i = new Map()));
      i.set(key, r.mac);
      d.ips.add(r.ip);
    }
    return undefined;
  }

  /** A route withdrawn (false when it was not held). */
  withdraw(r: EvpnRoute): boolean {
    const key = routeKey(r);
    this.stale.delete(key);
    return this.unimported.delete(key) || this.remove(key);
  }

  private remove(key: string): boolean {
    const e = this.byKey.get(key);
    if (!e) return false;
    this.byKey.delete(key);
    const v = this.vnis.get(e.vni)!;
    const d = this.mark(e.vni);
    const r = e.r;
    if (r.type === 3) {
      v.imet.delete(key);
      d.flood = true;
    } else {
      const m = v.macs.get(r.mac)!;
      m.delete(key);
      if (m.size === 0) v.macs.delete(r.mac);
      d.macs.add(r.mac);
      const n = v.nexthops.get(r.nexthop)! - 1;
      if (n === 0) {
        v.nexthops.delete(r.nexthop);
        d.flood = true;
      } else v.nexthops.set(r.nexthop, n);
      if (r.ip) {
        const i = v.ips.get(r.ip)!;
        i.delete(key);
        if (i.size === 0) v.ips.delete(r.ip);
        d.ips.add(r.ip);
      }
    }
    if (v.imet.size === 0 && v.macs.size === 0) this.vnis.delete(e.vni);
    return true;
  }

  /** Forget every route; what they touched is dirty. */
  clear(): void {
    for (const key of [...this.byKey.keys()]) this.remove(key);
    this.unimported.clear();
    this.stale = new Set();
  }

  /**
   * The session that announced these is gone (as a BGP graceful restart's stale paths): they
   * stay, and what is announced again before `sweepStale` stays after it.
   */
  markStale(): void {
    this.stale = new Set([...this.byKey.keys(), ...this.unimported.keys()]);
  }

  /** Remove what was not announced again since `markStale`; returns how many. */
  sweepStale(): number {
    let n = 0;
    for (const key of this.stale) if (this.unimported.delete(key) || this.remove(key)) n++;
    this.stale.clear();
    return n;
  }

  /** The VTEPs to flood `vni` to, sorted. */
  flood(vni: number): string[] {
    const out = new Set<string>();
    for (const r of this.vnis.get(vni)?.imet.values() ?? [])
      if (r.pmsi?.type === PMSI_INGRESS_REPLICATION) out.add(r.origin);
    return [...out].sort();
  }

  /** The VTEPs behind the VNI's MACs, sorted: accepted as senders (beside the flood list). */
  senders(vni: number): string[] {
    return [...(this.vnis.get(vni)?.nexthops.keys() ?? [])].sort();
  }

  /** The route that places `mac`: sticky first, then the highest sequence number, then the lower VTEP address. */
  best(vni: number, mac: number): MacRoute | undefined {
    let best: MacRoute | undefined;
    for (const r of this.vnis.get(vni)?.macs.get(mac)?.values() ?? [])
      if (
        !best ||
        (r.sticky && !best.sticky) ||
        (r.sticky === best.sticky && r.seq > best.seq) ||
        (r.sticky === best.sticky && r.seq === best.seq && compareAddr(r.nexthop, best.nexthop) < 0)
      )
        best = r;
    return best;
  }

  /** The MAC an IP has by the MAC+IP routes held (the best-placed MAC if they disagree). */
  neighbour(vni: number, ip: string): number | undefined {
    const i = this.vnis.get(vni)?.ips.get(ip);
    if (!i) return undefined;
    let out: number | undefined;
    let seq = -1;
    for (const mac of i.values()) {
      const s = this.best(vni, mac)?.seq ?? 0;
      if (s > seq) [out, seq] = [mac, s];
    }
    return out;
  }

  /** The VNIs held now. */
  heldVnis(): number[] {
    return [...this.vnis.keys()];
  }

  /** Every MAC of a VNI with a route now. */
  macs(vni: number): number[] {
    return [...(this.vnis.get(vni)?.macs.keys() ?? [])];
  }

  takeDirty(): Map<number, Dirty> {
    const d = this.dirty;
    this.dirty = new Map();
    return d;
  }
}

/** Numeric order of two addresses of one family (text order for mixed ones). */
export function compareAddr(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  if (pa.length === 4 && pb.length === 4) {
    for (let i = 0; i < 4; i++) {
      const d = Number(pa[i]) - Number(pb[i]);
      if (d) return d;
    }
    return 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}
