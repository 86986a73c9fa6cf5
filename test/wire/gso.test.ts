// TAP offloads (src/wire/gso.ts): the virtio-net header, finishing a partial checksum, and TCP
// and UDP segmentation of super-frames. Properties over generated frames: split segments carry
// the same byte stream, every IP, TCP and UDP checksum verifies, no segment exceeds the segment
// size, and the header fields move as the kernel's tcp_gso_segment and __udp_gso_segment move
// them.
import fc from 'fast-check';
import t from 'tap';
import {
  checksum,
  fold,
  ipv4PseudoSum,
  ipv6PseudoSum,
  sum,
  sumBytes,
} from '../../src/wire/checksum.js';
import {
  GsoType,
  VNET_HDR_LEN,
  VnetFlags,
  finishChecksum,
  readVnetHdr,
  segment,
  writeVnetHdr,
  type VnetHdr,
} from '../../src/wire/gso.js';
import { superFrame, type Spec } from '../../src/wire/testframes.js';

const spec = fc.record({
  v: fc.constantFrom<4 | 6>(4, 6),
  vlan: fc.boolean(),
  ipOptions: fc.integer({ min: 0, max: 10 }),
  tcpOptions: fc.integer({ min: 0, max: 10 }),
  payload: fc.uint8Array({ minLength: 0, maxLength: 64_000, size: 'max' }),
  mss: fc.integer({ min: 88, max: 9000 }),
  seq: fc.nat({ max: 0xffffffff }),
  flags: fc.integer({ min: 0, max: 0xff }).map((f) => f | 0x10), // ACK always
  id: fc.nat({ max: 0xffff }),
});

function l4ChecksumOk(seg: Uint8Array, v: 4 | 6, l3: number, l4: number, proto = 6): boolean {
  const len = seg.length - l4;
  const pseudo =
    v === 4
      ? ipv4PseudoSum(
          Buffer.from(seg).readUInt32BE(l3 + 12),
          Buffer.from(seg).readUInt32BE(l3 + 16),
          proto,
          len,
        )
      : ipv6PseudoSum(seg.subarray(l3 + 8, l3 + 24), seg.subarray(l3 + 24, l3 + 40), proto, len);
  return checksum(seg, l4, len, pseudo) === 0;
}

/**
 * Segment `k` of a super-frame: L2 copied; IPv4 total length its own, ID the super-frame's + k,
 * a header checksum that verifies; or IPv6 payload length its own (as the kernel sets them).
 */
function ipFieldsOk(
  seg: Buffer,
  frame: Buffer,
  s: { v: 4 | 6; id: number },
  l3: number,
  ipLen: number,
  k: number,
): boolean {
  if (!seg.subarray(0, l3).equals(frame.subarray(0, l3))) return false;
  if (s.v === 6) return seg.readUInt16BE(l3 + 4) === seg.length - l3 - 40;
  return (
    seg.readUInt16BE(l3 + 2) === seg.length - l3 &&
    seg.readUInt16BE(l3 + 4) === ((s.id + k) & 0xffff) &&
    checksum(seg, l3, ipLen) === 0
  );
}

t.test(
  'TCP segmentation: same byte stream, valid checksums, MSS-sized, fields as the kernel sets them',
  async (t) => {
    const dst = Buffer.alloc(4 << 20);
    const out = { offsets: new Uint32Array(1024), lengths: new Uint32Array(1024) };
    fc.assert(
      fc.property(spec, (s) => {
        const ipLen = s.v === 4 ? 20 + 4 * s.ipOptions : 40;
        const { frame, hdr, l3, l4 } = superFrame(s);
        const tcpLen = 20 + 4 * s.tcpOptions;
        if (s.v === 4 && frame.length - l3 > 0xffff) return true; // not a frame IPv4 can carry
        const n = segment(frame, 0, frame.length, hdr, dst, 0, dst.length, 64, out);
        const expected = Math.max(1, Math.ceil(s.payload.length / s.mss));
        if (n !== expected) return false;
        const stream: Buffer[] = [];
        for (let k = 0; k < n; k++) {
          const seg = dst.subarray(out.offsets[k], out.offsets[k] + out.lengths[k]);
          const hdrLen = l4 + tcpLen;
          const chunk = seg.length - hdrLen;
          if (chunk > s.mss || (k < n - 1 && chunk !== s.mss)) return false;
          if (
            out.offsets[k] < 64 ||
            (k > 0 && out.offsets[k] - out.offsets[k - 1] < 64 + out.lengths[k - 1])
          )
            return false; // headroom in front of every segment, no overlap
          stream.push(seg.subarray(hdrLen));
          if (!ipFieldsOk(seg, frame, s, l3, ipLen, k)) return false;
          if (seg.readUInt32BE(l4 + 4) !== (s.seq + k * s.mss) >>> 0) return false;
          const f = seg[l4 + 13];
          const want = (k < n - 1 ? s.flags & ~0x09 : s.flags) & (k > 0 ? ~0x80 : 0xff);
          if (f !== want) return false;
          if (!l4ChecksumOk(seg, s.v, l3, l4)) return false;
        }
        return Buffer.concat(stream).equals(Buffer.from(s.payload));
      }),
      { numRuns: 150 },
    );
  },
);

const udpSpec = fc.record({
  v: fc.constantFrom<4 | 6>(4, 6),
  vlan: fc.boolean(),
  ipOptions: fc.integer({ min: 0, max: 10 }),
  tcpOptions: fc.constant(0),
  payload: fc.uint8Array({ minLength: 0, maxLength: 64_000, size: 'max' }),
  // UDP_SEGMENT sizes: anything from one byte to a jumbo frame's
  mss: fc.integer({ min: 1, max: 9000 }),
  seq: fc.constant(0),
  flags: fc.constant(0),
  id: fc.nat({ max: 0xffff }),
  udp: fc.constant(true),
});

t.test(
  'UDP segmentation (USO): the same datagrams, valid checksums, sized as asked, fields as the kernel sets them',
  async (t) => {
    // room for the worst case: 64 000 one-byte segments, each behind 64 bytes of headroom
    const dst = Buffer.alloc(16 << 20);
    const out = { offsets: new Uint32Array(70_000), lengths: new Uint32Array(70_000) };
    fc.assert(
      fc.property(udpSpec, (s) => {
        const ipLen = s.v === 4 ? 20 + 4 * s.ipOptions : 40;
        const { frame, hdr, l3, l4 } = superFrame(s);
        if (s.v === 4 && frame.length - l3 > 0xffff) return true;
        const n = segment(frame, 0, frame.length, hdr, dst, 0, dst.length, 64, out);
        if (n !== Math.max(1, Math.ceil(s.payload.length / s.mss))) return false;
        let at = 0;
        for (let k = 0; k < n; k++) {
          const seg = dst.subarray(out.offsets[k], out.offsets[k] + out.lengths[k]);
          const chunk = seg.length - l4 - 8;
          if (chunk > s.mss || (k < n - 1 && chunk !== s.mss)) return false;
          // each datagram is one of the sender's writes: its bytes, in order
          if (!seg.subarray(l4 + 8).equals(Buffer.from(s.payload.subarray(at, at + chunk))))
            return false;
          at += chunk;
          if (!ipFieldsOk(seg, frame, s, l3, ipLen, k)) return false;
          // ports copied, length its own, a checksum that verifies and is never "none"
          if (seg.readUInt32BE(l4) !== frame.readUInt32BE(l4)) return false;
          if (seg.readUInt16BE(l4 + 4) !== 8 + chunk) return false;
          if (seg.readUInt16BE(l4 + 6) === 0 || !l4ChecksumOk(seg, s.v, l3, l4, 17)) return false;
        }
        return at === s.payload.length;
      }),
      { numRuns: 150 },
    );
  },
);

t.test('a UDP checksum that comes to 0 goes as 0xffff (RFC 768)', async (t) => {
  const out = { offsets: new Uint32Array(4), lengths: new Uint32Array(4) };
  const dst = Buffer.alloc(1 << 16);
  const base = {
    v: 4 as const,
    vlan: false,
    ipOptions: 0,
    tcpOptions: 0,
    mss: 2,
    seq: 0,
    flags: 0,
    id: 0,
    udp: true,
  };
  // The sum of a datagram with payload [0, 0] is the header's; find the payload word that makes
  // the checksum 0: its complement.
  const probe = superFrame({ ...base, payload: new Uint8Array(2) });
  t.equal(segment(probe.frame, 0, probe.frame.length, probe.hdr, dst, 0, dst.length, 64, out), 1);
  const c0 = dst.readUInt16BE(out.offsets[0] + probe.l4 + 6);
  // a payload word w adds w to the sum: the checksum becomes ~(~c0 + w); 0 when w = c0 (w != 0)
  const payload = new Uint8Array([c0 >> 8, c0 & 0xff]);
  const sf = superFrame({ ...base, payload });
  t.equal(segment(sf.frame, 0, sf.frame.length, sf.hdr, dst, 0, dst.length, 64, out), 1);
  const seg = dst.subarray(out.offsets[0], out.offsets[0] + out.lengths[0]);
  t.equal(seg.readUInt16BE(sf.l4 + 6), 0xffff);
  t.ok(l4ChecksumOk(seg, 4, sf.l3, sf.l4, 17), '0xffff verifies as 0 does');
  // TCP segmentation of a UDP frame, and UDP segmentation of a TCP one: refused
  t.equal(
    segment(
      sf.frame,
      0,
      sf.frame.length,
      { ...sf.hdr, gsoType: GsoType.TCPV4 },
      dst,
      0,
      dst.length,
      64,
      out,
    ),
    0,
  );
  const tcp = superFrame({ ...base, udp: false, payload: new Uint8Array(10) });
  t.equal(
    segment(
      tcp.frame,
      0,
      tcp.frame.length,
      { ...tcp.hdr, gsoType: GsoType.UDP_L4 },
      dst,
      0,
      dst.length,
      64,
      out,
    ),
    0,
  );
  t.equal(
    segment(sf.frame, 0, sf.l4 + 7, sf.hdr, dst, 0, dst.length, 64, out),
    0,
    'UDP header cut',
  );
});

t.test('segmentation refuses what it cannot cut, and asks for room', async (t) => {
  const out = { offsets: new Uint32Array(4), lengths: new Uint32Array(4) };
  const s: Spec = {
    v: 4,
    vlan: false,
    ipOptions: 0,
    tcpOptions: 0,
    payload: new Uint8Array(3000),
    mss: 1000,
    seq: 1,
    flags: 0x18,
    id: 7,
  };
  const { frame, hdr } = superFrame(s);
  const dst = Buffer.alloc(1 << 16);
  t.equal(segment(frame, 0, frame.length, hdr, dst, 0, dst.length, 64, out), 3);
  t.equal(segment(frame, 0, frame.length, hdr, dst, 0, 2000, 64, out), -1, 'not enough room');
  t.equal(
    segment(frame, 0, frame.length, { ...hdr, gsoSize: 500 }, dst, 0, dst.length, 64, out),
    0,
    'more segments than out holds',
  );
  t.equal(segment(frame, 0, frame.length, { ...hdr, gsoSize: 0 }, dst, 0, dst.length, 64, out), 0);
  t.equal(segment(frame, 0, 10, hdr, dst, 0, dst.length, 64, out), 0, 'runt');
  const udp = Buffer.from(frame);
  udp[14 + 9] = 17;
  t.equal(segment(udp, 0, udp.length, hdr, dst, 0, dst.length, 64, out), 0, 'not TCP');
  const badIhl = Buffer.from(frame);
  badIhl[14] = 0x42;
  t.equal(segment(badIhl, 0, badIhl.length, hdr, dst, 0, dst.length, 64, out), 0);
  const arp = Buffer.from(frame);
  arp.writeUInt16BE(0x0806, 12);
  t.equal(segment(arp, 0, arp.length, hdr, dst, 0, dst.length, 64, out), 0, 'not IP');
  t.equal(segment(frame, 0, 14 + 20 + 10, hdr, dst, 0, dst.length, 64, out), 0, 'TCP cut');
  const badDoff = Buffer.from(frame);
  badDoff[14 + 20 + 12] = 0x20;
  t.equal(segment(badDoff, 0, badDoff.length, hdr, dst, 0, dst.length, 64, out), 0);
  badDoff[14 + 20 + 12] = 0xf0;
  t.equal(segment(badDoff, 0, 14 + 20 + 40, hdr, dst, 0, dst.length, 64, out), 0, 'options cut');
  const v6 = superFrame({ ...s, v: 6 });
  t.equal(
    segment(
      v6.frame,
      0,
      v6.frame.length,
      { ...v6.hdr, csumStart: 30 },
      dst,
      0,
      dst.length,
      64,
      out,
    ),
    0,
    'L4 inside the IPv6 header',
  );
  const v6udp = Buffer.from(v6.frame);
  v6udp[14 + 6] = 17;
  t.equal(segment(v6udp, 0, v6udp.length, v6.hdr, dst, 0, dst.length, 64, out), 0);
  const qinq = Buffer.from(frame);
  qinq.writeUInt16BE(0x88a8, 12);
  t.equal(segment(qinq, 0, 16, hdr, dst, 0, dst.length, 64, out), 0, 'tag cut');
});

t.test('the virtio-net header, and finishing a partial checksum', async (t) => {
  const h: VnetHdr = {
    flags: VnetFlags.NEEDS_CSUM,
    gsoType: GsoType.TCPV6,
    hdrLen: 0x1234,
    gsoSize: 1448,
    csumStart: 54,
    csumOffset: 16,
  };
  const b = new Uint8Array(VNET_HDR_LEN + 2).fill(0xee);
  writeVnetHdr(b, 1, h);
  t.same(
    [...b.subarray(1, 13)],
    [1, 4, 0x34, 0x12, 0xa8, 0x05, 54, 0, 16, 0, 0, 0],
    'little-endian',
  );
  t.same(
    readVnetHdr(b, 1, { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 }),
    h,
  );

  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.boolean(), (payload, udp) => {
      // A UDP or TCP segment over IPv4 whose checksum field holds the pseudo-header sum.
      const { frame, l3, l4 } = superFrame({
        v: 4,
        vlan: false,
        ipOptions: 0,
        tcpOptions: 0,
        payload,
        mss: 1460,
        seq: 9,
        flags: 0x18,
        id: 1,
      });
      const len = frame.length - l4;
      const at = udp ? 6 : 16;
      if (udp) {
        frame[l3 + 9] = 17;
        frame.writeUInt16BE(len, l4 + 4);
      }
      const pseudo = ipv4PseudoSum(0x0a000001, 0x0a000002, udp ? 17 : 6, len);
      let p = pseudo;
      while (p > 0xffff) p = (p & 0xffff) + (p >>> 16);
      frame.writeUInt16BE(p, l4 + at);
      if (!finishChecksum(frame, 0, frame.length, l4, at)) return false;
      return checksum(frame, l4, len, pseudo) === 0 || sum(frame, l4, len, pseudo) === 0;
    }),
  );
  const f = Buffer.alloc(60);
  t.notOk(finishChecksum(f, 0, 60, 60, 0), 'start past the end');
  t.notOk(finishChecksum(f, 0, 60, 50, 9), 'field past the end');
});

t.test('the word-at-a-time sum equals the byte-pair sum, at any alignment', async (t) => {
  const big = Buffer.alloc(1 << 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 7)) & 0xff;
  // Views that do not start at a 4-aligned address of their ArrayBuffer, too.
  const views = [big, big.subarray(1), big.subarray(2), big.subarray(3), Buffer.from('ab')];
  fc.assert(
    fc.property(
      fc.nat({ max: 3 }),
      fc.nat({ max: 60_000 }),
      fc.nat({ max: 65_000 }),
      fc.nat({ max: 0xfffff }),
      (v, off, len, initial) => {
        const b = views[v];
        const l = Math.min(len, b.length - off);
        // Equal once folded (the accumulators may carry differently).
        return fold(sum(b, off, l, initial)) === fold(sumBytes(b, off, l, initial));
      },
    ),
    { numRuns: 300 },
  );
  t.equal(sum(views[4], 0, 2), sumBytes(views[4], 0, 2), 'short input: the byte loop');
});
