import { checksum } from './checksum.js';
import { Drop, type DropReason } from './drop.js';

const field = {
  VER_IHL: 0,
  DSCP_ECN: 1,
  LENGTH: [2, 4],
  IDENT: [4, 6],
  FLG_OFF: [6, 8],
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: [10, 12],
  SRC: [12, 16],
  DST: [16, 20],
} as const;

export const HEADER_LEN = field.DST[1];

export const IpProtocol = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

/** Don't Fragment bit in the flags/fragment-offset word. */
export const FLAG_DF = 0x4000;

/** View over an IPv4 header at `offset`. Re-bind per packet. */
export class Ipv4Packet {
  buf: Buffer = Buffer.alloc(0);
  offset = 0;
  length = 0;

  bind(buf: Buffer, offset = 0, length = buf.length - offset): this {
    this.buf = buf;
    this.offset = offset;
    this.length = length;
    return this;
  }

  /** Version 4, IHL ≥ 5, header and total length inside the buffer. */
  checkLen(): DropReason {
    if (this.length < HEADER_LEN) return Drop.IPV4_MALFORMED;
    if (this.version !== 4) return Drop.IPV4_MALFORMED;
    const hl = this.headerLen;
    if (hl < HEADER_LEN || hl > this.length) return Drop.IPV4_MALFORMED;
    const total = this.totalLen;
    if (total < hl || total > this.length) return Drop.IPV4_MALFORMED;
    return Drop.NONE;
  }

  get version(): number {
    return this.buf[this.offset + field.VER_IHL] >>> 4;
  }
  get headerLen(): number {
    return (this.buf[this.offset + field.VER_IHL] & 0x0f) * 4;
  }
  get dscpEcn(): number {
    return this.buf[this.offset + field.DSCP_ECN];
  }
  get totalLen(): number {
    return this.buf.readUInt16BE(this.offset + field.LENGTH[0]);
  }
  get ident(): number {
    return this.buf.readUInt16BE(this.offset + field.IDENT[0]);
  }
  get flagsFragment(): number {
    return this.buf.readUInt16BE(this.offset + field.FLG_OFF[0]);
  }
  /** More-fragments set or a non-zero offset. */
  get isFragment(): boolean {
    return (this.flagsFragment & 0x3fff) !== 0;
  }
  get ttl(): number {
    return this.buf[this.offset + field.TTL];
  }
  get protocol(): number {
    return this.buf[this.offset + field.PROTOCOL];
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.offset + field.CHECKSUM[0]);
  }
  /** Source address as an unsigned 32-bit number. */
  get src(): number {
    return this.buf.readUInt32BE(this.offset + field.SRC[0]);
  }
  get dst(): number {
    return this.buf.readUInt32BE(this.offset + field.DST[0]);
  }
  get payloadOffset(): number {
    return this.offset + this.headerLen;
  }
  get payloadLen(): number {
    return this.totalLen - this.headerLen;
  }
  /** True when the header checksum verifies. */
  verifyChecksum(): boolean {
    return checksum(this.buf, this.offset, this.headerLen) === 0;
  }
}

export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  payloadLen: number;
  ttl?: number;
  ident?: number;
  dontFragment?: boolean;
  dscpEcn?: number;
}

export function parseIpv4(packet: Ipv4Packet): Ipv4Repr | DropReason {
  const drop = packet.checkLen();
  if (drop !== Drop.NONE) return drop;
  return {
    src: packet.src,
    dst: packet.dst,
    protocol: packet.protocol,
    payloadLen: packet.payloadLen,
    ttl: packet.ttl,
    ident: packet.ident,
    dontFragment: (packet.flagsFragment & FLAG_DF) !== 0,
    dscpEcn: packet.dscpEcn,
  };
}

/** Write a 20-byte header with a valid checksum at `offset`; returns bytes written. */
export function emitIpv4(repr: Ipv4Repr, buf: Buffer, offset: number): number {
  buf[offset + field.VER_IHL] = 0x45;
  buf[offset + field.DSCP_ECN] = repr.dscpEcn ?? 0;
  buf.writeUInt16BE(HEADER_LEN + repr.payloadLen, offset + field.LENGTH[0]);
  buf.writeUInt16BE(repr.ident ?? 0, offset + field.IDENT[0]);
  buf.writeUInt16BE(repr.dontFragment === false ? 0 : FLAG_DF, offset + field.FLG_OFF[0]);
  buf[offset + field.TTL] = repr.ttl ?? 64;
  buf[offset + field.PROTOCOL] = repr.protocol;
  buf.writeUInt16BE(0, offset + field.CHECKSUM[0]);
  buf.writeUInt32BE(repr.src >>> 0, offset + field.SRC[0]);
  buf.writeUInt32BE(repr.dst >>> 0, offset + field.DST[0]);
  buf.writeUInt16BE(checksum(buf, offset, HEADER_LEN), offset + field.CHECKSUM[0]);
  return HEADER_LEN;
}

/** `192.0.2.1` → 0xc0000201; `undefined` when it is not a dotted quad. */
export function parseIpv4Address(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    v = v * 256 + octet;
  }
  return v;
}

export function formatIpv4Address(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}
