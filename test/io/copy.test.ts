// The addon's copyBytes (what segmentation and coalescing copy with in `vtep run`), against the
// JavaScript copy it replaces: the same bytes, overlapping ranges included, and ranges outside
// an array refused.
import fc from 'fast-check';
import t from 'tap';
import { native } from '../../src/io/native.js';
import { jsCopy } from '../../src/wire/gso.js';

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
