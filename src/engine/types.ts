import type { Fdb, FdbCounters, FloodSource } from '../fdb/fdb.js';
import type { Remote } from '../fdb/remote.js';
import type { DatagramSender, DatagramSocket, FrameDevice, SegmentSender } from '../io/types.js';
import type { Log } from '../util/log.js';
import type { CopyFn, CopySegmentsFn, CopySumFn } from '../wire/gso.js';
import type { ReservedBitsPolicy } from '../wire/vxlan.js';
import type { OuterPolicy } from './outer.js';

/** What the engine is configured with and what it reports (see engine.ts). */

export interface VniConfig {
  vni: number;
  /** The TAP, or null when it is down right now (see `setTap`); then `tapName` names it. */
  tap: FrameDevice | null;
  tapName?: string;
  /** Configured remote VTEPs: the flood list, and (unless learnRemotes) the only accepted senders. */
  remotes: Remote[];
  /** Who set the flood list (`fdb show` says so); default `static`. */
  floodSource?: FloodSource;
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
  /**
   * The TAP MTU, for a VNI without a TAP yet (default 1500). With one, the largest frame taken
   * from it is what its receive slot holds whole: the kernel enforces the device's MTU, so an
   * operator's `ip link set TAP mtu N` is followed up to that (beyond, frames are cut by the
   * read and dropped as `frame_too_big`).
   */
  mtu?: number;
  /**
   * ARP/ND suppression (Linux `neigh_suppress`): learn IP → MAC from ARP and ND seen on both
   * sides, and answer a request from the TAP for a known address on the TAP instead of flooding it.
   */
  suppressArp?: boolean;
  /** The outer headers' TTL, TOS, DF, flow label and UDP checksum (ECN follows RFC 6040 always). */
  outer?: OuterPolicy;
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
  /** How segmentation copies a super-frame's pieces (default: `copy` and `copySum` a piece). */
  copySegments?: CopySegmentsFn;
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
  /** The FDB's counters for this VNI (learned, moved, aged, …). */
  fdbCounters: FdbCounters;
  /** Its entry cap. */
  fdbMaxEntries: number;
  /** Underlay → TAP (decapsulated; frames the TAP took). */
  rx: DirectionCounters;
  /** Drops of this VNI's packets, by reason (non-zero ones). */
  drops: Record<string, number>;
  /** ARP/ND suppression: requests answered here, requests for unknown addresses flooded, table size. */
  suppress?: { answered: number; flooded: number; entries: number };
  /** TAP → underlay (encapsulated; one per datagram sent, so a flood counts each copy). */
  tx: DirectionCounters;
  /** Per remote: what this VNI exchanged with it (see `PeerStats`). */
  peers: PeerStats[];
  /** TAP-side source MACs recorded for a controller (`localMacs` on), and those not recorded at the cap. */
  localMacs?: { entries: number; capHit: number };
}

/**
 * One remote's counters in one VNI. `rx` counts datagrams from it decapsulated for the TAP (each
 * datagram: a coalesced write counts all it carried), `tx` datagrams sent to it (flood copies
 * included), both with inner frame bytes; `drops` what failed once the remote was known.
 */
export interface PeerStats {
  /** `address:port`, or `other`: the remotes beyond the VNI's cap, counted together. */
  remote: string;
  rx: DirectionCounters;
  tx: DirectionCounters;
  drops: Record<string, number>;
  /** Milliseconds since the last datagram from it (null: never, or no clock given). */
  heardMsAgo: number | null;
}

export interface EngineStats {
  vnis: VniStats[];
  /** Every reason the engine counts, over all VNIs (and datagrams no VNI could be told for). */
  drops: Record<string, number>;
  /** "Too big" answers written into TAPs (path MTU discovery for the inner hosts). */
  icmpTooBig: number;
  /** The largest inner frame that fits the underlay path. */
  pathMaxFrame: number;
  /** Remotes whose path the kernel knows to be narrower (remote key → largest inner frame). */
  narrowPaths: Record<string, number>;
  /**
   * TAP offloads at work: TCP and UDP super-frames cut, the segments they gave, checksums
   * finished, and UDP GSO sends that carried segments (0 when the kernel cannot, or every remote
   * is flooded).
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
  /** Decap ECN (RFC 6040): inner packets marked CE from the outer header, unexpected combinations. */
  ecn: { marked: number; unexpected: number };
  fdb: FdbCounters & { entries: number };
}

/** What can change on a running VNI without re-creating it (a reload). */
export interface VniUpdate {
  remotes?: Remote[];
  floodSource?: FloodSource;
  senders?: Remote[];
  suppressArp?: boolean;
  learnRemotes?: boolean;
  learning?: boolean;
  maxEntries?: number;
  ownMacs?: number[];
  outer?: OuterPolicy;
}

/** Engine-wide settings that a reload may change. */
export type EngineSettings = Pick<
  EngineOptions,
  'reservedBits' | 'sourcePortMin' | 'sourcePortMax' | 'invalidSourceMac' | 'underlayMtu'
>;
