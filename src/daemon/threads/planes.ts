import type { FrameDevice } from '../../io/types.js';
import type { Fdb } from '../../fdb/fdb.js';
import type { Log } from '../../util/log.js';
import { addThreadIo, threadIo, type ThreadIo } from '../../io/threadio.js';
import {
  CaptureTap,
  type CaptureFilter,
  type Captured,
  type Engine,
  type EngineSettings,
  type EngineStats,
  type Trace,
  type TraceInput,
  type VniConfig,
  type VniUpdate,
} from '../../engine/engine.js';
import type { PlaneOptions } from './plane.js';
import type { QueueSpec } from './protocol.js';
import type { ThreadStats } from '../../control/api.js';
import { Workers, mergeStats, threadStats } from './workers.js';
import type { Remote, Remotes } from '../../fdb/remote.js';

/**
 * Every data-plane thread behind one engine-shaped interface: this thread's engine and, with
 * `workers` > 1, the others'. A change made here reaches all of them, in order, so no caller
 * fans out by hand (and none can forget a thread). Counters come back added up.
 */
export class Planes {
  private constructor(
    /** This thread's engine: the receive paths of its own devices call it directly. */
    readonly engine: Engine,
    private readonly fdb: Fdb,
    private readonly workers: Workers | undefined,
    /** How each thread picks source ports (the workers' GSO senders differ from ours). */
    readonly sourcePorts: string,
    /** This thread's sockets: send multicast out of an interface (see `multicastIf`). */
    private readonly ownMulticastIf: (ifindex: number) => void = () => {},
  ) {}

  /**
   * With `count` > 1, start count-1 worker threads beside `engine` (whose underlay socket must
   * be bound with `reusePort`); `onFatal` when one dies later.
   */
  static async start(o: {
    count: number;
    engine: Engine;
    sourcePorts: string;
    /** This thread's plane: send multicast out of an interface. */
    multicastIf?: (ifindex: number) => void;
    plane: PlaneOptions;
    fdb: Fdb;
    remotes: Remotes;
    log: Log;
    clock: () => number;
    onFatal: (err: Error) => void;
  }): Promise<Planes> {
    if (o.count <= 1) return new Planes(o.engine, o.fdb, undefined, o.sourcePorts, o.multicastIf);
    const workers = await Workers.start({ ...o, count: o.count - 1 });
    const theirs = workers.sourcePorts().filter((p) => p !== o.sourcePorts);
    const ports = theirs.length ? `${o.sourcePorts}; workers: ${theirs.join('; ')}` : o.sourcePorts;
    return new Planes(o.engine, o.fdb, workers, ports, o.multicastIf);
  }

  /** This thread alone. */
  static single(engine: Engine, fdb: Fdb, sourcePorts = ''): Planes {
    return new Planes(engine, fdb, undefined, sourcePorts);
  }

  /** Data-plane threads, this one included. */
  get count(): number {
    return 1 + (this.workers?.size ?? 0);
  }

  /** Queues per TAP: one per thread (IFF_MULTI_QUEUE when more than one). */
  get multiQueue(): boolean {
    return this.workers !== undefined;
  }

  configure(s: EngineSettings): void {
    this.engine.configure(s);
    this.workers?.configure(s);
  }

  /**
   * Send the groups' datagrams out of interface `ifindex`, from every thread's sockets (a group
   * has no route of its own; Linux VXLAN sends from its `dev`). Throws if this thread's sockets
   * refuse; a worker's refusal is logged by it.
   */
  multicastIf(ifindex: number): void {
    this.ownMulticastIf(ifindex);
    this.workers?.multicastIf(ifindex);
  }

  /** The FDB's ageing and capacity (the workers' copies follow). */
  limits(ageingMs: number, maxEntries: number): void {
    this.fdb.setLimits({ ageingMs, maxEntries });
    this.workers?.limits(ageingMs, maxEntries);
  }

  /** A VNI on every thread; the others open their own queue of `queue.name`. */
  addVni(cfg: VniConfig, queue: QueueSpec): void {
    this.engine.addVni(cfg);
    this.workers?.addVni(cfg, queue);
  }

  updateVni(vni: number, u: VniUpdate): void {
    this.engine.updateVni(vni, u);
    this.workers?.updateVni(vni, u);
  }

  removeVni(vni: number): void {
    this.engine.removeVni(vni);
    this.workers?.removeVni(vni);
  }

  hasVni(vni: number): boolean {
    return this.engine.hasVni(vni);
  }

  /** A TAP that carries no VNI yet (an OVSDB port): every thread opens its queue now. */
  openPort(queue: QueueSpec): void {
    this.workers?.openPort(queue);
  }

  /**
   * The device `name` (carrying `vni`, or -1) is gone (null: every thread drops the VNI's
   * frames as `tap_down`) or back (the other threads open their queues on the new device).
   */
  setTap(vni: number, name: string, tap: FrameDevice | null): void {
    if (this.engine.hasVni(vni)) this.engine.setTap(vni, tap);
    if (tap === null) this.workers?.detach(name);
    else this.workers?.attach(name);
  }

  /** Resolves once every thread has handled what was asked of it so far. */
  settled(): Promise<void> {
    return this.refresh();
  }

  /** The TAP-side MACs of a VNI with `localMacs`, as seen by any thread. */
  localMacs(vni: number): number[] {
    return this.engine.localMacs(vni);
  }

  set onLocalMac(fn: Engine['onLocalMac']) {
    this.engine.onLocalMac = fn;
  }

  /** A TAP-side MAC moved elsewhere: announced anew when it comes back (any thread sees it). */
  forgetLocalMac(vni: number, mac: number): void {
    this.engine.forgetLocalMac(vni, mac);
  }

  /** Addresses ARP/ND snooping learns on any thread (VNIs with `suppressArp`). */
  set onNeighbour(fn: Engine['onNeigh']) {
    if (this.workers) this.workers.onNeighbour = fn;
    else this.engine.onNeigh = fn;
  }

  /** What snooping knows at `mac` (every thread's finds reach this one's table). */
  neighboursOf(vni: number, mac: number, now: number): (number | string)[] {
    return this.engine.neighboursOf(vni, mac, now);
  }

  /** A control plane's IP → MAC (undefined: taken back), on every thread. */
  pinNeighbour(vni: number, ip: string, mac: number | undefined): void {
    this.engine.pinNeighbour(vni, ip, mac);
    this.workers?.pin(vni, ip, mac);
  }

  /** Misses on every thread, while `vtep monitor` watches (undefined: stop). */
  /** BFD control packets any thread finds in the tunnels go to `fn` (undefined: BFD off). */
  watchBfd(fn: ((vni: number, remote: Remote, bytes: Uint8Array) => void) | undefined): void {
    this.engine.onBfd =
      fn && ((vni, r, slab, off, len) => fn(vni, r, slab.subarray(off, off + len)));
    this.workers?.watchBfd(fn);
  }

  /** A frame of our own (BFD) to `remote` in `vni`, from this thread's underlay socket. */
  sendControl(vni: number, remote: Remote, frame: Uint8Array): boolean {
    return this.engine.sendControl(vni, remote, frame);
  }

  /**
   * `vtep capture` on every thread until the returned function is called: copies of what
   * matches `filter` go to `sink`, and `lost` hears of what a worker's queue could not hold.
   */
  capture(
    filter: CaptureFilter,
    sink: (c: Captured) => void,
    lost: (n: number) => void,
  ): () => void {
    this.engine.capture = new CaptureTap(filter, sink);
    this.workers?.capture(filter, sink, lost);
    return () => {
      this.engine.capture = undefined;
      this.workers?.capture(null);
    };
  }

  watchMisses(onMiss: ((vni: number, mac: number) => void) | undefined): void {
    this.engine.onMiss = onMiss;
    this.workers?.watchMisses(onMiss);
  }

  /** Ask the other threads for their counters (resolves at once without them). */
  refresh(): Promise<void> {
    return this.workers?.refresh() ?? Promise.resolve();
  }

  /**
   * `vtep trace`, against this thread's engine: its FDB is the table every thread follows, and
   * its VNIs, neighbours and flood lists are theirs (a narrow path another thread learned on its
   * own sends is not seen).
   */
  trace(input: TraceInput, now: number): Trace {
    return this.engine.trace(input, now);
  }

  /** Every thread's counters added up (as of the last `refresh`). */
  stats(now?: number): EngineStats {
    const own = this.engine.stats(now);
    return this.workers ? mergeStats(own, this.workers.latest()) : own;
  }

  /** Each thread's share, with workers (undefined without). */
  threadStats(): ThreadStats[] | undefined {
    if (!this.workers) return undefined;
    return [threadStats(0, this.engine.stats()), ...this.workers.threadStats()];
  }

  /** Every thread's I/O figures (busy polling, TAP I/O), the workers' as last reported. */
  io(): ThreadIo {
    const own = threadIo();
    return this.workers ? addThreadIo(own, this.workers.io()) : own;
  }

  /** Threads that have not answered lately (stuck), and for how long. */
  stalled(): { worker: number; forMs: number }[] {
    return this.workers?.stalled() ?? [];
  }

  /** Test hook: make worker `id` busy for `ms` (false: no such worker). */
  stall(id: number, ms: number): boolean {
    return this.workers?.stall(id, ms) ?? false;
  }

  /** Stop the other threads (this thread's engine has nothing to stop). */
  async stop(): Promise<void> {
    await this.workers?.stop();
  }
}
