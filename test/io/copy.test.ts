// The addon's copyBytes, copySum and copySegments (what segmentation and coalescing copy with in
// `vtep run`), against the JavaScript they replace: the same bytes, overlapping ranges included,
// and ranges outside an array refused.
import fc from 'fast-check';
import t from 'tap';
import { native } from '../../src/io/native.js';
import {
  jsCopy,
  jsCopySegments,
  jsCopySum,
  segment,
  type CopySegmentsFn,
} from '../../src/wire/gso.js';
import { superFrame } from '../../src/wire/testframes.js';

t.test('copyBytes copies what jsCopy copies, between arrays and within one', async (t) => {
  const io = native();
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      fc.boolean(),
      (src, a, b, c, same) => {
        const len = c % (src.length + 1);
        const so = a % (src.length - len + 1);
        const d1 = same ? Buffer.from(src) : Buffer.alloc(src.length + 10);
        const d2 = Buffer.from(d1);
        const s1 = same ? d1 : Buffer.from(src);
        const s2 = same ? d2 : Buffer.from(src);
        const doff = b % (d1.length - len + 1);
        io.copyBytes(d1, doff, s1, so, len);
        jsCopy(d2, doff, s2, so, len);
        return d1.equals(d2);
      },
    ),
  );
  t.throws(() => io.copyBytes(Buffer.alloc(4), 2, Buffer.alloc(8), 0, 4), /outside its array/);
  t.throws(() => io.copyBytes(Buffer.alloc(8), 0, Buffer.alloc(4), 1, 4), /outside its array/);
});

t.test('copySum copies and sums what jsCopySum does, at any alignment and length', async (t) => {
  const io = native();
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.nat(7),
      fc.nat(7),
      (src, so, doff) => {
        const s = Buffer.concat([Buffer.alloc(so), Buffer.from(src)]);
        const d1 = Buffer.alloc(src.length + doff);
        const d2 = Buffer.alloc(src.length + doff);
        const a = io.copySum(d1, doff, s, so, src.length);
        const b = jsCopySum(d2, doff, s, so, src.length);
        return a === b && a <= 0xffff && d1.equals(d2);
      },
    ),
    { numRuns: 2000 },
  );
  const ff = Buffer.alloc(4096, 0xff);
  t.equal(io.copySum(Buffer.alloc(4096), 0, ff, 0, 4096), 0xffff, 'carries folded all the way');
  t.throws(() => io.copySum(Buffer.alloc(4), 2, Buffer.alloc(8), 0, 4), /outside its array/);
});

t.test('copySegments copies and sums what jsCopySegments does, piece by piece', async (t) => {
  const io = native();
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 6000 }),
      fc.integer({ min: 0, max: 80 }),
      fc.integer({ min: 1, max: 1500 }),
      fc.nat(15),
      fc.nat(7),
      (bytes, hdrLen, size, slack, so) => {
        const src = Buffer.concat([Buffer.alloc(so, 0xee), Buffer.from(bytes)]);
        if (hdrLen > bytes.length) hdrLen = bytes.length;
        const payload = bytes.length - hdrLen;
        const n = Math.max(1, Math.ceil(payload / size));
        const stride = hdrLen + Math.min(size, payload) + slack;
        const run = (f: CopySegmentsFn) => {
          const dst = Buffer.alloc(3 + n * stride);
          const sums = new Uint32Array(n + 1).fill(0xdead);
          f(dst, 3, stride, src, so, hdrLen, size, payload, n, sums);
          return [dst.toString('hex'), [...sums].join()];
        };
        const [d1, s1] = run(io.copySegments);
        const [d2, s2] = run(jsCopySegments);
        return d1 === d2 && s1 === s2;
      },
    ),
    { numRuns: 1000 },
  );
  const src = Buffer.alloc(100, 1);
  const sums = new Uint32Array(4);
  const go =
    (dst: number, payload: number, n: number, size = 30, stride = 40) =>
    () =>
      io.copySegments(Buffer.alloc(dst), 0, stride, src, 0, 10, size, payload, n, sums);
  t.doesNotThrow(go(40 * 2 + 10 + 30, 90, 3), 'three pieces, the last one full, fit exactly');
  t.throws(go(40 * 2 + 10 + 29, 90, 3), /outside their arrays/, 'one byte short');
  t.throws(
    go(300, 91, 3, 31, 45),
    /outside their arrays/,
    'the source is shorter than header + payload',
  );
  t.throws(go(200, 60, 3), /do not cover/, 'three pieces for two pieces of payload');
  t.throws(go(200, 90, 2), /do not cover/, 'two pieces for three');
  t.throws(go(400, 90, 5, 20), /do not cover/, 'more pieces than sums');
  t.throws(go(400, 90, 3, 30, 39), /do not cover/, 'segments closer than a segment');
});

t.test(
  'segmentation with the native copySegments cuts exactly what it does in JavaScript',
  async (t) => {
    const io = native();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 9000 }),
        fc.integer({ min: 88, max: 1460 }),
        fc.boolean(),
        fc.nat(10),
        (payload, mss, v6, opts) => {
          const { frame, hdr } = superFrame({
            v: v6 ? 6 : 4,
            vlan: opts % 2 === 1,
            ipOptions: v6 ? 0 : opts % 4,
            tcpOptions: opts % 5,
            payload,
            mss,
            seq: 1000 * opts,
            flags: 0x18,
            id: opts,
            udp: opts >= 8,
          });
          const cut = (copySegments?: CopySegmentsFn) => {
            const dst = Buffer.alloc(1 << 18);
            const out = { offsets: new Uint32Array(1024), lengths: new Uint32Array(1024) };
            const n = segment(
              frame,
              0,
              frame.length,
              hdr,
              dst,
              0,
              dst.length,
              64,
              out,
              8,
              copySegments,
            );
            return [n, dst.toString('hex')];
          };
          const [n1, a] = cut(io.copySegments);
          const [n2, b] = cut();
          return n1 === n2 && a === b;
        },
      ),
      { numRuns: 200 },
    );
    t.pass(
      '200 super-frames, TCP and UDP, IPv4 and IPv6, options, odd payloads: the same segments, byte for byte',
    );
  },
);
