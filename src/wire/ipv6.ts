import { Drop, type DropReason } from './drop.js';

const field = {
  VER_TC_FLOW: [0, 4],
  LENGTH: [4, 6],
  NEXT_HEADER: 6,
  HOP_LIMIT: 7,
  SRC: [8, 24],
  DST: [24, 40],
} as const;

export const HEADER_LEN = field.DST[1];

/** View over a fixed IPv6 header at `offset`. Extension headers are not walked. */
export class Ipv6Packet {
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
    if (this.length < HEADER_LEN) return Drop.IPV6_MALFORMED;
    if (this.version !== 6) return Drop.IPV6_MALFORMED;
    if (HEADER_LEN + this.payloadLen > this.length) return Drop.IPV6_MALFORMED;
    return Drop.NONE;
  }

  get version(): number {
    return this.buf[this.offset] >>> 4;
  }
  get trafficClass(): number {
    return (this.buf.readUInt16BE(this.offset) >>> 4) & 0xff;
  }
  get flowLabel(): number {
    return this.buf.readUInt32BE(this.offset) & 0xfffff;
  }
  get payloadLen(): number {
    return this.buf.readUInt16BE(this.offset + field.LENGTH[0]);
  }
  get nextHeader(): number {
    return this.buf[this.offset + field.NEXT_HEADER];
  }
  get hopLimit(): number {
    return this.buf[this.offset + field.HOP_LIMIT];
  }
  /** The 16 source address bytes, as a view (no copy). */
  get src(): Buffer {
    return this.buf.subarray(this.offset + field.SRC[0], this.offset + field.SRC[1]);
  }
  get dst(): Buffer {
    return this.buf.subarray(this.offset + field.DST[0], this.offset + field.DST[1]);
  }
  get payloadOffset(): number {
    return this.offset + HEADER_LEN;
  }
}

export interface Ipv6Repr {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  payloadLen: number;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
}

export function parseIpv6(packet: Ipv6Packet): Ipv6Repr | DropReason {
  const drop = packet.checkLen();
  if (drop !== Drop.NONE) return drop;
  return {
    src: Uint8Array.from(packet.src),
    dst: Uint8Array.from(packet.dst),
    nextHeader: packet.nextHeader,
    payloadLen: packet.payloadLen,
    hopLimit: packet.hopLimit,
    trafficClass: packet.trafficClass,
    flowLabel: packet.flowLabel,
  };
}

export function emitIpv6(repr: Ipv6Repr, buf: Buffer, offset: number): number {
  const word = (6 << 28) | ((repr.trafficClass ?? 0) << 20) | ((repr.flowLabel ?? 0) & 0xfffff);
  buf.writeUInt32BE(word >>> 0, offset + field.VER_TC_FLOW[0]);
  buf.writeUInt16BE(repr.payloadLen, offset + field.LENGTH[0]);
  buf[offset + field.NEXT_HEADER] = repr.nextHeader;
  buf[offset + field.HOP_LIMIT] = repr.hopLimit ?? 64;
  buf.set(repr.src, offset + field.SRC[0]);
  buf.set(repr.dst, offset + field.DST[0]);
  return HEADER_LEN;
}
