import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import {
  ADDR_LEN,
  addrFamily,
  addrIpv4,
  addrKey4,
  addrPort,
  addrToString,
  addrTruncated,
  copyAddr,
  ipv6Bytes,
  writeAddr,
} from '../../src/io/addr.js';

t.test('IPv4 slots', async (t) => {
  const a = new Uint8Array(ADDR_LEN * 2);
  writeAddr(a, 1, '192.0.2.77', 4789);
  t.equal(addrFamily(a, 1), 4);
  t.equal(addrPort(a, 1), 4789);
  t.equal(addrIpv4(a, 1), 0xc000024d);
  t.equal(addrKey4(a, 1), 0xc000024d * 65536 + 4789);
  t.equal(addrToString(a, 1), '192.0.2.77');
  t.equal(addrTruncated(a, 1), false);
  a[ADDR_LEN + 1] = 1;
  t.equal(addrTruncated(a, 1), true);
  copyAddr(a, 1, a, 0);
  t.equal(addrToString(a, 0), '192.0.2.77');
  t.throws(() => writeAddr(a, 0, 'vtep.example', 1), { code: 'ERR_ADDRESS' });
});

t.test('IPv6 slots: text → bytes → canonical text (RFC 5952)', async (t) => {
  const a = new Uint8Array(ADDR_LEN);
  const cases: [string, string][] = [
    ['2001:db8::1', '2001:db8::1'],
    ['::1', '::1'],
    ['::', '::'],
    ['fe80::1%eth0', 'fe80::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['2001:DB8::', '2001:db8::'],
  ];
  for (const [input, canonical] of cases) {
    writeAddr(a, 0, input, 1);
    t.equal(addrFamily(a, 0), 6);
    t.equal(addrToString(a, 0), canonical, input);
    t.equal(addrIpv4(a, 0), 0);
    t.equal(addrKey4(a, 0), -1);
  }
  fc.assert(
    // words biased towards zero so that "::" runs of every length and position come up
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
        minLength: 8,
        maxLength: 8,
      }),
      (words) => {
        const bytes = new Uint8Array(16);
        words.forEach((w, i) => ((bytes[2 * i] = w >>> 8), (bytes[2 * i + 1] = w & 0xff)));
        a[0] = 6;
        a.set(bytes, 4);
        const text = addrToString(a, 0);
        return isIPv6(text) && Buffer.from(ipv6Bytes(text)).equals(Buffer.from(bytes));
      },
    ),
    { numRuns: 2000 },
  );
});
