import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Netns } from '../../src/lab/netns.js';
import { IpProtocol, emitIpv4, parseIpv4Address } from '../../src/wire/ipv4.js';
import { emitUdp } from '../../src/wire/udp.js';

/** A whole IPv4/UDP packet around `payload` (UDP checksum 0, valid for IPv4). */
export function udpPacket(
  src: string,
  dst: string,
  srcPort: number,
  dstPort: number,
  payload: Uint8Array,
): Buffer {
  const buf = Buffer.alloc(28 + payload.length);
  emitIpv4(
    {
      src: parseIpv4Address(src)!,
      dst: parseIpv4Address(dst)!,
      protocol: IpProtocol.UDP,
      payloadLen: 8 + payload.length,
    },
    buf,
    0,
  );
  emitUdp({ srcPort, dstPort, payloadLen: payload.length }, buf, 20);
  buf.set(payload, 28);
  return buf;
}

/** Send packets from inside `ns` with the raw-socket injector; returns how many went out. */
export function inject(ns: Netns, packets: Buffer[]): { sent: number; failed: number } {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'injector.mjs');
  const r = spawnSync('ip', ['netns', 'exec', ns.name, process.execPath, script], {
    input: JSON.stringify(packets.map((p) => p.toString('hex'))),
    encoding: 'utf8',
    cwd: join(dirname(fileURLToPath(import.meta.url)), '..', '..'),
    maxBuffer: 1 << 24,
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`injector failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim());
}
