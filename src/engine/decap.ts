import type { Fdb } from '../fdb/fdb.js';
import { makeRemote, type Remote } from '../fdb/remote.js';
import { addrToString, addrTruncated } from '../io/addr.js';
import { TxBatch, TxStatus, type DatagramSocket, type RxRing } from '../io/types.js';
import { Drop } from '../wire/drop.js';
import {
  ECN_MASK,
  Ecn,
  EcnVerdict,
  decapEcn,
  decapVerdict,
  innerIp,
  setEcn,
  trafficClass,
} from '../wire/ecn.js';
import { canFollow, coalesce, tcpSegment, type Coalesced, type TcpSeg } from '../wire/gro.js';
import {
  VNET_HDR_LEN,
  emptyVnetHdr,
  type CopyFn,
  type CopySumFn,
  type VnetHdr,
} from '../wire/gso.js';
import { isValidUnicast, macHi, macLo, readMac } from '../wire/mac.js';
import { decapsulateInto, type DecapResult, type ReservedBitsPolicy } from '../wire/vxlan.js';
import { bfdOffset } from '../wire/bfd.js';
import type { Counters } from './counters.js';
import type { Suppression } from './suppress.js';
import type { PeerCounters } from './peers.js';
import type { VniState } from './vni.js';

/**
 * Underlay → TAP. Datagrams are validated, learned from and written to the VNI's TAP as views
 * into the receive slab. With a virtio-net header on the TAP, consecutive segments of one TCP
 * flow are held as a run and written as one coalesced frame (wire/gro.ts), each segment's
 * checksums verified on the way.
 */
export class Decap {
  policy: ReservedBitsPolicy = 'drop';
  /**
   * BFD on the tunnels: control packets from a remote (RFC 8971 frames) go here instead of the
   * TAP, neither learned from nor counted as tenant traffic. Undefined while BFD is off.
   */
  bfd: ((vni: number, remote: Remote, slab: Buffer, off: number, len: number) => void) | undefined;
  dropInvalidSource = false;
  private readonly dec: DecapResult = { vni: 0, offset: 0, length: 0 };
  private readonly seg: TcpSeg = { v: 4, l4: 0, hdrLen: 0, payload: 0, seq: 0, flags: 0 };
  private readonly coalesced: Coalesced = { len: 0, segments: 0, bad: false };
  /** One coalesced frame at a time: 64 KiB of IP and the Ethernet header. */
  private readonly groSlab = Buffer.alloc(65536 + 64);
  private readonly groTx = Object.assign(new TxBatch(1), { meta: new Uint8Array(VNET_HDR_LEN) });
  private readonly vnet: VnetHdr = emptyVnetHdr();
  /** The ring of the batch being decapsulated: the underlay socket's, or a group socket's. */
  private rx: RxRing;

  constructor(
    private readonly vnis: Map<number, VniState>,
    private readonly fdb: Fdb,
    private readonly underlay: DatagramSocket,
    /** Port of remotes learned from traffic (`learnRemotes`). */
    private readonly dstPort: number,
    private readonly senderCacheMax: number,
    private readonly copy: CopyFn,
    private readonly copySum: CopySumFn,
    private readonly c: Counters,
    private readonly suppress: Suppression,
  ) {
    this.rx = underlay.rx;
  }

  /**
   * Datagrams 0..count-1 of a receive ring arrived: the underlay socket's, or `rx`, another
   * socket's on the same port (a multicast group's, bound to the group address).
   */
  underlayReceived(count: number, now: number, rx: RxRing = this.underlay.rx): void {
    this.rx = rx;
    this.c.addrs = rx.addrs;
    const { slab, lengths, segs } = rx;
    const addrs = rx.addrs!;
    for (let i = 0; i < count; i++) {
      if (addrTruncated(addrs, i)) {
        this.c.drop(Drop.DATAGRAM_TRUNCATED, now, -1, i);
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
      this.c.offload.groDatagrams++;
      for (let o = 0; o < len; o += seg) {
        this.c.offload.groSegments++;
        this.datagram(slab, off + o, Math.min(seg, len - o), i, now);
      }
    }
    for (const vs of this.vnis.values()) {
      this.closeRun(vs, slab, now);
      this.flushTap(vs, slab, now);
    }
    if (this.c.capture !== undefined) this.c.capture.clear();
  }

  /** One VXLAN datagram at slab[off, off + len), received in slot `i` (its source address). */
  private datagram(slab: Buffer, off: number, len: number, i: number, now: number): void {
    const addrs = this.rx.addrs!;
    const dec = this.dec;
    const cap = this.c.capture;
    if (cap !== undefined) cap.at('underlay', slab, off, len, addrs, i);
    const reason = decapsulateInto(slab, off, len, this.policy, dec);
    if (reason !== Drop.NONE) {
      this.c.drop(reason, now, -1, i);
      return;
    }
    const vs = this.vnis.get(dec.vni);
    if (vs === undefined) {
      this.c.drop(Drop.VNI_UNKNOWN, now, dec.vni, i);
      return;
    }
    const remote = this.sender(vs, addrs, i);
    if (remote === undefined) {
      this.c.drop(Drop.SENDER_NOT_REMOTE, now, dec.vni, i);
      return;
    }
    const peer = vs.peers.of(remote);
    peer.lastRx = now;
    if (this.bfd !== undefined) {
      const at = bfdOffset(slab, dec.offset, dec.length);
      if (at >= 0) return this.bfd(dec.vni, remote, slab, at, dec.offset + dec.length - at);
    }
    const src = readMac(slab, dec.offset + 6);
    if (isOwn(vs.ownMacs, src)) {
      this.c.drop(Drop.OWN_SOURCE_MAC, now, dec.vni, i, vs, peer);
      return;
    }
    if (this.dropInvalidSource && !isValidUnicast(src)) {
      this.c.drop(Drop.INVALID_SOURCE_MAC, now, dec.vni, i, vs, peer);
      return;
    }
    if (vs.tap === null) {
      this.c.drop(Drop.TAP_DOWN, now, dec.vni, i, vs, peer);
      return;
    }
    this.fdb.learnHalves(
      dec.vni,
      macHi(slab, dec.offset + 6),
      macLo(slab, dec.offset + 6),
      remote,
      now,
    );
    const tos = this.rx.tos;
    // Outer Not-ECT (most traffic) leaves the inner header as it is: one array read.
    if (tos !== null && (tos[i] & ECN_MASK) !== 0 && !this.ecn(slab, tos[i], i, vs, now, peer))
      return;
    peer.rxPackets++;
    peer.rxBytes += dec.length;
    if (cap !== undefined) cap.frame(dec.vni, 'to-tap', slab, dec.offset, dec.length);
    if (vs.neigh !== undefined) this.suppress.frame(vs, slab, dec.offset, dec.length, now, false);
    this.toTap(vs, slab, dec.offset, dec.length, now);
  }

  /**
   * RFC 6040 decapsulation of the frame in `dec` under an outer ECN field: the inner IPv4/IPv6
   * header's ECN field set from the table (the IPv4 checksum fixed), or false when the packet is
   * dropped (outer CE over Not-ECT). Frames that are not IP pass as they are.
   */
  private ecn(
    slab: Buffer,
    outer: number,
    i: number,
    vs: VniState,
    now: number,
    peer: PeerCounters,
  ): boolean {
    const dec = this.dec;
    const ip = innerIp(slab, dec.offset, dec.length);
    if (ip < 0) return true;
    const inner = trafficClass(slab, ip) & ECN_MASK;
    const verdict = decapVerdict(outer, inner);
    if (verdict === EcnVerdict.DROP) {
      this.c.drop(Drop.ECN_CE_NOT_ECT, now, dec.vni, i, vs, peer);
      return false;
    }
    if (verdict === EcnVerdict.UNEXPECTED) this.c.ecn.unexpected++;
    const result = decapEcn(outer, inner);
    if (result !== inner) {
      setEcn(slab, ip, result);
      if (result === Ecn.CE) this.c.ecn.marked++;
    }
    return true;
  }

  /** The remote a datagram came from, if it may send to this VNI. */
  private sender(vs: VniState, addrs: Uint8Array, i: number): Remote | undefined {
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

  /**
   * A decapsulated frame for the VNI's TAP. With a virtio-net header on the TAP, consecutive
   * segments of one TCP flow are held as a run (written by `closeRun`); anything else is queued
   * as it is (a batch larger than the TAP's is written in parts).
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
      coalesce(
        slab,
        g.offs,
        g.lens,
        from,
        count,
        g.first,
        this.groSlab,
        0,
        this.groTx.meta,
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
        this.c.offload.checksumBad++;
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
      this.c.dropN(Drop.TAP_WRITE_FAILED, r.segments, now, vs, vs.tap!.lastError);
      return;
    }
    vs.rx.packets += r.segments;
    vs.rx.bytes += bytes;
    this.c.offload.coalesced++;
    this.c.offload.coalescedSegments += r.segments;
  }

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
    if (failed) this.c.dropN(Drop.TAP_WRITE_FAILED, failed, now, vs, vs.tap.lastError);
    b.clear();
  }
}

/** Whether `mac` is one of `own`: a plain loop, so the 48-bit number is compared, not boxed. */
function isOwn(own: number[], mac: number): boolean {
  for (let k = 0; k < own.length; k++) if (own[k] === mac) return true;
  return false;
}
