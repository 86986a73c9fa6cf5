import type { GatewayStatus } from '../ovsdb/gateway.js';
import type { EvpnStatus } from '../evpn/status.js';
import type { BfdStatus } from '../daemon/bfd.js';
import type { EngineStats, PeerStats } from '../engine/engine.js';
import type { ThreadIo } from '../io/threadio.js';

/**
 * What the control socket answers (`vtep status`, `vtep stats`): the daemon builds these, the
 * CLI prints them (format.ts), scripts read them as JSON. Field names are part of the protocol.
 */

export interface TapStatus {
  /** null: an OVSDB port bound to no logical switch yet. */
  vni: number | null;
  name: string;
  state: 'up' | 'down';
  /** Times the device was re-created after being lost. */
  recreated: number;
  /** The device's MTU: as configured, or as an operator set it since (`ip link set … mtu`). */
  mtu?: number;
  /** Milliseconds the TAP has been down (0 when up). */
  downForMs: number;
  /** Why the last re-creation attempt failed, while down. */
  lastError?: string;
  /** Offloads the kernel accepted: `csum,tso4,tso6`, or `off`. */
  offloads: string;
  /** The configured bridge, and whether the TAP is in it now. */
  bridge?: string;
  inBridge?: boolean;
  /** Why it is not, while it is up but outside. */
  bridgeProblem?: string;
}

export interface Status {
  healthy: boolean;
  /** One line per problem (a TAP that is down, …); empty when healthy. */
  problems: string[];
  uptimeSeconds: number;
  taps: TapStatus[];
  /** The multicast groups joined (Linux VXLAN `group`), and the VNIs that use each. */
  groups?: GroupStatus[];
}

export interface GroupStatus {
  group: string;
  interface: string;
  vnis: number[];
}

/** Per-thread traffic, for `vtep stats`: how the kernel spread the flows. */
export interface ThreadStats {
  worker: number;
  rx: { packets: number; bytes: number };
  tx: { packets: number; bytes: number };
  drops: number;
  /** Set while the thread does not answer (stuck): seconds since it last did. */
  noAnswerSeconds?: number;
}

/** One remote over all the VNIs it serves (`vtep remote show`). */
export interface RemoteSummary extends Omit<PeerStats, 'remote'> {
  /** `address:port`, or `other`: remotes beyond a VNI's cap, counted together. */
  remote: string;
  vnis: number[];
  /** FDB entries behind it, over its VNIs. */
  macs: number;
  /** Its BFD session, with `bfd` configured. */
  bfd?: BfdStatus;
}

/** Every data-plane thread's TAP I/O, added up: how, and what io_uring did. */
export type TapIoStats = Omit<ThreadIo, 'spins' | 'polled'>;

export interface RunningStats extends EngineStats {
  /** Per remote, summed over its VNIs (each VNI's share is in `vnis[].peers`). */
  remotes: RemoteSummary[];
  underlay: string;
  /** The underlay MTU in use and where it came from (`1500 eth0`, `9000 configured`, …). */
  underlayMtu: string;
  sourcePorts: string;
  /** The niceness the process runs at (`nice`). */
  nice: number;
  taps: TapStatus[];
  /** The OVSDB session and what it bound, when `ovsdb` is configured. */
  ovsdb?: GatewayStatus;
  /** With `busyPoll`: the budget, and every thread's spin periods and the frames read in them. */
  busyPoll?: { us: number; spins: number; polled: number };
  /** How the threads read and write their TAP queues: io_uring, or readv/writev and why. */
  tapIo?: TapIoStats;
  /** The gobgpd session, BGP peers and routes per VNI, when `evpn` is configured. */
  evpn?: EvpnStatus;
  /** With `workers` > 1: each thread's share (0 is the main thread); the counters above add them up. */
  workers?: ThreadStats[];
  /**
   * Reloads from the source (SIGHUP, `vtep reload`): how many applied and refused, whether the
   * last one applied, and when one last did (Unix seconds; the start counts as one).
   */
  reloads?: { ok: number; failed: number; lastOk: boolean; lastOkTime: number };
  /** The table-wide FDB cap (each VNI's is in its own stats). */
  fdbMaxEntries?: number;
  /**
   * Losses in the kernel, before vtep sees a packet, where a flood's loss actually is: the
   * underlay socket's receive-buffer drops and each TAP's queue drops (null when unknown, e.g.
   * a TAP moved into another namespace).
   */
  kernel: {
    udpReceiveDrops: number | null;
    tapQueueDrops: { vni: number; drops: number | null }[];
  };
}

/**
 * A change to the running endpoint, as `monitor` streams it and the log says it: made through
 * the control socket (`by` names the client, from SO_PEERCRED) or by the OVSDB server.
 */
export interface ChangeEvent {
  event: 'change';
  cmd: string;
  args: Record<string, unknown>;
  by: { uid: number; pid: number; command?: string } | 'ovsdb' | 'evpn' | 'unknown';
  /** What it did: the changes a live edit or reload made, the entries a flush removed. */
  result?: string[] | number;
  time: string;
}

/** Which events `monitor` streams: the table's changes (`fdb`, as `bridge monitor fdb`), misses, or all. */
export const MONITOR_KINDS: Record<string, readonly string[]> = {
  all: ['learn', 'move', 'age', 'evict', 'miss', 'change', 'bfd'],
  fdb: ['learn', 'move', 'age', 'evict', 'change'],
  miss: ['miss'],
  change: ['change'],
  bfd: ['bfd'],
};
