import { ADDR_LEN, addrPort, addrToString, writeAddr } from './addr.js';
import {
  IoError,
  OuterFlag,
  RxRing,
  type DatagramSocket,
  type FrameDevice,
  type OnBatch,
  type OnIoError,
  type RingOptions,
  type TxBatch,
  TxStatus,
} from './types.js';

/**
 * Test devices, not part of the package (excluded from its files): in-memory fakes with the
 * same interfaces as the Linux devices, for engine tests without privileges (wireguard-go's
 * tuntest/bindtest). They copy bytes where the kernel would, and
 * deliver received batches asynchronously, up to `batchSize` at a time, like a readiness event.
 */

interface Queued {
  bytes: Buffer;
  /** Source address slot (datagrams only). */
  from?: Uint8Array;
  /** Per-frame metadata (a TAP's virtio-net header), when the ring has `meta`. */
  meta?: Uint8Array;
  /** UDP GRO: the size of the datagrams coalesced into `bytes` (when the ring has `segs`). */
  seg?: number;
  /** The outer TOS / traffic class it arrived with (when the ring has `tos`). */
  tos?: number;
}

abstract class FakeReceiver {
  readonly rx: RxRing;
  protected queue: Queued[] = [];
  private onBatch: OnBatch | undefined;
  private scheduled = false;
  closed = false;

  constructor(
    opts: RingOptions & {
      withAddrs?: boolean;
      metaLen?: number;
      withSegs?: boolean;
      withTos?: boolean;
    },
  ) {
    this.rx = new RxRing(opts);
  }

  start(onBatch: OnBatch, _onError: OnIoError): void {
    if (this.closed) throw new IoError('ERR_CLOSED', 'fake device is closed');
    this.onBatch = onBatch;
    this.schedule();
  }

  stop(): void {
    this.onBatch = undefined;
  }

  protected enqueue(item: Queued): void {
    if (this.closed) return;
    this.queue.push(item);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || !this.onBatch || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    const cb = this.onBatch;
    if (!cb || this.closed) return;
    const { rx } = this;
    let n = 0;
    while (n < rx.batchSize && this.queue.length > 0) {
      const item = this.queue.shift()!;
      // Like recvmmsg/read: a datagram larger than the slot is cut (and flagged); a TAP read
      // is cut too but says the frame's whole length (tun_put_user returns it).
      const len = Math.min(item.bytes.length, rx.capacity);
      item.bytes.copy(rx.slab, rx.offset(n), 0, len);
      rx.lengths[n] = rx.addrs ? len : item.bytes.length;
      if (rx.addrs && item.from) {
        rx.addrs.set(item.from, n * ADDR_LEN);
        rx.addrs[n * ADDR_LEN + 1] = item.bytes.length > len ? 1 : 0;
      }
      if (rx.segs) rx.segs[n] = item.seg ?? 0;
      if (rx.tos) rx.tos[n] = item.tos ?? 0;
      if (rx.meta) {
        const m = rx.meta.length / rx.batchSize;
        rx.meta.fill(0, n * m, (n + 1) * m);
        if (item.meta) rx.meta.set(item.meta.subarray(0, m), n * m);
      }
      n++;
    }
    if (n > 0) cb(n);
    this.schedule();
  }
}

/** A fake TAP: `inject` plays the kernel sending a frame out of the TAP; `written` keeps what we wrote. */
export class FakeTap extends FakeReceiver implements FrameDevice {
  readonly written: Buffer[] = [];
  /** The virtio-net header given with each written frame (null: none given). */
  readonly writtenMeta: (Buffer | null)[] = [];
  lastError: string | undefined;

  constructor(
    readonly name = 'fake0',
    opts: RingOptions & { metaLen?: number } = {},
  ) {
    super(opts);
  }

  /** `meta`: the frame's virtio-net header, for a fake opened with `metaLen` (offloads). */
  inject(frame: Uint8Array, meta?: Uint8Array): void {
    this.enqueue({ bytes: Buffer.from(frame), ...(meta ? { meta } : {}) });
  }

  write(slab: Uint8Array, batch: TxBatch): number {
    if (this.closed) {
      this.lastError = 'EBADF';
      return 0;
    }
    for (let i = 0; i < batch.count; i++) {
      this.written.push(
        Buffer.from(slab.subarray(batch.offsets[i], batch.offsets[i] + batch.lengths[i])),
      );
      this.writtenMeta.push(
        batch.meta ? Buffer.from(batch.meta.subarray(i * 12, i * 12 + 12)) : null,
      );
      batch.status[i] = TxStatus.SENT;
    }
    this.lastError = undefined;
    return batch.count;
  }

  close(): void {
    this.closed = true;
  }
}

/** Connects fake UDP sockets by address:port. Datagrams to an unbound address vanish, as UDP does. */
export class FakeNetwork {
  readonly sockets = new Map<string, FakeUdpSocket>();
  /**
   * Every datagram sent, in order, for assertions on the underlay, with the outer header it asked
   * for (word 0 and the flow label of `TxBatch.outer`; 0 when it asked for nothing).
   */
  readonly log: { from: string; to: string; bytes: Buffer; word: number; label: number }[] = [];
  /** What the underlay does to the outer TOS on the way (e.g. a router marking CE). */
  onPath: (tos: number) => number = (tos) => tos;
  /**
   * The link's MTU (as loopback's by default: nothing is refused), and narrower path MTUs per
   * destination address, as the kernel's route exceptions.
   */
  linkMtu = 65535;
  readonly pathMtus = new Map<string, number>();

  bind(
    address: string,
    port: number,
    opts: RingOptions & { withSegs?: boolean } = {},
  ): FakeUdpSocket {
    const key = `${address}|${port}`;
    if (this.sockets.has(key))
      throw new IoError('EADDRINUSE', `fake udp ${address}:${port}: address in use`);
    const s = new FakeUdpSocket(this, address, port, opts);
    this.sockets.set(key, s);
    return s;
  }

  deliver(from: FakeUdpSocket, to: string, port: number, bytes: Buffer, word = 0, label = 0): void {
    this.log.push({
      from: `${from.address}:${from.port}`,
      to: `${to}:${port}`,
      bytes,
      word,
      label,
    });
    this.sockets.get(`${to}|${port}`)?.receive(bytes, from, this.onPath(word & 0xff));
  }
}

export class FakeUdpSocket extends FakeReceiver implements DatagramSocket {
  lastError: string | undefined;
  readonly family: 4 | 6;
  private readonly self = new Uint8Array(ADDR_LEN);

  constructor(
    private readonly net: FakeNetwork,
    readonly address: string,
    readonly port: number,
    opts: RingOptions & { withSegs?: boolean },
  ) {
    super({ ...opts, withAddrs: true, withTos: true });
    writeAddr(this.self, 0, address, port);
    this.family = this.self[0] === 6 ? 6 : 4;
  }

  /** Play a datagram arriving from `from` (an address slot, or text) with an outer TOS. */
  receive(bytes: Buffer, from: FakeUdpSocket | { address: string; port: number }, tos = 0): void {
    const slot = new Uint8Array(ADDR_LEN);
    if (from instanceof FakeUdpSocket) slot.set(from.self);
    else writeAddr(slot, 0, from.address, from.port);
    this.enqueue({ bytes: Buffer.from(bytes), from: slot, tos });
  }

  /** Play the kernel's UDP GRO: datagrams of one size from `from`, coalesced into one slot. */
  receiveCoalesced(datagrams: Buffer[], from: FakeUdpSocket, tos = 0): void {
    this.enqueue({
      bytes: Buffer.concat(datagrams),
      from: from.self.slice(),
      seg: datagrams[0].length,
      tos,
    });
  }

  send(slab: Uint8Array, batch: TxBatch): number {
    if (this.closed) {
      this.lastError = 'EBADF';
      return 0;
    }
    let refused = 0;
    for (let i = 0; i < batch.count; i++) {
      const bytes = Buffer.from(
        slab.subarray(batch.offsets[i], batch.offsets[i] + batch.lengths[i]),
      );
      const o = batch.outer;
      // as the kernel's UDP: a datagram over the path MTU with DF (IPv6: always) is refused
      const to = addrToString(batch.addrs, i);
      const df = this.family === 6 || !o || (o[2 * i] & OuterFlag.NO_DF) === 0;
      if (df && bytes.length + 8 + (this.family === 4 ? 20 : 40) > this.pathMtu(to)) {
        batch.status[i] = TxStatus.REFUSED;
        refused++;
        continue;
      }
      this.net.deliver(
        this,
        addrToString(batch.addrs, i),
        addrPort(batch.addrs, i),
        bytes,
        o ? o[2 * i] : 0,
        o ? o[2 * i + 1] : 0,
      );
      batch.status[i] = TxStatus.SENT;
    }
    this.lastError = refused > 0 ? 'EMSGSIZE' : undefined;
    return batch.count - refused;
  }

  pathMtu(address: string): number {
    return this.net.pathMtus.get(address) ?? this.net.linkMtu;
  }

  close(): void {
    this.closed = true;
    this.net.sockets.delete(`${this.address}|${this.port}`);
  }
}
