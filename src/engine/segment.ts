import type { Remote } from '../fdb/remote.js';
import type { SegmentSender } from '../io/types.js';
import type { Log } from '../util/log.js';
import { Drop } from '../wire/drop.js';
import { segment, type CopySegmentsFn, type Segments, type VnetHdr } from '../wire/gso.js';
import { HEADER_LEN as VXLAN_HEADER_LEN, emitVxlan } from '../wire/vxlan.js';
import type { Counters } from './counters.js';
import type { VniState } from './vni.js';

/** Segments of one super-frame at most: 64 KiB at the smallest MSS a peer may announce (88). */
const MAX_SEGMENTS = 768;
/** Bytes of one UDP GSO send at most: what fits one IP packet's length field, with room. */
const GSO_MAX_BYTES = 65000;

/**
 * TCP and UDP super-frames from an offloading TAP, cut into `gso_size` segments in one slab
 * (1 MiB: 16 of 64 KiB), and, towards one known remote, sent by UDP GSO: packed behind their
 * VXLAN headers, up to 64 datagrams and 64 KiB a send. Encapsulating one by one is the caller's
 * (encap.ts).
 */
export class Segmentation {
  readonly slab = Buffer.alloc(1 << 20);
  /** Where the next cut starts: everything before it is queued to go out. */
  used = 0;
  readonly segs: Segments = {
    offsets: new Uint32Array(MAX_SEGMENTS),
    lengths: new Uint32Array(MAX_SEGMENTS),
  };

  /**
   * Set by the encap path: a send towards `remote` was refused as too big; true when a narrower
   * path is now known, and the frame at `off` was answered for it.
   */
  onNarrow:
    | ((
        vs: VniState,
        remote: Remote,
        slab: Buffer,
        off: number,
        len: number,
        now: number,
      ) => boolean)
    | undefined;

  constructor(
    /** UDP GSO senders; undefined without, or once the kernel refused. */
    public gso: SegmentSender | undefined,
    private readonly copySegments: CopySegmentsFn,
    private readonly c: Counters,
    private readonly log: Log,
  ) {}

  /**
   * Cut the super-frame at `slab[off]` after what is already in the slab, each segment behind
   * `headroom` bytes, `align` apart at least. Returns the count; -1 when the slab is full (the
   * caller sends what is queued from it, calls `reset` and cuts again); 0 when it cannot be cut.
   */
  cut(slab: Buffer, off: number, len: number, h: VnetHdr, headroom: number, align: number): number {
    const from = this.used;
    return segment(
      slab,
      off,
      len,
      h,
      this.slab,
      from,
      this.slab.length - from,
      headroom,
      this.segs,
      align,
      this.copySegments,
    );
  }

  reset(): void {
    this.used = 0;
  }

  /** The `n` segments just cut are in use until the next batch goes out. */
  hold(n: number): void {
    const end = this.segs.offsets[n - 1] + this.segs.lengths[n - 1];
    this.used = Math.ceil(end / 64) * 64;
    this.c.offload.superFrames++;
    this.c.offload.segments += n;
  }

  /**
   * The `n` segments just cut packed (each behind room for its VXLAN header) to the remote at
   * `addr`, by UDP GSO. What the kernel refuses is counted; when it cannot do GSO at all, the
   * senders are dropped (and said, once), and segments go one by one from then on.
   */
  sendGso(
    vs: VniState,
    remote: Remote,
    addr: Uint8Array,
    n: number,
    hash: number,
    word: number,
    label: number,
    now: number,
  ): void {
    const segs = this.segs;
    const inner = segs.lengths[0];
    const peer = vs.peers.of(remote);
    for (let k = 0; k < n; k++) emitVxlan(vs.vni, this.slab, segs.offsets[k] - VXLAN_HEADER_LEN);
    this.hold(n);
    const stride = VXLAN_HEADER_LEN + inner;
    const perSend = Math.min(64, Math.floor(GSO_MAX_BYTES / stride));
    for (let k = 0; k < n; k += perSend) {
      const m = Math.min(perSend, n - k);
      const start = segs.offsets[k] - VXLAN_HEADER_LEN;
      const last = k + m - 1;
      const bytes = segs.offsets[last] + segs.lengths[last] - start;
      const rc = this.gso!.sendSegments(
        this.slab,
        start,
        bytes,
        stride,
        addr,
        0,
        hash,
        word,
        label,
      );
      if (rc >= 0) {
        this.c.offload.gsoSends++;
        vs.tx.packets += m;
        vs.tx.bytes += bytes - m * VXLAN_HEADER_LEN;
        peer.txPackets += m;
        peer.txBytes += bytes - m * VXLAN_HEADER_LEN;
        continue;
      }
      const err = this.gso!.errnoName(-rc);
      if (err === 'EAGAIN' || err === 'EWOULDBLOCK' || err === 'ENOBUFS') {
        this.c.dropN(Drop.UNDERLAY_QUEUE_FULL, m, now, vs, err, peer);
        continue;
      }
      // A segment size over the path's MTU: EINVAL from UDP GSO, EMSGSIZE from UDP.
      if (
        (err === 'EINVAL' || err === 'EMSGSIZE') &&
        this.onNarrow?.(vs, remote, this.slab, segs.offsets[k], segs.lengths[k], now)
      ) {
        if (m > 1) this.c.dropN(Drop.PATH_MTU_EXCEEDED, m - 1, now, vs, err, peer);
        continue;
      }
      this.c.dropN(Drop.UNDERLAY_SEND_FAILED, m, now, vs, err, peer);
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
        return;
      }
    }
  }
}
