import type { Remote } from '../fdb/remote.js';
import { TxBatch, type FrameDevice } from '../io/types.js';
import { DROP_REASON_COUNT } from '../wire/drop.js';
import { VLAN_HEADER_LEN } from '../wire/ethernet.js';
import type { TcpSeg } from '../wire/gro.js';
import type { LocalMacs } from './localmacs.js';
import type { NeighTable } from './neigh.js';
import { OuterHeader } from './outer.js';
import { PeerTable } from './peers.js';
import { SenderTable } from './senders.js';
import type { DirectionCounters, VniConfig } from './types.js';

/** Remotes a VNI counts on their own; the rest are counted together (`other`). */
export const PEERS_PER_VNI = 1024;

/** What the engine keeps per VNI: its TAP, remotes, senders, counters and tables. */
export class VniState {
  readonly vni: number;
  remotes: Remote[] = [];
  extraSenders: Remote[] = [];
  readonly senders = new SenderTable();
  /** Our own MACs, as an array: few, and compared as numbers (a Set would box each lookup). */
  ownMacs: number[];
  /** The largest frame from the TAP sent on: what its receive slot holds whole. */
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
  /** Counters per remote (see `PeerTable` for the cap). */
  readonly peers = new PeerTable(PEERS_PER_VNI);
  /** ARP/ND suppression: its table while on, undefined while off. */
  neigh: NeighTable | undefined;
  answered = 0;
  flooded = 0;
  /** How the outer headers of its datagrams are written (TTL, TOS, DF, flow label, checksum). */
  readonly outer: OuterHeader;
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
    this.maxFrame = cfg.tap?.rx.capacity ?? (cfg.mtu ?? 1500) + VLAN_HEADER_LEN;
    this.learnRemotes = cfg.learnRemotes ?? false;
    this.extraSenders = [...(cfg.senders ?? [])];
    this.outer = new OuterHeader(cfg.outer);
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
