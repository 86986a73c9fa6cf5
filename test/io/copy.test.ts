// The addon's copyBytes and copySum (what segmentation and coalescing copy with in `vtep run`),
// against the JavaScript they replace: the same bytes, overlapping ranges included, and ranges outside
// an array refused.
import fc from 'fast-check';
import t from 'tap';
import { native } from '../../src/io/native.js';
import { jsCopy, jsCopySum, segment, type CopySumFn } from '../../src/wire/gso.js';
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

t.test(
  'segmentation with the native copySum cuts exactly what it does in JavaScript',
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
          });
          const cut = (copySum?: CopySumFn) => {
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
              io.copyBytes,
              copySum,
            );
            return [n, dst.toString('hex')];
          };
          const [n1, a] = cut(io.copySum);
          const [n2, b] = cut();
          return n1 === n2 && a === b;
        },
      ),
      { numRuns: 200 },
    );
    t.pass(
      '200 super-frames, IPv4 and IPv6, options, odd payloads: the same segments, byte for byte',
    );
  },
);
