import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../util/package.js';

/** The addon's surface (native/vtep_io.cc). Syscalls only; see the comments there. */
export interface NativeIo {
  tapOpen(name: string, flags: number): [fd: number, name: string];
  tapSetPersist(fd: number, on: boolean): void;
  tapSetOffload(fd: number, flags: number): void;
  ifSetMtu(name: string, mtu: number): void;
  ifSetMac(name: string, mac: Uint8Array): void;
  ifGetMac(name: string): Buffer;
  ifSetUp(name: string, up: boolean): void;
  udpOpen(
    family: 4 | 6,
    address: string,
    port: number,
    rcvbuf: number,
    sndbuf: number,
    /**
     * bit 0: UDP_NO_CHECK6_TX, bit 1: UDP_NO_CHECK6_RX (IPv6 only); bit 2: send-only; bit 3:
     * SO_REUSEPORT.
     */
    flags: number,
  ): [fd: number, port: number];
  rawUdpOpen(family: 4 | 6, address: string, zeroChecksum6: boolean): number;
  /** Connect a raw socket to its own bound address: it stops getting clones of received UDP. */
  rawUdpConnectSelf(fd: number, family: 4 | 6, address: string): void;
  /**
   * Put these devices (ifindexes, this namespace) into interface group `group` (unused) and
   * delete the group as one batch: the count deleted, or -errno.
   */
  linkGroupDelete(ifindexes: Int32Array, group: number): number;
  /** The device's root qdisc becomes one of `kind`: 0 or -errno. */
  qdiscRoot(ifindex: number, kind: string): number;
  sendBatch(
    fd: number,
    slab: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    count: number,
    /** bit 0: a raw socket (datagrams carry their UDP header); bit 1: UDP GSO runs. */
    flags: number,
    status: Uint8Array,
    /** Per datagram, the outer header (2 words each, see OuterFlag); null: defaults. */
    outer?: Uint32Array | null,
    /** Raw IPv4: the bound address as a number (0: the route's source), for the UDP checksums written. */
    local?: number,
  ): number;
  /**
   * A raw socket's batch, with runs of one flow (one length, address and pool source port) sent
   * from the pool socket bound to that port as one UDP_SEGMENT message; sent count or -errno.
   */
  sendBatchPool(
    rawFd: number,
    poolFds: Int32Array,
    poolPorts: Uint32Array,
    slab: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    count: number,
    status: Uint8Array,
    outer?: Uint32Array | null,
    local?: number,
  ): number;
  /** One UDP_SEGMENT sendmsg: `length` bytes cut into `segSize`-byte datagrams; bytes or -errno. */
  sendGso(
    fd: number,
    slab: Uint8Array,
    offset: number,
    length: number,
    segSize: number,
    addrs: Uint8Array,
    slot: number,
    /** The outer header (word 0 and the flow label, see OuterFlag); 0: defaults. */
    word?: number,
    label?: number,
  ): number;
  /** memmove of `length` bytes between two arrays, without a view made for it. */
  /** Copy `len` bytes and return their one's complement sum, folded to 16 bits (see gso.ts). */
  copySum(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): number;
  /** The copies of `segment` in one call (see `CopySegmentsFn` in gso.ts); throws on misuse. */
  copySegments(
    dst: Uint8Array,
    dstOff: number,
    stride: number,
    src: Uint8Array,
    srcOff: number,
    hdrLen: number,
    size: number,
    payload: number,
    n: number,
    sums: Uint32Array,
  ): void;
  copyBytes(
    dst: Uint8Array,
    dstOffset: number,
    src: Uint8Array,
    srcOffset: number,
    length: number,
  ): void;
  /** First errno of the last sendBatch/writeBatch (0 when all went). */
  lastErrno(): number;
  /** The MTU of the route towards `address` now (a learned path MTU included), or -errno. */
  pathMtu(address: string): number;
  /** Send multicast from interface `ifindex` (IP_MULTICAST_IF / IPV6_MULTICAST_IF); throws. */
  mcastIf(fd: number, family: 4 | 6, ifindex: number): void;
  /** Join (or leave) `group` on interface `ifindex` for socket `fd`; throws. */
  mcastMembership(fd: number, family: 4 | 6, group: string, ifindex: number, join: boolean): void;
  writeBatch(
    fd: number,
    slab: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    meta: Uint8Array | null,
    metaLen: number,
    status: Uint8Array,
  ): number;
  closeFd(fd: number): void;
  /** Datagrams the kernel dropped for this socket (SO_MEMINFO); -errno if unavailable. */
  socketDrops(fd: number): number;
  /** One sd_notify(3) datagram to `socketPath` ($NOTIFY_SOCKET); 0 or -errno. */
  sdNotify(socketPath: string, state: string): number;
  errnoName(errno: number): string;
  /** [pid, uid, gid] of a connected unix socket's peer (SO_PEERCRED), or -errno. */
  peerCred(fd: number): [number, number, number] | number;
  /** Put device `name` into Linux bridge `bridge` (SIOCBRADDIF; `remove`: out, SIOCBRDELIF); 0 or -errno. */
  bridgeAddIf(bridge: string, name: string, remove?: boolean): number;
  /** This thread's busy-poll budget in microseconds (0: off): see Poller's Spin in the addon. */
  setBusyPoll(us: number): void;
  /** This thread's busy polling so far: [spin periods, frames and datagrams read while spinning]. */
  busyPollStats(): [number, number];
  /** Whether this thread may put its TAP I/O through io_uring (`ioUring`; default yes). */
  setTapIo(useUring: boolean): void;
  /**
   * This thread's TAP I/O: [1 io_uring / 0 readv and writev, the errno of a failed io_uring setup
   * (0: none, or turned off), frames read and written through io_uring, io_uring_enter calls].
   */
  tapIoStats(): [number, number, number, number, number];
  Poller: new (
    kind: 0 | 1,
    fd: number,
    slab: Uint8Array,
    slotSize: number,
    headroom: number,
    slots: number,
    lengths: Uint32Array,
    addrs: Uint8Array | null,
    meta: Uint8Array | null,
    metaLen: number,
    callback: (count: number) => void,
    /** UDP with UDP_GRO: per slot, the size of the datagrams coalesced into it (0: one). */
    segs?: Uint32Array | null,
    /** UDP: per slot, the outer TOS / traffic class the datagram arrived with. */
    tos?: Uint8Array | null,
  ) => NativePoller;
  ADDR_LEN: number;
  VNET_HDR_LEN: number;
}

export interface NativePoller {
  start(): void;
  stop(): void;
  close(): void;
}

let cached: NativeIo | undefined;

/** Load the addon once. Throws ERR_NATIVE_MISSING with the fix when it was not built. */
export function native(): NativeIo {
  if (cached) return cached;
  const path = join(packageRoot(), 'build', 'Release', 'vtep_io.node');
  if (!existsSync(path)) {
    throw Object.assign(
      new Error(
        `native addon not built: ${path} is missing; run "npm ci" (or "npx node-gyp rebuild")`,
      ),
      { code: 'ERR_NATIVE_MISSING' },
    );
  }
  cached = createRequire(import.meta.url)(path) as NativeIo;
  return cached;
}
