import { Drop, type DropReason } from './drop.js';
import { readMac, writeMac } from './mac.js';

/** Byte ranges of the Ethernet II header, as [start, end). */
const field = {
  DST: [0, 6],
  SRC: [6, 12],
  ETHERTYPE: [12, 14],
  /** Only present when ETHERTYPE is a VLAN TPID. */
  VLAN_TCI: [14, 16],
  VLAN_ETHERTYPE: [16, 18],
} as const;

export const HEADER_LEN = field.ETHERTYPE[1];
export const VLAN_HEADER_LEN = field.VLAN_ETHERTYPE[1];

export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  IPV6: 0x86dd,
} as const;

function isVlanTpid(type: number): boolean {
  return type === EtherType.VLAN || type === EtherType.QINQ;
}

/**
 * A view over an Ethernet frame at `offset` in `buf`. Re-bind it per packet instead of
 * constructing a new one. Once `checkLen()` returned `Drop.NONE`, no accessor reads out of range.
 */
export class EthernetFrame {
  buf: Buffer = Buffer.alloc(0);
  offset = 0;
  length = 0;

  bind(buf: Buffer, offset = 0, length = buf.length - offset): this {
    this.buf = buf;
    this.offset = offset;
    this.length = length;
    return this;
  }

  /** `Drop.NONE` when the header (and the first 802.1Q tag, if any) fits. */
  checkLen(): DropReason {
    if (this.length < HEADER_LEN) return Drop.ETHERNET_TRUNCATED;
    if (isVlanTpid(this.ethertype) && this.length < VLAN_HEADER_LEN) return Drop.ETHERNET_TRUNCATED;
    return Drop.NONE;
  }

  get dst(): number {
    return readMac(this.buf, this.offset + field.DST[0]);
  }
  set dst(mac: number) {
    writeMac(this.buf, this.offset + field.DST[0], mac);
  }

  get src(): number {
    return readMac(this.buf, this.offset + field.SRC[0]);
  }
  set src(mac: number) {
    writeMac(this.buf, this.offset + field.SRC[0], mac);
  }

  /** The EtherType/TPID at bytes 12..14 (0x8100 for a tagged frame). */
  get ethertype(): number {
    const o = this.offset + field.ETHERTYPE[0];
    return (this.buf[o] << 8) | this.buf[o + 1];
  }
  set ethertype(type: number) {
    this.buf.writeUInt16BE(type, this.offset + field.ETHERTYPE[0]);
  }

  get vlanTagged(): boolean {
    return isVlanTpid(this.ethertype);
  }

  /** 12-bit VLAN ID of the outer tag; 0 when untagged. */
  get vlanId(): number {
    if (!this.vlanTagged) return 0;
    const o = this.offset + field.VLAN_TCI[0];
    return ((this.buf[o] << 8) | this.buf[o + 1]) & 0x0fff;
  }

  /** The EtherType of the payload, after one VLAN tag if present. */
  get payloadType(): number {
    if (!this.vlanTagged) return this.ethertype;
    const o = this.offset + field.VLAN_ETHERTYPE[0];
    return (this.buf[o] << 8) | this.buf[o + 1];
  }

  /** Offset of the payload from the start of the frame. */
  get headerLen(): number {
    return this.vlanTagged ? VLAN_HEADER_LEN : HEADER_LEN;
  }
}

/** Plain description of an Ethernet header, for the edges (tests, injectors, control plane). */
export interface EthernetRepr {
  dst: number;
  src: number;
  /** EtherType of the payload. */
  ethertype: number;
  /** When set, an 802.1Q tag with this VLAN ID (priority 0) is emitted. */
  vlanId?: number;
}

export function ethernetBufferLen(repr: EthernetRepr): number {
  return repr.vlanId === undefined ? HEADER_LEN : VLAN_HEADER_LEN;
}

export function parseEthernet(frame: EthernetFrame): EthernetRepr | DropReason {
  const drop = frame.checkLen();
  if (drop !== Drop.NONE) return drop;
  const repr: EthernetRepr = { dst: frame.dst, src: frame.src, ethertype: frame.payloadType };
  if (frame.vlanTagged) repr.vlanId = frame.vlanId;
  return repr;
}

/** Write the header at `offset`; returns the number of bytes written. */
export function emitEthernet(repr: EthernetRepr, buf: Buffer, offset: number): number {
  writeMac(buf, offset + field.DST[0], repr.dst);
  writeMac(buf, offset + field.SRC[0], repr.src);
  if (repr.vlanId === undefined) {
    buf.writeUInt16BE(repr.ethertype, offset + field.ETHERTYPE[0]);
    return HEADER_LEN;
  }
  buf.writeUInt16BE(EtherType.VLAN, offset + field.ETHERTYPE[0]);
  buf.writeUInt16BE(repr.vlanId & 0x0fff, offset + field.VLAN_TCI[0]);
  buf.writeUInt16BE(repr.ethertype, offset + field.VLAN_ETHERTYPE[0]);
  return VLAN_HEADER_LEN;
}

/**
 * The Ethernet header of an answer to the frame at `frame[off]` (an ICMP error, an ARP reply, a
 * neighbour advertisement): to the frame's source, from its destination or from `src` (the
 * address answered for), its 802.1Q tag kept byte for byte (VLAN, priority, TPID), then
 * `ethertype`. The frame must have passed `checkLen()`. Returns the header's length.
 */
export function emitAnswerHeader(
  frame: Buffer,
  off: number,
  out: Buffer,
  outOff: number,
  ethertype: number,
  src?: number,
): number {
  frame.copy(out, outOff, off + field.SRC[0], off + field.SRC[1]);
  if (src === undefined) frame.copy(out, outOff + field.SRC[0], off, off + field.DST[1]);
  else writeMac(out, outOff + field.SRC[0], src);
  let o = outOff + field.ETHERTYPE[0];
  if (isVlanTpid(frame.readUInt16BE(off + field.ETHERTYPE[0]))) {
    frame.copy(out, o, off + field.ETHERTYPE[0], off + field.VLAN_TCI[1]);
    o += 4;
  }
  out.writeUInt16BE(ethertype, o);
  return o + 2 - outOff;
}
