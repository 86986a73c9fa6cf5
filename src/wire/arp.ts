import { EtherType, emitAnswerHeader, type EthernetFrame } from './ethernet.js';
import { readMac, writeMac } from './mac.js';

/**
 * ARP for IPv4 over Ethernet (RFC 826): the part of the header vtep reads to learn who has which
 * address, and the reply it writes when it answers a request itself (ARP suppression).
 */
const field = {
  HTYPE: [0, 2],
  PTYPE: [2, 4],
  HLEN: 4,
  PLEN: 5,
  OPER: [6, 8],
  SHA: [8, 14],
  SPA: [14, 18],
  THA: [18, 24],
  TPA: [24, 28],
} as const;
export const ARP_LEN = field.TPA[1];

export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;

/** What an ARP packet says. */
export interface Arp {
  op: number;
  senderMac: number;
  senderIp: number;
  targetMac: number;
  targetIp: number;
}

/**
 * Parse the ARP packet in the frame `eth` is bound to (tagged or not); `undefined` for anything
 * that is not Ethernet/IPv4 ARP. Never throws.
 */
export function parseArp(eth: EthernetFrame, out: Arp): Arp | undefined {
  if (eth.payloadType !== EtherType.ARP) return undefined;
  const o = eth.offset + eth.headerLen;
  const b = eth.buf;
  if (eth.length - eth.headerLen < ARP_LEN) return undefined;
  if (b.readUInt16BE(o + field.HTYPE[0]) !== 1 || b.readUInt16BE(o + field.PTYPE[0]) !== 0x0800)
    return undefined;
  if (b[o + field.HLEN] !== 6 || b[o + field.PLEN] !== 4) return undefined;
  out.op = b.readUInt16BE(o + field.OPER[0]);
  out.senderMac = readMac(b, o + field.SHA[0]);
  out.senderIp = b.readUInt32BE(o + field.SPA[0]);
  out.targetMac = readMac(b, o + field.THA[0]);
  out.targetIp = b.readUInt32BE(o + field.TPA[0]);
  return out;
}

/**
 * The reply to `req`, the request in `frame[frameOff…]`, on behalf of `mac`, the owner of
 * `req.targetIp`, written at `out[off]` (the request's 802.1Q tag kept). Returns its length.
 */
export function emitArpReply(
  frame: Buffer,
  frameOff: number,
  req: Arp,
  mac: number,
  out: Buffer,
  off: number,
): number {
  const o = off + emitAnswerHeader(frame, frameOff, out, off, EtherType.ARP, mac);
  out.writeUInt16BE(1, o + field.HTYPE[0]);
  out.writeUInt16BE(0x0800, o + field.PTYPE[0]);
  out[o + field.HLEN] = 6;
  out[o + field.PLEN] = 4;
  out.writeUInt16BE(ArpOp.REPLY, o + field.OPER[0]);
  writeMac(out, o + field.SHA[0], mac);
  out.writeUInt32BE(req.targetIp, o + field.SPA[0]);
  writeMac(out, o + field.THA[0], req.senderMac);
  out.writeUInt32BE(req.senderIp, o + field.TPA[0]);
  return o + ARP_LEN - off;
}
