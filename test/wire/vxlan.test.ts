import fc from 'fast-check';
import t from 'tap';
import { Drop } from '../../src/wire/drop.js';
import {
  FLAG_I,
  HEADER_LEN,
  MAX_VNI,
  VxlanHeader,
  decapsulate,
  decapsulateInto,
  encapsulate,
  isValidVni,
  type DecapResult,
  type ReservedBitsPolicy,
} from '../../src/wire/vxlan.js';

const vni = fc.integer({ min: 0, max: MAX_VNI });
const frame = fc.uint8Array({ minLength: 14, maxLength: 1600 });
const headroom = fc.integer({ min: HEADER_LEN, max: 128 });

/** Put `bytes` at `offset` in a larger buffer, with random tailroom, as a TAP read would. */
function placed(bytes: Uint8Array, offset: number, tail = 16): Buffer {
  const buf = Buffer.alloc(offset + bytes.length + tail, 0xa5);
  buf.set(bytes, offset);
  return buf;
}

function validHeader(v: number): Buffer {
  const buf = placed(new Uint8Array(14), 8, 0);
  return encapsulate(buf, 8, 14, v);
}

t.test(
  'decapsulate(encapsulate(f, vni)) gives back vni and the same bytes, zero-copy',
  async (t) => {
    fc.assert(
      fc.property(frame, vni, headroom, (f, v, room) => {
        const buf = placed(f, room);
        const datagram = encapsulate(buf, room, f.length, v);
        if (datagram.buffer !== buf.buffer) return false;
        for (const policy of ['drop', 'ignore'] as const) {
          const d = decapsulate(datagram, policy);
          if (typeof d === 'number') return false;
          if (d.vni !== v) return false;
          if (!d.frame.equals(f)) return false;
          // zero-copy: the inner frame is the very bytes we placed, not a copy
          if (d.frame.buffer !== buf.buffer || d.frame.byteOffset !== buf.byteOffset + room) {
            return false;
          }
        }
        return true;
      }),
      { numRuns: 2000 },
    );
    t.pass('property held for 2000 frames');
  },
);

t.test(
  'decapsulateInto at an offset in a larger buffer reports offsets into that buffer',
  async (t) => {
    fc.assert(
      fc.property(frame, vni, fc.integer({ min: 0, max: 200 }), (f, v, lead) => {
        const buf = placed(f, lead + HEADER_LEN);
        encapsulate(buf, lead + HEADER_LEN, f.length, v);
        const out: DecapResult = { vni: -1, offset: -1, length: -1 };
        const drop = decapsulateInto(buf, lead, HEADER_LEN + f.length, 'drop', out);
        return (
          drop === Drop.NONE &&
          out.vni === v &&
          out.offset === lead + HEADER_LEN &&
          out.length === f.length
        );
      }),
    );
    t.pass();
  },
);

t.test('arbitrary bytes never throw: a valid result or a drop reason', async (t) => {
  const reasons = new Set<number>([
    Drop.VXLAN_TRUNCATED,
    Drop.VXLAN_NO_I_FLAG,
    Drop.VXLAN_RESERVED_FLAGS,
    Drop.VXLAN_RESERVED_FIELD,
    Drop.INNER_TRUNCATED,
  ]);
  const seen = new Set<number | string>();
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 2000 }),
      fc.constantFrom<ReservedBitsPolicy>('drop', 'ignore'),
      (bytes, policy) => {
        const d = decapsulate(Buffer.from(bytes), policy);
        if (typeof d === 'number') {
          seen.add(d);
          return reasons.has(d);
        }
        seen.add('ok');
        return (
          bytes.length >= HEADER_LEN + 14 &&
          (bytes[0] & FLAG_I) !== 0 &&
          d.frame.length === bytes.length - HEADER_LEN &&
          d.vni === ((bytes[4] << 16) | (bytes[5] << 8) | bytes[6])
        );
      },
    ),
    { numRuns: 5000 },
  );
  t.ok(
    seen.has(Drop.VXLAN_TRUNCATED) && seen.has(Drop.VXLAN_NO_I_FLAG),
    `outcomes seen: ${[...seen]}`,
  );
});

t.test('truncation: header and inner frame', async (t) => {
  for (let len = 0; len < HEADER_LEN; len++) {
    t.equal(decapsulate(Buffer.alloc(len, FLAG_I)), Drop.VXLAN_TRUNCATED, `${len} bytes`);
  }
  const full = validHeader(7);
  for (let len = HEADER_LEN; len < HEADER_LEN + 14; len++) {
    t.equal(decapsulate(full.subarray(0, len)), Drop.INNER_TRUNCATED, `${len} bytes`);
  }
  t.same(decapsulate(full.subarray(0, HEADER_LEN + 14)), { vni: 7, frame: Buffer.alloc(14) });
});

t.test('the I flag is required under both policies', async (t) => {
  for (const policy of ['drop', 'ignore'] as const) {
    const buf = validHeader(1);
    buf[0] = 0x00;
    t.equal(decapsulate(buf, policy), Drop.VXLAN_NO_I_FLAG, policy);
    buf[0] = 0xf7; // every flag except I
    t.equal(decapsulate(buf, policy), Drop.VXLAN_NO_I_FLAG, `${policy}, other flags set`);
  }
});

t.test('each reserved bit under each policy', async (t) => {
  const cases: { byte: number; bit: number; reason: number }[] = [];
  for (let bit = 0; bit < 8; bit++) {
    if (1 << bit !== FLAG_I) cases.push({ byte: 0, bit, reason: Drop.VXLAN_RESERVED_FLAGS });
  }
  for (const byte of [1, 2, 3, 7]) {
    for (let bit = 0; bit < 8; bit++) cases.push({ byte, bit, reason: Drop.VXLAN_RESERVED_FIELD });
  }
  t.equal(cases.length, 7 + 24 + 8, '7 flag bits, 24 bits after the flags, 8 after the VNI');
  for (const c of cases) {
    const buf = validHeader(0xabcdef);
    buf[c.byte] |= 1 << c.bit;
    t.equal(decapsulate(buf, 'drop'), c.reason, `drop: byte ${c.byte} bit ${c.bit}`);
    const ignored = decapsulate(buf, 'ignore');
    t.same(
      typeof ignored === 'number' ? ignored : ignored.vni,
      0xabcdef,
      `ignore: byte ${c.byte} bit ${c.bit} passes with the VNI intact`,
    );
  }
});

t.test('header view getters and setters', async (t) => {
  const buf = Buffer.alloc(8);
  const h = new VxlanHeader().bind(buf);
  h.flags = FLAG_I;
  h.reserved1 = 0x123456;
  h.vni = 0xfedcba;
  h.reserved2 = 0x77;
  t.same(buf, Buffer.from('08123456fedcba77', 'hex'));
  t.equal(h.reserved1, 0x123456);
  t.equal(h.vni, 0xfedcba);
  t.equal(h.reserved2, 0x77);
  t.equal(h.flags, FLAG_I);
  t.equal(new VxlanHeader().bind(buf, 0, 7).checkLen(), Drop.VXLAN_TRUNCATED);
});

t.test('API misuse throws with a code; packet contents never do', async (t) => {
  const buf = Buffer.alloc(64);
  t.throws(() => encapsulate(buf, 4, 14, 1), { code: 'ERR_VXLAN_NO_HEADROOM' });
  t.throws(() => encapsulate(buf, 8, 100, 1), { code: 'ERR_VXLAN_RANGE' });
  t.throws(() => encapsulate(buf, 8, 14, MAX_VNI + 1), { code: 'ERR_VXLAN_VNI' });
  t.throws(() => encapsulate(buf, 8, 14, -1), { code: 'ERR_VXLAN_VNI' });
  t.throws(() => encapsulate(buf, 8, 14, 1.5), { code: 'ERR_VXLAN_VNI' });
  t.ok(isValidVni(0) && isValidVni(MAX_VNI));
  t.notOk(isValidVni(NaN));
});
