import type { Remote } from '../fdb/remote.js';
import { DROP_REASON_COUNT } from '../wire/drop.js';
import type { PeerStats } from './types.js';

/**
 * What one VNI counts for one remote (underlay address and port), as `wg show` does per peer:
 * datagrams and inner bytes each way, drops by reason once the remote is known (a datagram
 * from it that failed a check, a send to it that failed), and when it was last heard. Counted
 * on the data path without allocating: the record is made when the remote is first seen.
 */
export class PeerCounters {
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  /** The engine clock (ms) of the last datagram from it that passed the sender check; -1: never. */
  lastRx = -1;
  readonly drops = new Float64Array(DROP_REASON_COUNT);

  constructor(
    /** `address:port`, or `other` for the remotes beyond the cap counted together. */
    readonly key: string,
  ) {}
}

/** The key under which remotes beyond a VNI's cap are counted together. */
export const OTHER_PEERS = 'other';

/**
 * A VNI's per-remote counters, by remote key. Bounded: a VNI that learns its remotes from
 * traffic (`learnRemotes`) could be sent to from any address, so past `max` remotes the rest are
 * counted together under `other` instead of growing without end.
 */
export class PeerTable {
  private readonly byKey = new Map<string, PeerCounters>();
  /** The last remote looked up and its record: a flow's datagrams come from one remote. */
  private hotRemote: Remote | undefined;
  private hot: PeerCounters | undefined;
  private rest: PeerCounters | undefined;

  constructor(private readonly max: number) {}

  of(r: Remote): PeerCounters {
    if (r === this.hotRemote) return this.hot!;
    let p = this.byKey.get(r.key);
    if (p === undefined) {
      if (this.byKey.size >= this.max) return (this.rest ??= new PeerCounters(OTHER_PEERS));
      p = new PeerCounters(r.key);
      this.byKey.set(r.key, p);
    }
    this.hotRemote = r;
    this.hot = p;
    return p;
  }

  /** Every record, the `other` one last when there is one. */
  all(): PeerCounters[] {
    const out = [...this.byKey.values()];
    if (this.rest) out.push(this.rest);
    return out;
  }
}

/** `from`'s counters added into `into` (another thread's, or another VNI's, for one remote). */
export function addPeerStats(
  into: Omit<PeerStats, 'remote'>,
  from: Omit<PeerStats, 'remote'>,
): void {
  into.rx.packets += from.rx.packets;
  into.rx.bytes += from.rx.bytes;
  into.tx.packets += from.tx.packets;
  into.tx.bytes += from.tx.bytes;
  for (const [reason, n] of Object.entries(from.drops))
    into.drops[reason] = (into.drops[reason] ?? 0) + n;
  if (from.heardMsAgo !== null)
    into.heardMsAgo =
      into.heardMsAgo === null ? from.heardMsAgo : Math.min(into.heardMsAgo, from.heardMsAgo);
}
