import { Learn, type Fdb, type FdbChange, type StaticSource } from './fdb.js';
import type { Remotes } from './remote.js';

/**
 * One FDB over several threads (`workers`): the main thread's table is the authority, each
 * worker keeps a copy, coherent by messages. Both sides are here, as plain data in and out; the
 * threads and their timers are the daemon's (src/daemon/threads).
 *
 * - The main table's every change (learned, moved, static added, deleted, flushed, aged) becomes
 *   an `FdbOp` for the copies (`toFdbOp`).
 * - A copy applies them without reporting them back (`FdbReplica.apply`), and reports what its
 *   own thread learns (new and moved MACs at once) and, periodically, the MACs it saw again, so
 *   that the main table does not age out a MAC only a worker hears. A copy never ages.
 * - The main table takes those reports in (`absorb`); what it refuses (learning off, the cap, a
 *   static entry) goes back as ops, so no copy keeps an entry the main table does not have.
 */

/** One change: [vni, mac, address (null: removed), port, static, source]. */
export type FdbOp = [number, number, string | null, number, boolean, StaticSource];
/** One MAC a copy learned or saw again: [vni, mac, address, port]. */
export type Seen = [number, number, string, number];

export function toFdbOp(c: FdbChange): FdbOp {
  return c.op === 'del'
    ? [c.vni, c.mac, null, 0, false, 'static']
    : [c.vni, c.mac, c.remote.address, c.remote.port, c.isStatic, c.source];
}

/** A worker's copy of the main table. */
export class FdbReplica {
  private applying = false;
  private report: Seen[] = [];
  private lastScan: number;

  /** `onFirst` is called when a report starts to fill (the thread schedules `take`). */
  constructor(
    private readonly fdb: Fdb,
    private readonly remotes: Remotes,
    now: number,
    private readonly onFirst: () => void,
  ) {
    this.lastScan = now;
    fdb.onChange = (c) => {
      if (this.applying || c.op !== 'set' || c.isStatic) return;
      this.seen(c.vni, c.mac, c.remote.address, c.remote.port);
    };
  }

  private seen(vni: number, mac: number, address: string, port: number): void {
    if (this.report.length === 0) this.onFirst();
    this.report.push([vni, mac, address, port]);
  }

  /** The main table's changes, applied here without being reported back. */
  apply(ops: readonly FdbOp[], now: number): void {
    this.applying = true;
    try {
      for (const [vni, mac, address, port, isStatic, source] of ops) {
        if (!this.fdb.hasVni(vni)) continue;
        if (address === null) this.fdb.delete(vni, mac);
        else if (isStatic) {
          try {
            this.fdb.addStatic(vni, mac, this.remotes.get(address, port), now, source);
          } catch {
            // full of static entries here as there: the main table refused it first
          }
        } else this.fdb.learn(vni, mac, this.remotes.get(address, port), now);
      }
    } finally {
      this.applying = false;
    }
  }

  /** Add the entries seen again since the last call to the report (call it periodically). */
  refresh(now: number): void {
    for (const e of this.fdb.updatedSince(this.lastScan))
      this.seen(e.vni, e.mac, e.remote.address, e.remote.port);
    this.lastScan = now;
  }

  /** What is to be reported now (and empties it). */
  take(): Seen[] {
    const r = this.report;
    this.report = [];
    return r;
  }
}

/**
 * A copy's report, into the main table (which tells every copy what is new or moved through its
 * own changes). Returns the ops that take back what the main table refused.
 */
export function absorb(fdb: Fdb, remotes: Remotes, seen: readonly Seen[], now: number): FdbOp[] {
  const back: FdbOp[] = [];
  for (const [vni, mac, address, port] of seen) {
    const r = fdb.learn(vni, mac, remotes.get(address, port), now);
    if (r === Learn.STATIC) back.push(toFdbOp({ op: 'set', ...fdb.get(vni, mac)! }));
    else if (r !== Learn.NEW && r !== Learn.EVICTED && r !== Learn.MOVED && r !== Learn.REFRESHED)
      back.push(toFdbOp({ op: 'del', vni, mac }));
  }
  return back;
}
