import type { ChangeEvent } from '../control/api.js';
import type { Config, EvpnSpec } from '../config/config.js';
import type { Fdb, StaticSource } from '../fdb/fdb.js';
import type { Remote, Remotes } from '../fdb/remote.js';
import { formatIpv6Bytes } from '../io/addr.js';
import { AnyCodec, GobgpClient, type ApiPath, type WatchEvent } from '../evpn/gobgp.js';
import {
  RtImport,
  autoRd,
  autoRt,
  decodePath,
  imetPath,
  macPath,
  type Originate,
} from '../evpn/routes.js';
import type { EvpnState, EvpnStatus, EvpnVniStatus } from '../evpn/status.js';
import { EvpnTable, compareAddr, type Dirty } from '../evpn/table.js';
import type { Log } from '../util/log.js';
import { RateLimiter } from '../util/ratelimit.js';
import { formatIpv4Address } from '../wire/ipv4.js';
import { formatMac, parseMac } from '../wire/mac.js';
import { floodSpecs } from './reload.js';
import type { Planes } from './threads/planes.js';

/**
 * vtep in a BGP EVPN fabric (RFC 7432, RFC 8365), with gobgpd as the BGP speaker: every VNI of
 * the file is announced (a type-3 route with ingress replication; a type-2 route per MAC seen on
 * its TAP, and per MAC+IP that ARP/ND snooping knows), and what the other VTEPs announce is the
 * VNIs' flood lists (type 3), static FDB entries marked `evpn` (type 2, the highest MAC mobility
 * sequence number winning) and pinned ARP/ND suppression entries (MAC+IP). Imported by route
 * target only.
 *
 * The session with gobgpd (gRPC) is kept up with backoff (100 ms doubling to 5 s). A new session
 * re-adds our routes (gobgpd forgets what the API added when it restarts) and takes the whole
 * table again (`WatchEvent` with `init`); a route it announces again replaces the one held, so
 * a restart leaves no duplicates. When gobgpd goes, the routes learned are kept for `holdTime`
 * seconds, as a BGP graceful restart keeps stale paths (the fabric has not noticed yet either):
 * then those no new session announced again are removed. A lost BGP session between gobgpd and
 * a peer is gobgpd's to notice; its withdrawals arrive here as any other.
 */

export interface EvpnVni {
  vni: number;
  /** The configured remotes: they stay in the flood list beside the EVPN ones. */
  statics: Remote[];
  rd?: string;
  rt?: string[];
  /** A MAC configured on the TAP: announced as sticky (static). */
  stickyMac?: number;
}

export interface EvpnContext {
  spec: EvpnSpec;
  planes: Planes;
  fdb: Fdb;
  remotes: Remotes;
  /** The VNIs announced (the file's, less those with `evpn: false`). */
  vnis: () => EvpnVni[];
  /** Our VTEP address: next hop, originating router, PMSI tunnel id. */
  local: string;
  dstPort: () => number;
  log: Log;
  clock: () => number;
  changed?: (e: ChangeEvent) => void;
  /** First retry delay and the cap (default 100 ms, 5 s). */
  backoffMs?: [number, number];
  /** How long the first table of a session is gathered before it is applied (default 300 ms). */
  initMs?: number;
}

interface Applied {
  flood: string;
  senders: string;
  /** MAC → remote key, as installed. */
  macs: Map<number, string>;
  /** IP → MAC, as pinned. */
  ips: Map<string, number>;
}

interface Local {
  seq: number;
  sticky: boolean;
  ips: Set<string>;
}

interface Params {
  /** The VNI as the file has it (its static flood list, its sticky MAC), as of the last sync. */
  spec: EvpnVni;
  rd: string;
  rt: string[];
  /** What routes are imported by: our own targets, and `*:VNI` for automatic ones. */
  imports: string[];
}

interface Ours {
  vni: number;
  path: ApiPath;
  uuid?: Buffer;
}

export class Evpn {
  private client: GobgpClient | undefined;
  private readonly codec: AnyCodec;
  private state: EvpnState = 'connecting';
  private since = Date.now();
  private connects = 0;
  private lastError: string | undefined;
  private attempt = 0;
  private routerId = '';
  private asn = 0;
  private stopped = false;
  private unwatch: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private holdTimer: NodeJS.Timeout | undefined;
  private applyTimer: NodeJS.Timeout | undefined;
  private readonly table: EvpnTable;
  private readonly params = new Map<number, Params>();
  private readonly applied = new Map<number, Applied>();
  /** TAP-side MACs we announce, by `vni|mac`. */
  private readonly local = new Map<string, Local>();
  /** Our routes in gobgpd, by key. */
  private readonly ours = new Map<string, Ours>();
  private ops: Promise<void> = Promise.resolve();
  private readonly peers = new Map<string, { asn: number; state: string }>();
  private readonly skipped: Record<string, number> = {};
  private writeErrors = 0;
  private readonly errLog = new RateLimiter(5, 10_000);

  constructor(private readonly c: EvpnContext) {
    this.codec = AnyCodec.load(c.spec.protoDir);
    this.table = new EvpnTable(new RtImport(), c.local);
  }

  start(): void {
    void this.connect();
  }

  private setState(s: EvpnState): void {
    if (s !== this.state) this.since = Date.now();
    this.state = s;
  }

  private async connect(): Promise<void> {
    this.retryTimer = undefined;
    if (this.stopped) return;
    this.setState('connecting');
    try {
      this.client ??= GobgpClient.open(this.c.spec.gobgp, { protoDir: this.c.spec.protoDir });
      const bgp = await this.client.getBgp();
      if (this.stopped) return;
      this.routerId = this.c.spec.routerId ?? bgp.routerId;
      this.asn = this.c.spec.asn ?? bgp.asn;
      if (!this.routerId || this.routerId === '0.0.0.0' || !this.asn)
        throw new Error(
          'gobgpd has no global AS and router-id yet (give it a [global.config], or set evpn.asn and evpn.routerId)',
        );
      this.sync();
      // What was held from the last session stays until the hold time is over; what this one
      // announces again (its first events are the whole table) is kept after it.
      this.peers.clear();
      this.unwatch = this.client.watch(
        (e) => this.event(e),
        (why) => this.lost(`watch: ${why}`),
      );
      this.setState('connected');
      this.connects++;
      this.attempt = 0;
      this.lastError = undefined;
      this.c.log(
        'info',
        'evpn_connected',
        `evpn: gobgpd ${this.c.spec.gobgp}: connected (router-id ${this.routerId}, AS ${this.asn})`,
        {
          gobgp: this.c.spec.gobgp,
          routerId: this.routerId,
          asn: this.asn,
        },
      );
      for (const [key, o] of this.ours) this.write(key, o);
      this.schedule(this.c.initMs ?? 300);
    } catch (err) {
      this.lost((err as Error).message);
    }
  }

  /** The session is gone: retry with backoff; what was learned is kept for the hold time. */
  private lost(why: string): void {
    if (this.stopped || this.state === 'backoff') return;
    this.unwatch?.();
    this.unwatch = undefined;
    const wasUp = this.state === 'connected';
    const first = wasUp || this.connects === 0;
    this.setState('backoff');
    this.lastError = why;
    for (const o of this.ours.values()) o.uuid = undefined;
    if (first || this.errLog.allow(this.c.clock()))
      this.c.log('warn', 'evpn_lost', `evpn: gobgpd ${this.c.spec.gobgp}: ${why}; retrying`, {
        gobgp: this.c.spec.gobgp,
        error: why,
      });
    if (wasUp) this.holdFor();
    const [min, max] = this.c.backoffMs ?? [100, 5000];
    const delay = Math.min(max, min * 2 ** this.attempt++);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  /**
   * Like a BGP graceful restart with the hold time as its restart time: the routes learned stay
   * that long after the session is lost; then those a new session did not announce again go.
   */
  private holdFor(): void {
    this.table.markStale();
    clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      const n = this.table.sweepStale();
      if (n === 0) return;
      this.c.log(
        'warn',
        'evpn_hold_expired',
        `evpn: ${this.c.spec.holdTimeS} s after losing gobgpd: ${n} routes not announced again are removed`,
        { routes: n },
      );
      this.applyNow();
    }, this.c.spec.holdTimeS * 1000);
  }

  private event(e: WatchEvent): void {
    if (e.kind === 'peer') {
      const s = e.peer.state;
      const address = s?.neighbor_address;
      if (address && address !== '<nil>')
        this.peers.set(address, {
          asn: s.peer_asn ?? 0,
          state: (s.session_state ?? 'UNKNOWN').toLowerCase(),
        });
      return;
    }
    for (const p of e.paths) {
      const r = decodePath(this.codec, p);
      if ('skip' in r) {
        this.skip(r.skip);
        continue;
      }
      if (p.is_withdraw) {
        this.table.withdraw(r);
        continue;
      }
      const skip = this.table.add(r);
      if (skip && skip !== 'own') this.skipped[skip] = (this.skipped[skip] ?? 0) + 1;
    }
    // Changes come in bursts (a peer's whole table at once): applied together shortly after.
    if (this.applyTimer === undefined) this.schedule(20);
  }

  /** A path not taken: counted by kind (a bounded set: they are metric labels), malformed ones logged. */
  private skip(why: string): void {
    const kind = why.startsWith('not a type-2')
      ? 'other_route_type'
      : why.startsWith('unknown NLRI')
        ? 'unknown_nlri'
        : 'malformed';
    this.skipped[kind] = (this.skipped[kind] ?? 0) + 1;
    if (kind === 'malformed' && this.errLog.allow(this.c.clock()))
      this.c.log('warn', 'evpn_malformed', `evpn: a route from gobgpd not taken: ${why}`, { why });
  }

  private schedule(ms: number): void {
    clearTimeout(this.applyTimer);
    this.applyTimer = setTimeout(() => {
      this.applyTimer = undefined;
      this.applyNow();
    }, ms);
  }

  /**
   * The VNIs (at start, after a reload, on a new session): RD and targets per VNI, our type-3
   * routes, the import rules. A VNI gone takes its routes and state with it.
   */
  sync(): void {
    if (!this.routerId) return;
    const want = new Map<number, Params>();
    const imports = new RtImport();
    for (const v of this.c.vnis()) {
      const rt = v.rt ?? [autoRt(this.asn, v.vni)];
      // FRR's index is internal and changes on reconfiguration; the VNI, when it fits, does not.
      const rd = v.rd ?? autoRd(this.routerId, v.vni <= 0xffff ? v.vni : want.size + 1);
      const p: Params = { spec: v, rd, rt, imports: v.rt ? rt : [`*:${v.vni}`] };
      for (const i of p.imports) imports.add(v.vni, i);
      want.set(v.vni, p);
    }
    for (const vni of this.params.keys()) if (!want.has(vni)) this.dropVni(vni);
    for (const [vni, p] of want) {
      const old = this.params.get(vni);
      this.params.set(vni, p);
      if (old && old.rd === p.rd && old.rt.join() === p.rt.join()) continue;
      if (old) this.retractVni(vni);
      this.originateVni(vni);
    }
    this.table.reimport(imports);
    // A reload may have set the flood lists back to the file's: every one is pushed again.
    for (const a of this.applied.values()) a.flood = a.senders = '\0';
    this.schedule(20);
  }

  private originate(vni: number): Originate {
    const p = this.params.get(vni)!;
    return { rd: p.rd, rt: p.rt, vni, vtep: this.c.local };
  }

  private originateVni(vni: number): void {
    this.announce(`3|${vni}`, vni, imetPath(this.codec, this.originate(vni)));
    const sticky = this.params.get(vni)!.spec.stickyMac;
    if (sticky !== undefined) this.claim(vni, sticky, true);
    for (const mac of this.c.planes.localMacs(vni)) this.localMac(vni, mac, true);
  }

  private retractVni(vni: number): void {
    for (const [key, o] of this.ours) if (o.vni === vni) this.retract(key);
    for (const k of this.local.keys()) if (k.startsWith(`${vni}|`)) this.local.delete(k);
  }

  private dropVni(vni: number): void {
    this.retractVni(vni);
    this.params.delete(vni);
    const a = this.applied.get(vni);
    if (a) {
      for (const [mac] of a.macs) this.uninstall(vni, mac);
      for (const ip of a.ips.keys()) this.c.planes.pinNeighbour(vni, ip, undefined);
      this.applied.delete(vni);
    }
  }

  private announce(key: string, vni: number, path: ApiPath): void {
    const o: Ours = { vni, path };
    this.ours.set(key, o);
    if (this.state === 'connected') this.write(key, o);
  }

  /** AddPath, in order with the other writes (a route is never deleted before it is added). */
  private write(key: string, o: Ours): void {
    this.ops = this.ops.then(async () => {
      if (this.ours.get(key) !== o || this.state !== 'connected' || !this.client) return;
      try {
        o.uuid = await this.client.addPath(o.path);
      } catch (err) {
        this.writeFailed('AddPath', key, err as Error);
      }
    });
  }

  private retract(key: string): void {
    const o = this.ours.get(key);
    if (!o) return;
    this.ours.delete(key);
    this.ops = this.ops.then(async () => {
      if (!o.uuid || this.state !== 'connected' || !this.client) return;
      try {
        await this.client.deletePath(o.uuid);
      } catch (err) {
        this.writeFailed('DeletePath', key, err as Error);
      }
    });
  }

  private writeFailed(call: string, key: string, err: Error): void {
    this.writeErrors++;
    if (this.errLog.allow(this.c.clock()))
      this.c.log('warn', 'evpn_write', `evpn: ${call} ${key}: ${err.message}`, { route: key });
  }

  /**
   * A TAP-side MAC appeared (`present`) or aged out. A new one is announced, with the next
   * sequence number when another VTEP announced it last (it moved here); a gone one withdrawn.
   */
  localMac(vni: number, mac: number, present: boolean): void {
    if (!this.params.has(vni)) return;
    const k = `${vni}|${mac}`;
    if (present) {
      if (!this.local.has(k)) this.claim(vni, mac, false);
      return;
    }
    const l = this.local.get(k);
    if (!l || l.sticky) return;
    this.local.delete(k);
    this.retract(`2|${vni}|${mac}|`);
    for (const ip of l.ips) this.retract(`2|${vni}|${mac}|${ip}`);
    // A route from elsewhere for it may be waiting: apply it now.
    this.mark(vni).macs.add(mac);
    this.schedule(20);
  }

  private claim(vni: number, mac: number, sticky: boolean): void {
    const best = this.table.best(vni, mac);
    if (best?.sticky && !sticky) {
      if (this.errLog.allow(this.c.clock()))
        this.c.log(
          'warn',
          'evpn_sticky',
          `evpn: vni ${vni}: ${formatMac(mac)} seen on the TAP is a static MAC of ${best.nexthop}: not announced`,
          {
            vni,
            mac: formatMac(mac),
            remote: best.nexthop,
          },
        );
      return;
    }
    const seq = best ? best.seq + 1 : 0;
    this.local.set(`${vni}|${mac}`, { seq, sticky, ips: new Set() });
    if (best)
      this.c.log(
        'info',
        'evpn_move',
        `evpn: vni ${vni}: ${formatMac(mac)} moved here from ${best.nexthop} (sequence ${seq})`,
        {
          vni,
          mac: formatMac(mac),
          from: best.nexthop,
          seq,
        },
      );
    // It is here now: the entry that sent its traffic elsewhere goes.
    this.uninstall(vni, mac);
    this.applied.get(vni)?.macs.delete(mac);
    this.announce(
      `2|${vni}|${mac}|`,
      vni,
      macPath(this.codec, { ...this.originate(vni), mac, seq, sticky }),
    );
    // Its addresses snooping still knows (it came back after ageing out, or moved here).
    for (const ip of this.c.planes.neighboursOf(vni, mac, this.c.clock()))
      this.neighbour(vni, ip, mac);
  }

  /** ARP/ND snooping learned `ip` at `mac`: a MAC+IP route when the MAC is one of ours. */
  neighbour(vni: number, ip: number | string, mac: number): void {
    const l = this.local.get(`${vni}|${mac}`);
    if (!l) return;
    const text =
      typeof ip === 'number' ? formatIpv4Address(ip) : formatIpv6Bytes(Buffer.from(ip, 'hex'));
    if (l.ips.has(text)) return;
    l.ips.add(text);
    this.announce(
      `2|${vni}|${mac}|${text}`,
      vni,
      macPath(this.codec, { ...this.originate(vni), mac, ip: text, seq: l.seq, sticky: l.sticky }),
    );
  }

  private readonly pending = new Map<number, Dirty>();

  private mark(vni: number): Dirty {
    let d = this.pending.get(vni);
    if (!d) this.pending.set(vni, (d = { flood: false, macs: new Set(), ips: new Set() }));
    return d;
  }

  private applyNow(): void {
    for (const [vni, d] of this.table.takeDirty()) {
      const m = this.mark(vni);
      m.flood ||= d.flood;
      for (const x of d.macs) m.macs.add(x);
      for (const x of d.ips) m.ips.add(x);
    }
    for (const [vni, a] of this.applied) if (a.flood === '\0') this.mark(vni).flood = true;
    for (const [vni, d] of this.pending) if (this.params.has(vni)) this.applyVni(vni, d);
    this.pending.clear();
  }

  private remote(ip: string): Remote {
    return this.c.remotes.get(ip, this.c.dstPort());
  }

  /** What the routes held say about one VNI, made so in the data plane (only what changed). */
  private applyVni(vni: number, d: Dirty): void {
    let a = this.applied.get(vni);
    if (!a)
      this.applied.set(vni, (a = { flood: '', senders: '', macs: new Map(), ips: new Map() }));
    const floodChanged = d.flood && this.applyFlood(vni, a);
    let added = 0;
    let removed = 0;
    let failed = 0;
    let first = '';
    const now = this.c.clock();
    for (const mac of d.macs) {
      const r = this.applyMac(vni, mac, a, now);
      if (r === 'added') added++;
      else if (r === 'removed') removed++;
      else if (r !== undefined) {
        failed++;
        first ||= `${formatMac(mac)}: ${r}`;
      }
    }
    for (const ip of d.ips) {
      const mac = this.table.neighbour(vni, ip);
      if (a.ips.get(ip) === mac) continue;
      this.c.planes.pinNeighbour(vni, ip, mac);
      if (mac === undefined) a.ips.delete(ip);
      else a.ips.set(ip, mac);
    }
    if (failed)
      this.c.log(
        'warn',
        'evpn_fdb',
        `evpn: vni ${vni}: ${failed} remote MAC${failed > 1 ? 's' : ''} not installed (the first: ${first})`,
        {
          vni,
          count: failed,
        },
      );
    if (floodChanged || added || removed)
      this.c.changed?.({
        event: 'change',
        cmd: 'evpn.update',
        args: {
          vni,
          ...(floodChanged ? { flood: a.flood } : {}),
          ...(added ? { macsAdded: added } : {}),
          ...(removed ? { macsRemoved: removed } : {}),
        },
        by: 'evpn',
        time: new Date().toISOString(),
      });
  }

  /** The flood list: the file's remotes, then the type-3 originators; senders: the MACs' VTEPs. */
  private applyFlood(vni: number, a: Applied): boolean {
    const statics = this.params.get(vni)!.spec.statics;
    const have = new Set(statics.map((r) => r.address));
    const evpn = this.table.flood(vni).filter((ip) => !have.has(ip));
    const flood = [...statics.map((r) => r.key), ...evpn].join(',');
    const senderIps = this.table.senders(vni);
    const senders = senderIps.join(',');
    if (flood === a.flood && senders === a.senders) return false;
    // After a reload ('\0') the list is pushed again, but it is no news.
    const changed = a.flood !== '\0' && flood !== a.flood;
    a.flood = flood;
    a.senders = senders;
    const sources: StaticSource[] = [
      ...statics.map(() => 'static' as const),
      ...evpn.map(() => 'evpn' as const),
    ];
    this.c.planes.updateVni(vni, {
      remotes: [...statics, ...evpn.map((ip) => this.remote(ip))],
      floodSource: sources,
      senders: senderIps.map((ip) => this.remote(ip)),
    });
    return changed;
  }

  /** One MAC: ours (unless a route says it moved away), a remote's, or none. */
  private applyMac(
    vni: number,
    mac: number,
    a: Applied,
    now: number,
  ): 'added' | 'removed' | string | undefined {
    const best = this.table.best(vni, mac);
    const l = this.local.get(`${vni}|${mac}`);
    if (l) {
      const away =
        best &&
        !l.sticky &&
        (best.sticky ||
          best.seq > l.seq ||
          (best.seq === l.seq && compareAddr(best.nexthop, this.c.local) < 0));
      if (!away) return undefined;
      // Another VTEP has it now, with a higher sequence number: ours is withdrawn.
      this.local.delete(`${vni}|${mac}`);
      this.retract(`2|${vni}|${mac}|`);
      for (const ip of l.ips) this.retract(`2|${vni}|${mac}|${ip}`);
      this.c.planes.forgetLocalMac(vni, mac);
      this.c.log(
        'info',
        'evpn_move',
        `evpn: vni ${vni}: ${formatMac(mac)} moved to ${best.nexthop} (sequence ${best.seq})`,
        {
          vni,
          mac: formatMac(mac),
          to: best.nexthop,
          seq: best.seq,
        },
      );
    }
    const want = best ? this.remote(best.nexthop) : undefined;
    if (want?.key === a.macs.get(mac)) return undefined;
    const e = this.c.fdb.get(vni, mac);
    if (e?.isStatic && e.source === 'static') return undefined; // the operator's entry wins
    if (!want) {
      a.macs.delete(mac);
      return this.uninstall(vni, mac) ? 'removed' : undefined;
    }
    try {
      this.c.fdb.addStatic(vni, mac, want, now, 'evpn');
    } catch (err) {
      return (err as Error).message;
    }
    a.macs.set(mac, want.key);
    return 'added';
  }

  private uninstall(vni: number, mac: number): boolean {
    const e = this.c.fdb.get(vni, mac);
    return e?.isStatic === true && e.source === 'evpn' && this.c.fdb.delete(vni, mac);
  }

  status(): EvpnStatus {
    const vnis: EvpnVniStatus[] = [];
    // Our routes counted per VNI in one pass (not one pass over them per VNI).
    const out = new Map<number, { mac: number; multicast: number }>();
    for (const [key, o] of this.ours) {
      let n = out.get(o.vni);
      if (!n) out.set(o.vni, (n = { mac: 0, multicast: 0 }));
      if (key.startsWith('3|')) n.multicast++;
      else n.mac++;
    }
    for (const [vni, p] of [...this.params].sort((x, y) => x[0] - y[0])) {
      const [mac, multicast] = this.table.counts(vni);
      vnis.push({
        vni,
        rd: p.rd,
        rt: p.rt,
        routesIn: { mac, multicast },
        routesOut: out.get(vni) ?? { mac: 0, multicast: 0 },
        flood: this.table.flood(vni).filter((ip) => ip !== this.c.local),
      });
    }
    return {
      gobgp: this.c.spec.gobgp,
      state: this.state,
      forSeconds: Math.floor((Date.now() - this.since) / 1000),
      connects: this.connects,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      routerId: this.routerId,
      asn: this.asn,
      peers: [...this.peers]
        .map(([address, p]) => ({ address, ...p }))
        .sort((x, y) => compareAddr(x.address, y.address)),
      vnis,
      skipped: { ...this.skipped },
      writeErrors: this.writeErrors,
    };
  }

  /** Stop: our routes are withdrawn (the fabric forgets this VTEP at once, not after a hold time). */
  async close(): Promise<void> {
    if (this.stopped) return;
    for (const key of [...this.ours.keys()]) this.retract(key);
    const done = this.ops;
    await Promise.race([done, new Promise((r) => setTimeout(r, 1000))]);
    this.stopped = true;
    this.setState('stopped');
    this.unwatch?.();
    clearTimeout(this.retryTimer);
    clearTimeout(this.holdTimer);
    clearTimeout(this.applyTimer);
    this.client?.close();
  }
}

/** The file's VNIs that EVPN announces, with their static remotes and TAP MACs. */
export function evpnVnis(
  cfg: Config,
  remote: (r: { address: string; port: number }) => Remote,
): EvpnVni[] {
  return cfg.vnis
    .filter((v) => v.evpn !== false)
    .map((v) => {
      const own = v.evpn || {};
      const mac = v.mac === undefined ? undefined : parseMac(v.mac);
      return {
        vni: v.vni,
        // The flood list of the file (a multicast group included) stays under the EVPN one.
        statics: floodSpecs(v, cfg.port).map(remote),
        ...(own.rd ? { rd: own.rd } : {}),
        ...(own.rt ? { rt: own.rt } : {}),
        ...(mac !== undefined ? { stickyMac: mac } : {}),
      };
    });
}

/** What `status` reports as wrong: no session with gobgpd, BGP peers not established. */
export function evpnProblems(s: EvpnStatus): string[] {
  const out: string[] = [];
  if (s.state !== 'connected')
    out.push(`evpn: gobgpd ${s.gobgp} ${s.state}${s.lastError ? `: ${s.lastError}` : ''}`);
  for (const p of s.peers)
    if (p.state !== 'established') out.push(`evpn: BGP peer ${p.address} ${p.state}`);
  return out;
}
