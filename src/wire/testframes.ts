import { GsoType, VnetFlags, type VnetHdr } from './gso.js';

/**
 * Test input, not part of the package (excluded from its files): TCP and UDP super-frames as the
 * kernel hands them to a TAP with TSO or USO (one set of headers, all the payload, a virtio-net
 * header asking for segmentation), for the offload tests and the allocation benchmark.
 */

export interface Spec {
  v: 4 | 6;
  vlan: boolean;
  ipOptions: number; // 32-bit words of IPv4 options
  tcpOptions: number; // 32-bit words of TCP options (TCP only)
  payload: Uint8Array;
  mss: number;
  seq: number;
  flags: number;
  id: number;
  /** A UDP super-frame (USO: a socket's UDP_SEGMENT send) instead of TCP. */
  udp?: boolean;
}

/** A super-frame as the kernel hands it to a TAP with TSO or USO: one header, all the payload. */
export function superFrame(s: Spec): { frame: Buffer; hdr: VnetHdr; l3: number; l4: number } {
  const l3 = 14 + (s.vlan ? 4 : 0);
  const ipLen = s.v === 4 ? 20 + 4 * s.ipOptions : 40;
  const l4 = l3 + ipLen;
  const proto = s.udp ? 17 : 6;
  const tcpLen = s.udp ? 8 : 20 + 4 * s.tcpOptions;
  const f = Buffer.alloc(l4 + tcpLen + s.payload.length);
  f.writeUIntBE(0x525400000002, 0, 6);
  f.writeUIntBE(0x525400000001, 6, 6);
  if (s.vlan) {
    f.writeUInt16BE(0x8100, 12);
    f.writeUInt16BE(100, 14);
  }
  f.writeUInt16BE(s.v === 4 ? 0x0800 : 0x86dd, l3 - 2);
  if (s.v === 4) {
    f[l3] = 0x40 | (ipLen / 4);
    f.writeUInt16BE(Math.min(0xffff, f.length - l3), l3 + 2);
    f.writeUInt16BE(s.id, l3 + 4);
    f.writeUInt16BE(0x4000, l3 + 6);
    f[l3 + 8] = 64;
    f[l3 + 9] = proto;
    f.writeUInt32BE(0x0a000001, l3 + 12);
    f.writeUInt32BE(0x0a000002, l3 + 16);
    for (let i = 20; i < ipLen; i++) f[l3 + i] = 1; // NOP options
  } else {
    f.writeUInt32BE(0x60000000, l3);
    f.writeUInt16BE(f.length - l3 - 40, l3 + 4);
    f[l3 + 6] = proto;
    f[l3 + 7] = 64;
    f[l3 + 8] = 0xfd;
    f[l3 + 23] = 1;
    f[l3 + 24] = 0xfd;
    f[l3 + 39] = 2;
  }
  f.writeUInt16BE(40000, l4);
  f.writeUInt16BE(5201, l4 + 2);
  if (s.udp) return udpRest(f, s, l3, l4);
  f.writeUInt32BE(s.seq, l4 + 4);
  f.writeUInt32BE(12345, l4 + 8);
  f[l4 + 12] = (tcpLen / 4) << 4;
  f[l4 + 13] = s.flags;
  f.writeUInt16BE(64000, l4 + 14);
  for (let i = 20; i < tcpLen; i++) f[l4 + i] = 1;
  f.set(s.payload, l4 + tcpLen);
  const hdr: VnetHdr = {
    flags: VnetFlags.NEEDS_CSUM,
    gsoType: s.v === 4 ? GsoType.TCPV4 : GsoType.TCPV6,
    hdrLen: l4 + tcpLen,
    gsoSize: s.mss,
    csumStart: l4,
    csumOffset: 16,
  };
  return { frame: f, hdr, l3, l4 };
}

/** The UDP header (length and checksum as the kernel leaves them: the whole, and partial). */
function udpRest(
  f: Buffer,
  s: Spec,
  l3: number,
  l4: number,
): { frame: Buffer; hdr: VnetHdr; l3: number; l4: number } {
  f.writeUInt16BE(Math.min(0xffff, f.length - l4), l4 + 4);
  f.writeUInt16BE(0xbeef, l4 + 6); // a pseudo-header sum: segmentation overwrites it
  f.set(s.payload, l4 + 8);
  const hdr: VnetHdr = {
    flags: VnetFlags.NEEDS_CSUM,
    gsoType: GsoType.UDP_L4,
    hdrLen: l4 + 8,
    gsoSize: s.mss,
    csumStart: l4,
    csumOffset: 6,
  };
  return { frame: f, hdr, l3, l4 };
}
