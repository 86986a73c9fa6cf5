import { Fdb, type FdbCounters, type StaticSource } from '../fdb/fdb.js';
import { makeRemote, type Remote } from '../fdb/remote.js';
import { ADDR_LEN, addrToString, addrTruncated, writeAddr } from '../io/addr.js';
import {
  TxBatch,
  TxStatus,
  type DatagramSender,
  type DatagramSocket,
  type FrameDevice,
  type SegmentSender,
} from '../io/types.js';
import { Drop, DROP_REASON_COUNT, ENGINE_DROP_REASONS, dropReasonName } from '../wire/drop.js';
import { ArpOp, emitArpReply, parseArp, type Arp } from '../wire/arp.js';
import {
  GsoType,
  VNET_HDR_LEN,
  VnetFlags,
  emptyVnetHdr,
  finishChecksum,
  jsCopy,
  jsCopySum,
  type CopyFn,
  type CopySumFn,
  readVnetHdr,
  segmentTcp,
  type Segments,
  type VnetHdr,
} from '../wire/gso.js';
import { canFollow, coalesce, tcpSegment, type Coalesced, type TcpSeg } from '../wire/gro.js';
import { TOO_BIG_MAX_LEN, emitTooBig } from '../wire/icmp.js';
import { NA_FRAME_LEN, emitNa, parseNd } from '../wire/nd.js';
import {
  EthernetFrame,
  HEADER_LEN as ETHERNET_HEADER_LEN,
  VLAN_HEADER_LEN,
} from '../wire/ethernet.js';
import { formatMac, isMulticast, isValidUnicast, readMac } from '../wire/mac.js';
import { HEADER_LEN as UDP_HEADER_LEN, VXLAN_PORT } from '../wire/udp.js';
import { silent, type Log } from '../util/log.js';
import { RateLimiter } from '../util/ratelimit.js';
import {
  HEADER_LEN as VXLAN_HEADER_LEN,
  decapsulateInto,
  emitVxlan,
  type DecapResult,
  type ReservedBitsPolicy,
} from '../wire/vxlan.js';
import { flowHash, sourcePort } from './flowhash.js';
import { LocalMacs } from './localmacs.js';
import { NeighTable, key6 } from './neigh.js';
import { SenderTable } from './senders.js';

/**
 * The data plane. Frames from a VNI's TAP are looked up in the FDB and encapsulated in place
 * (the VXLAN header, and in raw mode the UDP header, go into the headroom in front of the frame)
 * and sent in batches to one remote or to the VNI's flood list. Datagrams from the underlay are
 * validated, learned from and written to the VNI's TAP as views into the receive slab. Nothing
 * is copied except for a flood to remotes that need different UDP headers.
 *
 * No syscalls and no clocks: devices come in as interfaces and `now` (ms) as an argument, so
 * the same engine runs over the Linux devices and over the in-memory fakes.
 */

export interface VniConfig {
  vni: number;
  /** The TAP, or null when it is down right now (see `setTap`); then `tapName` names it. */
  tap: FrameDevice | null;
  tapName?: string;
  /** Configured remote VTEPs: the flood list, and (unless learnRemotes) the only accepted senders. */
  remotes: Remote[];
  /** Who set the flood list (`fdb show` says so); default `static`. */
  floodSource?: StaticSource;
  /** Senders accepted besides the flood list (a controller's remotes that only send unicast). */
  senders?: Remote[];
  /**
   * Record the source MACs seen on the TAP side and report them through `onLocalMac` (what an
   * OVSDB hardware_vtep switch publishes as Ucast_Macs_Local). Off by default: it costs a lookup
   * per frame.
   */
  localMacs?: boolean;
  /** Accept and learn VXLAN from any sender (Linux behaviour) instead of configured remotes only (OVS). */
  learnRemotes?: boolean;
  /** MAC learning (default on). */
  learning?: boolean;
  maxEntries?: number;
  /** MACs of our own side (the TAP's): a frame from the underlay with one as its source is a loop. */
  ownMacs?: number[];
  /** The TAP MTU: larger frames from the TAP are dropped rather than sent (default 1500). */
  mtu?: number;
  /**
   * ARP/ND suppression (Linux `neigh_suppress`): learn IP → MAC from ARP and ND seen on both
   * sides, and answer a request from the TAP for a known address on the TAP instead of flooding it.
   */
  suppressArp?: boolean;
}

export interface EngineOptions {
  underlay: DatagramSocket;
  /** When set, datagrams leave through this raw sender with a UDP header we write, so the source port follows the flow. */
  raw?: DatagramSender;
  /**
   * UDP GSO: the segments of a TCP super-frame going to one remote leave in one send per up to
   * 64 datagrams, from a source port per flow. Without it (or when the kernel refuses GSO, e.g.
   * no checksum offload on the egress device) they go through the batch like any frame.
   */
  gso?: SegmentSender;
  /** How segmentation and coalescing copy byte ranges (default: through views; see gso.ts). */
  copy?: CopyFn;
  /** How segmentation copies a payload and sums it in one pass (default: `copy`, then `sum`). */
  copySum?: CopySumFn;
  fdb: Fdb;
  reservedBits?: ReservedBitsPolicy;
  /** Source port range for raw mode (default 49152..65535, RFC 7348 §5). */
  sourcePortMin?: number;
  sourcePortMax?: number;
  /** Destination port for remotes learned from traffic (default 4789). */
  dstPort?: number;
  /** Datagrams per underlay send call (default 256). */
  txBatch?: number;
  /** Rate-limited log events (drops). */
  log?: Log;
  /** Learned senders cached per VNI before the cache starts over (default 65536). */
  senderCacheMax?: number;
  /**
   * A decapsulated frame whose source MAC is zero or multicast: `deliver` it (never learned;
   * what Open vSwitch does) or `drop` it (what Linux vxlan does). Default `deliver`.
   */
  invalidSourceMac?: 'deliver' | 'drop';
  /**
   * MTU of the underlay path (default 1500). A frame whose VXLAN datagram would not fit is
   * dropped (`path_mtu_exceeded`) and answered with ICMP "fragmentation needed" / ICMPv6 "packet
   * too big" into the TAP, carrying the largest inner MTU that fits.
   */
  underlayMtu?: number;
}

export interface DirectionCounters {
  packets: number;
  bytes: number;
}

export interface VniStats {
  vni: number;
  tap: string;
  remotes: string[];
  learnRemotes: boolean;
  /** False while the TAP is gone (deleted under us) and not yet re-created. */
  tapUp: boolean;
  fdbEntries: number;
  /** Underlay → TAP (decapsulated; frames the TAP took). */
  rx: DirectionCounters;
  /** Drops of this VNI's packets, by reason (non-zero ones). */
  drops: Record<string, number>;
  /** ARP/ND suppression: requests answered here, requests for unknown addresses flooded, table size. */
  suppress?: { answered: number; flooded: number; entries: number };
  /** TAP → underlay (encapsulated; one per datagram sent, so a flood counts each copy). */
  tx: DirectionCounters;
  /** TAP-side source MACs recorded for a controller (`localMacs` on), and those not recorded at the cap. */
  localMacs?: { entries: number; capHit: number };
}

export interface EngineStats {
  vnis: VniStats[];
  /** Every reason the engine counts, over all VNIs (and datagrams no VNI could be told for). */
  drops: Record<string, number>;
  /** "Too big" answers written into TAPs (path MTU discovery for the inner hosts). */
  icmpTooBig: number;
  /** The largest inner frame that fits the underlay path. */
  pathMaxFrame: number;
  /**
   * TAP offloads at work: TCP super-frames cut, the segments they gave, checksums finished, and
   * UDP GSO sends that carried segments (0 when the kernel cannot, or every remote is flooded).
   */
  offload: {
    superFrames: number;
    segments: number;
    checksums: number;
    gsoSends: number;
    /** Decap: frames written into TAPs that coalesced several TCP segments, and those segments. */
    coalesced: number;
    coalescedSegments: number;
    /** Decap: TCP segments not coalesced because a checksum did not verify (delivered alone). */
    checksumBad: number;
    /** Decap: slots where the kernel's UDP GRO coalesced datagrams, and the datagrams in them. */
    groDatagrams: number;
    groSegments: number;
  };
  fdb: FdbCounters & { entries: number };
}

/** Headroom in front of each segment cut from a super-frame: our VXLAN and UDP headers go there. */
const SEG_HEADROOM = 64;
/** Segments of one super-frame at most: 64 KiB at the smallest MSS a peer may announce (88). */
const MAX_SEGMENTS = 768;
/** Bytes of one UDP GSO send at most: what fits one IP packet's length field, with room. */
const GSO_MAX_BYTES = 65000;

/** How many learned-sender remotes to cache before starting over (bounds memory under spoofing). */
const SENDER_CACHE_MAX = 65536;

class VniState {
  readonly vni: number;
  remotes: Remote[] = [];
  extraSenders: Remote[] = [];
  readonly senders = new SenderTable();
  /** Our own MACs, as an array: few, and compared as numbers (a Set would box each lookup). */
  ownMacs: number[];
  maxFrame: number;
  learnRemotes: boolean;
  /** The TAP, or null while it is gone (deleted under us) and not yet re-created. */
  tap: FrameDevice | null;
  tapName: string;
  tapTx: TxBatch;
  readonly rx: DirectionCounters = { packets: 0, bytes: 0 };
  readonly tx: DirectionCounters = { packets: 0, bytes: 0 };
  readonly drops = new Float64Array(DROP_REASON_COUNT);
  learnedSenders = 0;
  /** ARP/ND suppression: its table while on, undefined while off. */
  neigh: NeighTable | undefined;
  answered = 0;
  flooded = 0;
  /** Source MACs of the TAP side, while `localMacs` is on. */
  local: LocalMacs | undefined;
  /** Segments of one TCP flow held to be written as one frame (see `toTap`). */
  readonly run = {
    count: 0,
    offs: new Uint32Array(1024),
    lens: new Uint32Array(1024),
    first: { v: 4, l4: 0, hdrLen: 0, payload: 0, seq: 0, flags: 0 } as TcpSeg,
    mss: 0,
    bytes: 0,
    next: 0,
    ended: false,
  };

  constructor(cfg: VniConfig) {
    this.vni = cfg.vni;
    this.tap = cfg.tap;
    this.tapName = cfg.tap?.name ?? cfg.tapName ?? '-';
    this.tapTx = new TxBatch(cfg.tap?.rx.batchSize ?? 64);
    this.ownMacs = [...(cfg.ownMacs ?? [])];
    this.maxFrame = (cfg.mtu ?? 1500) + VLAN_HEADER_LEN;
    this.learnRemotes = cfg.learnRemotes ?? false;
    this.extraSenders = [...(cfg.senders ?? [])];
    this.setRemotes(cfg.remotes);
  }

  /** Configured remotes; the learned-sender cache starts over with them. */
  setRemotes(remotes: readonly Remote[]): void {
    this.remotes = [...remotes];
    this.senders.clear();
    this.learnedSenders = 0;
    // A sender is known by address: where both lists have one, the flood list's remote wins.
    for (const r of this.extraSenders) this.senders.add(r);
    for (const r of this.remotes) this.senders.add(r);
  }
}

/** What can change on a running VNI without re-creating it (a reload). */
export interface VniUpdate {
  remotes?: Remote[];
  floodSource?: StaticSource;
  senders?: Remote[];
  suppressArp?: boolean;
  learnRemotes?: boolean;
  learning?: boolean;
  maxEntries?: number;
  mtu?: number;
  ownMacs?: number[];
}

/** Engine-wide settings that a reload may change. */
export type EngineSettings = Pick<
  EngineOptions,
  'reservedBits' | 'sourcePortMin' | 'sourcePortMax' | 'invalidSourceMac' | 'underlayMtu'
>;

/** Outer IP + UDP + VXLAN header bytes in front of an inner frame. */
export function encapOverhead(family: 4 | 6): number {
  return (family === 4 ? 20 : 40) + UDP_HEADER_LEN + VXLAN_HEADER_LEN;
}

export class Engine {
  readonly drops = new Float64Array(DROP_REASON_COUNT);
  readonly fdb: Fdb;
  private readonly vnis = new Map<number, VniState>();
  private readonly underlay: DatagramSocket;
  private readonly sender: DatagramSender;
  private readonly raw: boolean;
  private policy: ReservedBitsPolicy = 'drop';
  private portMin = 49152;
  private portMax = 65535;
  private readonly dstPort: number;
  private readonly senderCacheMax: number;
  private dropInvalidSource = false;
  /** Largest inner frame whose datagram fits the underlay MTU. */
  private pathMax = 1500;
  private icmpTooBig = 0;
  private readonly icmpSlab = Buffer.alloc(TOO_BIG_MAX_LEN);
  private readonly icmpTx = new TxBatch(1);
  /** ICMP errors are rate limited, as the kernel's are (icmp_msgs_per_sec). */
  private readonly icmpLimit = new RateLimiter(1000, 1000);
  /**
   * Set while someone watches (`vtep monitor`): a unicast frame from the TAP to a MAC the table
   * does not know (flooded), as Linux vxlan's l2miss; at most 100 a second are reported.
   */
  onMiss: ((vni: number, mac: number) => void) | undefined;
  /**
   * A TAP-side source MAC of a VNI with `localMacs` on appeared (`present` true) or aged out
   * (false): the OVSDB gateway publishes or withdraws it.
   */
  onLocalMac: ((vni: number, mac: number, present: boolean) => void) | undefined;
  /**
   * ARP/ND suppression learned (or re-confirmed, at most twice per ageing time) an address:
   * for the other workers' tables, when set.
   */
  onNeigh: ((vni: number, ip: number | string, mac: number) => void) | undefined;
  private readonly missLimit = new RateLimiter(100, 1000);
  private readonly udpTx: TxBatch;
  private gso: SegmentSender | undefined;
  private readonly copy: CopyFn;
  private readonly copySum: CopySumFn;
  private readonly slots = new Map<Remote, Uint8Array>();
  private readonly dec: DecapResult = { vni: 0, offset: 0, length: 0 };
  private readonly log: Log;
  private readonly dropLog = new RateLimiter(10, 5000);
  /** Where a flood copy goes when remotes need different UDP headers. */
  private readonly copySlab: Buffer;
  private copyUsed = 0;

  constructor(opts: EngineOptions) {
    this.underlay = opts.underlay;
    this.sender = opts.raw ?? opts.underlay;
    this.gso = opts.gso;
    this.copy = opts.copy ?? jsCopy;
    this.copySum = opts.copySum ?? jsCopySum;
    this.raw = opts.raw !== undefined;
    if (this.raw && opts.gso && opts.gso.ports.length > 0) this.gsoPorts = opts.gso.ports;
    this.fdb = opts.fdb;
    this.configure({ ...opts, underlayMtu: opts.underlayMtu ?? 1500 });
    this.dstPort = opts.dstPort ?? VXLAN_PORT;
    this.senderCacheMax = opts.senderCacheMax ?? SENDER_CACHE_MAX;
    this.udpTx = new TxBatch(opts.txBatch ?? 256);
    this.log = opts.log ?? silent;
    this.copySlab = Buffer.alloc(this.udpTx.capacity * (opts.underlay.rx.slotSize + 64));
  }

  /**
   * With UDP GSO senders beside the raw socket, a flow's source port is one of theirs (by flow
   * hash, as they pick a socket for a super-frame), so that its datagrams may leave from either
   * and keep one port; otherwise any port of the range.
   */
  private gsoPorts: readonly number[] | undefined;

  private flowPort(hash: number): number {
    const p = this.gsoPorts;
    return p ? p[(hash >>> 0) % p.length] : sourcePort(hash, this.portMin, this.portMax);
  }

  /** Change engine-wide settings (at construction, and on a reload). */
  configure(s: EngineSettings): void {
    this.policy = s.reservedBits ?? this.policy;
    this.portMin = s.sourcePortMin ?? this.portMin;
    this.portMax = s.sourcePortMax ?? this.portMax;
    if (s.invalidSourceMac !== undefined) this.dropInvalidSource = s.invalidSourceMac === 'drop';
    if (s.underlayMtu !== undefined)
      this.pathMax = s.underlayMtu - encapOverhead(this.underlay.family);
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
    if (u.mtu !== undefined) vs.maxFrame = u.mtu + VLAN_HEADER_LEN;
    if (u.ownMacs !== undefined) vs.ownMacs = [...u.ownMacs];
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
      if (r.family !== this.underlay.family) {
        throw Object.assign(
          new Error(
            `vni ${vni}: remote ${r.key} is IPv${r.family}, the underlay is IPv${this.underlay.family}`,
          ),
          { code: 'ERR_ENGINE_CONFIG' },
        );
      }
    }
  }

  /** Datagrams 0..count-1 of the underlay's receive ring arrived. */
  underlayReceived(count: number, now: number): void {
    const rx = this.underlay.rx;
    const { slab, lengths, segs } = rx;
    const addrs = rx.addrs!;
    for (let i = 0; i < count; i++) {
      if (addrTruncated(addrs, i)) {
        this.drop(Drop.DATAGRAM_TRUNCATED, now, -1, i);
        continue;
      }
      const off = rx.offset(i);
      const len = lengths[i];
      const seg = segs === null ? 0 : segs[i];
      if (seg === 0 || seg >= len) {
        this.datagram(slab, off, len, i, now);
        continue;
      }
      // UDP GRO: the kernel coalesced datagrams of one flow, all `seg` bytes but the last.
      this.offload.groDatagrams++;
      for (let o = 0; o < len; o += seg) {
        this.offload.groSegments++;
        this.datagram(slab, off + o, Math.min(seg, len - o), i, now);
      }
    }
    for (const vs of this.vnis.values()) {
      this.closeRun(vs, slab, now);
      this.flushTap(vs, slab, now);
    }
  }

  /** One VXLAN datagram at slab[off, off + len), received in slot `i` (its source address). */
  private datagram(slab: Buffer, off: number, len: number, i: number, now: number): void {
    const addrs = this.underlay.rx.addrs!;
    const dec = this.dec;
    const reason = decapsulateInto(slab, off, len, this.policy, dec);
    if (reason !== Drop.NONE) {
      this.drop(reason, now, -1, i);
      return;
    }
    const vs = this.vnis.get(dec.vni);
    if (vs === undefined) {
      this.drop(Drop.VNI_UNKNOWN, now, dec.vni, i);
      return;
    }
    const remote = this.sender4or6(vs, addrs, i);
    if (remote === undefined) {
      this.drop(Drop.SENDER_NOT_REMOTE, now, dec.vni, i);
      return;
    }
    const src = readMac(slab, dec.offset + 6);
    if (isOwn(vs.ownMacs, src)) {
      this.drop(Drop.OWN_SOURCE_MAC, now, dec.vni, i, vs);
      return;
    }
    if (this.dropInvalidSource && !isValidUnicast(src)) {
      this.drop(Drop.INVALID_SOURCE_MAC, now, dec.vni, i, vs);
      return;
    }
    if (vs.tap === null) {
      this.drop(Drop.TAP_DOWN, now, dec.vni, i, vs);
      return;
    }
    this.fdb.learnHalves(
      dec.vni,
      macHi(slab, dec.offset + 6),
      macLo(slab, dec.offset + 6),
      remote,
      now,
    );
    if (vs.neigh !== undefined) this.neighbours(vs, slab, dec.offset, dec.length, now, false);
    this.toTap(vs, slab, dec.offset, dec.length, now);
  }

  /**
   * A decapsulated frame for the VNI's TAP. With a virtio-net header on the TAP, consecutive
   * segments of one TCP flow are held as a run and written as one coalesced frame (gro.ts);
   * anything else is queued as it is (a batch larger than the TAP's is written in parts).
   */
  private toTap(vs: VniState, slab: Buffer, off: number, len: number, now: number): void {
    const g = vs.run;
    if (vs.tap!.rx.meta === null) return this.queueTap(vs, slab, off, len, now);
    const s = this.seg;
    const isSeg = tcpSegment(slab, off, len, s);
    if (g.count > 0) {
      if (
        isSeg &&
        !g.ended &&
        g.count < g.offs.length &&
        s.payload <= g.mss &&
        g.first.hdrLen - 14 + g.bytes + s.payload <= 0xffff &&
        canFollow(slab, g.offs[0], g.first, slab, off, s, g.next)
      ) {
        g.offs[g.count] = off;
        g.lens[g.count++] = len;
        g.next = (s.seq + s.payload) >>> 0;
        g.bytes += s.payload;
        g.ended = s.payload < g.mss || (s.flags & 0x08) !== 0;
        return;
      }
      this.closeRun(vs, slab, now);
    }
    if (!isSeg) return this.queueTap(vs, slab, off, len, now);
    Object.assign(g.first, s);
    g.offs[0] = off;
    g.lens[0] = len;
    g.count = 1;
    g.mss = s.payload;
    g.bytes = s.payload;
    g.next = (s.seq + s.payload) >>> 0;
    g.ended = (s.flags & 0x08) !== 0;
  }

  private queueTap(vs: VniState, slab: Buffer, off: number, len: number, now: number): void {
    if (vs.tapTx.full) this.flushTap(vs, slab, now);
    vs.tapTx.push(off, len);
  }

  /**
   * Write out the VNI's run: one frame as it is, several as coalesced frames. A segment whose
   * checksums do not verify ends the frame before it and goes alone, untouched; the segments
   * after it start another.
   */
  private closeRun(vs: VniState, slab: Buffer, now: number): void {
    const g = vs.run;
    const count = g.count;
    if (count === 0) return;
    g.count = 0;
    if (count === 1) return this.queueTap(vs, slab, g.offs[0], g.lens[0], now);
    const r = this.coalesced;
    for (let from = 0; from < count;) {
      const b = this.groTx;
      coalesce(
        slab,
        g.offs,
        g.lens,
        from,
        count,
        g.first,
        this.groSlab,
        0,
        b.meta!,
        0,
        this.vnet,
        r,
        this.copy,
        this.copySum,
      );
      if (r.segments === 1) this.queueTap(vs, slab, g.offs[from], g.lens[from], now);
      else if (r.segments > 1) this.writeCoalesced(vs, slab, from, r, now);
      from += r.segments;
      if (r.bad) {
        this.offload.checksumBad++;
        this.queueTap(vs, slab, g.offs[from], g.lens[from], now);
        from++;
      }
    }
  }

  /** Segments `from`.. of the run, coalesced in `groSlab`, go into the TAP after what is queued. */
  private writeCoalesced(vs: VniState, slab: Buffer, from: number, r: Coalesced, now: number) {
    const g = vs.run;
    this.flushTap(vs, slab, now); // what came before goes first
    const b = this.groTx;
    b.clear();
    b.push(0, r.len);
    b.status[0] = TxStatus.NONE;
    vs.tap!.write(this.groSlab, b);
    let bytes = 0;
    for (let k = from; k < from + r.segments; k++) bytes += g.lens[k];
    if (b.status[0] !== TxStatus.SENT) {
      this.dropN(Drop.TAP_WRITE_FAILED, r.segments, now, vs, vs.tap!.lastError);
      return;
    }
    vs.rx.packets += r.segments;
    vs.rx.bytes += bytes;
    this.offload.coalesced++;
    this.offload.coalescedSegments += r.segments;
  }

  private readonly coalesced: Coalesced = { len: 0, segments: 0, bad: false };
  private readonly seg: TcpSeg = { v: 4, l4: 0, hdrLen: 0, payload: 0, seq: 0, flags: 0 };
  /** One coalesced frame at a time: 64 KiB of IP and the Ethernet header. */
  private readonly groSlab = Buffer.alloc(65536 + 64);
  private readonly groTx = Object.assign(new TxBatch(1), { meta: new Uint8Array(VNET_HDR_LEN) });

  /** Write the VNI's queued frames; rx counts exactly the frames the TAP took. */
  private flushTap(vs: VniState, slab: Buffer, now: number): void {
    const b = vs.tapTx;
    if (b.count === 0 || vs.tap === null) return;
    b.status.fill(TxStatus.NONE, 0, b.count);
    vs.tap.write(slab, b);
    let failed = 0;
    for (let k = 0; k < b.count; k++) {
      if (b.status[k] === TxStatus.SENT) {
        vs.rx.packets++;
        vs.rx.bytes += b.lengths[k];
      } else failed++;
    }
    if (failed) this.dropN(Drop.TAP_WRITE_FAILED, failed, now, vs, vs.tap.lastError);
    b.clear();
  }

  /**
   * Frames 0..count-1 of the VNI's TAP receive ring arrived. With offloads (the ring has a
   * virtio-net header per frame), a TCP super-frame is cut into segments first and a partial
   * checksum is finished; then every frame takes the same path.
   */
  tapReceived(vni: number, count: number, now: number): void {
    const vs = this.vnis.get(vni);
    if (vs === undefined || vs.tap === null) return;
    const rx = vs.tap.rx;
    const { slab, lengths, meta } = rx;
    // Everything queued from the segment slab went out at the end of the last call.
    this.segUsed = 0;
    for (let i = 0; i < count; i++) {
      const off = rx.offset(i);
      const len = lengths[i];
      if (len < ETHERNET_HEADER_LEN) {
        this.drop(Drop.ETHERNET_TRUNCATED, now, vni, -1, vs);
        continue;
      }
      if (vs.local !== undefined) {
        const src = readMac(slab, off + 6);
        if (vs.local.see(src, now) && this.onLocalMac) this.onLocalMac(vni, src, true);
      }
      if (meta !== null && meta[i * VNET_HDR_LEN] !== 0) {
        const h = readVnetHdr(meta, i * VNET_HDR_LEN, this.vnet);
        if (h.gsoType !== GsoType.NONE) {
          this.superFrame(vs, slab, off, len, h, now);
          continue;
        }
        if (h.flags & VnetFlags.NEEDS_CSUM) {
          if (!finishChecksum(slab, off, len, h.csumStart, h.csumOffset)) {
            this.drop(Drop.OFFLOAD_INVALID, now, vni, -1, vs);
            continue;
          }
          this.offload.checksums++;
        }
      }
      this.encapFrame(vs, slab, off, len, now);
    }
    this.flushUnderlay(now);
  }

  /** One frame from a TAP, from its Ethernet header on: to one remote, or flooded. */
  private encapFrame(vs: VniState, slab: Buffer, off: number, len: number, now: number): void {
    const vni = vs.vni;
    if (len > vs.maxFrame) {
      this.drop(Drop.FRAME_TOO_BIG, now, vni, -1, vs);
      return;
    }
    if (len > this.pathMax) {
      this.tooBig(vs, slab, off, len, now);
      return;
    }
    if (vs.neigh !== undefined && this.neighbours(vs, slab, off, len, now, true)) return;
    emitVxlan(vni, slab, off - VXLAN_HEADER_LEN);
    const dst = readMac(slab, off);
    const remote = isMulticast(dst) ? null : this.fdb.lookup(vni, dst, now);
    const port = this.raw ? this.flowPort(flowHash(slab, off, len)) : 0;
    if (remote !== null) {
      this.enqueue(vs, slab, off, len, remote, port, -1, now);
      return;
    }
    if (this.onMiss && !isMulticast(dst) && this.missLimit.allow(now)) this.onMiss(vni, dst);
    const flood = this.fdb.floodList(vni);
    if (flood.length === 0) {
      this.drop(Drop.NO_REMOTE, now, vni, -1, vs);
      return;
    }
    const firstPort = flood[0].port;
    for (let k = 0; k < flood.length; k++)
      this.enqueue(vs, slab, off, len, flood[k], port, firstPort, now);
  }

  /**
   * A TCP super-frame (TSO from the TAP): cut into MSS-sized segments in the segment slab, each
   * behind headroom for our headers, then encapsulated one by one. When the slab is full, what
   * is queued from it goes out first.
   */
  private superFrame(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    h: VnetHdr,
    now: number,
  ): void {
    const type = h.gsoType & ~GsoType.ECN;
    const tcp = type === GsoType.TCPV4 || type === GsoType.TCPV6;
    if (tcp && this.gso !== undefined && this.segmentsViaGso(vs, slab, off, len, h, now)) return;
    const n = tcp ? this.cut(slab, off, len, h, SEG_HEADROOM, 8, now) : 0;
    if (n <= 0) {
      this.drop(Drop.OFFLOAD_INVALID, now, vs.vni, -1, vs);
      return;
    }
    const last = this.segs.offsets[n - 1] + this.segs.lengths[n - 1];
    this.segUsed = Math.ceil(last / 64) * 64;
    this.offload.superFrames++;
    this.offload.segments += n;
    for (let k = 0; k < n; k++)
      this.encapFrame(vs, this.segSlab, this.segs.offsets[k], this.segs.lengths[k], now);
  }

  /**
   * A TCP super-frame to one known remote, by UDP GSO: the segments are cut packed (each behind
   * its VXLAN header, exactly one datagram apart), and handed to the kernel up to 64 and 64 KiB
   * at a time. Returns false to leave the frame to the per-segment path: flooded, not cut, or
   * segments too big for the path (that path answers with ICMP).
   */
  private segmentsViaGso(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    h: VnetHdr,
    now: number,
  ): boolean {
    const dst = readMac(slab, off);
    const remote = isMulticast(dst) ? null : this.fdb.lookup(vs.vni, dst, now);
    if (remote === null || h.gsoSize + h.hdrLen > Math.min(this.pathMax, vs.maxFrame)) return false;
    const segs = this.segs;
    const n = this.cut(slab, off, len, h, VXLAN_HEADER_LEN, 1, now);
    if (n <= 0) return false;
    const inner = segs.lengths[0];
    if (inner > this.pathMax) return false;
    for (let k = 0; k < n; k++) emitVxlan(vs.vni, this.segSlab, segs.offsets[k] - VXLAN_HEADER_LEN);
    const end = segs.offsets[n - 1] + segs.lengths[n - 1];
    this.segUsed = Math.ceil(end / 64) * 64;
    // What is queued goes first: a flow's earlier frames stay ahead of its segments.
    this.flushUnderlay(now);
    const stride = VXLAN_HEADER_LEN + inner;
    const perSend = Math.min(64, Math.floor(GSO_MAX_BYTES / stride));
    const hash = flowHash(this.segSlab, segs.offsets[0], inner);
    const addr = this.slotOf(remote);
    this.offload.superFrames++;
    this.offload.segments += n;
    for (let k = 0; k < n; k += perSend) {
      const m = Math.min(perSend, n - k);
      const start = segs.offsets[k] - VXLAN_HEADER_LEN;
      const last = k + m - 1;
      const bytes = segs.offsets[last] + segs.lengths[last] - start;
      const rc = this.gso!.sendSegments(this.segSlab, start, bytes, stride, addr, 0, hash);
      if (rc >= 0) {
        this.offload.gsoSends++;
        vs.tx.packets += m;
        vs.tx.bytes += bytes - m * VXLAN_HEADER_LEN;
        continue;
      }
      const err = this.gso!.errnoName(-rc);
      if (err === 'EAGAIN' || err === 'EWOULDBLOCK' || err === 'ENOBUFS') {
        this.dropN(Drop.UNDERLAY_QUEUE_FULL, m, now, vs, err);
        continue;
      }
      this.dropN(Drop.UNDERLAY_SEND_FAILED, m, now, vs, err);
      if (err === 'EIO' || err === 'EINVAL' || err === 'ENOPROTOOPT' || err === 'EOPNOTSUPP') {
        // The kernel cannot do UDP GSO here (no checksum offload on the egress device, an old
        // kernel): say so once and carry on without it.
        this.gso = undefined;
        this.log(
          'warn',
          'gso_off',
          `udp gso refused by the kernel (${err}): segments are sent one by one from now on`,
          { error: err },
        );
        return true;
      }
    }
    return true;
  }

  /**
   * Cut a super-frame into the segment slab after what is already there; when the slab is full,
   * what is queued from it goes out first and cutting starts over at its beginning.
   */
  private cut(
    slab: Buffer,
    off: number,
    len: number,
    h: VnetHdr,
    headroom: number,
    align: number,
    now: number,
  ): number {
    const at = (from: number) =>
      segmentTcp(
        slab,
        off,
        len,
        h,
        this.segSlab,
        from,
        this.segSlab.length - from,
        headroom,
        this.segs,
        align,
        this.copy,
        this.copySum,
      );
    const n = at(this.segUsed);
    if (n >= 0) return n;
    if (this.batchSlab === this.segSlab) this.flushUnderlay(now);
    this.segUsed = 0;
    return at(0);
  }

  /** Where super-frames are cut into segments (1 MiB: 16 of 64 KiB), and what was done there. */
  private readonly segSlab = Buffer.alloc(1 << 20);
  private segUsed = 0;
  private readonly segs: Segments = {
    offsets: new Uint32Array(MAX_SEGMENTS),
    lengths: new Uint32Array(MAX_SEGMENTS),
  };
  private readonly vnet: VnetHdr = emptyVnetHdr();
  private readonly offload = {
    superFrames: 0,
    segments: 0,
    checksums: 0,
    gsoSends: 0,
    coalesced: 0,
    coalescedSegments: 0,
    checksumBad: 0,
    groDatagrams: 0,
    groSegments: 0,
  };

  /**
   * A frame that fits the TAP but not the underlay path: dropped, and its sender told the MTU
   * that fits (RFC 7348 §4.3 forbids fragmenting; Linux answers the same way).
   */
  private tooBig(vs: VniState, slab: Buffer, off: number, len: number, now: number): void {
    this.drop(Drop.PATH_MTU_EXCEEDED, now, vs.vni, -1, vs);
    if (vs.tap === null || !this.icmpLimit.allow(now)) return;
    const n = emitTooBig(slab, off, len, this.pathMax - ETHERNET_HEADER_LEN, this.icmpSlab, 0);
    if (n === 0) return;
    const b = this.icmpTx;
    b.clear();
    b.push(0, n);
    b.status[0] = TxStatus.NONE;
    vs.tap.write(this.icmpSlab, b);
    if (b.status[0] === TxStatus.SENT) this.icmpTooBig++;
  }

  /**
   * ARP/ND suppression for one frame: learn what it says about who has which address; from the
   * TAP, answer a request for a known address into the TAP. Returns true when answered (the
   * request then goes no further). Gratuitous ARP and duplicate address detection only teach.
   */
  private neighbours(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    now: number,
    fromTap: boolean,
  ): boolean {
    const eth = this.eth.bind(slab, off, len);
    if (eth.checkLen() !== Drop.NONE) return false;
    const table = vs.neigh!;
    let answer = 0;
    const arp = parseArp(eth, this.arp);
    if (arp !== undefined) {
      if (arp.senderIp !== 0) this.snoopNeighbour(vs, arp.senderIp, arp.senderMac, now);
      if (!fromTap || arp.op !== ArpOp.REQUEST || arp.senderIp === arp.targetIp) return false;
      const mac = table.lookup(arp.targetIp, now);
      if (mac !== undefined && mac !== arp.senderMac)
        answer = emitArpReply(slab, off, arp, mac, this.replySlab, 0);
    } else {
      const nd = parseNd(eth);
      if (nd === undefined) return false;
      const dad = nd.src.every((x) => x === 0);
      if (nd.type === 'na') this.snoopNeighbour(vs, key6(nd.target), nd.mac || eth.src, now);
      else if (!dad && nd.mac !== 0) this.snoopNeighbour(vs, key6(nd.src), nd.mac, now);
      if (!fromTap || nd.type !== 'ns' || dad) return false;
      const mac = table.lookup(key6(nd.target), now);
      if (mac !== undefined && mac !== eth.src)
        answer = emitNa(slab, off, nd, mac, this.replySlab, 0);
    }
    if (answer === 0) {
      vs.flooded++;
      return false;
    }
    const b = this.icmpTx;
    b.clear();
    b.push(0, answer);
    b.status[0] = TxStatus.NONE;
    vs.tap?.write(this.replySlab, b);
    if (b.status[0] !== TxStatus.SENT) return false; // could not answer: let it be flooded
    vs.answered++;
    return true;
  }

  /** An address snooped from the VNI's own traffic: into its table, and to the other threads. */
  private snoopNeighbour(vs: VniState, ip: number | string, mac: number, now: number): void {
    if (vs.neigh!.learn(ip, mac, now) && this.onNeigh) this.onNeigh(vs.vni, ip, mac);
  }

  /** An address another thread learned, into this engine's suppression table (if it has one). */
  learnNeighbour(vni: number, ip: number | string, mac: number, now: number): void {
    this.vnis.get(vni)?.neigh?.learn(ip, mac, now);
  }

  private readonly eth = new EthernetFrame();
  private readonly arp: Arp = { op: 0, senderMac: 0, senderIp: 0, targetMac: 0, targetIp: 0 };
  private readonly replySlab = Buffer.alloc(NA_FRAME_LEN + 4);

  /**
   * `count` frames came from a TAP whose port has no VNI (an OVSDB port not bound to a logical
   * switch yet): counted and dropped.
   */
  unboundReceived(count: number, now: number): void {
    this.drops[Drop.PORT_UNBOUND] += count - 1;
    this.drop(Drop.PORT_UNBOUND, now, -1, -1);
  }

  /** Age the FDB (and TAP-side MACs); returns when the next FDB entry is due (ms, as `now`). */
  sweep(now: number): number | undefined {
    this.sweepLocalMacs(now);
    return this.fdb.sweep(now).nextDue;
  }

  /** Age the TAP-side MACs only (a worker: its FDB copy is aged by the main table). */
  sweepLocalMacs(now: number): void {
    for (const vs of this.vnis.values())
      vs.local?.sweep(now, this.fdb.ageingMs, (mac) => this.onLocalMac?.(vs.vni, mac, false));
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
    if (local?.see(mac, now) && this.onLocalMac) this.onLocalMac(vni, mac, true);
  }

  stats(): EngineStats {
    const drops: Record<string, number> = {};
    for (const reason of ENGINE_DROP_REASONS) drops[dropReasonName(reason)] = this.drops[reason];
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
        rx: { ...vs.rx },
        tx: { ...vs.tx },
        drops: nonZero(vs.drops),
        ...(vs.neigh
          ? { suppress: { answered: vs.answered, flooded: vs.flooded, entries: vs.neigh.size } }
          : {}),
        ...(vs.local ? { localMacs: { entries: vs.local.size, capHit: vs.local.capHit } } : {}),
      })),
      drops,
      icmpTooBig: this.icmpTooBig,
      pathMaxFrame: this.pathMax,
      offload: { ...this.offload },
      fdb: { ...this.fdb.counters, entries: this.fdb.size },
    };
  }

  /** The remote a datagram came from, if it may send to this VNI. */
  private sender4or6(vs: VniState, addrs: Uint8Array, i: number): Remote | undefined {
    const r = vs.senders.lookup(addrs, i);
    if (r !== undefined || !vs.learnRemotes) return r;
    // Linux behaviour: any sender is a remote, reached at our destination port.
    if (vs.learnedSenders >= this.senderCacheMax) vs.setRemotes(vs.remotes);
    // Not interned: the cache above is the only reference besides FDB entries, so spoofed
    // senders cannot grow memory without bound (the FDB compares remotes by key).
    const learned = makeRemote(addrToString(addrs, i), this.dstPort);
    vs.senders.add(learned);
    vs.learnedSenders++;
    return learned;
  }

  private slotOf(r: Remote): Uint8Array {
    let s = this.slots.get(r);
    if (s === undefined) {
      s = new Uint8Array(ADDR_LEN);
      writeAddr(s, 0, r.address, r.port);
      this.slots.set(r, s);
    }
    return s;
  }

  /**
   * Queue the frame at `off` (VXLAN header already in front) to `remote`. In raw mode the UDP
   * header goes in front too; when a flood reaches a remote whose port differs from the first
   * one's (whose header is in place), that copy is made in the copy slab.
   */
  private enqueue(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    remote: Remote,
    srcPort: number,
    firstPort: number,
    now: number,
  ): void {
    if (this.udpTx.full) this.flushUnderlay(now);
    let base: Buffer = slab;
    let start = off - VXLAN_HEADER_LEN;
    let size = len + VXLAN_HEADER_LEN;
    if (this.raw) {
      start -= UDP_HEADER_LEN;
      size += UDP_HEADER_LEN;
      if (firstPort >= 0 && remote.port !== firstPort) {
        // This copy needs its own UDP header: copy header room + frame.
        if (this.copyUsed + size > this.copySlab.length) this.flushUnderlay(now);
        slab.copy(this.copySlab, this.copyUsed, start, start + size);
        base = this.copySlab;
        start = this.copyUsed;
        this.copyUsed += size;
      }
      writeUdpHeader(base, start, srcPort, remote.port, size);
    }
    if (base !== this.batchSlab) {
      if (this.udpTx.count > 0) this.flushUnderlay(now);
      this.batchSlab = base;
    }
    const idx = this.udpTx.push(start, size);
    this.udpTx.addrs.set(this.slotOf(remote), idx * ADDR_LEN);
    this.batchVni[idx] = vs;
    this.batchLen[idx] = len;
  }

  private batchSlab: Buffer | undefined;
  private readonly batchVni: VniState[] = [];
  private readonly batchLen: number[] = [];

  private flushUnderlay(now: number): void {
    const b = this.udpTx;
    if (b.count === 0 || this.batchSlab === undefined) return;
    b.status.fill(TxStatus.NONE, 0, b.count);
    this.sender.send(this.batchSlab, b);
    // Credit exactly the datagrams that went: one refused mid-batch is skipped by sendmmsg's
    // caller, so "the first n" would credit the wrong VNI.
    for (let i = 0; i < b.count; i++) {
      const vs = this.batchVni[i];
      const st = b.status[i];
      if (st === TxStatus.SENT) {
        vs.tx.packets++;
        vs.tx.bytes += this.batchLen[i];
      } else {
        this.dropN(
          st === TxStatus.QUEUE_FULL ? Drop.UNDERLAY_QUEUE_FULL : Drop.UNDERLAY_SEND_FAILED,
          1,
          now,
          vs,
          this.sender.lastError,
        );
      }
    }
    b.clear();
    if (this.batchSlab === this.copySlab) this.copyUsed = 0;
    this.batchSlab = undefined;
  }

  private drop(reason: number, now: number, vni: number, slot: number, vs?: VniState): void {
    this.drops[reason]++;
    if (vs !== undefined) vs.drops[reason]++;
    if (!this.dropLog.allow(now)) return;
    const from = slot >= 0 ? addrToString(this.underlay.rx.addrs!, slot) : undefined;
    const suppressed = this.dropLog.takeSuppressed();
    this.log(
      'info',
      'drop',
      `drop ${dropReasonName(reason)}${vni >= 0 ? ` vni ${vni}` : ''}${from ? ` from ${from}` : ''}${suppressed ? ` (${suppressed} similar messages suppressed)` : ''}`,
      {
        reason: dropReasonName(reason),
        ...(vni >= 0 ? { vni } : {}),
        ...(from ? { from } : {}),
        ...(suppressed ? { suppressed } : {}),
      },
    );
  }

  private dropN(
    reason: number,
    n: number,
    now: number,
    vs: VniState,
    error: string | undefined,
  ): void {
    this.drops[reason] += n;
    vs.drops[reason] += n;
    if (!this.dropLog.allow(now)) return;
    this.log(
      'info',
      'drop',
      `drop ${dropReasonName(reason)} x${n} vni ${vs.vni}: ${error ?? 'unknown error'}`,
      { reason: dropReasonName(reason), vni: vs.vni, count: n, error: error ?? 'unknown' },
    );
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

/** The upper and lower 24 bits of the MAC at `o`: small integers (see `Fdb.learnHalves`). */
function macHi(b: Uint8Array, o: number): number {
  return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2];
}
function macLo(b: Uint8Array, o: number): number {
  return (b[o + 3] << 16) | (b[o + 4] << 8) | b[o + 5];
}

/** Whether `mac` is one of `own`: a plain loop, so the 48-bit number is compared, not boxed. */
function isOwn(own: number[], mac: number): boolean {
  for (let k = 0; k < own.length; k++) if (own[k] === mac) return true;
  return false;
}

/** UDP header for raw mode: checksum 0 (IPv4 allows it; for IPv6 the kernel computes it). */
function writeUdpHeader(
  buf: Buffer,
  off: number,
  srcPort: number,
  dstPort: number,
  len: number,
): void {
  buf[off] = srcPort >>> 8;
  buf[off + 1] = srcPort & 0xff;
  buf[off + 2] = dstPort >>> 8;
  buf[off + 3] = dstPort & 0xff;
  buf[off + 4] = len >>> 8;
  buf[off + 5] = len & 0xff;
  buf[off + 6] = 0;
  buf[off + 7] = 0;
}
