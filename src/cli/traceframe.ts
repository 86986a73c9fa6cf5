import { isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from '../config/config.js';
import { ipv6Bytes } from '../io/addr.js';
import { ipv6PseudoSum, checksum } from '../wire/checksum.js';
import { emitIpv4, parseIpv4Address } from '../wire/ipv4.js';
import { parseMac, writeMac } from '../wire/mac.js';

/**
 * The frame `vtep trace` asks about, from its flags: Ethernet addresses, an optional 802.1Q
 * tag, and an IPv4 or IPv6 UDP packet, an ARP request, or nothing above Ethernet; padded to
 * `--len`. Or the bytes themselves (`--hex`), or packet `--index` of a capture (`--pcap`, pcap
 * or pcapng, Ethernet). Bad input is a ConfigError naming the flag, so it exits 2.
 */
export interface FrameFlags {
  src?: string;
  dst?: string;
  vlan?: number;
  ip4?: string;
  ip6?: string;
  arp?: string;
  len?: number;
  hex?: string;
}

const UDP_SPORT = 49152;
const UDP_DPORT = 9; // discard

export function buildFrame(o: FrameFlags): Buffer {
  if (o.hex !== undefined) return fromHex(o.hex);
  const layers = [o.ip4, o.ip6, o.arp].filter((x) => x !== undefined).length;
  if (layers > 1) throw new ConfigError('--ip4', o.ip4 ?? o.ip6, 'give one of --ip4, --ip6, --arp');
  const dst = mac('--dst', o.dst ?? (o.arp !== undefined ? 'ff:ff:ff:ff:ff:ff' : undefined));
  const src = mac('--src', o.src ?? '02:00:00:00:00:01');
  const l2 = o.vlan === undefined ? 14 : 18;
  const l3 = o.ip4 !== undefined ? 28 : o.ip6 !== undefined ? 48 : o.arp !== undefined ? 28 : 0;
  const len = o.len ?? Math.max(60, l2 + l3);
  if (len < l2 + l3)
    throw new ConfigError('--len', len, `is shorter than the headers asked for (${l2 + l3} bytes)`);
  const f = Buffer.alloc(len);
  writeMac(f, 0, dst);
  writeMac(f, 6, src);
  let o2 = 12;
  if (o.vlan !== undefined) {
    f.writeUInt16BE(0x8100, 12);
    f.writeUInt16BE(o.vlan & 0xfff, 14);
    o2 = 16;
  }
  const at = o2 + 2;
  if (o.ip4 !== undefined) {
    f.writeUInt16BE(0x0800, o2);
    const [a, b] = pair('--ip4', o.ip4, 4).map((x) => parseIpv4Address(x)!);
    emitIpv4({ src: a, dst: b, protocol: 17, payloadLen: len - at - 20 }, f, at);
    udp(f, at + 20, len - at - 20);
  } else if (o.ip6 !== undefined) {
    f.writeUInt16BE(0x86dd, o2);
    const [a, b] = pair('--ip6', o.ip6, 6).map(ipv6Bytes);
    f[at] = 0x60;
    f.writeUInt16BE(len - at - 40, at + 4);
    f[at + 6] = 17;
    f[at + 7] = 64;
    f.set(a, at + 8);
    f.set(b, at + 24);
    udp(f, at + 40, len - at - 40);
    const sum = ipv6PseudoSum(a, b, 17, len - at - 40);
    f.writeUInt16BE(checksum(f, at + 40, len - at - 40, sum) || 0xffff, at + 46);
  } else if (o.arp !== undefined) {
    f.writeUInt16BE(0x0806, o2);
    const [a, b] = pair('--arp', o.arp, 4).map((x) => parseIpv4Address(x)!);
    Buffer.from('0001080006040001', 'hex').copy(f, at);
    writeMac(f, at + 8, src);
    f.writeUInt32BE(a >>> 0, at + 14);
    f.writeUInt32BE(b >>> 0, at + 24);
  } else f.writeUInt16BE(0x88b5, o2); // IEEE local experimental
  return f;
}

function udp(f: Buffer, at: number, len: number): void {
  f.writeUInt16BE(UDP_SPORT, at);
  f.writeUInt16BE(UDP_DPORT, at + 2);
  f.writeUInt16BE(len, at + 4);
}

function mac(flag: string, v: string | undefined): number {
  if (v === undefined) throw new ConfigError(flag, v, 'is needed (a MAC like 02:00:00:00:00:02)');
  const m = parseMac(v);
  if (m === undefined) throw new ConfigError(flag, v, 'must be a MAC like 02:00:00:00:00:02');
  return m;
}

/** `A>B`: two addresses of one family. */
function pair(flag: string, v: string, family: 4 | 6): [string, string] {
  const parts = v.split('>');
  const ok = family === 4 ? isIPv4 : isIPv6;
  if (parts.length !== 2 || !parts.every((p) => ok(p.trim())))
    throw new ConfigError(flag, v, `must be SRC>DST, two IPv${family} addresses`);
  return [parts[0].trim(), parts[1].trim()];
}

function fromHex(v: string): Buffer {
  const clean = v.replace(/[\s:.-]/g, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(clean))
    throw new ConfigError('--hex', v, 'must be the frame as hex bytes (from its Ethernet header)');
  return Buffer.from(clean, 'hex');
}

/**
 * Packet `index` (0-based) of a capture file: classic pcap (either byte order, µs or ns) or
 * pcapng (enhanced and simple packet blocks), Ethernet link type only.
 */
export function pcapFrame(file: string, data: Buffer, index: number): Buffer {
  const bad = (why: string) => new ConfigError('--pcap', file, why);
  if (data.length < 24) throw bad('is not a pcap or pcapng file (too short)');
  const magic = data.readUInt32LE(0);
  const frames: Buffer[] = [];
  if (magic === 0x0a0d0d0a) pcapng(data, frames, bad, index);
  else {
    const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
    const be = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
    if (!le && !be) throw bad('is not a pcap or pcapng file (unknown magic)');
    const u32 = (o: number) => (le ? data.readUInt32LE(o) : data.readUInt32BE(o));
    if (u32(20) !== 1) throw bad(`has link type ${u32(20)}, not Ethernet (1)`);
    for (let o = 24; o + 16 <= data.length && frames.length <= index;) {
      const n = u32(o + 8);
      if (o + 16 + n > data.length) throw bad(`is cut short in packet ${frames.length}`);
      frames.push(data.subarray(o + 16, o + 16 + n));
      o += 16 + n;
    }
  }
  if (index >= frames.length)
    throw new ConfigError('--index', index, `is past the ${frames.length} packets of ${file}`);
  return Buffer.from(frames[index]);
}

function pcapng(
  data: Buffer,
  frames: Buffer[],
  bad: (why: string) => ConfigError,
  index: number,
): void {
  let le = true;
  const linkTypes: number[] = [];
  for (let o = 0; o + 12 <= data.length && frames.length <= index;) {
    if (data.readUInt32LE(o) === 0x0a0d0d0a) le = data.readUInt32LE(o + 8) === 0x1a2b3c4d;
    const u32 = (x: number) => (le ? data.readUInt32LE(x) : data.readUInt32BE(x));
    const type = u32(o);
    const len = u32(o + 4);
    if (len < 12 || o + len > data.length) throw bad('has a cut or malformed block');
    if (type === 1) linkTypes.push(le ? data.readUInt16LE(o + 8) : data.readUInt16BE(o + 8));
    if (type === 6 || type === 3) {
      const iface = type === 6 ? u32(o + 8) : 0;
      if ((linkTypes[iface] ?? 1) !== 1) throw bad('has a packet that is not Ethernet');
      const caplen = type === 6 ? u32(o + 20) : Math.min(u32(o + 8), len - 16);
      const start = o + (type === 6 ? 28 : 12);
      frames.push(data.subarray(start, start + caplen));
    }
    o += len;
  }
}
