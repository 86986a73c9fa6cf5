import type { Fdb } from '../fdb/fdb.js';
import type { Remote } from '../fdb/remote.js';
import {
  TxBatch,
  TxStatus,
  type DatagramSocket,
  type FrameDevice,
  type RxRing,
} from '../io/types.js';
import { silent } from '../util/log.js';
import { Drop, ENGINE_DROP_REASONS, dropReasonName } from '../wire/drop.js';
import { copySegmentsWith, jsCopy, jsCopySum } from '../wire/gso.js';
import { formatMac } from '../wire/mac.js';
import { HEADER_LEN as UDP_HEADER_LEN, VXLAN_PORT } from '../wire/udp.js';
import { HEADER_LEN as VXLAN_HEADER_LEN, emitVxlan } from '../wire/vxlan.js';
import { writeAddr } from '../io/addr.js';
import { Counters, type Hooks } from './counters.js';
import { Decap } from './decap.js';
import { Encap } from './encap.js';
import { TooBig } from './icmp.js';
import { LocalMacs } from './localmacs.js';
import { NeighTable, neighKey } from './neigh.js';
import { encapOverhead, Paths } from './paths.js';
import { Segmentation } from './segment.js';
import { Suppression } from './suppress.js';
import { trace, type Trace, type TraceInput } from './trace.js';
import type { CaptureTap } from './capture.js';
import type { EngineOptions, EngineSettings, EngineStats, VniConfig, VniUpdate } from './types.js';
import { VniState } from './vni.js';

export * from './types.js';

export { encapOverhead } from './paths.js';
export type { Trace, TraceInput, TraceStep, TraceVerdict } from './trace.js';
export { CaptureTap, type CaptureFilter, type Captured } from './capture.js';

/**
 * The data plane, as smoltcp cuts its interface: one small class per path, each owning its
 * scratch, behind this facade, all counting into one `Counters`:
 *
 * - `Encap` (encap.ts): TAP → underlay, batched, in place;
 * - `Segmentation` (segment.ts): TCP super-frames cut, or sent by UDP GSO;
 * - `Decap` (decap.ts): underlay → TAP, with receive coalescing (GRO);
 * - `Suppression` (suppress.ts): ARP/ND answered from what was learned;
 * - `TooBig` (icmp.ts): the path MTU, and ICMP for what does not fit.
 *
 * No syscalls and no clocks: devices come in as interfaces and `now` (ms) as an argument, so
 * the same engine runs over the Linux devices and over the in-memory fakes.
 */

/** How many learned-sender remotes to cache before starting over (bounds memory under spoofing). */
const SENDER_CACHE_MAX = 65536;

export class Engine {
  readonly fdb: Fdb;
  private readonly vnis = new Map<number, VniState>();
  private readonly c: Counters;
  private readonly hooks: Hooks = { onMiss: undefined, onLocalMac: undefined, onNeigh: undefined };
  private readonly encap: Encap;
  private readonly decap: Decap;
  private readonly icmp: TooBig;
  private readonly paths: Paths;
  private readonly family: 4 | 6;

  constructor(opts: EngineOptions) {
    this.fdb = opts.fdb;
    this.family = opts.underlay.family;
    const log = opts.log ?? silent;
    this.c = new Counters(log, opts.underlay.rx.addrs);
    this.icmp = new TooBig(this.c);
    const suppress = new Suppression(this.hooks);
    this.suppress = suppress;
    this.dstPort = opts.dstPort ?? VXLAN_PORT;
    const copy = opts.copy ?? jsCopy;
    const copySum = opts.copySum ?? jsCopySum;
    const copySegments = opts.copySegments ?? copySegmentsWith(copy, copySum);
    const seg = new Segmentation(opts.gso, copySegments, this.c, log);
    const sender = opts.raw ?? opts.underlay;
    this.paths = new Paths(sender.pathMtu?.bind(sender), log);
    this.encap = new Encap(
      this.vnis,
      this.fdb,
      sender,
      opts.raw !== undefined,
      opts.txBatch ?? 256,
      opts.underlay.rx.slotSize,
      this.c,
      this.hooks,
      suppress,
      this.icmp,
      this.paths,
      seg,
      opts.underlay.family,
    );
    this.decap = new Decap(
      this.vnis,
      this.fdb,
      opts.underlay,
      opts.dstPort ?? VXLAN_PORT,
      opts.senderCacheMax ?? SENDER_CACHE_MAX,
      copy,
      copySum,
      this.c,
      suppress,
    );
    this.raw = opts.raw !== undefined;
    this.underlay = opts.underlay;
    this.configure({ ...opts, underlayMtu: opts.underlayMtu ?? 1500 });
  }

  private readonly raw: boolean;
  private readonly underlay: DatagramSocket;
  private readonly suppress: Suppression;
  private readonly dstPort: number;

  /** BFD control packets found in the tunnels go to `fn` (undefined: BFD off, frames as any). */
  set onBfd(fn: Decap['bfd']) {
    this.decap.bfd = fn;
  }

  private readonly ctlTx = new TxBatch(1);
  private ctlSlab = Buffer.alloc(256);

  /** A frame of our own (BFD) to `remote` in `vni`, behind a VXLAN header, by the underlay socket. */
  sendControl(vni: number, remote: Remote, frame: Uint8Array): boolean {
    if (this.ctlSlab.length < frame.length + VXLAN_HEADER_LEN)
      this.ctlSlab = Buffer.alloc(frame.length + VXLAN_HEADER_LEN);
    this.ctlSlab.set(frame, VXLAN_HEADER_LEN);
    emitVxlan(vni, this.ctlSlab, 0);
    const b = this.ctlTx;
    b.clear();
    writeAddr(b.addrs, b.push(0, frame.length + VXLAN_HEADER_LEN), remote.address, remote.port);
    b.status[0] = TxStatus.NONE;
    this.underlay.send(this.ctlSlab, b);
    return b.status[0] === TxStatus.SENT;
  }

  /** `vtep capture`: copies of what matches the tap's filter go to its sink while it is set. */
  set capture(tap: CaptureTap | undefined) {
    this.c.capture = tap;
  }

  /** `vtep trace`: what the data path would do with one frame now, changing nothing. */
  trace(input: TraceInput, now: number): Trace {
    return trace(
      {
        vnis: this.vnis,
        fdb: this.fdb,
        paths: this.paths,
        suppress: this.suppress,
        pathMax: this.icmp.pathMax,
        policy: this.decap.policy,
        dropInvalidSource: this.decap.dropInvalidSource,
        sourcePort: (slab, off, len) => this.encap.sourcePortOf(slab, off, len),
        labels: this.family === 6,
        dstPort: this.dstPort,
      },
      input,
      now,
    );
  }

  /** Drops by reason, over all VNIs (and datagrams no VNI could be told for). */
  get drops(): Float64Array {
    return this.c.drops;
  }

  /**
   * Set while someone watches (`vtep monitor`): a unicast frame from the TAP to a MAC the table
   * does not know (flooded), as Linux vxlan's l2miss; at most 100 a second are reported.
   */
  set onMiss(fn: Hooks['onMiss']) {
    this.hooks.onMiss = fn;
  }

  /**
   * A TAP-side source MAC of a VNI with `localMacs` on appeared (`present` true) or aged out
   * (false): the OVSDB gateway publishes or withdraws it.
   */
  set onLocalMac(fn: Hooks['onLocalMac']) {
    this.hooks.onLocalMac = fn;
  }

  /**
   * ARP/ND suppression learned (or re-confirmed, at most twice per ageing time) an address:
   * for the other workers' tables, when set.
   */
  set onNeigh(fn: Hooks['onNeigh']) {
    this.hooks.onNeigh = fn;
  }

  /** Change engine-wide settings (at construction, and on a reload). */
  configure(s: EngineSettings): void {
    this.decap.policy = s.reservedBits ?? this.decap.policy;
    this.encap.portMin = s.sourcePortMin ?? this.encap.portMin;
    this.encap.portMax = s.sourcePortMax ?? this.encap.portMax;
    if (s.invalidSourceMac !== undefined)
      this.decap.dropInvalidSource = s.invalidSourceMac === 'drop';
    if (s.underlayMtu !== undefined) {
      this.icmp.pathMax = s.underlayMtu - encapOverhead(this.family);
      this.paths.linkMax = this.icmp.pathMax;
    }
  }

  /**
   * Datagrams 0..count-1 of the underlay's receive ring arrived, or of `rx`: the ring of another
   * socket on the underlay port (a multicast group's, bound to the group address).
   */
  underlayReceived(count: number, now: number, rx?: RxRing): void {
    this.decap.underlayReceived(count, now, rx);
  }

  /**
   * Frames 0..count-1 of the VNI's TAP receive ring arrived. With offloads (the ring has a
   * virtio-net header per frame), a TCP super-frame is cut into segments first and a partial
   * checksum is finished; then every frame takes the same path.
   */
  tapReceived(vni: number, count: number, now: number): void {
    this.encap.tapReceived(vni, count, now);
  }

  addVni(cfg: VniConfig): void {
    if (cfg.tap !== null) this.checkTap(cfg.vni, cfg.tap);
    this.checkRemotes(cfg.vni, cfg.remotes);
    this.checkRemotes(cfg.vni, cfg.senders ?? []);
    this.fdb.addVni(cfg.vni, {
      flood: cfg.remotes,
      learning: cfg.learning,
      maxEntries: cfg.maxEntries,
    });
    if (cfg.floodSource) this.fdb.setFlood(cfg.vni, cfg.remotes, cfg.floodSource);
    const vs = new VniState(cfg);
    if (cfg.suppressArp) vs.neigh = new NeighTable(this.fdb.ageingMs);
    if (cfg.localMacs) vs.local = new LocalMacs(cfg.maxEntries ?? this.fdb.maxEntries);
    this.vnis.set(cfg.vni, vs);
  }

  /** The TAP-side MACs of a VNI with `localMacs` on (empty otherwise), ascending. */
  localMacs(vni: number): number[] {
    return this.vnis.get(vni)?.local?.macs() ?? [];
  }

  /** Stop serving a VNI: its table goes with it. The caller closes its TAP. */
  removeVni(vni: number): boolean {
    if (!this.vnis.delete(vni)) return false;
    this.fdb.removeVni(vni);
    return true;
  }

  hasVni(vni: number): boolean {
    return this.vnis.has(vni);
  }

  /**
   * Change a running VNI. New remotes replace the flood list and the accepted senders; entries
   * learned behind a remote that is no longer configured are flushed (as Open vSwitch flushes
   * the MACs of a tunnel port it deletes), everything else learned is kept.
   */
  updateVni(vni: number, u: VniUpdate): void {
    const vs = this.state(vni);
    if (u.senders !== undefined) {
      this.checkRemotes(vni, u.senders);
      vs.extraSenders = [...u.senders];
      if (u.remotes === undefined) vs.setRemotes(vs.remotes);
    }
    if (u.remotes !== undefined) {
      this.checkRemotes(vni, u.remotes);
      const keep = new Set(u.remotes.map((r) => r.key));
      for (const r of vs.remotes)
        if (!keep.has(r.key)) this.fdb.flush({ vni, remote: r, learnedOnly: true });
      vs.setRemotes(u.remotes);
      this.fdb.setFlood(vni, u.remotes, u.floodSource);
    }
    if (u.learnRemotes !== undefined) vs.learnRemotes = u.learnRemotes;
    if (u.learning !== undefined || u.maxEntries !== undefined)
      this.fdb.setVniOptions(vni, { learning: u.learning, maxEntries: u.maxEntries });
    if (u.ownMacs !== undefined) vs.ownMacs = [...u.ownMacs];
    if (u.outer !== undefined) vs.outer.set(u.outer);
    if (u.suppressArp !== undefined && u.suppressArp !== (vs.neigh !== undefined))
      vs.neigh = u.suppressArp ? new NeighTable(this.fdb.ageingMs) : undefined;
  }

  /**
   * The VNI's TAP was lost (null: frames for it are dropped as `tap_down`) or is back (a new
   * device, e.g. re-created after `ip link del`).
   */
  setTap(vni: number, tap: FrameDevice | null): void {
    const vs = this.state(vni);
    if (tap !== null) {
      this.checkTap(vni, tap);
      if (tap.rx.batchSize !== vs.tapTx.capacity) vs.tapTx = new TxBatch(tap.rx.batchSize);
      vs.tapName = tap.name;
      vs.maxFrame = tap.rx.capacity;
    }
    vs.tap = tap;
  }

  private state(vni: number): VniState {
    const vs = this.vnis.get(vni);
    if (vs === undefined)
      throw Object.assign(new Error(`vni ${vni} is not configured`), {
        code: 'ERR_ENGINE_CONFIG',
      });
    return vs;
  }

  private checkTap(vni: number, tap: FrameDevice): void {
    const need = VXLAN_HEADER_LEN + (this.raw ? UDP_HEADER_LEN : 0);
    if (tap.rx.headroom < need) {
      throw Object.assign(
        new Error(
          `vni ${vni}: tap ${tap.name} has ${tap.rx.headroom} bytes of headroom, ${need} needed`,
        ),
        { code: 'ERR_ENGINE_CONFIG' },
      );
    }
  }

  private checkRemotes(vni: number, remotes: readonly Remote[]): void {
    for (const r of remotes) {
      if (r.family !== this.family) {
        throw Object.assign(
          new Error(
            `vni ${vni}: remote ${r.key} is IPv${r.family}, the underlay is IPv${this.family}`,
          ),
          { code: 'ERR_ENGINE_CONFIG' },
        );
      }
    }
  }

  /**
   * An address a control plane placed (EVPN MAC+IP), or undefined to take it back: pinned in the
   * VNI's suppression table, if it has one. `ip` is IPv4 text or IPv6 text.
   */
  pinNeighbour(vni: number, ip: string, mac: number | undefined): void {
    this.vnis.get(vni)?.neigh?.pin(neighKey(ip), mac);
  }

  /** The addresses ARP/ND snooping knows at `mac` in `vni` (none without suppression). */
  neighboursOf(vni: number, mac: number, now: number): (number | string)[] {
    return this.vnis.get(vni)?.neigh?.addressesOf(mac, now) ?? [];
  }

  /** A TAP-side MAC is somewhere else now (EVPN: a higher sequence number): seen anew if it returns. */
  forgetLocalMac(vni: number, mac: number): void {
    this.vnis.get(vni)?.local?.forget(mac);
  }

  /** An address another thread learned, into this engine's suppression table (if it has one). */
  learnNeighbour(vni: number, ip: number | string, mac: number, now: number): void {
    this.vnis.get(vni)?.neigh?.learn(ip, mac, now);
  }

  /**
   * `count` frames came from a TAP whose port has no VNI (an OVSDB port not bound to a logical
   * switch yet): counted and dropped.
   */
  unboundReceived(count: number, now: number): void {
    this.c.drops[Drop.PORT_UNBOUND] += count - 1;
    this.c.drop(Drop.PORT_UNBOUND, now, -1, -1);
  }

  /** Age the FDB (and TAP-side MACs); returns when the next FDB entry is due (ms, as `now`). */
  sweep(now: number): number | undefined {
    this.sweepLocalMacs(now);
    return this.fdb.sweep(now).nextDue;
  }

  /** Age the TAP-side MACs only (a worker: its FDB copy is aged by the main table). */
  sweepLocalMacs(now: number): void {
    for (const vs of this.vnis.values())
      vs.local?.sweep(now, this.fdb.ageingMs, (mac) => this.hooks.onLocalMac?.(vs.vni, mac, false));
  }

  /** TAP-side MACs seen at or after `since` (VNIs with `localMacs`), for the main thread. */
  localMacsSeenSince(since: number): [vni: number, mac: number][] {
    const out: [number, number][] = [];
    for (const vs of this.vnis.values())
      if (vs.local) for (const mac of vs.local.seenSince(since)) out.push([vs.vni, mac]);
    return out;
  }

  /** A TAP-side MAC another thread saw: recorded (and announced when new) as if seen here. */
  seeLocalMac(vni: number, mac: number, now: number): void {
    const local = this.vnis.get(vni)?.local;
    if (local?.see(mac, now) && this.hooks.onLocalMac) this.hooks.onLocalMac(vni, mac, true);
  }

  /** The counters; `now` (the caller's clock, as passed to the data path) dates "last heard". */
  stats(now?: number): EngineStats {
    const drops: Record<string, number> = {};
    for (const reason of ENGINE_DROP_REASONS) drops[dropReasonName(reason)] = this.c.drops[reason];
    const nonZero = (a: Float64Array) => {
      const out: Record<string, number> = {};
      for (const reason of ENGINE_DROP_REASONS)
        if (a[reason] > 0) out[dropReasonName(reason)] = a[reason];
      return out;
    };
    return {
      vnis: [...this.vnis.values()].map((vs) => ({
        vni: vs.vni,
        tap: vs.tapName,
        tapUp: vs.tap !== null,
        remotes: vs.remotes.map((r) => r.key),
        learnRemotes: vs.learnRemotes,
        fdbEntries: this.fdb.sizeOf(vs.vni),
        fdbCounters: this.fdb.countersOf(vs.vni),
        fdbMaxEntries: this.fdb.maxEntriesOf(vs.vni),
        rx: { ...vs.rx },
        tx: { ...vs.tx },
        drops: nonZero(vs.drops),
        peers: vs.peers.all().map((p) => ({
          remote: p.key,
          rx: { packets: p.rxPackets, bytes: p.rxBytes },
          tx: { packets: p.txPackets, bytes: p.txBytes },
          drops: nonZero(p.drops),
          heardMsAgo: now === undefined || p.lastRx < 0 ? null : Math.max(0, now - p.lastRx),
        })),
        ...(vs.neigh
          ? { suppress: { answered: vs.answered, flooded: vs.flooded, entries: vs.neigh.size } }
          : {}),
        ...(vs.local ? { localMacs: { entries: vs.local.size, capHit: vs.local.capHit } } : {}),
      })),
      drops,
      icmpTooBig: this.c.icmpTooBig,
      pathMaxFrame: this.icmp.pathMax,
      narrowPaths: this.paths.list(),
      offload: { ...this.c.offload },
      ecn: { ...this.c.ecn },
      fdb: { ...this.fdb.counters, entries: this.fdb.size },
    };
  }

  /** For logs: a MAC move, reported by the FDB with its own rate limit. */
  static formatMove(m: {
    vni: number;
    mac: number;
    from: Remote;
    to: Remote;
    suppressed: number;
  }): string {
    return `fdb: vni ${m.vni} ${formatMac(m.mac)} moved from ${m.from.key} to ${m.to.key}${m.suppressed ? ` (${m.suppressed} moves not reported)` : ''}`;
  }
}
