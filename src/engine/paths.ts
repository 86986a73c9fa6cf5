import type { Remote } from '../fdb/remote.js';
import type { Log } from '../util/log.js';
import { HEADER_LEN as UDP_HEADER_LEN } from '../wire/udp.js';
import { HEADER_LEN as VXLAN_HEADER_LEN } from '../wire/vxlan.js';

/** Outer IP + UDP + VXLAN: what an inner frame grows by on the underlay. */
export function encapOverhead(family: 4 | 6): number {
  return (family === 4 ? 20 : 40) + UDP_HEADER_LEN + VXLAN_HEADER_LEN;
}

/** How long a narrow path is trusted before the kernel is asked again (its entry may expire). */
export const PATH_RECHECK_MS = 10_000;
/** Remotes with a narrow path kept at most; past it the table starts over (probes refill it). */
const PATHS_MAX = 4096;

interface Narrow {
  /** Largest inner frame the path towards the remote carries. */
  max: number;
  /** Until when (ms) `max` holds without asking again. */
  until: number;
}

/**
 * Remotes whose underlay path is narrower than the link's, as the kernel learned it (an ICMP
 * "fragmentation needed" / "packet too big" from an underlay router, kept as a route
 * exception). Found when a send fails with EMSGSIZE (or UDP GSO refuses a segment size), and
 * then read from the kernel by `pathMtu` (the daemon's: a connected probe socket's IP_MTU), so
 * the engine itself makes no syscall. An entry is asked again after `PATH_RECHECK_MS` when a
 * frame does not fit it, and dropped once the path is back to the link's width.
 */
export class Paths {
  private readonly narrow = new Map<Remote, Narrow>();
  /** Largest inner frame of the link (the engine's `pathMax`). */
  linkMax = 1500;

  constructor(
    private readonly pathMtu: ((address: string) => number | undefined) | undefined,
    private readonly log: Log,
  ) {}

  get size(): number {
    return this.narrow.size;
  }

  /**
   * The largest inner frame towards `remote` for a frame of `len` bytes: the link's unless a
   * narrow path is known (asked again when due and the frame does not fit).
   */
  maxFor(remote: Remote, len: number, now: number): number {
    const p = this.narrow.get(remote);
    if (p === undefined || len <= p.max) return p === undefined ? this.linkMax : p.max;
    if (now >= p.until) return this.probe(remote, now);
    return p.max;
  }

  /**
   * Ask the kernel for the path MTU towards `remote` now (after EMSGSIZE, or when an entry is
   * due) and remember it when narrower than the link. Returns the largest inner frame.
   */
  probe(remote: Remote, now: number): number {
    const mtu = this.pathMtu?.(remote.address);
    const max = mtu === undefined || mtu <= 0 ? this.linkMax : mtu - encapOverhead(remote.family);
    const old = this.narrow.get(remote);
    if (max >= this.linkMax) {
      if (old !== undefined) {
        this.narrow.delete(remote);
        this.log('info', 'path_mtu', `remote ${remote.key}: path MTU back to the link's`, {
          remote: remote.key,
        });
      }
      return this.linkMax;
    }
    if (old === undefined || old.max !== max) {
      this.log(
        'info',
        'path_mtu',
        `remote ${remote.key}: path MTU ${mtu}, inner frames up to ${max} bytes`,
        { remote: remote.key, mtu, maxFrame: max },
      );
    }
    if (old === undefined && this.narrow.size >= PATHS_MAX) this.narrow.clear();
    this.narrow.set(remote, { max, until: now + PATH_RECHECK_MS });
    return max;
  }

  /** The narrow paths known: remote key → largest inner frame. */
  /** The largest inner frame towards `remote` as known now, asking nobody (`vtep trace`). */
  peek(remote: Remote): number {
    return this.narrow.get(remote)?.max ?? this.linkMax;
  }

  list(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [r, p] of this.narrow) out[r.key] = p.max;
    return out;
  }
}
