import { isIPv4 } from 'node:net';
import { ipv6Bytes } from '../io/addr.js';
import { emitIpv4, parseIpv4Address } from '../wire/ipv4.js';

/**
 * pcapng (draft-ietf-opsawg-pcapng) for `vtep capture`: a section header, two interfaces (0:
 * inner Ethernet frames, 1: underlay datagrams as raw IP), and an enhanced packet block per
 * packet with its direction (`epb_flags`) and a comment (`opt_comment`) that says the VNI, the
 * remote and, for a drop, the reason, so Wireshark shows why each one was dropped. Written as it
 * goes: the file is valid after every packet.
 */
export interface CaptureEvent {
  vni: number;
  kind: 'from-tap' | 'to-tap' | 'underlay';
  reason?: string;
  remote?: string;
  port?: number;
  /** Unix time, microseconds. */
  timeUs: number;
  /** The packet, base64 (a frame from its Ethernet header, or a VXLAN datagram). */
  data: string;
  /** The TAP of the VNI. */
  dev?: string;
}

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;

function block(type: number, body: Buffer): Buffer {
  const len = 12 + body.length;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  body.copy(b, 8);
  b.writeUInt32LE(len, len - 4);
  return b;
}

/** Options: (code, value) pairs, each padded to 4 bytes, then opt_endofopt. */
function options(opts: [number, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [code, v] of opts) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(code, 0);
    h.writeUInt16LE(v.length, 2);
    parts.push(h, v, Buffer.alloc((4 - (v.length % 4)) % 4));
  }
  parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

/** The section header and the two interfaces. */
export function pcapngHeader(app: string): Buffer {
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeUInt16LE(0, 6);
  shb.writeBigInt64LE(-1n, 8); // section length unknown
  const idb = (linktype: number, name: string) => {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(linktype, 0);
    h.writeUInt32LE(0, 4); // no snap length
    return block(1, Buffer.concat([h, options([[2, Buffer.from(name)]])]));
  };
  return Buffer.concat([
    block(0x0a0d0d0a, Buffer.concat([shb, options([[4, Buffer.from(app)]])])),
    idb(LINKTYPE_ETHERNET, 'vtep inner frames'),
    idb(LINKTYPE_RAW, 'vtep underlay datagrams'),
  ]);
}

/** One packet. `local` is vtep's underlay address and port, for a datagram's IP/UDP header. */
export function pcapngPacket(e: CaptureEvent, local: { address: string; port: number }): Buffer {
  let data: Buffer = Buffer.from(e.data, 'base64');
  const underlay = e.kind === 'underlay';
  if (underlay) data = ipUdp(e.remote ?? local.address, e.port ?? 0, local, data);
  const comment = [
    e.reason ? `drop ${e.reason}` : undefined,
    e.vni >= 0 ? `vni ${e.vni}` : 'no vni',
    e.kind === 'from-tap'
      ? `from tap ${e.dev ?? ''}`.trim()
      : e.kind === 'to-tap'
        ? `to tap ${e.dev ?? ''}`.trim()
        : 'from the underlay',
    e.remote ? `remote ${e.remote}` : undefined,
  ]
    .filter((x) => x !== undefined)
    .join(', ');
  const h = Buffer.alloc(20);
  h.writeUInt32LE(underlay ? 1 : 0, 0);
  const ts = BigInt(Math.round(e.timeUs));
  h.writeUInt32LE(Number(ts >> 32n), 4);
  h.writeUInt32LE(Number(ts & 0xffffffffn), 8);
  h.writeUInt32LE(data.length, 12);
  h.writeUInt32LE(data.length, 16);
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(e.kind === 'to-tap' ? 2 : 1, 0); // direction: 1 inbound, 2 outbound
  const pad = Buffer.alloc((4 - (data.length % 4)) % 4);
  return block(
    6,
    Buffer.concat([
      h,
      data,
      pad,
      options([
        [1, Buffer.from(comment)],
        [2, flags],
      ]),
    ]),
  );
}

/** A VXLAN datagram behind the IP and UDP headers it came with (as far as they are known). */
function ipUdp(
  src: string,
  sport: number,
  local: { address: string; port: number },
  payload: Buffer,
): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(local.port, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  if (isIPv4(src) && isIPv4(local.address)) {
    const ip = Buffer.alloc(20);
    const [s, d] = [parseIpv4Address(src)!, parseIpv4Address(local.address)!];
    emitIpv4({ src: s, dst: d, protocol: 17, payloadLen: 8 + payload.length }, ip, 0);
    return Buffer.concat([ip, udp, payload]);
  }
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(8 + payload.length, 4);
  ip[6] = 17;
  ip[7] = 64;
  ip.set(ipv6Bytes(isIPv4(src) ? `::ffff:${src}` : src), 8);
  ip.set(ipv6Bytes(isIPv4(local.address) ? `::ffff:${local.address}` : local.address), 24);
  // (the UDP checksum is left 0: what came was checked by the kernel, or was not, not by us)
  return Buffer.concat([ip, udp, payload]);
}
