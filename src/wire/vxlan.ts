import { Drop, type DropReason } from './drop.js';
import { HEADER_LEN as ETHERNET_HEADER_LEN } from './ethernet.js';

/** RFC 7348 §5: flags(8) reserved(24) | VNI(24) reserved(8). */
const field = {
  FLAGS: 0,
  RESERVED1: [1, 4],
  VNI: [4, 7],
  RESERVED2: 7,
} as const;

export const HEADER_LEN = field.RESERVED2 + 1;

/** The I flag: the VNI field is valid. Must be set on transmit and is required on receive. */
export const FLAG_I = 0x08;
export const MAX_VNI = 0xff_ffff;

/**
 * What to do with a packet whose reserved bits are set. `drop` is what Linux (`vxlan_rcv`:
 * "unparsed" flags or low VNI byte) and OVS (`netdev_vxlan_pop_header`) do; `ignore` is the
 * RFC 7348 wording ("MUST be ignored on receipt"). The I flag is required under both.
 */
export type ReservedBitsPolicy = 'drop' | 'ignore';

export function isValidVni(vni: number): boolean {
  return Number.isInteger(vni) && vni >= 0 && vni <= MAX_VNI;
}

/** View over a VXLAN header at `offset`. Re-bind per packet. */
export class VxlanHeader {
  buf: Buffer = Buffer.alloc(0);
  offset = 0;
  length = 0;

  bind(buf: Buffer, offset = 0, length = buf.length - offset): this {
    this.buf = buf;
    this.offset = offset;
    this.length = length;
    return this;
  }

  checkLen(): DropReason {
    return this.length < HEADER_LEN ? Drop.VXLAN_TRUNCATED : Drop.NONE;
  }

  get flags(): number {
    return this.buf[this.offset + field.FLAGS];
  }
  set flags(v: number) {
    this.buf[this.offset + field.FLAGS] = v;
  }
  /** The 24 reserved bits after the flags. */
  get reserved1(): number {
    const o = this.offset + field.RESERVED1[0];
    return (this.buf[o] << 16) | (this.buf[o + 1] << 8) | this.buf[o + 2];
  }
  set reserved1(v: number) {
    const o = this.offset + field.RESERVED1[0];
    this.buf[o] = v >>> 16;
    this.buf[o + 1] = (v >>> 8) & 0xff;
    this.buf[o + 2] = v & 0xff;
  }
  get vni(): number {
    const o = this.offset + field.VNI[0];
    return (this.buf[o] << 16) | (this.buf[o + 1] << 8) | this.buf[o + 2];
  }
  set vni(v: number) {
    const o = this.offset + field.VNI[0];
    this.buf[o] = v >>> 16;
    this.buf[o + 1] = (v >>> 8) & 0xff;
    this.buf[o + 2] = v & 0xff;
  }
  /** The 8 reserved bits after the VNI. */
  get reserved2(): number {
    return this.buf[this.offset + field.RESERVED2];
  }
  set reserved2(v: number) {
    this.buf[this.offset + field.RESERVED2] = v;
  }
}

/** Write `08 00 00 00 | VNI | 00` at `offset`. The caller has validated `vni`. */
export function emitVxlan(vni: number, buf: Uint8Array, offset: number): number {
  buf[offset] = FLAG_I;
  buf[offset + 1] = 0;
  buf[offset + 2] = 0;
  buf[offset + 3] = 0;
  buf[offset + 4] = vni >>> 16;
  buf[offset + 5] = (vni >>> 8) & 0xff;
  buf[offset + 6] = vni & 0xff;
  buf[offset + 7] = 0;
  return HEADER_LEN;
}

function misuse(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * Write the VXLAN header into the headroom in front of an inner frame that sits at
 * `frameOffset` in `buf`, and return header+frame as a view over the same memory (no copy).
 * Throws only on API misuse (no headroom, VNI out of range), never on frame contents.
 */
export function encapsulate(
  buf: Buffer,
  frameOffset: number,
  frameLength: number,
  vni: number,
): Buffer {
  if (frameOffset < HEADER_LEN) {
    throw misuse(
      'ERR_VXLAN_NO_HEADROOM',
      `encapsulate: frameOffset ${frameOffset} leaves no room for the ${HEADER_LEN}-byte header`,
    );
  }
  if (frameOffset + frameLength > buf.length || frameLength < 0) {
    throw misuse(
      'ERR_VXLAN_RANGE',
      `encapsulate: frame ${frameOffset}+${frameLength} is outside the ${buf.length}-byte buffer`,
    );
  }
  if (!isValidVni(vni))
    throw misuse('ERR_VXLAN_VNI', `encapsulate: vni ${vni} is not in 0..${MAX_VNI}`);
  const start = frameOffset - HEADER_LEN;
  emitVxlan(vni, buf, start);
  return buf.subarray(start, frameOffset + frameLength);
}

/** Where the inner frame of a valid VXLAN datagram sits; filled in by `decapsulateInto`. */
export interface DecapResult {
  vni: number;
  /** Offset of the inner Ethernet frame in the datagram's buffer. */
  offset: number;
  length: number;
}

/**
 * Validate the VXLAN header of the datagram at `offset`/`length` in `buf`. On success fills
 * `out` and returns `Drop.NONE`; otherwise returns the drop reason and leaves `out` alone.
 * Allocation-free: this is the one the engine calls per packet.
 */
export function decapsulateInto(
  buf: Uint8Array,
  offset: number,
  length: number,
  policy: ReservedBitsPolicy,
  out: DecapResult,
): DropReason {
  if (length < HEADER_LEN) return Drop.VXLAN_TRUNCATED;
  const flags = buf[offset + field.FLAGS];
  if ((flags & FLAG_I) === 0) return Drop.VXLAN_NO_I_FLAG;
  if (policy === 'drop') {
    if (flags !== FLAG_I) return Drop.VXLAN_RESERVED_FLAGS;
    if (
      (buf[offset + 1] | buf[offset + 2] | buf[offset + 3] | buf[offset + field.RESERVED2]) !==
      0
    ) {
      return Drop.VXLAN_RESERVED_FIELD;
    }
  }
  if (length - HEADER_LEN < ETHERNET_HEADER_LEN) return Drop.INNER_TRUNCATED;
  const v = offset + field.VNI[0];
  out.vni = (buf[v] << 16) | (buf[v + 1] << 8) | buf[v + 2];
  out.offset = offset + HEADER_LEN;
  out.length = length - HEADER_LEN;
  return Drop.NONE;
}

export interface Decapsulated {
  vni: number;
  /** The inner Ethernet frame: a `subarray` of the datagram (shares its memory). */
  frame: Buffer;
}

// Reused by `decapsulate`: it is read back before the function returns, so it is never shared.
const scratch: DecapResult = { vni: 0, offset: 0, length: 0 };

/** Convenience form of `decapsulateInto` for the edges: `{vni, frame}` or a drop reason. */
export function decapsulate(
  datagram: Buffer,
  policy: ReservedBitsPolicy = 'drop',
): Decapsulated | DropReason {
  const drop = decapsulateInto(datagram, 0, datagram.length, policy, scratch);
  if (drop !== Drop.NONE) return drop;
  return {
    vni: scratch.vni,
    frame: datagram.subarray(scratch.offset, scratch.offset + scratch.length),
  };
}
