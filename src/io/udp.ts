import { isIPv4, isIPv6 } from 'node:net';
import { isUnspecified } from './addr.js';
import { FdHandle } from './handle.js';
import { native } from './native.js';
import {
  IoError,
  toIoError,
  RxRing,
  type DatagramSender,
  type DatagramSocket,
  type OnBatch,
  type OnIoError,
  type RingOptions,
  type SegmentSender,
  type TxBatch,
} from './types.js';

export interface UdpOptions extends RingOptions {
  /** Local address to bind (`0.0.0.0`, `::`, or a specific one). */
  address: string;
  /** Local port (default 4789; 0 lets the kernel choose). */
  port?: number;
  /** SO_RCVBUF / SO_SNDBUF in bytes (default 4 MiB each; forced when we have CAP_NET_ADMIN). */
  rcvbuf?: number;
  sndbuf?: number;
  /** IPv6: send datagrams with a zero UDP checksum (RFC 6935; Linux udp6zerocsumtx). */
  zeroChecksum6Tx?: boolean;
  /** IPv6: accept datagrams with a zero UDP checksum (Linux udp6zerocsumrx); dropped otherwise. */
  zeroChecksum6Rx?: boolean;
  /** SO_REUSEPORT: several sockets (one per worker) share the port; flows spread over them. */
  reusePort?: boolean;
  /**
   * UDP_GRO: the kernel may hand over several datagrams of one flow, coalesced, in one slot
   * (`rx.segs` says their size); give slots of 64 KiB. Best effort: a kernel without it does not.
   */
  gro?: boolean;
}

function familyOf(address: string): 4 | 6 {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  throw new IoError('ERR_ADDRESS', `local address ${JSON.stringify(address)} is not IPv4 or IPv6`);
}

/**
 * Shared send path: sendmmsg over a socket fd (or, with `pool`, a raw socket's batch whose runs
 * leave from the pool's sockets with GSO), with the errno of a partial batch kept.
 */
function sendVia(
  fd: number,
  flags: number,
  slab: Uint8Array,
  batch: TxBatch,
  self: { lastError: string | undefined },
  pool?: GsoSender,
  local?: number,
): number {
  if (fd < 0) {
    self.lastError = 'EBADF';
    return 0;
  }
  const io = native();
  const n = pool
    ? io.sendBatchPool(
        fd,
        pool.fdArray,
        pool.portArray,
        slab,
        batch.offsets,
        batch.lengths,
        batch.addrs,
        batch.count,
        batch.status,
        batch.outer,
        local,
      )
    : io.sendBatch(
        fd,
        slab,
        batch.offsets,
        batch.lengths,
        batch.addrs,
        batch.count,
        flags,
        batch.status,
        batch.outer,
        local,
      );
  if (n < 0) {
    self.lastError = io.errnoName(-n);
    return 0;
  }
  self.lastError = n < batch.count ? io.errnoName(io.lastErrno()) : undefined;
  return n;
}

/**
 * A UDP socket bound to address:port: recvmmsg into the ring (source address per slot),
 * sendmmsg from any slab to per-datagram destinations. Non-blocking: a full send buffer ends the
 * batch with the rest marked QUEUE_FULL (a counted drop) instead of stalling the thread that also
 * receives, ages and answers the control socket. DF is set (no fragmentation, RFC 7348 §4.3).
 */
export class UdpSocket implements DatagramSocket, SegmentSender {
  readonly rx: RxRing;
  lastError: string | undefined;
  private readonly h: FdHandle;

  private constructor(
    fd: number,
    readonly family: 4 | 6,
    readonly address: string,
    readonly port: number,
    rx: RxRing,
    gsoRuns: boolean,
  ) {
    this.h = new FdHandle(fd);
    this.rx = rx;
    this.gsoRuns = gsoRuns;
  }

  static open(opts: UdpOptions): UdpSocket {
    const family = familyOf(opts.address);
    const rx = new RxRing({
      ...opts,
      withAddrs: true,
      withSegs: opts.gro === true,
      withTos: true,
    });
    const port = opts.port ?? 4789;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new IoError('ERR_IO_CONFIG', `udp port ${port} is not in 0..65535`);
    }
    try {
      const [fd, bound] = native().udpOpen(
        family,
        opts.address,
        port,
        opts.rcvbuf ?? 4 << 20,
        opts.sndbuf ?? 4 << 20,
        (opts.zeroChecksum6Tx ? 1 : 0) |
          (opts.zeroChecksum6Rx ? 2 : 0) |
          (opts.reusePort ? 8 : 0) |
          (opts.gro ? 16 : 0),
      );
      return new UdpSocket(fd, family, opts.address, bound, rx, !opts.zeroChecksum6Tx);
    } catch (err) {
      throw toIoError(err);
    }
  }

  start(onDatagrams: OnBatch, onError: OnIoError): void {
    if (this.h.fd < 0)
      throw new IoError('ERR_CLOSED', `udp ${this.address}:${this.port} is closed`);
    if (!this.h.poller) {
      const io = native();
      const { rx } = this;
      this.h.poller = new io.Poller(
        1,
        this.h.fd,
        rx.slab,
        rx.slotSize,
        rx.headroom,
        rx.batchSize,
        rx.lengths,
        rx.addrs,
        null,
        0,
        (n) => {
          if (n > 0) onDatagrams(n);
          else
            onError(
              new IoError(
                io.errnoName(-n),
                `udp ${this.address}:${this.port}: receive failed: ${io.errnoName(-n)}`,
              ),
            );
        },
        rx.segs,
        rx.tos,
      );
    }
    this.h.poller.start();
  }

  stop(): void {
    this.h.poller?.stop();
  }

  /**
   * Whether runs of equal datagrams to one address leave as one UDP GSO message (see sendBatch
   * in the addon): on, unless the socket sends zero IPv6 checksums (the kernel refuses GSO then)
   * or the kernel refused it once (EIO: no checksum offload on the way out).
   */
  gsoRuns: boolean;

  send(slab: Uint8Array, batch: TxBatch): number {
    const n = sendVia(this.h.fd, this.gsoRuns ? 2 : 0, slab, batch, this);
    if (this.gsoRuns && this.lastError === 'EIO') this.gsoRuns = false;
    return n;
  }

  pathMtu(address: string): number | undefined {
    return kernelPathMtu(address);
  }

  /** Send multicast (a VNI's group) out of interface `ifindex`; throws an IoError. */
  multicastIf(ifindex: number): void {
    multicastIf([this.h.fd], this.family, ifindex);
  }

  /**
   * Join multicast `group` on interface `ifindex` (`join` false: leave it): datagrams to the
   * group reach this socket if it is bound to the group or to the wildcard. Throws an IoError.
   */
  membership(group: string, ifindex: number, join: boolean): void {
    try {
      native().mcastMembership(this.h.fd, this.family, group, ifindex, join);
    } catch (err) {
      throw toIoError(err);
    }
  }

  /** UDP GSO from this socket's own port (source port mode `fixed`); see `GsoSender`. */
  get ports(): number[] {
    return [this.port];
  }

  sendSegments(
    slab: Uint8Array,
    offset: number,
    length: number,
    segSize: number,
    addrs: Uint8Array,
    slot: number,
    _hash: number,
    word = 0,
    label = 0,
  ): number {
    if (this.h.fd < 0) return -9; // EBADF
    return native().sendGso(this.h.fd, slab, offset, length, segSize, addrs, slot, word, label);
  }

  errnoName(errno: number): string {
    return native().errnoName(errno);
  }

  /**
   * Datagrams the kernel dropped before we could read them (receive buffer full): under a
   * flood, that is where the loss is. Undefined when closed or unavailable.
   */
  kernelDrops(): number | undefined {
    if (this.h.fd < 0) return undefined;
    const n = native().socketDrops(this.h.fd);
    return n >= 0 ? n : undefined;
  }

  close(): void {
    this.h.close();
  }
}

/** IP_MULTICAST_IF on each of `fds` (closed ones skipped). */
function multicastIf(fds: readonly number[], family: 4 | 6, ifindex: number): void {
  try {
    for (const fd of fds) if (fd >= 0) native().mcastIf(fd, family, ifindex);
  } catch (err) {
    throw toIoError(err);
  }
}

/** The MTU of the kernel's route towards `address` (learned path MTU included), if it tells. */
function kernelPathMtu(address: string): number | undefined {
  const mtu = native().pathMtu(address);
  return mtu > 0 ? mtu : undefined;
}

/**
 * Send-only raw IPPROTO_UDP socket: each datagram handed to `send` starts with a UDP header
 * that the caller wrote, so the source port can differ per flow (RFC 7348 §5 entropy). The
 * kernel adds the IP header from the bound local address. For IPv4 the addon writes each
 * datagram's UDP checksum (unless its outer word asks for none); for IPv6 the kernel computes it.
 * Needs CAP_NET_RAW.
 */
export class RawUdpSender implements DatagramSender {
  lastError: string | undefined;
  /**
   * The UDP GSO senders, when there are any: a run of datagrams of one flow (one length, one
   * address, a source port one of them is bound to) leaves from that socket as one GSO message
   * instead of one raw datagram each. Dropped after the kernel refuses GSO once (EIO).
   */
  pool: GsoSender | undefined;
  private readonly h: FdHandle;

  /**
   * IPv4: the bound address as a number (0 for 0.0.0.0: the addon asks the routing table), for
   * the UDP checksums the addon writes; undefined for IPv6 (the kernel sums those).
   */
  private readonly local4: number | undefined;

  private constructor(
    fd: number,
    readonly family: 4 | 6,
    readonly address: string,
  ) {
    this.h = new FdHandle(fd);
    this.local4 =
      family === 4 ? address.split('.').reduce((a, o) => a * 256 + Number(o), 0) : undefined;
  }

  /** `zeroChecksum6`: leave the IPv6 UDP checksum 0 (RFC 6935) instead of the kernel filling it. */
  static open(address: string, opts: { zeroChecksum6?: boolean } = {}): RawUdpSender {
    const family = familyOf(address);
    try {
      return new RawUdpSender(
        native().rawUdpOpen(family, address, opts.zeroChecksum6 === true),
        family,
        address,
      );
    } catch (err) {
      throw toIoError(err);
    }
  }

  send(slab: Uint8Array, batch: TxBatch): number {
    const n = sendVia(this.h.fd, 1, slab, batch, this, this.pool, this.local4);
    if (this.pool && this.lastError === 'EIO') this.pool = undefined;
    return n;
  }

  pathMtu(address: string): number | undefined {
    return kernelPathMtu(address);
  }

  /** Send multicast out of interface `ifindex`; throws an IoError. */
  multicastIf(ifindex: number): void {
    multicastIf([this.h.fd], this.family, ifindex);
  }

  /**
   * Stop the kernel handing this socket a clone of every UDP datagram the host receives on its
   * address (each one freed again by the drop-all filter): connect it to its own address. Only
   * for a caller whose every source port is a UDP socket's (the GSO pool's): ICMP errors about
   * connected raw datagrams no longer reach this socket, so the path MTU the kernel learns from
   * them must come through those sockets. False (nothing done) on a wildcard address, where
   * connecting would also pick a source address for every send. Throws an IoError.
   */
  ignoreReceived(): boolean {
    if (isUnspecified(this.address)) return false;
    try {
      native().rawUdpConnectSelf(this.h.fd, this.family, this.address);
    } catch (err) {
      throw toIoError(err);
    }
    return true;
  }

  close(): void {
    this.h.close();
  }
}

/**
 * UDP GSO for the encapsulation of TCP super-frames: a few send-only UDP sockets, each bound to a
 * port of its own on the local address, used by flow hash. One `sendmsg` with UDP_SEGMENT hands
 * the kernel up to 64 datagrams at once (it cuts them, and the veth or NIC passes them on as one
 * packet as far as it can), and every datagram of a flow leaves from the same source port while
 * different flows spread over the pool: the per-flow entropy of RFC 7348 §5 without a raw socket
 * (which cannot do GSO). DF is set as on the main socket.
 */
export class GsoSender implements SegmentSender {
  /** The fds and their ports as the addon takes them (sendBatchPool). */
  readonly fdArray: Int32Array;
  readonly portArray: Uint32Array;

  private constructor(
    private readonly fds: number[],
    readonly ports: number[],
    private readonly family: 4 | 6,
  ) {
    this.fdArray = Int32Array.from(fds);
    this.portArray = Uint32Array.from(ports);
  }

  /**
   * `count` sockets on ports spread over `portMin..portMax` (the source port range, RFC 7348
   * §5); a port in use is skipped for the next one free.
   */
  static open(
    address: string,
    opts: { count?: number; zeroChecksum6?: boolean; portMin?: number; portMax?: number } = {},
  ): GsoSender {
    const family = familyOf(address);
    const io = native();
    const fds: number[] = [];
    const ports: number[] = [];
    const min = opts.portMin ?? 49152;
    const span = (opts.portMax ?? 65535) - min + 1;
    const count = Math.min(opts.count ?? 8, span);
    try {
      for (let i = 0; i < count; i++) {
        let opened: [number, number] | undefined;
        let lastErr: unknown;
        for (let k = 0; k < Math.min(span, 64) && !opened; k++) {
          const port = min + ((Math.floor((i * span) / count) + k) % span);
          try {
            opened = io.udpOpen(
              family,
              address,
              port,
              4096,
              4 << 20,
              4 | (opts.zeroChecksum6 ? 1 : 0),
            );
          } catch (err) {
            lastErr = err;
            if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
          }
        }
        if (!opened) throw lastErr;
        fds.push(opened[0]);
        ports.push(opened[1]);
      }
    } catch (err) {
      for (const fd of fds) io.closeFd(fd);
      throw toIoError(err);
    }
    return new GsoSender(fds, ports, family);
  }

  sendSegments(
    slab: Uint8Array,
    offset: number,
    length: number,
    segSize: number,
    addrs: Uint8Array,
    slot: number,
    hash: number,
    word = 0,
    label = 0,
  ): number {
    const fd = this.fds[(hash >>> 0) % this.fds.length];
    return native().sendGso(fd, slab, offset, length, segSize, addrs, slot, word, label);
  }

  errnoName(errno: number): string {
    return native().errnoName(errno);
  }

  /** Send multicast out of interface `ifindex`; throws an IoError. */
  multicastIf(ifindex: number): void {
    multicastIf(this.fds, this.family, ifindex);
  }

  close(): void {
    const io = native();
    for (const fd of this.fds.splice(0)) io.closeFd(fd);
  }
}
