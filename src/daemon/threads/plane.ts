import type { Fdb } from '../../fdb/fdb.js';
import { native } from '../../io/native.js';
import type { SegmentSender } from '../../io/types.js';
import { GsoSender, RawUdpSender, UdpSocket } from '../../io/udp.js';
import type { Log } from '../../util/log.js';
import { Engine } from '../../engine/engine.js';
import type { ReservedBitsPolicy } from '../../wire/vxlan.js';

/**
 * One data plane: the underlay socket, the senders beside it (raw for per-flow source ports,
 * UDP GSO for super-frames) and the engine over them. `vtep run` opens one on the main thread
 * and one in each worker; with workers the underlay sockets share the port (SO_REUSEPORT).
 */

/**
 * Sockets of the UDP GSO pool (per thread), bound to ports spread over the source port range.
 * With offloads on, flows hash over these ports (in `hash` mode): every datagram of a flow, GSO
 * or not, leaves from one of them, so a flow keeps one source port.
 */
export const GSO_PORTS = 16;

/** Receive headroom: VXLAN + UDP headers are written in front of a frame in place. */
export const HEADROOM = 64;
/**
 * Receive slots of an underlay socket: up to 256 datagrams a recvmmsg. A TCP flow's segments
 * then coalesce into 64 KiB frames for the TAP five at a time instead of one and a remainder
 * (64 slots), and the guest acknowledges fewer, bigger frames: TCP decap rose by a quarter in
 * the three-host lab (medians of 7). The addon asks for fewer when they come coalesced
 * (UDP_GRO: 64 of 64 KiB, as before), and the slab's pages are only touched where datagrams
 * land, so slots that small datagrams never fill cost address space, not memory.
 */
export const UNDERLAY_RX_SLOTS = 256;

export interface PlaneOptions {
  local: string;
  port: number;
  /** Underlay receive slot size (see `slotFor`). */
  slotSize: number;
  zeroChecksum6Tx: boolean;
  zeroChecksum6Rx: boolean;
  /** Share the port with the other workers' sockets. */
  reusePort: boolean;
  /** UDP_GRO on the underlay socket (slots of 64 KiB then). */
  gro: boolean;
  sourcePortMode: 'hash' | 'fixed';
  sourcePortMin: number;
  sourcePortMax: number;
  /** TAPs hand us super-frames: open the GSO senders. */
  tapOffload: boolean;
  reservedBits: ReservedBitsPolicy;
  invalidSourceMac: 'deliver' | 'drop';
  underlayMtu: number;
  /** Busy polling after each batch, microseconds (0: off; `busyPoll`). */
  busyPollUs: number;
  /** TAP reads and writes through io_uring where the kernel allows (`ioUring`). */
  ioUring: boolean;
}

export interface Plane {
  underlay: UdpSocket;
  engine: Engine;
  /** How source ports are chosen, for `vtep stats` and the start line. */
  sourcePorts: string;
  /** Flows hash over the GSO senders' bound ports (raw socket beside them), not the range. */
  portsBound: boolean;
  /**
   * Send multicast (the VNIs' groups) out of interface `ifindex` from every socket this plane
   * sends from; throws an IoError.
   */
  multicastIf(ifindex: number): void;
  close(): void;
}

/** The UDP GSO senders on the source port range, or undefined (said) when they cannot be had. */
function openPool(o: PlaneOptions, log: Log): GsoSender | undefined {
  try {
    return GsoSender.open(o.local, {
      count: GSO_PORTS,
      zeroChecksum6: o.zeroChecksum6Tx,
      portMin: o.sourcePortMin,
      portMax: o.sourcePortMax,
    });
  } catch (err) {
    log('warn', 'gso_off', `udp gso senders unavailable: ${(err as Error).message}`, {
      error: (err as Error).message,
    });
    return undefined;
  }
}

/**
 * The raw socket that sends each flow from its own source port (`hash`), or undefined: `fixed`
 * ports, or no raw socket to be had (said; then everything leaves from the bound `port`).
 */
function openRaw(o: PlaneOptions, port: number, log: Log): RawUdpSender | undefined {
  if (o.sourcePortMode !== 'hash') return undefined;
  try {
    return RawUdpSender.open(o.local, { zeroChecksum6: o.zeroChecksum6Tx });
  } catch (err) {
    log(
      'warn',
      'source_ports',
      `source ports: raw socket unavailable (${(err as Error).message}); sending from port ${port}`,
      { error: (err as Error).message, port },
    );
    return undefined;
  }
}

/** `raw.ignoreReceived()`, said when it fails (the clones cost CPU, they break nothing). */
function ignoreReceived(raw: RawUdpSender, log: Log): void {
  try {
    raw.ignoreReceived();
  } catch (err) {
    log('warn', 'raw_connect', `raw socket: ${(err as Error).message}; it keeps receiving clones`, {
      error: (err as Error).message,
    });
  }
}

export function openPlane(o: PlaneOptions, fdb: Fdb, log: Log): Plane {
  // Per thread: this thread's pollers (its socket and TAP queues) spin together.
  native().setBusyPoll(o.busyPollUs);
  native().setTapIo(o.ioUring);
  const opened: { close(): void }[] = [];
  const close = () => opened.reverse().forEach((d) => d.close());
  try {
    const underlay = UdpSocket.open({
      address: o.local,
      port: o.port,
      batchSize: UNDERLAY_RX_SLOTS,
      headroom: HEADROOM,
      slotSize: o.slotSize,
      zeroChecksum6Tx: o.zeroChecksum6Tx,
      zeroChecksum6Rx: o.zeroChecksum6Rx,
      reusePort: o.reusePort,
      gro: o.gro,
    });
    opened.push(underlay);
    const raw = openRaw(o, underlay.port, log);
    if (raw) opened.push(raw);
    let sourcePorts = raw ? `hash ${o.sourcePortMin}-${o.sourcePortMax}` : `fixed ${underlay.port}`;
    // UDP GSO for TCP super-frames from offloading TAPs: optional, the engine falls back.
    // Fixed source port: GSO from the bound socket itself. None with zero IPv6 checksums: the
    // kernel does no UDP GSO without a checksum (EINVAL), so every datagram goes alone.
    const offload = o.tapOffload && !(o.zeroChecksum6Tx && underlay.family === 6);
    const pool = offload && o.sourcePortMode !== 'fixed' ? openPool(o, log) : undefined;
    const gso: SegmentSender | undefined =
      offload && o.sourcePortMode === 'fixed' ? underlay : pool;
    if (pool) {
      opened.push(pool);
      // Runs of a flow's datagrams leave from the pool with GSO too; flows hash over its ports.
      if (raw) {
        raw.pool = pool;
        // Every flow now leaves from a pool socket's port, so ICMP errors about our datagrams
        // (path MTU) reach that socket: the raw one can stop receiving clones of all UDP.
        ignoreReceived(raw, log);
      }
      sourcePorts += `, gso ports ${pool.ports.join(',')}`;
    }
    const engine = new Engine({
      underlay,
      raw,
      gso,
      copy: native().copyBytes,
      copySum: native().copySum,
      copySegments: native().copySegments,
      fdb,
      reservedBits: o.reservedBits,
      invalidSourceMac: o.invalidSourceMac,
      sourcePortMin: o.sourcePortMin,
      sourcePortMax: o.sourcePortMax,
      dstPort: o.port,
      underlayMtu: o.underlayMtu,
      log,
    });
    const multicastIf = (ifindex: number) => {
      underlay.multicastIf(ifindex);
      raw?.multicastIf(ifindex);
      pool?.multicastIf(ifindex);
    };
    return {
      underlay,
      engine,
      sourcePorts,
      portsBound: raw?.pool !== undefined,
      multicastIf,
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}
