import { RateLimiter } from '../util/ratelimit.js';
import { formatMac, isValidUnicast, isMulticast } from '../wire/mac.js';
import type { Remote } from './remote.js';

/**
 * The forwarding table: per VNI, MAC (48-bit number) → remote VTEP. Pure: time comes in as
 * `now` (milliseconds), nothing here reads a clock or does I/O.
 *
 * Learned entries of a VNI sit on one list ordered by when traffic from them was last seen
 * (`updated`), as in OVS `lib/mac-learning.c`: the head is both the next to age out and the one
 * evicted when the table is full. Lookups record `used` but do not keep an entry alive: a MAC
 * we only send to may have moved, and Linux (`vxlan_cleanup`) also ages by `updated`.
 */

export const DEFAULT_AGEING_MS = 300_000;
export const DEFAULT_MAX_ENTRIES = 8192;

/** What `learn` did. */
export const Learn = {
  /** A new entry. */
  NEW: 1,
  /** Known at the same remote: `updated` refreshed. */
  REFRESHED: 2,
  /** Known at another remote: moved to the new one. */
  MOVED: 3,
  /** A static entry: never moves, never refreshed by traffic. */
  STATIC: 4,
  /** A new entry, after evicting the VNI's least recently updated learned entry. */
  EVICTED: 5,
  /** Not learned: the table is full of static entries (or the VNI has no learned entry to evict). */
  CAP_HIT: 6,
  /** Not learned: zero, multicast or broadcast source MAC. */
  INVALID_MAC: 7,
  /** Not learned: learning is off for this VNI. */
  DISABLED: 8,
  /** Not learned: the VNI has no table. */
  UNKNOWN_VNI: 9,
} as const;
export type LearnResult = (typeof Learn)[keyof typeof Learn];

export class FdbError extends Error {
  override readonly name = 'FdbError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Identity first (the common case, interned remotes), then the address:port key. */
function sameRemote(a: Remote, b: Remote): boolean {
  return a === b || a.key === b.key;
}

/** Who put a static entry there: an operator (config, `vtep fdb add`) or the OVSDB controller. */
export type StaticSource = 'static' | 'ovsdb' | 'evpn';
/** Who set a flood list: one source for all of it, or one per entry (static remotes beside EVPN ones). */
export type FloodSource = StaticSource | readonly StaticSource[];

export class FdbEntry {
  /** Neighbours on the VNI's learned list (null for static entries and at the ends). */
  prev: FdbEntry | null = null;
  next: FdbEntry | null = null;

  constructor(
    readonly vni: number,
    readonly mac: number,
    public remote: Remote,
    public isStatic: boolean,
    public updated: number,
    public used: number,
    /** For static entries: who added it. */
    public source: StaticSource = 'static',
  ) {}
}

const newCounters = (): FdbCounters => ({
  learned: 0,
  moved: 0,
  aged: 0,
  evicted: 0,
  capHit: 0,
  staticConflict: 0,
});

/** Counters, in the names `vtep stats` prints. */
export interface FdbCounters {
  learned: number;
  moved: number;
  aged: number;
  evicted: number;
  capHit: number;
  /** Traffic from a MAC that a static entry places behind another remote. */
  staticConflict: number;
}

export interface VniOptions {
  /** Learn source MACs from decapsulated traffic (default true). */
  learning?: boolean;
  /** Head-end replication list: where broadcast, multicast and unknown unicast go. */
  flood?: Remote[];
  /** Cap for this VNI (default: the table-wide cap). */
  maxEntries?: number;
}

class VniTable {
  readonly entries = new Map<number, FdbEntry>();
  /**
   * The entry last found, by MAC, valid while `gen` has not moved (it moves whenever an entry
   * leaves the table). A 48-bit MAC is not a small integer to V8: every `Map` lookup boxes it,
   * an allocation per packet; a flow's packets look up the same MAC again and again, and this
   * compares it as a number instead.
   */
  hotMac = -1;
  hotEntry: FdbEntry | undefined;
  hotGen = -1;
  gen = 0;
  head: FdbEntry | null = null;
  tail: FdbEntry | null = null;
  learnedCount = 0;
  flood: Remote[];
  floodSource: FloodSource = 'static';
  learning: boolean;
  maxEntries: number;
  /** This VNI's share of the table's counters. */
  readonly counters = newCounters();

  constructor(
    readonly vni: number,
    opts: VniOptions,
    defaultMax: number,
  ) {
    this.flood = [...(opts.flood ?? [])];
    this.learning = opts.learning ?? true;
    this.maxEntries = opts.maxEntries ?? defaultMax;
  }

  append(e: FdbEntry): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
    this.learnedCount++;
  }

  unlink(e: FdbEntry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = null;
    this.learnedCount--;
  }

  /** The entry for `mac`, through the one-entry cache. */
  find(mac: number): FdbEntry | undefined {
    if (mac === this.hotMac && this.hotGen === this.gen) return this.hotEntry;
    const e = this.entries.get(mac);
    if (e !== undefined) {
      this.hotMac = mac;
      this.hotEntry = e;
      this.hotGen = this.gen;
    }
    return e;
  }

  /** Move a learned entry to the tail: it was just updated. */
  touch(e: FdbEntry): void {
    if (this.tail === e) return;
    this.unlink(e);
    this.append(e);
  }
}

export interface FdbOptions {
  ageingMs?: number;
  /** Cap over all VNIs together (default 8192, like OVS). */
  maxEntries?: number;
  /** Called for a MAC move, at most `burst` times per interval; `suppressed` counts the rest. */
  onMove?: (move: {
    vni: number;
    mac: number;
    from: Remote;
    to: Remote;
    suppressed: number;
  }) => void;
}

/** What changed in the table: what `vtep monitor` streams (like `bridge monitor fdb`). */
export interface FdbEvent {
  type: 'learn' | 'move' | 'age' | 'evict';
  vni: number;
  mac: number;
  /** Where the MAC is now (learn, move) or was (age, evict). */
  remote: Remote;
  /** move: where it was before. */
  from?: Remote;
}

/**
 * A change of one entry, for copies of the table kept elsewhere (the other workers' engines):
 * an entry set (learned, moved, added static) or removed (deleted, flushed, aged, evicted). A
 * refresh is not a change.
 */
export type FdbChange =
  | {
      op: 'set';
      vni: number;
      mac: number;
      remote: Remote;
      isStatic: boolean;
      source: StaticSource;
    }
  | { op: 'del'; vni: number; mac: number };

export interface FlushFilter {
  vni?: number;
  remote?: Remote;
  /** Keep static entries. */
  learnedOnly?: boolean;
  /** Only static entries added by this source. */
  source?: StaticSource;
}

export interface FdbRow {
  vni: number;
  mac: string;
  remote: string;
  static: boolean;
  /** Where the entry came from: traffic, an operator, or the OVSDB controller. */
  source: 'learned' | StaticSource;
  /** Seconds since traffic from this MAC was last seen (learned) or since it was added (static). */
  ageSeconds: number;
  /** Seconds since a frame was last sent to this MAC. */
  usedSeconds: number;
  /**
   * A flood-list row: `00:00:00:00:00:00` to a remote (head-end replication), as Linux shows
   * the all-zeros entries of a vxlan device in `bridge fdb show`.
   */
  flood?: boolean;
}

export class Fdb {
  ageingMs: number;
  maxEntries: number;
  /** The whole table's counters (each VNI's are in `countersOf`). */
  readonly counters = newCounters();
  private readonly tables = new Map<number, VniTable>();
  private total = 0;
  private readonly moveLimiter = new RateLimiter(10, 5000);
  private readonly onMove: FdbOptions['onMove'];
  /** Set while someone watches (`vtep monitor`); checked, never called, otherwise. */
  onEvent: ((e: FdbEvent) => void) | undefined;
  /** Set when copies of the table are kept elsewhere (workers): every change, as it happens. */
  onChange: ((c: FdbChange) => void) | undefined;

  constructor(opts: FdbOptions = {}) {
    this.ageingMs = DEFAULT_AGEING_MS;
    this.maxEntries = DEFAULT_MAX_ENTRIES;
    this.setLimits(opts);
    this.onMove = opts.onMove;
  }

  /** Change the ageing time or the table-wide cap (a reload); both apply from the next sweep/learn. */
  setLimits(o: { ageingMs?: number; maxEntries?: number }): void {
    const ageingMs = o.ageingMs ?? this.ageingMs;
    const maxEntries = o.maxEntries ?? this.maxEntries;
    if (!(ageingMs > 0)) throw new FdbError('ERR_FDB_CONFIG', `ageing ${ageingMs} ms must be > 0`);
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new FdbError('ERR_FDB_CONFIG', `max-entries ${maxEntries} must be an integer ≥ 1`);
    }
    this.ageingMs = ageingMs;
    this.maxEntries = maxEntries;
  }

  /** Entries over all VNIs. */
  get size(): number {
    return this.total;
  }

  addVni(vni: number, opts: VniOptions = {}): void {
    if (this.tables.has(vni))
      throw new FdbError('ERR_FDB_VNI_EXISTS', `vni ${vni} already has a table`);
    const max = opts.maxEntries ?? this.maxEntries;
    if (!Number.isInteger(max) || max < 1) {
      throw new FdbError('ERR_FDB_CONFIG', `vni ${vni}: max-entries ${max} must be an integer ≥ 1`);
    }
    this.tables.set(vni, new VniTable(vni, opts, this.maxEntries));
  }

  /** Drop a VNI's table and every entry in it. */
  removeVni(vni: number): boolean {
    const t = this.tables.get(vni);
    if (t === undefined) return false;
    this.total -= t.entries.size;
    this.tables.delete(vni);
    return true;
  }

  /** Change a VNI's learning switch or cap; a lower cap applies to the next learn. */
  setVniOptions(vni: number, o: { learning?: boolean; maxEntries?: number }): void {
    const t = this.table(vni);
    if (o.learning !== undefined) t.learning = o.learning;
    if (o.maxEntries !== undefined) t.maxEntries = o.maxEntries;
  }

  /** Replace a VNI's flood list (and say who set it, for `fdb show`). */
  setFlood(vni: number, remotes: readonly Remote[], source: FloodSource = 'static'): void {
    const t = this.table(vni);
    t.flood = [...remotes];
    t.floodSource = source;
  }

  hasVni(vni: number): boolean {
    return this.tables.has(vni);
  }

  vnis(): number[] {
    return [...this.tables.keys()];
  }

  /** One VNI's counters (zeros for a VNI without a table). */
  countersOf(vni: number): FdbCounters {
    return { ...(this.tables.get(vni)?.counters ?? newCounters()) };
  }

  /** One VNI's entry cap (the table-wide one bounds all VNIs together as well). */
  maxEntriesOf(vni: number): number {
    return Math.min(this.tables.get(vni)?.maxEntries ?? this.maxEntries, this.maxEntries);
  }

  /** Entries of one VNI. */
  sizeOf(vni: number): number {
    return this.tables.get(vni)?.entries.size ?? 0;
  }

  setLearning(vni: number, on: boolean): void {
    this.table(vni).learning = on;
  }

  /** The VNI's head-end replication list (the Linux all-zeros entries). */
  floodList(vni: number): readonly Remote[] {
    return this.tables.get(vni)?.flood ?? [];
  }

  addFlood(vni: number, remote: Remote): void {
    const t = this.table(vni);
    if (!t.flood.some((r) => sameRemote(r, remote))) t.flood.push(remote);
  }

  removeFlood(vni: number, remote: Remote): boolean {
    const t = this.table(vni);
    const i = t.flood.findIndex((r) => sameRemote(r, remote));
    if (i < 0) return false;
    t.flood.splice(i, 1);
    return true;
  }

  /**
   * Learn from a decapsulated frame: inner source `mac` was seen behind `remote` (vxlan_snoop).
   * Never throws: every outcome is a `Learn` code.
   */
  learn(vni: number, mac: number, remote: Remote, now: number): LearnResult {
    return this.learnHalves(vni, Math.floor(mac / 0x1000000), mac % 0x1000000, remote, now);
  }

  /**
   * `learn` with the MAC as its two 24-bit halves (the engine reads them from the frame): small integers cross the
   * call without V8 boxing them, where a 48-bit number would be boxed on each call (the engine
   * learns from every datagram).
   */
  learnHalves(vni: number, hi: number, lo: number, remote: Remote, now: number): LearnResult {
    const mac = hi * 0x1000000 + lo;
    const t = this.tables.get(vni);
    if (t === undefined) return Learn.UNKNOWN_VNI;
    if (!isValidUnicast(mac)) return Learn.INVALID_MAC;
    // the one-entry cache compared here, not in `find`: a call V8 does not inline boxes `mac`
    const e = mac === t.hotMac && t.hotGen === t.gen ? t.hotEntry : t.find(mac);
    if (e !== undefined) {
      if (e.isStatic) {
        if (!sameRemote(e.remote, remote)) {
          this.counters.staticConflict++;
          t.counters.staticConflict++;
        }
        return Learn.STATIC;
      }
      if (!t.learning) return Learn.DISABLED;
      e.updated = now;
      t.touch(e);
      if (sameRemote(e.remote, remote)) return Learn.REFRESHED;
      const from = e.remote;
      e.remote = remote;
      this.counters.moved++;
      t.counters.moved++;
      if (this.onChange) this.changed(e);
      if (this.onEvent) this.onEvent({ type: 'move', vni, mac, remote, from });
      if (this.onMove && this.moveLimiter.allow(now)) {
        this.onMove({ vni, mac, from, to: remote, suppressed: this.moveLimiter.takeSuppressed() });
      }
      return Learn.MOVED;
    }
    if (!t.learning) return Learn.DISABLED;
    const room = this.makeRoom(t);
    if (room === 'full') {
      this.counters.capHit++;
      t.counters.capHit++;
      return Learn.CAP_HIT;
    }
    const result: LearnResult = room === 'evicted' ? Learn.EVICTED : Learn.NEW;
    const entry = new FdbEntry(vni, mac, remote, false, now, now);
    t.entries.set(mac, entry);
    t.append(entry);
    this.total++;
    this.counters.learned++;
    t.counters.learned++;
    if (this.onChange) this.changed(entry);
    if (this.onEvent) this.onEvent({ type: 'learn', vni, mac, remote });
    return result;
  }

  /**
   * Where to send a frame for `mac`: the remote of a unicast hit, or `null` for "flood to
   * `floodList(vni)`" (miss, broadcast, multicast, unknown VNI). Records `used`.
   */
  lookup(vni: number, mac: number, now: number): Remote | null {
    return this.lookupHalves(vni, Math.floor(mac / 0x1000000), mac % 0x1000000, now);
  }

  /**
   * `lookup` with the MAC as its two 24-bit halves (`macHi`/`macLo` of the frame), for the
   * engine: it looks up every frame, and a 48-bit number is boxed, one allocation per frame,
   * whenever V8 chooses not to inline this call (it did, until the encap path grew).
   */
  lookupHalves(vni: number, hi: number, lo: number, now: number): Remote | null {
    const mac = hi * 0x1000000 + lo;
    const t = this.tables.get(vni);
    if (t === undefined) return null;
    // the one-entry cache compared here, not in `find`: a call V8 does not inline boxes `mac`
    const e = mac === t.hotMac && t.hotGen === t.gen ? t.hotEntry : t.find(mac);
    if (e === undefined) return null;
    e.used = now;
    return e.remote;
  }

  /** Add or replace a static entry. Throws `ERR_FDB_FULL` when no room can be made. */
  addStatic(
    vni: number,
    mac: number,
    remote: Remote,
    now: number,
    source: StaticSource = 'static',
  ): void {
    const t = this.table(vni);
    if (isMulticast(mac) || mac === 0) {
      throw new FdbError('ERR_FDB_MAC', `mac ${formatMac(mac)} is not a unicast address`);
    }
    const e = t.entries.get(mac);
    if (e !== undefined) {
      if (!e.isStatic) t.unlink(e);
      e.isStatic = true;
      e.remote = remote;
      e.updated = now;
      e.source = source;
      if (this.onChange) this.changed(e);
      return;
    }
    if (this.makeRoom(t) === 'full') {
      throw new FdbError(
        'ERR_FDB_FULL',
        `vni ${vni}: table full (${t.entries.size} entries, ${this.total} in all), no learned entry to evict`,
      );
    }
    const entry = new FdbEntry(vni, mac, remote, true, now, now, source);
    t.entries.set(mac, entry);
    this.total++;
    if (this.onChange) this.changed(entry);
  }

  /**
   * Learned entries updated after `since` (ms, as `now`), most recent first: what a worker
   * reports so that the table that ages entries knows they are alive. Stops at the first older
   * one (the learned list is kept in update order), so it costs what it returns.
   */
  *updatedSince(since: number): Generator<FdbEntry> {
    for (const t of this.tables.values())
      for (let e = t.tail; e !== null && e.updated > since; e = e.prev) yield e;
  }

  private changed(e: FdbEntry): void {
    this.onChange!({
      op: 'set',
      vni: e.vni,
      mac: e.mac,
      remote: e.remote,
      isStatic: e.isStatic,
      source: e.source,
    });
  }

  /** Delete one entry, static or learned. Returns whether it existed. */
  delete(vni: number, mac: number): boolean {
    const t = this.tables.get(vni);
    const e = t?.entries.get(mac);
    if (t === undefined || e === undefined) return false;
    this.remove(t, e);
    return true;
  }

  /** Remove the entries matching every given criterion; returns how many. */
  flush(filter: FlushFilter = {}): number {
    let n = 0;
    for (const t of this.tables.values()) {
      if (filter.vni !== undefined && t.vni !== filter.vni) continue;
      for (const e of t.entries.values()) {
        if (filter.remote !== undefined && !sameRemote(e.remote, filter.remote)) continue;
        if (filter.learnedOnly && e.isStatic) continue;
        if (filter.source !== undefined && (!e.isStatic || e.source !== filter.source)) continue;
        this.remove(t, e);
        n++;
      }
    }
    return n;
  }

  /**
   * Remove learned entries not updated for `ageingMs`. Returns how many went and when the next
   * one is due (`undefined` when no learned entry is left): re-arm the timer for that.
   */
  sweep(now: number): { removed: number; nextDue: number | undefined } {
    let removed = 0;
    let nextDue: number | undefined;
    for (const t of this.tables.values()) {
      while (t.head !== null && now - t.head.updated >= this.ageingMs) {
        const gone = t.head;
        this.remove(t, gone);
        removed++;
        t.counters.aged++;
        if (this.onEvent)
          this.onEvent({ type: 'age', vni: t.vni, mac: gone.mac, remote: gone.remote });
      }
      if (t.head !== null) {
        const due = t.head.updated + this.ageingMs;
        if (nextDue === undefined || due < nextDue) nextDue = due;
      }
    }
    this.counters.aged += removed;
    return { removed, nextDue };
  }

  /** The entry for a MAC, for the control plane and tests. */
  get(vni: number, mac: number): FdbEntry | undefined {
    return this.tables.get(vni)?.entries.get(mac);
  }

  /** How many entries each VNI has behind each remote: VNI → remote key → count. */
  macsByRemote(): Map<number, Map<string, number>> {
    const out = new Map<number, Map<string, number>>();
    for (const [vni, t] of this.tables) {
      const m = new Map<string, number>();
      for (const e of t.entries.values()) m.set(e.remote.key, (m.get(e.remote.key) ?? 0) + 1);
      out.set(vni, m);
    }
    return out;
  }

  /** Rows for `vtep fdb show`, sorted by VNI then MAC. */
  list(now: number, vni?: number): FdbRow[] {
    return [...this.listChunks(now, vni)].flat();
  }

  /**
   * The same rows, `size` at a time, so a caller can let other work run between chunks. Entries
   * removed between two chunks are left out; entries added after the first chunk are not listed.
   */
  *listChunks(
    now: number,
    vni?: number,
    size = 512,
    opts: { flood?: boolean } = {},
  ): Generator<FdbRow[]> {
    const vnis = [...this.tables.keys()]
      .filter((v) => vni === undefined || v === vni)
      .sort((a, b) => a - b);
    for (const v of vnis) {
      const t = this.tables.get(v)!;
      const floodSource = t.floodSource;
      if (opts.flood && t.flood.length)
        yield t.flood.map((r, i) => ({
          vni: v,
          mac: '00:00:00:00:00:00',
          remote: r.key,
          static: true,
          source: typeof floodSource === 'string' ? floodSource : (floodSource[i] ?? 'static'),
          ageSeconds: 0,
          usedSeconds: 0,
          flood: true,
        }));
      const entries = [...t.entries.values()].sort((a, b) => a.mac - b.mac);
      for (let i = 0; i < entries.length; i += size) {
        const rows: FdbRow[] = [];
        for (const e of entries.slice(i, i + size)) {
          if (t.entries.get(e.mac) !== e) continue;
          rows.push({
            vni: v,
            mac: formatMac(e.mac),
            remote: e.remote.key,
            static: e.isStatic,
            source: e.isStatic ? e.source : 'learned',
            ageSeconds: Math.floor((now - e.updated) / 1000),
            usedSeconds: Math.floor((now - e.used) / 1000),
          });
        }
        yield rows;
      }
    }
  }

  private table(vni: number): VniTable {
    const t = this.tables.get(vni);
    if (t === undefined) throw new FdbError('ERR_FDB_VNI', `vni ${vni} is not configured`);
    return t;
  }

  /** The table whose oldest learned entry would make room in `t` (see `makeRoom`); undefined: room. */
  private victimFor(t: VniTable): VniTable | undefined {
    let victim: VniTable = t;
    if (t.entries.size < t.maxEntries) {
      if (this.total < this.maxEntries) return undefined;
      for (const o of this.tables.values())
        if (
          o.learnedCount > victim.learnedCount ||
          (o.learnedCount === victim.learnedCount && victim !== t && o.vni < victim.vni)
        )
          victim = o;
    }
    return victim;
  }

  /**
   * What `learn` would do with `mac` seen behind `remote`, changing nothing (`vtep trace`):
   * new, new after evicting the oldest learned entry (of this VNI or, at the table-wide cap, of
   * the VNI with most), refreshed, moved (from where), or not learned and why.
   */
  wouldLearn(
    vni: number,
    mac: number,
    remote: Remote,
  ):
    | {
        verdict:
          'new' | 'refreshed' | 'static' | 'disabled' | 'unknown_vni' | 'invalid_mac' | 'full';
      }
    | { verdict: 'evicts'; vni: number; mac: number }
    | { verdict: 'moved'; from: string } {
    const t = this.tables.get(vni);
    if (t === undefined) return { verdict: 'unknown_vni' };
    if (!isValidUnicast(mac)) return { verdict: 'invalid_mac' };
    const e = t.entries.get(mac);
    if (e !== undefined) {
      if (e.isStatic) return { verdict: 'static' };
      if (!t.learning) return { verdict: 'disabled' };
      if (sameRemote(e.remote, remote)) return { verdict: 'refreshed' };
      return { verdict: 'moved', from: e.remote.key };
    }
    if (!t.learning) return { verdict: 'disabled' };
    const victim = this.victimFor(t);
    if (victim === undefined) return { verdict: 'new' };
    if (victim.head === null) return { verdict: 'full' };
    return { verdict: 'evicts', vni: victim.vni, mac: victim.head.mac };
  }

  /**
   * Room for one more entry in `t`. At the VNI's own cap, its least recently updated learned
   * entry goes. At the table-wide cap only, the entry goes from the VNI with the most learned
   * entries (ties: `t` itself, then the lowest VNI): a tenant that floods MACs evicts its own,
   * while a smaller one still learns at the flooder's expense, so no VNI can lock the others out
   * of learning (they would flood every unicast forever). Scans the VNIs only when the whole
   * table is full.
   */
  private makeRoom(t: VniTable): 'free' | 'evicted' | 'full' {
    const victim = this.victimFor(t);
    if (victim === undefined) return 'free';
    const gone = victim.head;
    if (gone === null) return 'full';
    this.remove(victim, gone);
    this.counters.evicted++;
    victim.counters.evicted++;
    if (this.onEvent)
      this.onEvent({ type: 'evict', vni: victim.vni, mac: gone.mac, remote: gone.remote });
    return 'evicted';
  }

  private remove(t: VniTable, e: FdbEntry): void {
    if (!e.isStatic) t.unlink(e);
    t.entries.delete(e.mac);
    t.gen++;
    this.total--;
    if (this.onChange) this.onChange({ op: 'del', vni: t.vni, mac: e.mac });
  }
}
