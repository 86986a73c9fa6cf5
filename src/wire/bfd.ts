import { checksum } from './checksum.js';
import { writeMac } from './mac.js';

/**
 * BFD control packets (RFC 5880 §4.1, asynchronous mode, no authentication) and the frame RFC
 * 8971 carries them in inside a VXLAN tunnel: Ethernet to 00-52-02-00-00-00, IPv4 with TTL 255
 * to 127.0.0.1 (a host address the tenant never routes), UDP to 3784 from 49152 and up. This is
 * also how Open vSwitch frames BFD on a VXLAN port with `bfd_local_dst_mac`/`bfd_remote_dst_mac`
 * 00:52:02:00:00:00 and `bfd_src_ip`/`bfd_dst_ip` 127.0.0.1.
 */
export const BFD_MAC = 0x005202000000;
export const BFD_PORT = 3784;
export const BFD_SOURCE_PORT = 49152;
export const BFD_LEN = 24;
/** Ethernet + IPv4 + UDP + the control packet. */
export const BFD_FRAME_LEN = 14 + 20 + 8 + BFD_LEN;
const LOOPBACK = 0x7f000001;

export const BfdState = { ADMIN_DOWN: 0, DOWN: 1, INIT: 2, UP: 3 } as const;
export const BfdDiag = {
  NONE: 0,
  DETECT_EXPIRED: 1,
  NEIGHBOR_DOWN: 3,
  ADMIN_DOWN: 7,
} as const;
export const BFD_STATE_NAMES = ['admin-down', 'down', 'init', 'up'] as const;

export interface BfdPacket {
  diag: number;
  state: number;
  poll: boolean;
  final: boolean;
  multiplier: number;
  myDisc: number;
  yourDisc: number;
  /** Microseconds. */
  desiredMinTx: number;
  requiredMinRx: number;
}

/**
 * The control packet at `off` (`len` bytes of UDP payload), or why it is discarded (RFC 5880
 * §6.8.6: version 1, length, a multiplier, no multipoint, a discriminator; no authentication).
 */
export function parseBfd(b: Uint8Array, off: number, len: number): BfdPacket | string {
  if (len < BFD_LEN) return 'short';
  if (b[off] >> 5 !== 1) return 'version';
  const flags = b[off + 1];
  if (b[off + 3] < BFD_LEN || b[off + 3] > len) return 'length';
  if ((flags & 0x04) !== 0) return 'authentication';
  if ((flags & 0x01) !== 0) return 'multipoint';
  if (b[off + 2] === 0) return 'multiplier';
  const v = new DataView(b.buffer, b.byteOffset + off, BFD_LEN);
  const myDisc = v.getUint32(4);
  if (myDisc === 0) return 'discriminator';
  const yourDisc = v.getUint32(8);
  const state = flags >> 6;
  if (yourDisc === 0 && state !== BfdState.DOWN && state !== BfdState.ADMIN_DOWN)
    return 'your-discriminator';
  return {
    diag: b[off] & 0x1f,
    state,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    multiplier: b[off + 2],
    myDisc,
    yourDisc,
    desiredMinTx: v.getUint32(12),
    requiredMinRx: v.getUint32(16),
  };
}

/** Write the control packet at `off`. */
export function emitBfd(p: BfdPacket, b: Uint8Array, off: number): void {
  const v = new DataView(b.buffer, b.byteOffset + off, BFD_LEN);
  b[off] = (1 << 5) | (p.diag & 0x1f);
  b[off + 1] = (p.state << 6) | (p.poll ? 0x20 : 0) | (p.final ? 0x10 : 0);
  b[off + 2] = p.multiplier;
  b[off + 3] = BFD_LEN;
  v.setUint32(4, p.myDisc);
  v.setUint32(8, p.yourDisc);
  v.setUint32(12, p.desiredMinTx);
  v.setUint32(16, p.requiredMinRx);
  v.setUint32(20, 0); // no echo
}

/** The RFC 8971 frame around a control packet, from `src` (our MAC for the tunnel). */
export function bfdFrame(p: BfdPacket, src: number): Buffer {
  const f = Buffer.alloc(BFD_FRAME_LEN);
  writeMac(f, 0, BFD_MAC);
  writeMac(f, 6, src);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f[15] = 0xc0; // CS6, network control (RFC 5881 §4 as RFC 8971 §4 asks)
  f.writeUInt16BE(20 + 8 + BFD_LEN, 16);
  f[22] = 255;
  f[23] = 17;
  f.writeUInt32BE(LOOPBACK, 26);
  f.writeUInt32BE(LOOPBACK, 30);
  f.writeUInt16BE(checksum(f, 14, 20), 24);
  f.writeUInt16BE(BFD_SOURCE_PORT, 34);
  f.writeUInt16BE(BFD_PORT, 36);
  f.writeUInt16BE(8 + BFD_LEN, 38);
  emitBfd(p, f, 42);
  return f;
}

/**
 * Where the control packet of a BFD frame starts (-1: not BFD): an IPv4 UDP packet to port 3784
 * in a frame to 00-52-02-00-00-00, with TTL 255 (RFC 5881 §5, which OVS also insists on).
 * Cheap for tenant traffic: the first byte of the destination MAC decides almost always.
 */
export function bfdOffset(b: Uint8Array, off: number, len: number): number {
  if (b[off] !== 0x00 || b[off + 1] !== 0x52 || len < 14 + 20 + 8 + BFD_LEN) return -1;
  if (b[off + 2] !== 0x02 || b[off + 3] !== 0 || b[off + 4] !== 0 || b[off + 5] !== 0) return -1;
  if (b[off + 12] !== 0x08 || b[off + 13] !== 0x00) return -1;
  const ip = off + 14;
  const ihl = (b[ip] & 0x0f) * 4;
  if (b[ip] >> 4 !== 4 || ihl < 20 || b[ip + 9] !== 17 || b[ip + 8] !== 255) return -1;
  const udp = ip + ihl;
  if (udp + 8 + BFD_LEN > off + len) return -1;
  if (((b[udp + 2] << 8) | b[udp + 3]) !== BFD_PORT) return -1;
  return udp + 8;
}
