import { addrToString } from '../io/addr.js';
import type { Log } from '../util/log.js';
import { RateLimiter } from '../util/ratelimit.js';
import { DROP_REASON_COUNT, dropReasonName } from '../wire/drop.js';
import type { CaptureTap } from './capture.js';
import type { PeerCounters } from './peers.js';
import type { VniState } from './vni.js';

/**
 * What every path of the engine counts, in one place: drops by reason (engine-wide and per VNI),
 * what the offloads did, ICMP answers. Drops are logged here, rate-limited, the one way any path
 * says that it dropped something.
 */
export class Counters {
  readonly drops = new Float64Array(DROP_REASON_COUNT);
  readonly offload = {
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
   * ECN on decapsulation (RFC 6040): inner packets marked CE from an outer CE, and arrivals in a
   * combination the RFC flags as unexpected (forwarded; a peer or the path misbehaves).
   */
  readonly ecn = { marked: 0, unexpected: 0 };
  icmpTooBig = 0;
  /** A running `vtep capture` (undefined while none runs: one check per drop). */
  capture: CaptureTap | undefined;
  private readonly dropLog = new RateLimiter(10, 5000);

  constructor(
    private readonly log: Log,
    /**
     * The receive addresses of the ring being read (the underlay's, or a group socket's): a drop
     * of datagram `slot` names its sender.
     */
    public addrs: Uint8Array | null,
  ) {}

  drop(
    reason: number,
    now: number,
    vni: number,
    slot: number,
    vs?: VniState,
    peer?: PeerCounters,
  ): void {
    this.drops[reason]++;
    if (vs !== undefined) vs.drops[reason]++;
    if (peer !== undefined) peer.drops[reason]++;
    if (this.capture !== undefined) this.capture.drop(reason, vni);
    // Drops are counted (stats, metrics); the lines are for debugging, rate-limited.
    if (!this.dropLog.allow(now)) return;
    const from = slot >= 0 && this.addrs ? addrToString(this.addrs, slot) : undefined;
    const suppressed = this.dropLog.takeSuppressed();
    this.log(
      'debug',
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

  /** `n` of one VNI's packets dropped for one reason (a batch the kernel refused). */
  dropN(
    reason: number,
    n: number,
    now: number,
    vs: VniState,
    error: string | undefined,
    peer?: PeerCounters,
  ): void {
    this.drops[reason] += n;
    vs.drops[reason] += n;
    if (peer !== undefined) peer.drops[reason] += n;
    if (!this.dropLog.allow(now)) return;
    this.log(
      'debug',
      'drop',
      `drop ${dropReasonName(reason)} x${n} vni ${vs.vni}: ${error ?? 'unknown error'}`,
      { reason: dropReasonName(reason), vni: vs.vni, count: n, error: error ?? 'unknown' },
    );
  }
}

/** Callbacks the engine's paths make to the daemon, set while someone listens. */
export interface Hooks {
  onMiss: ((vni: number, mac: number) => void) | undefined;
  onLocalMac: ((vni: number, mac: number, present: boolean) => void) | undefined;
  onNeigh: ((vni: number, ip: number | string, mac: number) => void) | undefined;
}
