// Receive coalescing (src/wire/gro.ts): any TCP super-frame, cut into segments (gso.ts) and
// coalesced again, carries the same byte stream with headers the kernel accepts; what the
// kernel's GRO would not merge is not merged.
import fc from 'fast-check';
import t from 'tap';
import { checksum } from '../../src/wire/checksum.js';
import {
  GsoType,
  VNET_HDR_LEN,
  VnetFlags,
  emptyVnetHdr,
  finishChecksum,
  readVnetHdr,
  segment,
} from '../../src/wire/gso.js';
import {
  canFollow,
  coalesce,
  tcpSegment,
  type Coalesced,
  type TcpSeg,
} from '../../src/wire/gro.js';
import { superFrame, type Spec } from '../../src/wire/testframes.js';

const seg = (): TcpSeg => ({ v: 4, l4: 0, hdrLen: 0, payload: 0, seq: 0, flags: 0 });
const hdr = emptyVnetHdr;

const spec = fc.record({
  v: fc.constantFrom<4 | 6>(4, 6),
  vlan: fc.constant(false),
  ipOptions: fc.constant(0),
  tcpOptions: fc.integer({ min: 0, max: 10 }),
  payload: fc.uint8Array({ minLength: 1, maxLength: 60_000, size: 'max' }),
  mss: fc.integer({ min: 200, max: 9000 }),
  seq: fc.nat({ max: 0xffffffff }),
  flags: fc.constantFrom(0x10, 0x18),
  id: fc.nat({ max: 0xffff }),
});

t.test('split and coalesced again: the same stream, headers the kernel takes', async (t) => {
  const segs = Buffer.alloc(4 << 20);
  const out = { offsets: new Uint32Array(1024), lengths: new Uint32Array(1024) };
  const dst = Buffer.alloc(70_000);
  const meta = new Uint8Array(VNET_HDR_LEN);
  fc.assert(
    fc.property(spec, (s: Spec) => {
      const { frame, hdr: h, l4 } = superFrame(s);
      if (frame.length - 14 > 0xffff) return true;
      const n = segment(frame, 0, frame.length, h, segs, 0, segs.length, 64, out);
      if (n <= 0) return false;
      const first = seg();
      if (!tcpSegment(segs, out.offsets[0], out.lengths[0], first)) return false;
      let next = (first.seq + first.payload) >>> 0;
      for (let k = 1; k < n; k++) {
        const x = seg();
        if (!tcpSegment(segs, out.offsets[k], out.lengths[k], x)) return false;
        if (!canFollow(segs, out.offsets[0], first, segs, out.offsets[k], x, next)) return false;
        next = (x.seq + x.payload) >>> 0;
      }
      const v = hdr();
      const r: Coalesced = { len: 0, segments: 0, bad: true };
      coalesce(segs, out.offsets, out.lengths, 0, n, first, dst, 0, meta, 0, v, r);
      if (r.bad || r.segments !== n) return false;
      const len = r.len;
      if (n === 1) return len === frame.length;
      if (len !== frame.length) return false;
      if (!dst.subarray(first.hdrLen, len).equals(frame.subarray(first.hdrLen))) return false;
      if (dst.readUInt32BE(l4 + 4) !== s.seq) return false;
      if (dst[l4 + 13] !== s.flags) return false; // PSH comes back from the last segment
      const m = readVnetHdr(meta, 0, hdr());
      if (m.flags !== VnetFlags.NEEDS_CSUM || m.gsoSize !== Math.min(s.mss, s.payload.length))
        return false;
      if (m.gsoType !== (s.v === 4 ? GsoType.TCPV4 : GsoType.TCPV6) || m.hdrLen !== first.hdrLen)
        return false;
      if (s.v === 4 && (dst.readUInt16BE(16) !== len - 14 || checksum(dst, 14, 20) !== 0))
        return false;
      if (s.v === 6 && dst.readUInt16BE(18) !== len - 54) return false;
      // What the kernel does with CHECKSUM_PARTIAL: the finished checksum verifies.
      const done = Buffer.from(dst.subarray(0, len));
      finishChecksum(done, 0, len, m.csumStart, m.csumOffset);
      const again = segment(
        done,
        0,
        len,
        { ...m, gsoType: m.gsoType },
        segs,
        0,
        segs.length,
        64,
        out,
      );
      return again === n;
    }),
    { numRuns: 120 },
  );
});

t.test('what GRO would not merge', async (t) => {
  const base: Spec = {
    v: 4,
    vlan: false,
    ipOptions: 0,
    tcpOptions: 3,
    payload: new Uint8Array(3000),
    mss: 1000,
    seq: 100,
    flags: 0x10,
    id: 1,
  };
  const s = seg();
  const parse = (f: Buffer) => tcpSegment(f, 0, f.length, s);
  const segmentOf = (sp: Spec, k = 0) => {
    const { frame, hdr: h } = superFrame(sp);
    const segs = Buffer.alloc(1 << 16);
    const out = { offsets: new Uint32Array(16), lengths: new Uint32Array(16) };
    segment(frame, 0, frame.length, h, segs, 0, segs.length, 0, out);
    return Buffer.from(segs.subarray(out.offsets[k], out.offsets[k] + out.lengths[k]));
  };
  const a = segmentOf(base);
  t.ok(parse(a));
  t.notOk(tcpSegment(a, 0, 40, s), 'short');
  const mut = (at: number, v: number, f = a) => {
    const c = Buffer.from(f);
    c[at] = v;
    return c;
  };
  t.notOk(parse(mut(13, 0x06)), 'ARP');
  t.notOk(parse(mut(14, 0x46)), 'IPv4 options');
  t.notOk(parse(mut(20, 0x20)), 'a fragment');
  t.notOk(parse(mut(23, 17)), 'not TCP');
  t.notOk(parse(mut(17, 0)), 'IP length and frame length differ');
  t.notOk(parse(mut(47, 0x12)), 'SYN');
  t.notOk(parse(mut(47, 0x00)), 'no ACK');
  t.notOk(parse(mut(46, 0x40)), 'data offset below 5');
  t.notOk(
    parse(mut(46, 0xf0, segmentOf({ ...base, payload: new Uint8Array(10) }))),
    'headers longer than the frame',
  );
  const v6 = segmentOf({ ...base, v: 6 });
  t.ok(parse(v6));
  const v6ext = Buffer.from(v6);
  v6ext[20] = 0;
  t.notOk(parse(v6ext), 'IPv6 extension header');
  t.notOk(tcpSegment(v6, 0, 14 + 40 + 10, s), 'IPv6 TCP header cut');
  const v6len = Buffer.from(v6);
  v6len[19] = 0;
  t.notOk(parse(v6len), 'IPv6 length');

  // Following: everything but seq, length, ID, PSH and checksums must match.
  const f = seg();
  tcpSegment(a, 0, a.length, f);
  const b = segmentOf(base, 1);
  const x = seg();
  const follows = (c: Buffer, next = 1100) => {
    tcpSegment(c, 0, c.length, x);
    return canFollow(a, 0, f, c, 0, x, next);
  };
  t.ok(follows(b), 'the next segment follows');
  t.notOk(follows(b, 1101), 'a gap');
  t.notOk(follows(mut(0, 0x99, b)), 'another destination MAC');
  t.notOk(follows(mut(15, 0x99, b)), 'another TOS');
  t.notOk(follows(mut(22, 0x99, b)), 'another TTL');
  t.notOk(follows(mut(29, 0x99, b)), 'another source address');
  t.ok(follows(mut(19, 0x99, b)), 'another IP ID is fine');
  t.notOk(follows(mut(35, 0x99, b)), 'another port');
  t.notOk(follows(mut(45, 0x99, b)), 'another ACK number');
  t.notOk(follows(mut(49, 0x99, b)), 'another window');
  t.notOk(follows(mut(55, 0x99, b)), 'other options (a timestamp)');
  t.ok(follows(mut(47, 0x18, b)), 'PSH is fine');
  t.notOk(follows(segmentOf({ ...base, tcpOptions: 2 }, 1)), 'another header length');
  const b6 = segmentOf({ ...base, v: 6 }, 1);
  t.notOk(follows(b6), 'another IP version');
  const f6 = seg();
  tcpSegment(v6, 0, v6.length, f6);
  const x6 = seg();
  const follows6 = (c: Buffer) => {
    tcpSegment(c, 0, c.length, x6);
    return canFollow(v6, 0, f6, c, 0, x6, 1100);
  };
  t.ok(follows6(b6));
  t.notOk(follows6(mut(15, 0x99, b6)), 'another traffic class');
  t.notOk(follows6(mut(21, 0x99, b6)), 'another hop limit');
});

/** Run segments through `tcpSegment`/`canFollow` as the engine does: how many form one run. */
function runOf(segs: Buffer, offs: Uint32Array, lens: Uint32Array, n: number, first: TcpSeg) {
  if (!tcpSegment(segs, offs[0], lens[0], first)) return 0;
  let next = (first.seq + first.payload) >>> 0;
  const x = seg();
  for (let k = 1; k < n; k++) {
    if (!tcpSegment(segs, offs[k], lens[k], x)) return k;
    if (!canFollow(segs, offs[0], first, segs, offs[k], x, next)) return k;
    next = (x.seq + x.payload) >>> 0;
  }
  return n;
}

t.test('a segment joins a coalesced frame only if its own checksums verify', async (t) => {
  const segs = Buffer.alloc(1 << 20);
  const out = { offsets: new Uint32Array(256), lengths: new Uint32Array(256) };
  const dst = Buffer.alloc(70_000);
  const meta = new Uint8Array(VNET_HDR_LEN);
  // Where a corruption lands: the payload, the TCP checksum, or the IPv4 header checksum (fields
  // `canFollow` does not compare, so the segment still joins the run and must be caught there).
  const hit = fc.record({
    k: fc.nat(),
    where: fc.constantFrom('payload', 'tcp', 'ip'),
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  });
  fc.assert(
    fc.property(
      spec.map((s) => ({ ...s, payload: s.payload.subarray(0, 20_000), flags: 0x10 })),
      fc.array(hit, { maxLength: 4 }),
      (s: Spec, hits) => {
        const { frame, hdr: h } = superFrame(s);
        const n = segment(frame, 0, frame.length, h, segs, 0, segs.length, 64, out);
        if (n <= 0) return false;
        const first = seg();
        if (runOf(segs, out.offsets, out.lengths, n, first) !== n) return false;
        const l4 = first.l4;
        const bad = new Set<number>();
        for (const x of hits) {
          const k = x.k % n;
          const o = out.offsets[k];
          const payload = out.lengths[k] - first.hdrLen;
          if (x.where === 'ip' && s.v === 6) continue;
          const at =
            x.where === 'payload'
              ? o + first.hdrLen + (x.at % payload)
              : x.where === 'tcp'
                ? o + l4 + 16 + (x.at % 2)
                : o + 14 + 10 + (x.at % 2);
          segs[at] ^= x.xor;
          // Two hits on one byte may cancel out; what counts is whether it differs now.
          bad.add(k);
        }
        const original = (k: number) => {
          const o = out.offsets[k];
          return segs.subarray(o, o + out.lengths[k]);
        };
        const verifies = (k: number, payload: Uint8Array) => {
          const c = Buffer.from(original(k));
          c.set(payload, first.hdrLen);
          const tcpLen = c.length - l4;
          const ipOk = s.v === 6 || checksum(c, 14, 20) === 0;
          const pseudo =
            s.v === 4
              ? c.readUInt16BE(26) + c.readUInt16BE(28) + c.readUInt16BE(30) + c.readUInt16BE(32)
              : checksum(c, 22, 32) ^ 0xffff;
          return ipOk && checksum(c, l4, tcpLen, pseudo + 6 + tcpLen) === 0;
        };
        // The engine's loop: frames, lone segments, bad ones alone.
        const seen: number[] = [];
        const r: Coalesced = { len: 0, segments: 0, bad: false };
        for (let from = 0; from < n;) {
          coalesce(segs, out.offsets, out.lengths, from, n, first, dst, 0, meta, 0, hdr(), r);
          // every segment in the frame verifies with the payload the frame carries for it
          let at = first.hdrLen;
          for (let k = from; k < from + r.segments; k++) {
            const len = out.lengths[k] - first.hdrLen;
            if (r.segments > 1 && !verifies(k, dst.subarray(at, at + len))) return false;
            if (!verifies(k, original(k).subarray(first.hdrLen))) return false;
            seen.push(k);
            at += len;
          }
          if (r.segments > 1 && at !== r.len) return false;
          from += r.segments;
          if (r.bad) {
            if (verifies(from, original(from).subarray(first.hdrLen))) return false;
            seen.push(-from - 1);
            from++;
          }
        }
        // every segment exactly once, in order; the bad ones are those hit (unless undone)
        if (seen.map((x) => (x < 0 ? -x - 1 : x)).join() !== [...Array(n).keys()].join())
          return false;
        for (const x of seen) if (x < 0 && !bad.has(-x - 1)) return false;
        return true;
      },
    ),
    { numRuns: 200 },
  );
});
