import { readFileSync } from 'node:fs';

/** Frames of a classic pcap file (as tcpdump -w writes them), in order. */
export function readPcap(path: string): Buffer[] {
  const buf = readFileSync(path);
  if (buf.length < 24) return [];
  const le = buf.readUInt32LE(0) === 0xa1b2c3d4 || buf.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const frames: Buffer[] = [];
  for (let o = 24; o + 16 <= buf.length;) {
    const incl = u32(o + 8);
    if (o + 16 + incl > buf.length) break;
    frames.push(buf.subarray(o + 16, o + 16 + incl));
    o += 16 + incl;
  }
  return frames;
}
