import { fold, ipv4PseudoSum, ipv6PseudoSum, sum } from './checksum.js';
import { Drop, type DropReason } from './drop.js';
import { IpProtocol } from './ipv4.js';

const field = {
  SRC_PORT: [0, 2],
  DST_PORT: [2, 4],
  LENGTH: [4, 6],
  CHECKSUM: [6, 8],
} as const;

export const HEADER_LEN = field.CHECKSUM[1];

/** The IANA port for VXLAN (RFC 7348 §5). Linux defaults to 8472 unless told `dstport 4789`. */
export const VXLAN_PORT = 4789;

/** View over a UDP header at `offset`. Re-bind per packet. */
export class UdpDatagram {
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
    if (this.length < HEADER_LEN) return Drop.UDP_MALFORMED;
    const len = this.len;
    if (len < HEADER_LEN || len > this.length) return Drop.UDP_MALFORMED;
    return Drop.NONE;
  }

  get srcPort(): number {
    return this.buf.readUInt16BE(this.offset + field.SRC_PORT[0]);
  }
  get dstPort(): number {
    return this.buf.readUInt16BE(this.offset + field.DST_PORT[0]);
  }
  /** The length field: header plus payload. */
  get len(): number {
    return this.buf.readUInt16BE(this.offset + field.LENGTH[0]);
  }
  get checksum(): number {
    return this.buf.readUInt16BE(this.offset + field.CHECKSUM[0]);
  }
  get payloadOffset(): number {
    return this.offset + HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - HEADER_LEN;
  }
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payloadLen: number;
}

export function parseUdp(d: UdpDatagram): UdpRepr | DropReason {
  const drop = d.checkLen();
  if (drop !== Drop.NONE) return drop;
  return { srcPort: d.srcPort, dstPort: d.dstPort, payloadLen: d.payloadLen };
}

/**
 * Write the UDP header at `offset`. The payload must already sit behind it when a checksum is
 * wanted: pass the pseudo-header sum (`udpIpv4PseudoSum`/`udpIpv6PseudoSum`), or `undefined`
 * to leave the checksum zero (allowed for IPv4, and what RFC 7348 recommends for VXLAN).
 */
export function emitUdp(repr: UdpRepr, buf: Buffer, offset: number, pseudoSum?: number): number {
  const len = HEADER_LEN + repr.payloadLen;
  writeUdpHeader(buf, offset, repr.srcPort, repr.dstPort, len, 0);
  if (pseudoSum !== undefined) {
    let c = fold(sum(buf, offset, len, pseudoSum));
    if (c === 0) c = 0xffff; // zero means "no checksum" in UDP
    buf.writeUInt16BE(c, offset + field.CHECKSUM[0]);
  }
  return HEADER_LEN;
}

/** The header's four fields at `offset`, as they are (the data path's writer: no object, no checks). */
export function writeUdpHeader(
  buf: Uint8Array,
  offset: number,
  srcPort: number,
  dstPort: number,
  len: number,
  checksum: number,
): void {
  buf[offset + field.SRC_PORT[0]] = srcPort >>> 8;
  buf[offset + field.SRC_PORT[0] + 1] = srcPort & 0xff;
  buf[offset + field.DST_PORT[0]] = dstPort >>> 8;
  buf[offset + field.DST_PORT[0] + 1] = dstPort & 0xff;
  buf[offset + field.LENGTH[0]] = len >>> 8;
  buf[offset + field.LENGTH[0] + 1] = len & 0xff;
  buf[offset + field.CHECKSUM[0]] = checksum >>> 8;
  buf[offset + field.CHECKSUM[0] + 1] = checksum & 0xff;
}

export function udpIpv4PseudoSum(src: number, dst: number, udpLen: number): number {
  return ipv4PseudoSum(src, dst, IpProtocol.UDP, udpLen);
}

export function udpIpv6PseudoSum(src: Uint8Array, dst: Uint8Array, udpLen: number): number {
  return ipv6PseudoSum(src, dst, IpProtocol.UDP, udpLen);
}

/** True when the checksum verifies (or is zero, i.e. absent, which IPv4 allows). */
export function verifyUdpChecksum(d: UdpDatagram, pseudoSum: number): boolean {
  if (d.checksum === 0) return true;
  return fold(sum(d.buf, d.offset, d.len, pseudoSum)) === 0;
}
