import { ADDR_LEN } from './addr.js';

/**
 * Batch-first I/O, after wireguard-go's tun/conn: a device receives into a ring of fixed slots
 * in one JS-owned slab, each slot with headroom in front of the frame so the tunnel header can
 * be written in place; it sends from offsets/lengths in any slab. Nothing here allocates per
 * frame.
 */

/** An I/O failure: `code` is the errno name (`EPERM`, `EADDRINUSE`, …) or an ERR_ code. */
export class IoError extends Error {
  override readonly name = 'IoError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RingOptions {
  /** Frames or datagrams drained per readiness event (default 64). */
  batchSize?: number;
  /** Bytes kept free in front of each received frame (default 64). */
  headroom?: number;
  /** Bytes per slot, headroom included (default 2048). */
  slotSize?: number;
}

/** The receive ring: slot i holds `lengths[i]` bytes at `offset(i)` in `slab`. */
export class RxRing {
  readonly slab: Buffer;
  readonly lengths: Uint32Array;
  /** Source address per slot (datagram sockets only); see addr.ts for the layout. */
  readonly addrs: Uint8Array | null;
  /** Per-slot metadata (TAP vnet header), `metaLen` bytes each; null when not used. */
  readonly meta: Uint8Array | null;
  /** Per slot, the outer IPv4 TOS / IPv6 traffic class it arrived with (datagram sockets). */
  readonly tos: Uint8Array | null;
  /**
   * UDP GRO (datagram sockets that ask for it): per slot, the size of the datagrams the kernel
   * coalesced into it, all of that size but the last; 0 for a slot holding one datagram.
   */
  readonly segs: Uint32Array | null;
  readonly batchSize: number;
  readonly headroom: number;
  readonly slotSize: number;

  constructor(
    opts: RingOptions & {
      withAddrs?: boolean;
      metaLen?: number;
      withSegs?: boolean;
      withTos?: boolean;
    } = {},
  ) {
    this.batchSize = opts.batchSize ?? 64;
    this.headroom = opts.headroom ?? 64;
    this.slotSize = opts.slotSize ?? 2048;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1 || this.batchSize > 1024) {
      throw new IoError(
        'ERR_IO_CONFIG',
        `batch size ${this.batchSize} must be an integer in 1..1024`,
      );
    }
    if (
      !Number.isInteger(this.headroom) ||
      this.headroom < 0 ||
      this.headroom + 64 > this.slotSize
    ) {
      throw new IoError(
        'ERR_IO_CONFIG',
        `headroom ${this.headroom} does not fit a ${this.slotSize}-byte slot`,
      );
    }
    this.slab = Buffer.alloc(this.batchSize * this.slotSize);
    this.lengths = new Uint32Array(this.batchSize);
    this.addrs = opts.withAddrs ? new Uint8Array(this.batchSize * ADDR_LEN) : null;
    this.meta = opts.metaLen ? new Uint8Array(this.batchSize * opts.metaLen) : null;
    this.segs = opts.withSegs ? new Uint32Array(this.batchSize) : null;
    this.tos = opts.withTos ? new Uint8Array(this.batchSize) : null;
  }

  /** Offset of slot i's frame in `slab`. */
  offset(i: number): number {
    return i * this.slotSize + this.headroom;
  }

  /** Room for a frame in a slot. */
  get capacity(): number {
    return this.slotSize - this.headroom;
  }

  /** A view of slot i's frame (edges and tests; the engine uses offsets). */
  frame(i: number): Buffer {
    const o = this.offset(i);
    return this.slab.subarray(o, o + this.lengths[i]);
  }
}

/** Outcome of one item of a batch, set by `send`/`write` in `TxBatch.status`. */
export const TxStatus = {
  /** Not attempted (or a device that says nothing): counted as refused. */
  NONE: 0,
  SENT: 1,
  /** The socket or device queue was full (EAGAIN, ENOBUFS). */
  QUEUE_FULL: 2,
  /** Refused for itself (EMSGSIZE, ENETUNREACH, a deleted device, …). */
  REFUSED: 3,
} as const;

/**
 * Bits of an outer-header word (`TxBatch.outer`, 2 words per datagram): word 0 is
 * `tos | ttl << 8 | flags`, word 1 the IPv6 flow label. A TOS, TTL or label of 0 leaves the
 * socket's default (no ancillary data), so a datagram that asks for nothing costs nothing.
 */
export const OuterFlag = {
  /** IPv4: send without DF (the kernel may fragment it on the way). */
  NO_DF: 1 << 16,
  /** IPv4: a zero UDP checksum. */
  NO_CSUM: 1 << 17,
} as const;

/** What to send: item i is `lengths[i]` bytes at `offsets[i]` of a slab, to address slot i. */
export class TxBatch {
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly addrs: Uint8Array;
  /** Per item, what became of it (TxStatus), so counters credit exactly the items that went. */
  readonly status: Uint8Array;
  /**
   * Per-item metadata for a TAP with a virtio-net header (12 bytes each: offloads asked of the
   * kernel, e.g. a coalesced TCP frame); null: a zeroed header, nothing asked.
   */
  meta: Uint8Array | null = null;
  /** Per item, the outer header it asks for (2 words each, see `OuterFlag`); null: defaults. */
  outer: Uint32Array | null = null;
  count = 0;

  constructor(readonly capacity: number) {
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.addrs = new Uint8Array(capacity * ADDR_LEN);
    this.status = new Uint8Array(capacity);
  }

  get full(): boolean {
    return this.count === this.capacity;
  }

  /** Append an item; returns its index (address slot), or -1 when full. */
  push(offset: number, length: number): number {
    if (this.count === this.capacity) return -1;
    const i = this.count++;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    return i;
  }

  clear(): void {
    this.count = 0;
  }
}

export type OnBatch = (count: number) => void;
export type OnIoError = (err: IoError) => void;

/** Something that carries Ethernet frames: a TAP device, or a fake. */
export interface FrameDevice {
  readonly name: string;
  readonly rx: RxRing;
  /** Deliver received frames: `onFrames(n)` with slots 0..n-1 filled, valid during the call. */
  start(onFrames: OnBatch, onError: OnIoError): void;
  stop(): void;
  /** Write `batch.count` frames from `slab`; returns how many the device took (and sets `batch.status`). */
  write(slab: Uint8Array, batch: TxBatch): number;
  /** errno name of the last failed write in the last call, if any. */
  readonly lastError: string | undefined;
  close(): void;
}

/** Sends datagrams (addresses from the batch's address slots). */
export interface DatagramSender {
  send(slab: Uint8Array, batch: TxBatch): number;
  readonly lastError: string | undefined;
  close(): void;
  /**
   * The MTU of the kernel's route towards `address` now, a learned path MTU included (after a
   * send failed with EMSGSIZE); undefined when it cannot tell.
   */
  pathMtu?(address: string): number | undefined;
}

/** A bound UDP socket, or a fake: receives into `rx` with the source address per slot. */
export interface DatagramSocket extends DatagramSender {
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
  readonly rx: RxRing;
  start(onDatagrams: OnBatch, onError: OnIoError): void;
  stop(): void;
}

/** An addon error (`code` = errno name) or anything else thrown during setup, as an IoError. */
export function toIoError(err: unknown): IoError {
  const e = err as { code?: string; message?: string };
  return new IoError(e.code ?? 'EIO', e.message ?? String(err));
}

/**
 * UDP GSO (UDP_SEGMENT): one send of `length` bytes that the kernel cuts into `segSize`-byte
 * datagrams (the last may be shorter) to the address in slot `slot` of `addrs`, from a source
 * port chosen by `hash` (one per flow). Returns the bytes sent, or -errno.
 */
export interface SegmentSender {
  sendSegments(
    slab: Uint8Array,
    offset: number,
    length: number,
    segSize: number,
    addrs: Uint8Array,
    slot: number,
    hash: number,
    outer?: number,
    label?: number,
  ): number;
  /** The errno name for a negative result (EAGAIN, EMSGSIZE, …). */
  errnoName(errno: number): string;
  /** Source ports in use, for `vtep stats`. */
  readonly ports: number[];
  close(): void;
}
