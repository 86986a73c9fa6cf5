import { Worker } from 'node:worker_threads';
import type { RemoteSpec } from '../../config/config.js';
import type { Fdb, FdbChange } from '../../fdb/fdb.js';
import type { Remote, Remotes } from '../../fdb/remote.js';
import { absorb, toFdbOp, type FdbOp, type Seen } from '../../fdb/replica.js';
import type { ThreadStats } from '../../control/api.js';
import type { Log } from '../../util/log.js';
import { addThreadIo, NO_THREAD_IO, type ThreadIo } from '../../io/threadio.js';
import type {
  CaptureFilter,
  Captured,
  Engine,
  EngineSettings,
  EngineStats,
  PeerStats,
  VniConfig,
  VniStats,
  VniUpdate,
} from '../../engine/engine.js';
import { addPeerStats } from '../../engine/peers.js';
import type { PlaneOptions } from './plane.js';
import type { FromWorker, QueueSpec, ToWorker, WorkerInit } from './protocol.js';

/**
 * `workers: N`: N-1 data-plane threads beside the main one. Each has its own engine over its own
 * TAP queue per VNI and its own underlay socket on the shared port; the kernel spreads flows
 * over the queues and sockets by hash, so a flow stays on one thread. The main thread keeps the
 * control plane: configuration, reloads, the control socket, ageing, and the FDB that `vtep fdb`
 * shows. The workers keep copies of it (src/fdb/replica.ts): the main table's changes go to
 * every worker batched per turn of the event loop, and what a worker learns comes back. A MAC
 * learned by one thread is therefore known to all within a turn of their event loops; until
 * then the others flood frames for it, which is what a miss does anyway. Callers do not use this
 * class directly: `Planes` puts it and the main thread's engine behind one interface.
 */

/** A remote as plain data, for postMessage. */
const plain = (r: Remote): RemoteSpec => ({ address: r.address, port: r.port });

export function threadStats(worker: number, s: EngineStats): ThreadStats {
  const sum = (f: (v: VniStats) => number) => s.vnis.reduce((a, v) => a + f(v), 0);
  return {
    worker,
    rx: { packets: sum((v) => v.rx.packets), bytes: sum((v) => v.rx.bytes) },
    tx: { packets: sum((v) => v.tx.packets), bytes: sum((v) => v.tx.bytes) },
    drops: Object.values(s.drops).reduce((a, n) => a + n, 0),
  };
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

/** One VNI's per-remote counters from another thread added into `into`, by remote. */
export function mergePeers(into: PeerStats[], from: readonly PeerStats[]): void {
  for (const p of from) {
    const m = into.find((x) => x.remote === p.remote);
    if (m) addPeerStats(m, p);
    else into.push(structuredClone(p));
  }
}

/**
 * The counters of all threads added up, and the narrow paths any thread learned; the rest (VNI
 * settings, the FDB and its counters, the link's path MTU) is the main thread's, which is the
 * authority for them.
 */
export function mergeStats(main: EngineStats, others: readonly EngineStats[]): EngineStats {
  const out: EngineStats = structuredClone(main);
  for (const o of others) {
    for (const v of o.vnis) {
      const m = out.vnis.find((x) => x.vni === v.vni);
      if (!m) continue; // a VNI the worker still has while the main one removed it
      m.rx.packets += v.rx.packets;
      m.rx.bytes += v.rx.bytes;
      m.tx.packets += v.tx.packets;
      m.tx.bytes += v.tx.bytes;
      addInto(m.drops, v.drops);
      mergePeers(m.peers, v.peers);
      if (m.suppress && v.suppress) {
        m.suppress.answered += v.suppress.answered;
        m.suppress.flooded += v.suppress.flooded;
      }
    }
    addInto(out.drops, o.drops);
    out.icmpTooBig += o.icmpTooBig;
    addInto(out.offload, o.offload);
    addInto(out.ecn, o.ecn);
    // each thread learns narrow paths on its own sends: the narrowest any has seen
    for (const [k, max] of Object.entries(o.narrowPaths ?? {}))
      out.narrowPaths[k] = Math.min(out.narrowPaths[k] ?? max, max);
  }
  return out;
}

interface Thread {
  id: number;
  worker: Worker;
  latest: EngineStats | undefined;
  /** Its I/O figures (busy polling, TAP I/O), as last reported. */
  io: ThreadIo;
  /** When it last answered (clock ms): a thread that stops answering is stuck. */
  lastAnswer: number;
  sourcePorts: string;
  exited: Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const STATS_TIMEOUT_MS = 1000;
const STOP_TIMEOUT_MS = 500;
/** A worker that has not answered for this long is stuck (asked every second). */
export const STALL_MS = 2500;

export class Workers {
  private pending: FdbOp[] = [];
  private flushing = false;
  private stopping = false;
  private failed = false;
  private statsId = 0;
  private readonly waiting = new Map<number, { left: number; done: () => void }>();
  private onMiss: ((vni: number, mac: number) => void) | undefined;
  private onCapture: ((c: Captured) => void) | undefined;
  private onBfd: ((vni: number, remote: Remote, bytes: Uint8Array) => void) | undefined;
  private onCaptureLost: ((n: number) => void) | undefined;
  /** Every address ARP/ND snooping learns, on any thread (EVPN announces MAC+IP from it). */
  onNeighbour: ((vni: number, ip: number | string, mac: number) => void) | undefined;

  private constructor(
    private readonly engine: Engine,
    private readonly threads: Thread[],
    private readonly fdb: Fdb,
    private readonly remotes: Remotes,
    private readonly log: Log,
    private readonly clock: () => number,
    private readonly onFatal: (err: Error) => void,
  ) {}

  /**
   * Start `count` worker threads (ids 1..count) and wait until each has its data plane open.
   * The main thread's underlay socket must already be bound with `reusePort`.
   */
  static async start(o: {
    count: number;
    plane: PlaneOptions;
    /** The main thread's engine (its ARP/ND suppression tables are shared too). */
    engine: Engine;
    fdb: Fdb;
    remotes: Remotes;
    log: Log;
    clock: () => number;
    onFatal: (err: Error) => void;
  }): Promise<Workers> {
    const threads: Thread[] = [];
    const url = new URL('./worker.js', import.meta.url);
    let pool: Workers | undefined;
    const ready: Promise<void>[] = [];
    for (let id = 1; id <= o.count; id++) {
      const init: WorkerInit = {
        id,
        testHooks: process.env.VTEP_TEST_HOOKS === '1',
        plane: o.plane,
        ageingMs: o.fdb.ageingMs,
        maxEntries: o.fdb.maxEntries,
      };
      const worker = new Worker(url, { workerData: init });
      const t: Thread = {
        id,
        worker,
        latest: undefined,
        io: NO_THREAD_IO,
        lastAnswer: o.clock(),
        sourcePorts: '',
        exited: new Promise((resolve) => worker.once('exit', () => resolve())),
      };
      threads.push(t);
      ready.push(
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`worker ${id} did not start within ${START_TIMEOUT_MS} ms`)),
            START_TIMEOUT_MS,
          );
          // Before it is ready, a failure fails the start; after, it is fatal (see died).
          worker.on('error', (err) => {
            clearTimeout(timer);
            if (pool) pool.died(t, err.message);
            else reject(new Error(`worker ${id}: ${err.message}`));
          });
          worker.on('exit', (code) => {
            clearTimeout(timer);
            if (pool) pool.died(t, `exited with code ${code}`);
            else reject(new Error(`worker ${id} exited (code ${code}) before it was ready`));
          });
          worker.on('message', (m: FromWorker) => {
            if (m.t === 'ready') {
              clearTimeout(timer);
              t.sourcePorts = m.sourcePorts;
              resolve();
            } else pool?.received(t, m);
          });
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (err) {
      await Promise.all(threads.map((t) => t.worker.terminate()));
      throw err;
    }
    pool = new Workers(o.engine, threads, o.fdb, o.remotes, o.log, o.clock, o.onFatal);
    o.fdb.onChange = (c) => pool!.changed(c);
    o.engine.onNeigh = (vni, ip, mac) => {
      pool!.neigh(vni, ip, mac);
      pool!.onNeighbour?.(vni, ip, mac);
    };
    return pool;
  }

  /** Worker threads. */
  get size(): number {
    return this.threads.length;
  }

  /** How each worker picks source ports (their GSO senders differ). */
  sourcePorts(): string[] {
    return this.threads.map((t) => t.sourcePorts);
  }

  private send(m: ToWorker): void {
    for (const t of this.threads) t.worker.postMessage(m);
  }

  configure(s: EngineSettings): void {
    this.send({ t: 'configure', s });
  }

  limits(ageingMs: number, maxEntries: number): void {
    this.send({ t: 'limits', ageingMs, maxEntries });
  }

  multicastIf(ifindex: number): void {
    this.send({ t: 'multicastIf', ifindex });
  }

  addVni(cfg: VniConfig, queue: QueueSpec): void {
    this.flush(); // entries the main table had before stay ordered before the VNI's
    this.send({
      t: 'addVni',
      cfg: {
        vni: cfg.vni,
        remotes: cfg.remotes.map(plain),
        ...(cfg.senders ? { senders: cfg.senders.map(plain) } : {}),
        ...(cfg.floodSource ? { floodSource: cfg.floodSource } : {}),
        ...(cfg.localMacs ? { localMacs: true } : {}),
        learnRemotes: cfg.learnRemotes,
        learning: cfg.learning,
        maxEntries: cfg.maxEntries,
        ownMacs: cfg.ownMacs ?? [],
        mtu: cfg.mtu ?? 1500,
        suppressArp: cfg.suppressArp,
        ...(cfg.outer ? { outer: cfg.outer } : {}),
      },
      queue,
    });
  }

  updateVni(vni: number, u: VniUpdate): void {
    this.flush();
    const { remotes, senders, ...rest } = u;
    this.send({
      t: 'updateVni',
      vni,
      u: {
        ...rest,
        ...(remotes ? { remotes: remotes.map(plain) } : {}),
        ...(senders ? { senders: senders.map(plain) } : {}),
      },
    });
  }

  removeVni(vni: number): void {
    this.flush();
    this.send({ t: 'removeVni', vni });
  }

  /** A TAP that carries no VNI yet (an OVSDB port): the workers open their queues of it now. */
  openPort(queue: QueueSpec): void {
    this.send({ t: 'openPort', queue });
  }

  /** The main queue's device is back (re-created): the workers open their queues on it. */
  attach(name: string): void {
    this.send({ t: 'attach', name });
  }

  /** The device is gone: the workers close their queues (its VNI drops frames as tap_down). */
  detach(name: string): void {
    this.send({ t: 'detach', name });
  }

  /**
   * An address ARP/ND suppression learned (here or in a worker): into every worker's table, so
   * that any thread can answer for it.
   */
  neigh(vni: number, ip: number | string, mac: number): void {
    this.send({ t: 'neigh', vni, ip, mac });
  }

  pin(vni: number, ip: string, mac: number | undefined): void {
    this.send({ t: 'pin', vni, ip, mac: mac ?? null });
  }

  /** Misses in the workers' engines too, while `vtep monitor` watches (undefined: stop). */
  /** BFD control packets the workers find go to `fn` (undefined: BFD off). */
  watchBfd(fn: ((vni: number, remote: Remote, bytes: Uint8Array) => void) | undefined): void {
    this.onBfd = fn;
    this.send({ t: 'bfd', on: fn !== undefined });
  }

  /** `vtep capture` on every worker (null: stop); what they copy comes to `sink`. */
  capture(filter: CaptureFilter | null, sink?: (c: Captured) => void, lost?: (n: number) => void) {
    this.onCapture = filter === null ? undefined : sink;
    this.onCaptureLost = filter === null ? undefined : lost;
    this.send({ t: 'capture', filter });
  }

  watchMisses(onMiss: ((vni: number, mac: number) => void) | undefined): void {
    this.onMiss = onMiss;
    this.send({ t: 'watch', on: onMiss !== undefined });
  }

  /** Ask every worker for its counters; resolves when all answered (or after a second). */
  refresh(): Promise<void> {
    const id = ++this.statsId;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve();
      }, STATS_TIMEOUT_MS);
      this.waiting.set(id, {
        left: this.threads.length,
        done: () => {
          clearTimeout(timer);
          this.waiting.delete(id);
          resolve();
        },
      });
      this.send({ t: 'stats', id });
    });
  }

  /** The workers' I/O figures added up, as last reported. */
  io(): ThreadIo {
    return this.threads.reduce((a, t) => addThreadIo(a, t.io), NO_THREAD_IO);
  }

  /** The workers' counters, as last reported. */
  latest(): EngineStats[] {
    return this.threads.flatMap((t) => (t.latest ? [t.latest] : []));
  }

  /** Each worker's share, as last reported; one that has not answered lately says so. */
  threadStats(): ThreadStats[] {
    const stuck = new Map(this.stalled().map((s) => [s.worker, s.forMs]));
    return this.threads.map((t) => {
      const share = t.latest
        ? threadStats(t.id, t.latest)
        : { worker: t.id, rx: { packets: 0, bytes: 0 }, tx: { packets: 0, bytes: 0 }, drops: 0 };
      const ms = stuck.get(t.id);
      return ms === undefined ? share : { ...share, noAnswerSeconds: Math.round(ms / 100) / 10 };
    });
  }

  /** Workers that have not answered for STALL_MS (asked every second by the daemon). */
  stalled(): { worker: number; forMs: number }[] {
    const now = this.clock();
    return this.threads
      .filter((t) => now - t.lastAnswer > STALL_MS)
      .map((t) => ({ worker: t.id, forMs: now - t.lastAnswer }));
  }

  /** Test hook (VTEP_TEST_HOOKS=1 only): keep worker `id` busy for `ms`, as a stuck loop would. */
  stall(id: number, ms: number): boolean {
    const t = this.threads.find((x) => x.id === id);
    t?.worker.postMessage({ t: 'stall', ms } satisfies ToWorker);
    return t !== undefined;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.fdb.onChange = undefined;
    this.send({ t: 'stop' });
    await Promise.all(
      this.threads.map(async (t) => {
        const timer = setTimeout(() => void t.worker.terminate(), STOP_TIMEOUT_MS);
        await t.exited;
        clearTimeout(timer);
      }),
    );
  }

  private changed(c: FdbChange): void {
    this.pending.push(toFdbOp(c));
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    if (this.pending.length === 0) return;
    const ops = this.pending;
    this.pending = [];
    this.send({ t: 'fdb', ops });
  }

  private received(t: Thread, m: FromWorker): void {
    switch (m.t) {
      case 'learned':
        this.learned(t, m.seen);
        break;
      case 'stats': {
        t.latest = m.stats;
        t.io = m.io;
        t.lastAnswer = this.clock();
        const w = this.waiting.get(m.id);
        if (w && --w.left === 0) w.done();
        break;
      }
      case 'localMacs': {
        const now = this.clock();
        for (const [vni, mac] of m.seen) this.engine.seeLocalMac(vni, mac, now);
        break;
      }
      case 'miss':
        this.onMiss?.(m.vni, m.mac);
        break;
      case 'bfd':
        this.onBfd?.(m.vni, this.remotes.get(m.address, m.port), m.bytes);
        break;
      case 'captured':
        if (this.onCapture) {
          for (const c of m.recs) this.onCapture(c);
          if (m.lost) this.onCaptureLost?.(m.lost);
        }
        break;
      case 'neigh':
        this.engine.learnNeighbour(m.vni, m.ip, m.mac, this.clock());
        this.neigh(m.vni, m.ip, m.mac);
        this.onNeighbour?.(m.vni, m.ip, m.mac);
        break;
      case 'log':
        this.log(m.level, m.event, `worker ${t.id}: ${m.msg}`, { ...m.fields, worker: t.id });
        break;
      default:
        break;
    }
  }

  /** What a worker learned or saw again, into the main table; what it refuses goes back. */
  private learned(t: Thread, seen: Seen[]): void {
    const back = absorb(this.fdb, this.remotes, seen, this.clock());
    if (back.length) t.worker.postMessage({ t: 'fdb', ops: back } satisfies ToWorker);
  }

  private died(t: Thread, why: string): void {
    if (this.stopping || this.failed) return;
    this.failed = true;
    // Its TAP queues stay open with nobody reading them: the flows hashed to them would be lost
    // without a word. Stop, so that a supervisor restarts the whole.
    this.onFatal(new Error(`worker ${t.id} ${why}`));
  }
}
