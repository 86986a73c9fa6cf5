// Generated VXLAN inputs for the differential tests, and how to put them on the wire.
import fc from 'fast-check';
import { IpProtocol, emitIpv4, parseIpv4Address } from '../../src/wire/ipv4.js';
import { emitUdp, udpIpv4PseudoSum } from '../../src/wire/udp.js';
import { REMOTES, SENDERS, VNIS } from './topology.js';

export type Mutation =
  | { kind: 'none' }
  | { kind: 'flag'; bit: number }
  | { kind: 'reserved'; byte: 1 | 2 | 3 | 7; bit: number }
  | { kind: 'truncateHeader'; length: number }
  | { kind: 'truncateInner'; length: number }
  | { kind: 'udpLength'; delta: number }
  /** A non-zero outer UDP checksum, right or wrong (every other input carries 0: none). */
  | { kind: 'checksum'; valid: boolean };

export interface Input {
  vni: number;
  /** Index into SENDERS: which remote VTEP sends it (REMOTES.length: the unconfigured one). */
  from: number;
  /** The inner Ethernet frame, hex. */
  inner: string;
  mutation: Mutation;
}

const mac = fc.oneof(
  fc.constant('ffffffffffff'),
  fc
    .integer({ min: 0, max: 0xffffffff })
    .map((x) => `01005e${(x & 0x7fffff).toString(16).padStart(6, '0')}`),
  fc.integer({ min: 0, max: 0xffffffff }).map((x) => `3333${x.toString(16).padStart(8, '0')}`),
  fc
    .integer({ min: 0, max: 0xffffffff })
    .map((x) => `02${(x >>> 0).toString(16).padStart(8, '0')}aa`),
  fc.constant('525400d1ff01'), // the VMs' own MAC
  fc.constant('000000000000'),
);
const ethertype = fc.oneof(
  fc.constant('0800'),
  fc.constant('86dd'),
  fc.constant('0806'),
  fc.constant('88b5'),
  fc.integer({ min: 0x0600, max: 0xffff }).map((x) => x.toString(16).padStart(4, '0')),
);
/** 1500 - 20 - 8 - 8 - 14 - 4: a tagged frame of this payload fills a 1500-byte underlay packet. */
const MAX_PAYLOAD = 1446;
const vlan = fc.option(
  fc.integer({ min: 1, max: 4094 }).map((id) => `8100${id.toString(16).padStart(4, '0')}`),
  { nil: undefined },
);

/**
 * Inner frames of 14 up to 1464 bytes, the most a 1500-byte underlay carries in one packet
 * (20 IPv4 + 8 UDP + 8 VXLAN bytes around it), with a fifth of them near that edge: random MACs
 * of every class, EtherTypes, optional 802.1Q tag.
 */
export const innerFrame = fc
  .record({
    dst: mac,
    src: mac,
    tag: vlan,
    type: ethertype,
    payload: fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ minLength: 0, maxLength: MAX_PAYLOAD }) },
      {
        weight: 1,
        arbitrary: fc.uint8Array({ minLength: MAX_PAYLOAD - 8, maxLength: MAX_PAYLOAD }),
      },
    ),
  })
  .map(
    ({ dst, src, tag, type, payload }) =>
      dst + src + (tag ?? '') + type + Buffer.from(payload).toString('hex'),
  );

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 7 }).map((bit) => ({ kind: 'flag' as const, bit })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        byte: fc.constantFrom(1 as const, 2 as const, 3 as const, 7 as const),
        bit: fc.integer({ min: 0, max: 7 }),
      })
      .map((r) => ({ kind: 'reserved' as const, ...r })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 0, max: 7 })
      .map((length) => ({ kind: 'truncateHeader' as const, length })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 0, max: 13 })
      .map((length) => ({ kind: 'truncateInner' as const, length })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: -16, max: 16 })
      .filter((d) => d !== 0)
      .map((delta) => ({ kind: 'udpLength' as const, delta })),
  },
  {
    weight: 2,
    arbitrary: fc.boolean().map((valid) => ({ kind: 'checksum' as const, valid })),
  },
);

export const input: fc.Arbitrary<Input> = fc.record({
  vni: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...VNIS) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffff }) },
  ),
  from: fc.integer({ min: 0, max: REMOTES.length - 1 }),
  inner: innerFrame,
  mutation,
});

/** The VXLAN payload (header + inner frame) after the mutation, and the UDP length delta. */
export function vxlanBytes(i: Input): { payload: Buffer; udpDelta: number } {
  const inner = Buffer.from(i.inner, 'hex');
  let b = Buffer.concat([
    Buffer.from([0x08, 0, 0, 0, i.vni >>> 16, (i.vni >>> 8) & 0xff, i.vni & 0xff, 0]),
    inner,
  ]);
  const m = i.mutation;
  if (m.kind === 'flag') b[0] ^= 1 << m.bit;
  if (m.kind === 'reserved') b[m.byte] |= 1 << m.bit;
  if (m.kind === 'truncateHeader') b = b.subarray(0, m.length);
  if (m.kind === 'truncateInner') b = b.subarray(0, 8 + m.length);
  return { payload: b, udpDelta: m.kind === 'udpLength' ? m.delta : 0 };
}

/** A whole IPv4/UDP/VXLAN packet from a remote to a receiver; UDP length may be made wrong. */
export function packet(i: Input, to: string, srcPort = 50000): Buffer {
  const { payload, udpDelta } = vxlanBytes(i);
  const buf = Buffer.alloc(28 + payload.length);
  const src = parseIpv4Address(SENDERS[i.from])!;
  const dst = parseIpv4Address(to)!;
  emitIpv4({ src, dst, protocol: IpProtocol.UDP, payloadLen: 8 + payload.length }, buf, 0);
  buf.set(payload, 28);
  const m = i.mutation;
  const pseudo = m.kind === 'checksum' ? udpIpv4PseudoSum(src, dst, 8 + payload.length) : undefined;
  emitUdp({ srcPort, dstPort: 4789, payloadLen: payload.length }, buf, 20, pseudo);
  // A wrong checksum, never 0 (that would say "no checksum" and be right).
  if (m.kind === 'checksum' && !m.valid)
    buf.writeUInt16BE(buf.readUInt16BE(26) ^ 0x0101 || 0x0202, 26);
  if (udpDelta) buf.writeUInt16BE(Math.max(0, 8 + payload.length + udpDelta), 24);
  return buf;
}

/** What a receiver should deliver for an input if it delivers it: the inner frame. */
export function innerOf(i: Input): string | undefined {
  const { payload } = vxlanBytes(i);
  return payload.length >= 8 + 14 ? payload.subarray(8).toString('hex') : undefined;
}
