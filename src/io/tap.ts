import { existsSync, readFileSync } from 'node:fs';
import { FdHandle } from './handle.js';
import { native } from './native.js';
import { tapIndex } from './netif.js';
import {
  IoError,
  toIoError,
  RxRing,
  type FrameDevice,
  type OnBatch,
  type OnIoError,
  type RingOptions,
  type TxBatch,
} from './types.js';

/** TUN_F_USO4 | TUN_F_USO6 (linux/if_tun.h): Linux before 6.2 refuses a set that has them. */
const TUN_F_USO = 0x20 | 0x40;

/**
 * Offer `offloads` through `set` (TUNSETOFFLOAD, which throws when refused); a kernel that
 * refuses them gets them without UDP segmentation, and then none (frames as they are, which
 * always works). Returns what it took.
 */
export function negotiateOffloads(set: (flags: number) => void, offloads: number): number {
  for (const flags of [offloads, offloads & ~TUN_F_USO]) {
    try {
      set(flags);
      return flags;
    } catch {
      // an older kernel: try with less
    }
  }
  set(0);
  return 0;
}

export interface TapOptions extends RingOptions {
  /** Interface name; empty or omitted lets the kernel choose (tap0, tap1, …). */
  name?: string;
  mtu?: number;
  /** MAC address as 6 bytes; omitted keeps the kernel's random one. */
  mac?: Uint8Array;
  /** Bring the link up (default true). */
  up?: boolean;
  /** Keep the device when the fd closes (TUNSETPERSIST). */
  persist?: boolean;
  /**
   * IFF_VNET_HDR: each frame carries a 12-byte virtio-net header in `rx.meta`, where the kernel
   * asks for the offloads negotiated with `offloads`.
   */
  vnetHdr?: boolean;
  /**
   * TUNSETOFFLOAD flags (src/wire/gso.ts TunOffload: CSUM, TSO4, TSO6, USO4, USO6) to offer the
   * kernel, with `vnetHdr`: it then hands us partial checksums and TCP and UDP super-frames of
   * up to 64 KiB (give slots that large). A kernel that refuses them gets them without USO, then
   * none (`offloads` 0), which always works; `offloads` says what it took.
   */
  offloads?: number;
  /**
   * IFF_MULTI_QUEUE: the device has one queue per fd opened on its name with this flag (each
   * worker opens its own); the kernel spreads flows over the queues. The first open creates the
   * device with the flag, and a device created without it cannot take a second queue.
   */
  multiQueue?: boolean;
}

const IFNAMSIZ = 16;

/** Says why `name` cannot be our TAP, before asking the kernel (which only says EINVAL). */
function checkName(name: string): void {
  if (Buffer.byteLength(name) >= IFNAMSIZ || /[/\s]/.test(name)) {
    throw new IoError(
      'ERR_TAP_NAME',
      `tap name ${JSON.stringify(name)} is not a valid interface name (max 15 bytes, no '/' or spaces)`,
    );
  }
  const sys = `/sys/class/net/${name}`;
  if (name && existsSync(sys) && !existsSync(`${sys}/tun_flags`)) {
    let kind = 'another kind of device';
    try {
      const type = /DEVTYPE=(\S+)/.exec(readFileSync(`${sys}/uevent`, 'utf8'));
      if (type) kind = `a ${type[1]} device`;
    } catch {
      /* uevent is informative only */
    }
    throw new IoError(
      'ERR_TAP_NAME_IN_USE',
      `interface ${name} already exists and is ${kind}, not a TAP: choose another --tap name`,
    );
  }
}

/** IFF_MULTI_QUEUE in a TAP's `tun_flags`. */
const IFF_MULTI_QUEUE = 0x0100;

/**
 * Whether an existing TAP (in our namespace) was made with queues (`ip tuntap add … multi_queue`)
 * or not; undefined when there is no such TAP. The kernel opens an existing TAP only with the
 * same choice.
 */
export function tapQueueMode(name: string): 'multi' | 'single' | undefined {
  try {
    const flags = Number.parseInt(readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8'), 16);
    return flags & IFF_MULTI_QUEUE ? 'multi' : 'single';
  } catch {
    return undefined;
  }
}

/** A Linux TAP device (IFF_TAP | IFF_NO_PI), read with a uv_poll watcher in batches. */
export class TapDevice implements FrameDevice {
  readonly rx: RxRing;
  lastError: string | undefined;
  /** The TUNSETOFFLOAD flags in force (0: none). */
  offloads = 0;
  /** Its interface index when opened (undefined if /sys could not say). */
  readonly ifindex: number | undefined;
  /** Made multi-queue by this open, with one root qdisc for all its queues (see open). */
  oneQdisc = false;
  private readonly h: FdHandle;
  private readonly metaLen: number;

  private constructor(
    fd: number,
    readonly name: string,
    rx: RxRing,
    metaLen: number,
  ) {
    this.h = new FdHandle(fd);
    this.rx = rx;
    this.metaLen = metaLen;
    this.ifindex = tapIndex(name);
  }

  static open(opts: TapOptions = {}): TapDevice {
    const io = native();
    const name = opts.name ?? '';
    checkName(name);
    const metaLen = opts.vnetHdr ? io.VNET_HDR_LEN : 0;
    const rx = new RxRing({ ...opts, metaLen });
    const mode = name ? tapQueueMode(name) : undefined;
    if (opts.multiQueue && mode === 'single')
      throw new IoError(
        'ERR_TAP_SINGLE_QUEUE',
        `tap ${name} exists without queues, and each worker needs one: re-create it with 'ip tuntap add dev ${name} mode tap multi_queue', or run with workers: 1`,
      );
    // An existing multi-queue TAP opens only as such (one queue of it is a TAP all the same).
    const multiQueue = opts.multiQueue || mode === 'multi';
    let fd: number;
    let actual: string;
    try {
      [fd, actual] = io.tapOpen(name, (opts.vnetHdr ? 1 : 0) | (multiQueue ? 2 : 0));
    } catch (err) {
      const e = toIoError(err);
      // Capabilities do not override the node's mode: a service user meets a 0600 node here.
      if (e.code === 'EACCES' && /\/dev\/net\/tun/.test(e.message))
        throw new IoError(
          e.code,
          `${e.message}: /dev/net/tun is not readable and writable for uid ${process.getuid?.()} (CAP_NET_ADMIN does not override its mode): make it 0666, as distributions do, or run with the group that owns it`,
        );
      throw e;
    }
    const tap = new TapDevice(fd, actual, rx, metaLen);
    try {
      // A multi-queue device we made gets one qdisc, not one per possible queue (qdiscRoot):
      // best effort, the kernel's default only costs memory. One that existed keeps its own.
      if (multiQueue && mode === undefined && tap.ifindex !== undefined)
        tap.oneQdisc = io.qdiscRoot(tap.ifindex, 'pfifo_fast') === 0;
      if (opts.persist) io.tapSetPersist(fd, true);
      if (opts.vnetHdr && opts.offloads)
        tap.offloads = negotiateOffloads((f) => io.tapSetOffload(fd, f), opts.offloads);
      if (opts.mtu !== undefined) io.ifSetMtu(actual, opts.mtu);
      if (opts.mac !== undefined) io.ifSetMac(actual, opts.mac);
      if (opts.up ?? true) io.ifSetUp(actual, true);
    } catch (err) {
      tap.close();
      throw toIoError(err);
    }
    return tap;
  }

  /** Set MTU, MAC or link state later. Works while the netdev is in our namespace. */
  setMtu(mtu: number): void {
    this.call(() => native().ifSetMtu(this.name, mtu));
  }
  setMac(mac: Uint8Array): void {
    this.call(() => native().ifSetMac(this.name, mac));
  }
  getMac(): Buffer {
    return this.call(() => native().ifGetMac(this.name));
  }
  setUp(up: boolean): void {
    this.call(() => native().ifSetUp(this.name, up));
  }
  setPersist(on: boolean): void {
    this.call(() => native().tapSetPersist(this.h.fd, on));
  }

  start(onFrames: OnBatch, onError: OnIoError): void {
    this.onError = onError;
    if (this.h.fd < 0) throw new IoError('ERR_CLOSED', `tap ${this.name} is closed`);
    if (!this.h.poller) {
      const io = native();
      this.h.poller = new io.Poller(
        0,
        this.h.fd,
        this.rx.slab,
        this.rx.slotSize,
        this.rx.headroom,
        this.rx.batchSize,
        this.rx.lengths,
        null,
        this.rx.meta,
        this.metaLen,
        (n) => {
          if (n > 0) onFrames(n);
          else
            onError(
              new IoError(io.errnoName(-n), `tap ${this.name}: read failed: ${io.errnoName(-n)}`),
            );
        },
      );
    }
    this.h.poller.start();
  }

  stop(): void {
    this.h.poller?.stop();
  }

  /**
   * Write frames; returns how many the kernel took. With a vnet header, each frame gets its
   * header from `batch.meta`, or a zeroed one (no offload) from a scratch area.
   */
  write(slab: Uint8Array, batch: TxBatch): number {
    if (this.h.fd < 0) {
      this.lastError = 'EBADF';
      return 0;
    }
    const io = native();
    const meta = this.metaLen ? (batch.meta ?? this.zeroMeta(batch.count)) : null;
    const n = io.writeBatch(
      this.h.fd,
      slab,
      batch.offsets,
      batch.lengths,
      batch.count,
      meta,
      this.metaLen,
      batch.status,
    );
    if (n < 0) {
      this.lastError = io.errnoName(-n);
      this.checkGone();
      return 0;
    }
    this.lastError = n < batch.count ? io.errnoName(io.lastErrno()) : undefined;
    return n;
  }

  /**
   * A write refused with EBADFD means the netdev was deleted under the fd: say so through the
   * error callback, as a failed read does, whichever the kernel reports first. Deferred: the
   * engine is in the middle of a batch.
   */
  private checkGone(): void {
    if (this.lastError !== 'EBADFD' || this.goneReported || !this.onError) return;
    this.goneReported = true;
    const report = this.onError;
    setImmediate(() => report(new IoError('EBADFD', `tap ${this.name}: write failed: EBADFD`)));
  }
  private goneReported = false;
  private onError: OnIoError | undefined;

  private zeroScratch: Uint8Array | undefined;
  private zeroMeta(count: number): Uint8Array {
    if (!this.zeroScratch || this.zeroScratch.length < count * this.metaLen) {
      this.zeroScratch = new Uint8Array(Math.max(count, 64) * this.metaLen);
    }
    return this.zeroScratch;
  }

  /**
   * Frames the kernel dropped on their way out of the TAP to us (our read queue was full): the
   * netdev's tx_dropped. Undefined when the device is not in our network namespace (moved into
   * a VM's or a container's), where its sysfs entry cannot be read.
   */
  kernelDrops(): number | undefined {
    try {
      if (!existsSync(`/sys/class/net/${this.name}/tun_flags`)) return undefined;
      const n = Number(readFileSync(`/sys/class/net/${this.name}/statistics/tx_dropped`, 'utf8'));
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.h.close();
  }

  private call<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw toIoError(err);
    }
  }
}
