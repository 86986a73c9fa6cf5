import type { OuterPolicy } from '../../engine/outer.js';
import type { RemoteSpec } from '../../config/config.js';
import type { FdbOp, Seen } from '../../fdb/replica.js';
import type { FloodSource } from '../../fdb/fdb.js';
import type { Level } from '../../util/log.js';
import type { ThreadIo } from '../../io/threadio.js';
import type {
  CaptureFilter,
  Captured,
  EngineSettings,
  EngineStats,
  VniUpdate,
} from '../../engine/engine.js';
import type { PlaneOptions } from './plane.js';

/**
 * The messages between the main thread and a data-plane worker (workers.ts, worker.ts): plain
 * data, as `postMessage` clones it (remotes as address and port, not the main thread's objects).
 */

/** A worker's TAP queue: opened on the main queue's device name, with its offloads. */
export interface QueueSpec {
  name: string;
  slotSize: number;
  offloads: number;
}

/** `VniConfig` as plain data. */
export interface WorkerVni {
  vni: number;
  remotes: RemoteSpec[];
  senders?: RemoteSpec[];
  floodSource?: FloodSource;
  learnRemotes?: boolean;
  learning?: boolean;
  maxEntries?: number;
  ownMacs: number[];
  mtu: number;
  suppressArp?: boolean;
  outer?: OuterPolicy;
  /** Report the TAP-side source MACs (a controller publishes them). */
  localMacs?: boolean;
}

export type WorkerVniUpdate = Omit<VniUpdate, 'remotes' | 'senders'> & {
  remotes?: RemoteSpec[];
  senders?: RemoteSpec[];
};

export interface WorkerInit {
  id: number;
  /** VTEP_TEST_HOOKS=1: the `stall` message is honoured. */
  testHooks?: boolean;
  plane: PlaneOptions;
  ageingMs: number;
  maxEntries: number;
}

export type ToWorker =
  | { t: 'configure'; s: EngineSettings }
  | { t: 'limits'; ageingMs: number; maxEntries: number }
  | { t: 'addVni'; cfg: WorkerVni; queue: QueueSpec }
  | { t: 'updateVni'; vni: number; u: WorkerVniUpdate }
  | { t: 'removeVni'; vni: number }
  /** A TAP that carries no VNI yet (an OVSDB port): its queue is opened now. */
  | { t: 'openPort'; queue: QueueSpec }
  /** The device `name` is back (re-created) or gone: open or close this thread's queue. */
  | { t: 'attach'; name: string }
  | { t: 'detach'; name: string }
  | { t: 'fdb'; ops: FdbOp[] }
  | { t: 'neigh'; vni: number; ip: number | string; mac: number }
  /** A control plane's IP → MAC (null: taken back), pinned in the suppression table. */
  | { t: 'pin'; vni: number; ip: string; mac: number | null }
  | { t: 'stats'; id: number }
  | { t: 'watch'; on: boolean }
  /** BFD on: control packets found in the tunnels go to the main thread. */
  | { t: 'bfd'; on: boolean }
  /** `vtep capture`: copy what matches out (null: stop). */
  | { t: 'capture'; filter: CaptureFilter | null }
  /** Send the groups' datagrams out of this interface (IP_MULTICAST_IF on every socket). */
  | { t: 'multicastIf'; ifindex: number }
  /** Test hook: busy for `ms`, as a thread stuck in a loop (only with VTEP_TEST_HOOKS=1). */
  | { t: 'stall'; ms: number }
  | { t: 'stop' };

export type FromWorker =
  | { t: 'ready'; sourcePorts: string }
  | { t: 'learned'; seen: Seen[] }
  /** TAP-side source MACs seen since the last report, for VNIs with `localMacs`. */
  | { t: 'localMacs'; seen: [vni: number, mac: number][] }
  /** Its counters, and its own I/O figures (busy polling, TAP I/O). */
  | { t: 'stats'; id: number; stats: EngineStats; io: ThreadIo }
  | { t: 'log'; level: Level; event: string; msg: string; fields?: Record<string, unknown> }
  | { t: 'miss'; vni: number; mac: number }
  /** A BFD control packet from a remote (its UDP payload). */
  | { t: 'bfd'; vni: number; address: string; port: number; bytes: Uint8Array }
  /** Packets captured since the last message, and how many did not fit the queue. */
  | { t: 'captured'; recs: Captured[]; lost: number }
  | { t: 'neigh'; vni: number; ip: number | string; mac: number }
  | { t: 'stopped' };
