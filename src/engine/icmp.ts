import { TxBatch, TxStatus } from '../io/types.js';
import { RateLimiter } from '../util/ratelimit.js';
import { Drop } from '../wire/drop.js';
import { HEADER_LEN as ETHERNET_HEADER_LEN } from '../wire/ethernet.js';
import { TOO_BIG_MAX_LEN, emitTooBig } from '../wire/icmp.js';
import type { Counters } from './counters.js';
import type { PeerCounters } from './peers.js';
import type { VniState } from './vni.js';

/**
 * The underlay path's size, and what happens to a frame that fits the TAP but not the path:
 * dropped, and its sender told the MTU that fits (RFC 7348 §4.3 forbids fragmenting; Linux
 * answers the same way), with ICMP "fragmentation needed" / ICMPv6 "packet too big".
 */
export class TooBig {
  /** Largest inner frame whose datagram fits the underlay MTU. */
  pathMax = 1500;
  private readonly slab = Buffer.alloc(TOO_BIG_MAX_LEN);
  private readonly tx = new TxBatch(1);
  /** ICMP errors are rate limited, as the kernel's are (icmp_msgs_per_sec). */
  private readonly limit = new RateLimiter(1000, 1000);

  constructor(private readonly c: Counters) {}

  /**
   * The frame at `off` does not fit the path (`max`: the largest inner frame it carries, the
   * link's by default, or one remote's narrower path): dropped, and its sender told.
   */
  answer(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    now: number,
    max = this.pathMax,
    /** The remote whose narrower path it is (its counters see the drop). */
    peer?: PeerCounters,
  ): void {
    this.c.drop(Drop.PATH_MTU_EXCEEDED, now, vs.vni, -1, vs, peer);
    if (vs.tap === null || !this.limit.allow(now)) return;
    const n = emitTooBig(slab, off, len, max - ETHERNET_HEADER_LEN, this.slab, 0);
    if (n === 0) return;
    const b = this.tx;
    b.clear();
    b.push(0, n);
    b.status[0] = TxStatus.NONE;
    vs.tap.write(this.slab, b);
    if (b.status[0] === TxStatus.SENT) this.c.icmpTooBig++;
  }
}
