import type { Fdb } from '../fdb/fdb.js';
import type { Remote } from '../fdb/remote.js';
import { ADDR_LEN, writeAddr } from '../io/addr.js';
import { OuterFlag, TxBatch, TxStatus, type DatagramSender } from '../io/types.js';
import { Drop } from '../wire/drop.js';
import { HEADER_LEN as ETHERNET_HEADER_LEN } from '../wire/ethernet.js';
import {
  GsoType,
  VNET_HDR_LEN,
  VnetFlags,
  emptyVnetHdr,
  finishChecksum,
  readVnetHdr,
  type VnetHdr,
} from '../wire/gso.js';
import { macHi, macLo, readMac } from '../wire/mac.js';
import { RateLimiter } from '../util/ratelimit.js';
import { HEADER_LEN as UDP_HEADER_LEN, writeUdpHeader } from '../wire/udp.js';
import { HEADER_LEN as VXLAN_HEADER_LEN, emitVxlan } from '../wire/vxlan.js';
import type { Counters, Hooks } from './counters.js';
import { autoLabel, flowHash, sourcePort } from './flowhash.js';
import type { TooBig } from './icmp.js';
import type { Paths } from './paths.js';
import type { Segmentation } from './segment.js';
import type { Suppression } from './suppress.js';
import type { PeerCounters } from './peers.js';
import type { VniState } from './vni.js';

/** Headroom in front of each segment cut from a super-frame: our VXLAN and UDP headers go there. */
const SEG_HEADROOM = 64;

/**
 * TAP → underlay. Frames are looked up in the FDB and encapsulated in place (the VXLAN header,
 * and in raw mode the UDP header, go into the headroom in front of the frame) and sent in
 * batches to one remote or to the VNI's flood list. Nothing is copied except for a flood to
 * remotes that need different UDP headers.
 */
export class Encap {
  portMin = 49152;
  portMax = 65535;
  private readonly raw: boolean;
  /**
   * IPv6 underlay: a frame whose VNI gives no flow label gets one from its flow hash (RFC 6438),
   * as Linux VXLAN's automatic label comes from the inner flow's hash. The kernel's own
   * automatic label would not do: for the raw socket it hashes the addresses only.
   */
  private readonly labels: boolean;
  /**
   * With UDP GSO senders beside the raw socket, a flow's source port is one of theirs (by flow
   * hash, as they pick a socket for a super-frame), so that its datagrams may leave from either
   * and keep one port; otherwise any port of the range.
   */
  private readonly gsoPorts: readonly number[] | undefined;
  private readonly udpTx: TxBatch;
  private readonly slots = new Map<Remote, Uint8Array>();
  private readonly vnet: VnetHdr = emptyVnetHdr();
  private readonly missLimit = new RateLimiter(100, 1000);
  /** Where a flood copy goes when remotes need different UDP headers. */
  private readonly copySlab: Buffer;
  private copyUsed = 0;
  private batchSlab: Buffer | undefined;
  private readonly batchVni: VniState[] = [];
  private readonly batchLen: number[] = [];
  private readonly batchRemote: Remote[] = [];
  private readonly batchPeer: PeerCounters[] = [];

  constructor(
    private readonly vnis: Map<number, VniState>,
    private readonly fdb: Fdb,
    private readonly sender: DatagramSender,
    raw: boolean,
    txBatch: number,
    slotSize: number,
    private readonly c: Counters,
    private readonly hooks: Hooks,
    private readonly suppress: Suppression,
    private readonly tooBig: TooBig,
    private readonly paths: Paths,
    private readonly seg: Segmentation,
    family: 4 | 6,
  ) {
    this.raw = raw;
    seg.onNarrow = (vs, remote, slab, off, len, now) =>
      this.narrowed(vs, remote, slab, off, len, now);
    this.labels = family === 6;
    const ports = seg.gso?.ports;
    if (raw && ports && ports.length > 0) this.gsoPorts = ports;
    this.udpTx = new TxBatch(txBatch);
    this.udpTx.outer = new Uint32Array(txBatch * 2);
    this.copySlab = Buffer.alloc(this.udpTx.capacity * (slotSize + 64));
  }

  private flowPort(hash: number): number {
    const p = this.gsoPorts;
    return p ? p[(hash >>> 0) % p.length] : sourcePort(hash, this.portMin, this.portMax);
  }

  /** The UDP source port the frame at `off` leaves from (0: the underlay socket's own). */
  sourcePortOf(slab: Buffer, off: number, len: number): number {
    return this.raw ? this.flowPort(flowHash(slab, off, len)) : 0;
  }

  /** Frames 0..count-1 of the VNI's TAP receive ring arrived. */
  tapReceived(vni: number, count: number, now: number): void {
    const vs = this.vnis.get(vni);
    if (vs === undefined || vs.tap === null) return;
    const rx = vs.tap.rx;
    const { slab, lengths, meta } = rx;
    // Everything queued from the segment slab went out at the end of the last call.
    this.seg.reset();
    const cap = this.c.capture;
    for (let i = 0; i < count; i++) {
      const off = rx.offset(i);
      const len = lengths[i];
      if (cap !== undefined) {
        cap.at('from-tap', slab, off, len);
        cap.frame(vni, 'from-tap', slab, off, len);
      }
      if (len < ETHERNET_HEADER_LEN) {
        this.c.drop(Drop.ETHERNET_TRUNCATED, now, vni, -1, vs);
        continue;
      }
      if (vs.local !== undefined) {
        const src = readMac(slab, off + 6);
        if (vs.local.see(src, now) && this.hooks.onLocalMac) this.hooks.onLocalMac(vni, src, true);
      }
      if (meta !== null && meta[i * VNET_HDR_LEN] !== 0) {
        const h = readVnetHdr(meta, i * VNET_HDR_LEN, this.vnet);
        if (h.gsoType !== GsoType.NONE) {
          this.superFrame(vs, slab, off, len, h, now);
          continue;
        }
        if (h.flags & VnetFlags.NEEDS_CSUM) {
          if (!finishChecksum(slab, off, len, h.csumStart, h.csumOffset)) {
            this.c.drop(Drop.OFFLOAD_INVALID, now, vni, -1, vs);
            continue;
          }
          this.c.offload.checksums++;
        }
      }
      this.frame(vs, slab, off, len, now);
    }
    this.flushUnderlay(now);
    if (cap !== undefined) cap.clear();
  }

  /** One frame from a TAP, from its Ethernet header on: to one remote, or flooded. */
  private frame(vs: VniState, slab: Buffer, off: number, len: number, now: number): void {
    const vni = vs.vni;
    if (len > vs.maxFrame) {
      this.c.drop(Drop.FRAME_TOO_BIG, now, vni, -1, vs);
      return;
    }
    const word = vs.outer.of(slab, off, len);
    const hash = this.raw || this.labels ? flowHash(slab, off, len) : 0;
    if (this.labels && vs.outer.label === 0) vs.outer.label = autoLabel(hash);
    // Without DF (`df: unset`, or inherited from an inner packet that may be fragmented) the
    // kernel fragments what does not fit the path, as Linux VXLAN lets it: no ICMP answer then.
    if (len > this.tooBig.pathMax && (word & OuterFlag.NO_DF) === 0) {
      this.tooBig.answer(vs, slab, off, len, now);
      return;
    }
    if (vs.neigh !== undefined && this.suppress.frame(vs, slab, off, len, now, true)) return;
    emitVxlan(vni, slab, off - VXLAN_HEADER_LEN);
    // the group bit, and the MAC's halves: a 48-bit number would be boxed into the lookup call
    const group = (slab[off] & 1) === 1;
    const remote = group
      ? null
      : this.fdb.lookupHalves(vni, macHi(slab, off), macLo(slab, off), now);
    const port = this.raw ? this.flowPort(hash) : 0;
    const df = (word & OuterFlag.NO_DF) === 0;
    if (remote !== null) {
      // (a narrow path is looked at only when one is known)
      if (df && this.paths.size > 0 && !this.fits(vs, slab, off, len, remote, false, now)) return;
      this.enqueue(vs, slab, off, len, remote, port, -1, now);
      return;
    }
    if (this.hooks.onMiss && !group && this.missLimit.allow(now))
      this.hooks.onMiss(vni, readMac(slab, off));
    const flood = this.fdb.floodList(vni);
    if (flood.length === 0) {
      this.c.drop(Drop.NO_REMOTE, now, vni, -1, vs);
      return;
    }
    const firstPort = flood[0].port;
    const narrow = df && this.paths.size > 0;
    let answered = false;
    for (let k = 0; k < flood.length; k++) {
      const r = flood[k];
      if (narrow && !this.fits(vs, slab, off, len, r, answered, now)) {
        answered = true;
        continue;
      }
      this.enqueue(vs, slab, off, len, r, port, firstPort, now);
    }
  }

  /**
   * Whether the frame fits the path towards `remote` (a narrow one may be known). When it does
   * not, its sender is told (once per frame: `answered` says a flood copy already was) and the
   * frame is dropped for that remote.
   */
  private fits(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    remote: Remote,
    answered: boolean,
    now: number,
  ): boolean {
    const max = this.paths.maxFor(remote, len, now);
    if (len <= max) return true;
    const peer = vs.peers.of(remote);
    if (answered) this.c.drop(Drop.PATH_MTU_EXCEEDED, now, vs.vni, -1, vs, peer);
    else this.tooBig.answer(vs, slab, off, len, now, max, peer);
    return false;
  }

  /**
   * A send towards `remote` was refused as too big: if the kernel now knows a narrower path, the
   * frame at `off` is answered for it (dropped, its sender told) and true returned.
   */
  private narrowed(
    vs: VniState,
    remote: Remote,
    slab: Buffer,
    off: number,
    len: number,
    now: number,
  ): boolean {
    const max = this.paths.probe(remote, now);
    if (len <= max) return false;
    this.tooBig.answer(vs, slab, off, len, now, max, vs.peers.of(remote));
    return true;
  }

  /**
   * A TCP or UDP super-frame (TSO or USO from the TAP): by UDP GSO to a known remote, else cut
   * into `gso_size` segments, each behind headroom for our headers, then encapsulated one by one.
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
    const known = type === GsoType.TCPV4 || type === GsoType.TCPV6 || type === GsoType.UDP_L4;
    if (known && this.seg.gso !== undefined && this.viaGso(vs, slab, off, len, h, now)) return;
    const n = known ? this.cut(slab, off, len, h, SEG_HEADROOM, 8, now) : 0;
    if (n <= 0) {
      this.c.drop(Drop.OFFLOAD_INVALID, now, vs.vni, -1, vs);
      return;
    }
    this.seg.hold(n);
    const segs = this.seg.segs;
    for (let k = 0; k < n; k++)
      this.frame(vs, this.seg.slab, segs.offsets[k], segs.lengths[k], now);
  }

  /**
   * A super-frame to one known remote by UDP GSO. Returns false to leave it to the per-segment
   * path: flooded, not cut, segments too big for the path (that path answers with ICMP), or
   * asked to go without a UDP checksum.
   */
  private viaGso(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    h: VnetHdr,
    now: number,
  ): boolean {
    const remote =
      (slab[off] & 1) === 1
        ? null
        : this.fdb.lookupHalves(vs.vni, macHi(slab, off), macLo(slab, off), now);
    const pathMax = this.tooBig.pathMax;
    if (remote === null || h.gsoSize + h.hdrLen > Math.min(pathMax, vs.maxFrame)) return false;
    // no UDP GSO without a UDP checksum: segment by segment
    if (vs.outer.zeroChecksum && remote.family === 4) return false;
    // a narrow path: the per-segment path answers for it
    if (this.paths.size > 0 && h.gsoSize + h.hdrLen > this.paths.maxFor(remote, len, now))
      return false;
    const n = this.cut(slab, off, len, h, VXLAN_HEADER_LEN, 1, now);
    if (n <= 0) return false;
    const segs = this.seg.segs;
    const inner = segs.lengths[0];
    if (inner > pathMax) return false;
    // What is queued goes first: a flow's earlier frames stay ahead of its segments.
    this.flushUnderlay(now);
    const hash = flowHash(this.seg.slab, segs.offsets[0], inner);
    // the segments' headers are the super-frame's: one outer header for all of them
    const word = vs.outer.of(this.seg.slab, segs.offsets[0], inner);
    if (this.labels && vs.outer.label === 0) vs.outer.label = autoLabel(hash);
    this.seg.sendGso(vs, remote, this.slotOf(remote), n, hash, word, vs.outer.label, now);
    return true;
  }

  /** Cut after what the slab holds; when it is full, send what is queued from it and start over. */
  private cut(
    slab: Buffer,
    off: number,
    len: number,
    h: VnetHdr,
    headroom: number,
    align: number,
    now: number,
  ): number {
    const n = this.seg.cut(slab, off, len, h, headroom, align);
    if (n >= 0) return n;
    if (this.batchSlab === this.seg.slab) this.flushUnderlay(now);
    this.seg.reset();
    return this.seg.cut(slab, off, len, h, headroom, align);
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
      // Checksum 0: IPv4 allows it; for IPv6 the kernel computes it.
      writeUdpHeader(base, start, srcPort, remote.port, size, 0);
    }
    if (base !== this.batchSlab) {
      if (this.udpTx.count > 0) this.flushUnderlay(now);
      this.batchSlab = base;
    }
    const idx = this.udpTx.push(start, size);
    this.udpTx.addrs.set(this.slotOf(remote), idx * ADDR_LEN);
    // the frame's outer header, as `frame` computed it (vs.outer keeps the last one)
    const outer = this.udpTx.outer!;
    outer[idx * 2] = vs.outer.word;
    outer[idx * 2 + 1] = vs.outer.label;
    this.batchVni[idx] = vs;
    this.batchLen[idx] = len;
    this.batchRemote[idx] = remote;
    this.batchPeer[idx] = vs.peers.of(remote);
  }

  private flushUnderlay(now: number): void {
    const b = this.udpTx;
    if (b.count === 0 || this.batchSlab === undefined) return;
    b.status.fill(TxStatus.NONE, 0, b.count);
    this.sender.send(this.batchSlab, b);
    const hdr = VXLAN_HEADER_LEN + (this.raw ? UDP_HEADER_LEN : 0);
    // Credit exactly the datagrams that went: one refused mid-batch is skipped by sendmmsg's
    // caller, so "the first n" would credit the wrong VNI.
    for (let i = 0; i < b.count; i++) {
      const vs = this.batchVni[i];
      const peer = this.batchPeer[i];
      const st = b.status[i];
      if (st === TxStatus.SENT) {
        vs.tx.packets++;
        vs.tx.bytes += this.batchLen[i];
        peer.txPackets++;
        peer.txBytes += this.batchLen[i];
      } else if (
        st === TxStatus.REFUSED &&
        this.sender.lastError === 'EMSGSIZE' &&
        this.narrowed(
          vs,
          this.batchRemote[i],
          this.batchSlab,
          b.offsets[i] + hdr,
          this.batchLen[i],
          now,
        )
      ) {
        // answered for the narrow path the kernel learned
      } else {
        this.c.dropN(
          st === TxStatus.QUEUE_FULL ? Drop.UNDERLAY_QUEUE_FULL : Drop.UNDERLAY_SEND_FAILED,
          1,
          now,
          vs,
          this.sender.lastError,
          peer,
        );
      }
    }
    b.clear();
    if (this.batchSlab === this.copySlab) this.copyUsed = 0;
    this.batchSlab = undefined;
  }
}
