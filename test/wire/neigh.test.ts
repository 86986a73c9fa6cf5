// ARP and Neighbor Discovery codecs (src/wire/arp.ts, nd.ts): what is parsed, what is refused.
import fc from 'fast-check';
import t from 'tap';
import { ipv6Bytes } from '../../src/io/addr.js';
import { parseArp, type Arp } from '../../src/wire/arp.js';
import { EthernetFrame } from '../../src/wire/ethernet.js';
import { emitNa, parseNd } from '../../src/wire/nd.js';

const eth = new EthernetFrame();
const arpOut: Arp = { op: 0, senderMac: 0, senderIp: 0, targetMac: 0, targetIp: 0 };

function nd(o: { type?: number; hop?: number; opt?: number[]; next?: number }): Buffer {
  const opt = Buffer.from(o.opt ?? [1, 1, 2, 0, 0, 0, 0, 7]);
  const f = Buffer.alloc(14 + 40 + 24 + opt.length);
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f.writeUInt16BE(24 + opt.length, 18);
  f[20] = o.next ?? 58;
  f[21] = o.hop ?? 255;
  f.set(ipv6Bytes('fd00::2'), 22);
  f[54] = o.type ?? 135;
  f.set(ipv6Bytes('fd00::1'), 62);
  opt.copy(f, 78);
  return f;
}

t.test('ARP: only Ethernet/IPv4 ARP of full length parses', async (t) => {
  const ok = Buffer.from(
    'ffffffffffff0200000000020806' +
      '0001080006040001' +
      '020000000002c0000202' +
      '000000000000c0000201',
    'hex',
  );
  t.match(parseArp(eth.bind(ok), arpOut), { op: 1, senderIp: 0xc0000202, targetIp: 0xc0000201 });
  t.equal(parseArp(eth.bind(ok.subarray(0, 41)), arpOut), undefined, 'short');
  const other = Buffer.from(ok);
  other.writeUInt16BE(6, 14); // another hardware type
  t.equal(parseArp(eth.bind(other), arpOut), undefined);
  const plen = Buffer.from(ok);
  plen[19] = 16;
  t.equal(parseArp(eth.bind(plen), arpOut), undefined, 'not IPv4-sized addresses');
  const ip = Buffer.from(ok);
  ip.writeUInt16BE(0x0800, 12);
  t.equal(parseArp(eth.bind(ip), arpOut), undefined, 'not ARP at all');
});

t.test('ND: solicitations and advertisements only, hop limit 255, sane options', async (t) => {
  t.match(parseNd(eth.bind(nd({}))), { type: 'ns', mac: 0x020000000007 });
  t.match(parseNd(eth.bind(nd({ type: 136, opt: [2, 1, 2, 0, 0, 0, 0, 9] }))), {
    type: 'na',
    mac: 0x020000000009,
  });
  t.match(parseNd(eth.bind(nd({ opt: [] }))), { mac: 0 }, 'no option: no MAC');
  t.equal(parseNd(eth.bind(nd({ hop: 64 }))), undefined, 'crossed a router');
  t.equal(parseNd(eth.bind(nd({ type: 128 }))), undefined, 'an echo request');
  t.equal(parseNd(eth.bind(nd({ next: 6 }))), undefined, 'not ICMPv6');
  t.equal(
    parseNd(eth.bind(nd({ opt: [1, 0, 0, 0, 0, 0, 0, 0] }))),
    undefined,
    'zero-length option',
  );
  t.equal(parseNd(eth.bind(nd({}).subarray(0, 70))), undefined, 'cut short');
  // A tagged solicitation gets a tagged advertisement, priority bits and all.
  const plain = nd({});
  const tagged = Buffer.concat([
    plain.subarray(0, 12),
    Buffer.from('8100a064', 'hex'),
    plain.subarray(12),
  ]);
  tagged.fill(0xbb, 6, 12); // the asker's MAC
  const ns = parseNd(eth.bind(tagged))!;
  const out = Buffer.alloc(100, 0xa5);
  const n = emitNa(tagged, 0, ns, 0x020000000001, out, 0);
  t.equal(n, 4 + 14 + 40 + 32);
  t.equal(out.subarray(0, 6).toString('hex'), 'bbbbbbbbbbbb', 'to the asker');
  t.equal(out.readUInt32BE(12), 0x8100a064, 'tagged like the solicitation, priority kept');
  t.match(
    parseNd(eth.bind(out.subarray(0, n))),
    { type: 'na', mac: 0x020000000001 },
    'parses back',
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      const f = Buffer.from(b);
      eth.bind(f);
      parseNd(eth);
      parseArp(eth, arpOut);
      return true;
    }),
  );
});
