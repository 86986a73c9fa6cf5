import type { RemoteSummary } from '../control/api.js';
import type { VniStats } from '../engine/engine.js';
import type { BfdStatus } from './bfd.js';
import { OTHER_PEERS, addPeerStats } from '../engine/peers.js';

/**
 * Every remote of every VNI, summed over its VNIs (`vtep remote show`, the `remotes` of `vtep
 * stats`, the metrics' `remote` label): the configured ones even before any traffic, the ones
 * the FDB points at, and the ones the engine counted. `macs` is VNI → remote key → entries.
 */
export function summarizeRemotes(
  vnis: readonly VniStats[],
  macs: Map<number, Map<string, number>>,
  bfd?: (key: string) => BfdStatus | undefined,
): RemoteSummary[] {
  const byKey = new Map<string, RemoteSummary>();
  const of = (key: string) => {
    let r = byKey.get(key);
    if (r === undefined) byKey.set(key, (r = emptyRemote(key)));
    return r;
  };
  const join = (r: RemoteSummary, vni: number) => {
    if (!r.vnis.includes(vni)) r.vnis.push(vni);
  };
  for (const v of vnis) {
    for (const key of v.remotes) join(of(key), v.vni);
    for (const p of v.peers) {
      const r = of(p.remote);
      join(r, v.vni);
      addPeerStats(r, p);
    }
    for (const [key, n] of macs.get(v.vni) ?? []) {
      const r = of(key);
      join(r, v.vni);
      r.macs += n;
    }
  }
  for (const r of byKey.values()) {
    r.vnis.sort((a, b) => a - b);
    const b = bfd?.(r.remote);
    if (b) r.bfd = b;
  }
  // `other` (remotes beyond a VNI's cap) last, the rest by key
  return [...byKey.values()].sort(
    (a, b) =>
      Number(a.remote === OTHER_PEERS) - Number(b.remote === OTHER_PEERS) ||
      cmp(a.remote, b.remote),
  );
}

/** A remote with nothing counted yet. */
export function emptyRemote(key: string): RemoteSummary {
  return {
    remote: key,
    vnis: [],
    rx: { packets: 0, bytes: 0 },
    tx: { packets: 0, bytes: 0 },
    drops: {},
    heardMsAgo: null,
    macs: 0,
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
