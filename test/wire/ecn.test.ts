import fc from 'fast-check';
import t from 'tap';
import { checksum } from '../../src/wire/checksum.js';
import {
  Ecn,
  EcnVerdict,
  decapEcn,
  decapVerdict,
  dontFragment,
  encapEcn,
  flowLabel,
  hopLimit,
  innerIp,
  ipOffset,
  ipVersion,
  setEcn,
  trafficClass,
} from '../../src/wire/ecn.js';

const NAMES = ['Not-ECT', 'ECT(1)', 'ECT(0)', 'CE'];
const CODE: Record<string, number> = { 'Not-ECT': 0, 'ECT(1)': 1, 'ECT(0)': 2, CE: 3 };

t.test('decapsulation is RFC 6040 Figure 4, cell by cell', async (t) => {
  // The figure as the RFC prints it: rows = arriving inner, columns = arriving outer
  // (Not-ECT, ECT(0), ECT(1), CE); "!" marks (!) and (!!!).
  const figure: Record<string, string[]> = {
    'Not-ECT': ['Not-ECT', 'Not-ECT!', 'Not-ECT!', 'drop!'],
    'ECT(0)': ['ECT(0)', 'ECT(0)', 'ECT(1)', 'CE'],
    'ECT(1)': ['ECT(1)', 'ECT(1)!', 'ECT(1)', 'CE'],
    CE: ['CE', 'CE', 'CE!', 'CE'],
  };
  const outers = ['Not-ECT', 'ECT(0)', 'ECT(1)', 'CE'];
  for (const [inner, row] of Object.entries(figure)) {
    row.forEach((cell, k) => {
      const outer = CODE[outers[k]];
      const want = cell.replace('!', '');
      const verdict = decapVerdict(outer, CODE[inner]);
      if (want === 'drop') t.equal(verdict, EcnVerdict.DROP, `${inner} under ${outers[k]}: drop`);
      else {
        t.equal(NAMES[decapEcn(outer, CODE[inner])], want, `${inner} under ${outers[k]} → ${want}`);
        t.equal(
          verdict,
          cell.endsWith('!') ? EcnVerdict.UNEXPECTED : EcnVerdict.FORWARD,
          cell.endsWith('!') ? 'flagged' : 'plain',
        );
      }
    });
  }
});

t.test('encapsulation copies the inner ECN field, CE as ECT(0) (RFC 6040 §4.1)', async (t) => {
  t.equal(encapEcn(Ecn.NOT_ECT), Ecn.NOT_ECT);
  t.equal(encapEcn(Ecn.ECT0), Ecn.ECT0);
  t.equal(encapEcn(Ecn.ECT1), Ecn.ECT1);
  t.equal(encapEcn(Ecn.CE), Ecn.ECT0);
  t.equal(encapEcn(0xb8 | Ecn.CE), Ecn.ECT0, 'only the ECN bits are looked at');
});

/** An Ethernet frame with an IPv4 header (valid checksum) of the given TOS/TTL/flags. */
function ipv4Frame(tos: number, ttl: number, df: boolean, vlan = false): Buffer {
  const l3 = vlan ? 18 : 14;
  const f = Buffer.alloc(l3 + 28, 0x5a);
  if (vlan) {
    f.writeUInt16BE(0x8100, 12);
    f.writeUInt16BE(7, 14);
  }
  f.writeUInt16BE(0x0800, l3 - 2);
  f[l3] = 0x45;
  f[l3 + 1] = tos;
  f.writeUInt16BE(28, l3 + 2);
  f.writeUInt16BE(0x1234, l3 + 4);
  f.writeUInt16BE(df ? 0x4000 : 0, l3 + 6);
  f[l3 + 8] = ttl;
  f[l3 + 9] = 17;
  f.writeUInt16BE(0, l3 + 10);
  f.writeUInt32BE(0x0a000001, l3 + 12);
  f.writeUInt32BE(0x0a000002, l3 + 16);
  f.writeUInt16BE(checksum(f, l3, 20), l3 + 10);
  return f;
}

function ipv6Frame(tc: number, hop: number, label: number): Buffer {
  const f = Buffer.alloc(14 + 48, 0x5a);
  f.writeUInt16BE(0x86dd, 12);
  f.writeUInt32BE(((6 << 28) | (tc << 20) | label) >>> 0, 14);
  f.writeUInt16BE(8, 18);
  f[20] = 17;
  f[21] = hop;
  return f;
}

t.test('the inner header as an encapsulator reads it', async (t) => {
  const v4 = ipv4Frame(0x2b, 17, true);
  const ip = innerIp(v4, 0, v4.length);
  t.equal(ipVersion(ip), 4);
  t.equal(ipOffset(ip), 14);
  t.equal(trafficClass(v4, ip), 0x2b);
  t.equal(hopLimit(v4, ip), 17);
  t.equal(dontFragment(v4, ip), true);
  t.equal(flowLabel(v4, ip), 0, 'IPv4 has no flow label');
  t.equal(dontFragment(ipv4Frame(0, 1, false), ip), false);
  const tagged = ipv4Frame(0x10, 3, false, true);
  t.equal(ipOffset(innerIp(tagged, 0, tagged.length)), 18, 'behind an 802.1Q tag');
  const v6 = ipv6Frame(0xb9, 33, 0xabcde);
  const ip6 = innerIp(v6, 0, v6.length);
  t.equal(ipVersion(ip6), 6);
  t.equal(trafficClass(v6, ip6), 0xb9);
  t.equal(hopLimit(v6, ip6), 33);
  t.equal(flowLabel(v6, ip6), 0xabcde);
  t.equal(dontFragment(v6, ip6), true, 'IPv6 is never fragmented on the way');
  const arp = Buffer.alloc(60);
  arp.writeUInt16BE(0x0806, 12);
  t.equal(innerIp(arp, 0, 60), -1, 'not IP');
  t.equal(innerIp(v4, 0, 30), -1, 'too short for the header');
  const wrongVersion = Buffer.from(v4);
  wrongVersion[14] = 0x65;
  t.equal(innerIp(wrongVersion, 0, wrongVersion.length), -1, 'ethertype IPv4, version 6');
  t.equal(innerIp(v4, 0, 33), -1, 'one byte short of an IPv4 header');
});

t.test('setEcn changes the two ECN bits only, and the IPv4 checksum still verifies', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 0xffff }),
      (tos, ttl, df, ecn, ident) => {
        const f = ipv4Frame(tos, ttl, df);
        f.writeUInt16BE(ident, 18);
        f.writeUInt16BE(0, 24);
        f.writeUInt16BE(checksum(f, 14, 20), 24);
        const before = Buffer.from(f);
        const ip = innerIp(f, 0, f.length);
        setEcn(f, ip, ecn);
        if (checksum(f, 14, 20) !== 0) return false;
        if (f[15] !== ((tos & 0xfc) | ecn)) return false;
        for (let i = 0; i < f.length; i++)
          if (i !== 15 && i !== 24 && i !== 25 && f[i] !== before[i]) return false;
        return true;
      },
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 0xfffff }),
      fc.integer({ min: 0, max: 3 }),
      (tc, label, ecn) => {
        const f = ipv6Frame(tc, 64, label);
        const ip = innerIp(f, 0, f.length);
        setEcn(f, ip, ecn);
        return trafficClass(f, ip) === ((tc & 0xfc) | ecn) && flowLabel(f, ip) === label;
      },
    ),
  );
});
