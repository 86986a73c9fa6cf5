import type { TapStatus } from '../control/api.js';
import {
  addToBridge,
  interfaceMtu,
  masterOf,
  removeFromBridge,
  tapGoesWithUs,
  tapIndex,
} from '../io/netif.js';
import { TapDevice } from '../io/tap.js';
import type { IoError } from '../io/types.js';
import type { Log } from '../util/log.js';
import type { Planes } from './threads/planes.js';
import { TunOffload } from '../wire/gso.js';
import { L2_MAX } from './mtu.js';
import { formatMac, writeMac } from '../wire/mac.js';

/**
 * One VNI's TAP, kept alive. When the device disappears under us (`ip link del`, a netns that
 * went away) the kernel fails our fd for good: the port says so once, plainly, tells the engine
 * (frames for the VNI are then dropped as `tap_down`, not counted as failed writes forever) and
 * re-creates the TAP with the same name, MTU and MAC, retrying with backoff (100 ms doubling to
 * 5 s) while the name cannot be had. With a `bridge`, the port puts the TAP into it (and sets
 * it up) at start, after each re-creation and whenever the health check finds it outside: a
 * re-created TAP is back in its bridge, and a bridge made after vtep started is joined. Timers
 * live here, in the composition root: the engine stays without clocks.
 */

export interface TapSpec {
  /** The VNI it carries; -1 while it carries none (an OVSDB port not bound yet). */
  vni: number;
  name: string;
  mtu: number;
  mac: number;
  /** Receive slot size (headroom + largest frame), from the MTU (64 KiB with offloads). */
  slotSize: number;
  /** TUNSETOFFLOAD flags to offer (0: none, no virtio-net header). */
  offloads?: number;
  /** IFF_MULTI_QUEUE: workers open their own queues on the device (`workers` > 1). */
  multiQueue?: boolean;
  /** The Linux bridge the TAP belongs in: put there at start, after re-creation and reload. */
  bridge?: string;
}

export type TapState = TapStatus['state'];

/** `csum,tso4,tso6` for TUNSETOFFLOAD flags, `off` for none. */
export function offloadNames(flags: number): string {
  const names = Object.entries(TunOffload)
    .filter(([, bit]) => flags & bit)
    .map(([name]) => name.toLowerCase());
  return names.length ? names.join(',') : 'off';
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5000;

export class TapPort {
  tap: TapDevice | null;
  private spec_: TapSpec;
  state: TapState = 'up';
  recreated = 0;
  lastError: string | undefined;
  private downSince = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Called with each receive batch's size (metrics), when set. */
  onBatch: ((n: number) => void) | undefined;
  /** Why the TAP is not in its bridge (see `ensureBridge`); undefined when it is, or has none. */
  bridgeProblem: string | undefined;

  private constructor(
    spec: TapSpec,
    private readonly planes: Planes,
    private readonly log: Log,
    private readonly clock: () => number,
    tap: TapDevice,
  ) {
    this.spec_ = { ...spec };
    this.tap = tap;
  }

  /** Open the device (throws: at start-up and on reload a TAP that cannot be had is an error). */
  static open(spec: TapSpec, planes: Planes, log: Log, clock: () => number): TapPort {
    return new TapPort(spec, planes, log, clock, TapPort.device(spec));
  }

  /** What the device is (re-)created as. Changed only through the methods below. */
  get spec(): Readonly<TapSpec> {
    return this.spec_;
  }

  /** Carry `vni` from now on (-1: none, an OVSDB port unbound). */
  setVni(vni: number): void {
    this.spec_.vni = vni;
  }

  /** A new MTU: recorded for re-creation, and set on the device now (throws if it refuses). */
  setMtu(mtu: number): void {
    this.spec_.mtu = mtu;
    this.tap?.setMtu(mtu);
  }

  /** A new MAC: recorded for re-creation, and set on the device now (throws if it refuses). */
  setMac(mac: number): void {
    this.spec_.mac = mac;
    const b = new Uint8Array(6);
    writeMac(b, 0, mac);
    this.tap?.setMac(b);
  }

  /**
   * A new bridge (or none): the TAP leaves the one it was put in (not one an operator chose) and
   * joins the new one now.
   */
  setBridge(bridge: string | undefined): void {
    const old = this.spec_.bridge;
    if (old !== undefined && old !== bridge && masterOf(this.spec_.name) === old) {
      const why = removeFromBridge(old, this.spec_.name);
      if (why)
        this.log(
          'warn',
          'tap_bridge',
          `tap ${this.spec_.name}: cannot leave bridge ${old}: ${why}`,
          {
            dev: this.spec_.name,
            bridge: old,
            error: why,
          },
        );
    }
    this.spec_.bridge = bridge;
    this.bridgeProblem = undefined;
    this.ensureBridge();
  }

  /**
   * Follow an operator's `ip link set TAP mtu N`, as a kernel device does: the kernel enforces
   * the device's MTU on what it hands us and the engine takes any frame its receive slot holds
   * whole, so nothing changes on the data path up to that; this records the MTU (a re-created
   * TAP gets it) and says so, and says plainly when it is over what the slots hold (the slot
   * size is fixed at start: such frames are cut by the read and dropped as `frame_too_big`).
   * Read from /sys each second; a TAP moved into another namespace cannot be read, nor followed
   * past the slots.
   */
  followMtu(): void {
    const tap = this.tap;
    if (tap === null || !this.named(tap)) return;
    const mtu = interfaceMtu(this.spec_.name);
    if (mtu === undefined || mtu === this.spec_.mtu) return;
    const from = this.spec_.mtu;
    this.spec_.mtu = mtu;
    const holds = tap.rx.capacity - L2_MAX;
    const fields = { dev: this.spec_.name, vni: this.spec_.vni, from, mtu };
    if (mtu > holds)
      this.log(
        'warn',
        'tap_mtu',
        `tap ${this.spec_.name}: mtu ${from} -> ${mtu} on the device, over the ${holds} its receive slots hold: larger frames are dropped as frame_too_big; put mtu: ${mtu} in the configuration and restart to take them`,
        { ...fields, holds },
      );
    else
      this.log(
        'info',
        'tap_mtu',
        `tap ${this.spec_.name}: mtu ${from} -> ${mtu} on the device, followed`,
        fields,
      );
  }

  /**
   * Put the TAP into its bridge if it is not there (SIOCBRADDIF) and set it up, as `ip link set
   * TAP master BR up` would. Cheap when it is there (one readlink): the health check calls it
   * every second. Said in the log when it changes; `status` carries the reason while it is out.
   */
  ensureBridge(): void {
    const bridge = this.spec_.bridge;
    if (bridge === undefined || this.tap === null) return;
    const master = this.named(this.tap) ? masterOf(this.spec_.name) : undefined;
    if (master === bridge) {
      if (this.bridgeProblem !== undefined) this.inBridge(bridge);
      return;
    }
    const why =
      master === undefined
        ? 'the TAP is not in this network namespace'
        : addToBridge(bridge, this.spec_.name);
    if (why === undefined) {
      try {
        this.tap.setUp(true);
      } catch {
        // it forwards once someone sets it up; the bridge membership is what we own
      }
      return this.inBridge(bridge);
    }
    const problem = `not in bridge ${bridge}${master ? ` (it is in ${master})` : ''}: ${why}`;
    if (problem !== this.bridgeProblem)
      this.log('warn', 'tap_bridge', `tap ${this.spec_.name}: ${problem}`, {
        dev: this.spec_.name,
        vni: this.spec_.vni,
        bridge,
        error: why,
      });
    this.bridgeProblem = problem;
  }

  /**
   * Whether the TAP's name in this namespace is the TAP: not once it moved away (into a VM's
   * namespace) and another device took the name, nor in the moment between an `ip link del` and
   * the read error that tells us. Its MTU is not ours to follow then, and it is not ours to put
   * into a bridge.
   */
  private named(tap: TapDevice): boolean {
    return tap.ifindex !== undefined && tapIndex(this.spec_.name) === tap.ifindex;
  }

  private inBridge(bridge: string): void {
    this.bridgeProblem = undefined;
    this.log('info', 'tap_bridged', `tap ${this.spec_.name}: in bridge ${bridge}`, {
      dev: this.spec_.name,
      vni: this.spec_.vni,
      bridge,
    });
  }

  /**
   * The first half of a stop: stop retrying and reading, the fd kept open. Returns the TAP's
   * ifindex when closing our `queues` fds on it would delete the device anyway (not persistent,
   * in this namespace under its name, no other queue attached), for the stop to delete those
   * devices as one batch before anything closes; undefined otherwise (only the close happens).
   */
  release(queues: number): number | undefined {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const tap = this.tap;
    tap?.stop();
    if (!tap || !this.named(tap) || !tapGoesWithUs(this.spec_.name, queues)) return undefined;
    return tap.ifindex;
  }

  /** The queue the other data-plane threads open on this device. */
  queue(): { name: string; slotSize: number; offloads: number } {
    return {
      name: this.spec_.name,
      slotSize: this.spec_.slotSize,
      offloads: this.tap?.offloads ?? this.spec_.offloads ?? 0,
    };
  }

  private static device(spec: TapSpec): TapDevice {
    const mac = new Uint8Array(6);
    writeMac(mac, 0, spec.mac);
    return TapDevice.open({
      name: spec.name,
      mtu: spec.mtu,
      mac,
      batchSize: 64,
      slotSize: spec.slotSize,
      vnetHdr: (spec.offloads ?? 0) !== 0,
      offloads: spec.offloads,
      multiQueue: spec.multiQueue,
    });
  }

  /** Start feeding the engine (after `addVni`). */
  start(): void {
    const tap = this.tap!;
    const engine = this.planes.engine;
    tap.start(
      (n) => {
        this.onBatch?.(n);
        if (this.spec_.vni >= 0) engine.tapReceived(this.spec_.vni, n, this.clock());
        else engine.unboundReceived(n, this.clock());
      },
      (err) => this.lost(err),
    );
  }

  status(now: number): TapStatus {
    return {
      vni: this.spec.vni >= 0 ? this.spec.vni : null,
      name: this.spec.name,
      state: this.state,
      recreated: this.recreated,
      offloads: offloadNames(this.tap?.offloads ?? 0),
      mtu: this.spec.mtu,
      downForMs: this.state === 'down' ? Math.round(now - this.downSince) : 0,
      ...(this.state === 'down' && this.lastError ? { lastError: this.lastError } : {}),
      ...(this.spec.bridge !== undefined
        ? { bridge: this.spec.bridge, inBridge: this.state === 'up' && !this.bridgeProblem }
        : {}),
      ...(this.state === 'up' && this.bridgeProblem ? { bridgeProblem: this.bridgeProblem } : {}),
    };
  }

  /** The device failed: any read error on a TAP fd is final for that fd. */
  private lost(err: IoError): void {
    if (this.state === 'down' || this.closed) return;
    this.state = 'down';
    this.downSince = this.clock();
    this.tap?.close();
    this.tap = null;
    this.planes.setTap(this.spec.vni, this.spec.name, null);
    this.log(
      'warn',
      'tap_lost',
      `tap ${this.spec.name}: the device is gone (${err.code}); vni ${this.spec.vni} drops its frames as tap_down until it is back; re-creating it`,
      { dev: this.spec.name, vni: this.spec.vni, error: err.code },
    );
    this.retry(0);
  }

  private retry(attempt: number): void {
    const delay = Math.min(FIRST_RETRY_MS * 2 ** attempt, MAX_RETRY_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      let tap: TapDevice;
      try {
        tap = TapPort.device(this.spec);
      } catch (err) {
        const msg = (err as Error).message;
        // Say it once per distinct reason, not every retry.
        if (msg !== this.lastError)
          this.log('warn', 'tap_retry', `tap ${this.spec.name}: cannot re-create it yet: ${msg}`, {
            dev: this.spec.name,
            vni: this.spec.vni,
            error: msg,
          });
        this.lastError = msg;
        this.retry(attempt + 1);
        return;
      }
      this.tap = tap;
      this.planes.setTap(this.spec.vni, this.spec.name, tap);
      this.start();
      this.state = 'up';
      this.lastError = undefined;
      this.recreated++;
      // a new device is in no bridge: say it is out until it is back in
      if (this.spec.bridge !== undefined)
        this.bridgeProblem = `not in bridge ${this.spec.bridge} yet`;
      this.ensureBridge();
      const downSeconds = Number(((this.clock() - this.downSince) / 1000).toFixed(1));
      this.log(
        'info',
        'tap_recreated',
        `tap ${this.spec.name}: re-created with MAC ${formatMac(this.spec.mac)} after ${downSeconds.toFixed(1)} s; vni ${this.spec.vni} forwards again ${this.spec.bridge ? '' : ' (add it back to its bridge if it was in one)'}`,
        { dev: this.spec.name, vni: this.spec.vni, mac: formatMac(this.spec.mac), downSeconds },
      );
    }, delay);
  }

  /** Stop retrying and close the device. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.tap?.close();
    this.tap = null;
  }
}
