// The outer header vtep asks for (TTL, TOS, DF, flow label, UDP checksum) and ECN through the
// tunnel (RFC 6040), through the engine over the fakes: what each datagram asks of the socket is
// in the fake network's log, the outer TOS a datagram arrives with is the fake socket's.
import fc from 'fast-check';
import t from 'tap';
import { Engine } from '../../src/engine/engine.js';
import type { OuterPolicy } from '../../src/engine/outer.js';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { FakeNetwork, FakeTap } from '../../src/io/testdevices.js';
import { OuterFlag } from '../../src/io/types.js';
import { checksum } from '../../src/wire/checksum.js';
import { Ecn, decapEcn, decapVerdict, EcnVerdict } from '../../src/wire/ecn.js';
import { VNET_HDR_LEN, segment, writeVnetHdr } from '../../src/wire/gso.js';
import { superFrame } from '../../src/wire/testframes.js';
import { FakeGso, LOCAL, PEER_A, harness, settle, vxlan } from './harness.js';

const VM_B = 0x525400000002; // behind our TAP
const VM_A = 0x525400000001; // behind PEER_A
const BCAST = 0xffffffffffff;

interface Inner {
  kind: 'v4' | 'v6' | 'v4vlan' | 'arp';
  tc: number;
  hop: number;
  df: boolean;
  label: number;
}

/** An Ethernet frame from VM_B (or VM_A) with the inner header described. */
function innerFrame(x: Inner, dst = BCAST, src = VM_B): Buffer {
  const l3 = x.kind === 'v4vlan' ? 18 : 14;
  const f = Buffer.alloc(l3 + (x.kind === 'v6' ? 48 : 28) + 32, 0x33);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  if (x.kind === 'v4vlan') {
    f.writeUInt16BE(0x8100, 12);
    f.writeUInt16BE(9, 14);
  }
  if (x.kind === 'arp') {
    f.writeUInt16BE(0x0806, 12);
    return f;
  }
  if (x.kind === 'v6') {
    f.writeUInt16BE(0x86dd, 12);
    f.writeUInt32BE(((6 << 28) | (x.tc << 20) | x.label) >>> 0, 14);
    f.writeUInt16BE(f.length - 54, 18);
    f[20] = 17;
    f[21] = x.hop;
    return f;
  }
  f.writeUInt16BE(0x0800, l3 - 2);
  f[l3] = 0x45;
  f[l3 + 1] = x.tc;
  f.writeUInt16BE(f.length - l3, l3 + 2);
  f.writeUInt16BE(x.df ? 0x4000 : 0, l3 + 6);
  f[l3 + 8] = x.hop;
  f[l3 + 9] = 17;
  f.writeUInt32BE(0x0a000001, l3 + 12);
  f.writeUInt32BE(0x0a000002, l3 + 16);
  f.writeUInt16BE(0, l3 + 10);
  f.writeUInt16BE(checksum(f, l3, 20), l3 + 10);
  return f;
}

/** What Linux VXLAN (and RFC 6040) would write for this frame: the reference model. */
function model(p: OuterPolicy, x: Inner) {
  const ip = x.kind !== 'arp';
  const tc = ip ? x.tc : 0;
  const ecn = (tc & 3) === 3 ? 2 : tc & 3;
  const dscp = p.tos === 'inherit' ? tc & 0xfc : (p.tos ?? 0);
  const ttl = p.ttl === 'inherit' ? (ip ? x.hop : 0) : (p.ttl ?? 0);
  const df = p.df === 'unset' ? false : p.df === 'inherit' ? x.kind === 'v6' || (ip && x.df) : true;
  const label = p.flowLabel === 'inherit' ? (x.kind === 'v6' ? x.label : 0) : (p.flowLabel ?? 0);
  return { tos: dscp | ecn, ttl, df, csum: p.udpCsum !== false, label };
}

function asked(word: number, label: number) {
  return {
    tos: word & 0xff,
    ttl: (word >>> 8) & 0xff,
    df: (word & OuterFlag.NO_DF) === 0,
    csum: (word & OuterFlag.NO_CSUM) === 0,
    label,
  };
}

const innerArb: fc.Arbitrary<Inner> = fc.record({
  kind: fc.constantFrom('v4' as const, 'v6' as const, 'v4vlan' as const, 'arp' as const),
  tc: fc.integer({ min: 0, max: 255 }),
  hop: fc.integer({ min: 1, max: 255 }),
  df: fc.boolean(),
  label: fc.integer({ min: 0, max: 0xfffff }),
});

const policyArb: fc.Arbitrary<OuterPolicy> = fc.record(
  {
    ttl: fc.oneof(fc.integer({ min: 1, max: 255 }), fc.constant('inherit' as const)),
    tos: fc.oneof(
      fc.integer({ min: 0, max: 63 }).map((d) => d << 2),
      fc.constant('inherit' as const),
    ),
    df: fc.constantFrom('set' as const, 'unset' as const, 'inherit' as const),
    flowLabel: fc.oneof(fc.integer({ min: 0, max: 0xfffff }), fc.constant('inherit' as const)),
    udpCsum: fc.boolean(),
  },
  { requiredKeys: [] },
);

t.test('encap: every datagram asks for the outer header the reference model gives', async (t) => {
  const h = harness([{ vni: 10 }]);
  await fc.assert(
    fc.asyncProperty(policyArb, innerArb, async (p, x) => {
      h.engine.updateVni(10, { outer: p });
      h.net.log.length = 0;
      h.taps.get(10)!.inject(innerFrame(x));
      await settle();
      const want = model(p, x);
      // a flood: both remotes, the same header
      return (
        h.net.log.length === 2 &&
        h.net.log.every((d) => JSON.stringify(asked(d.word, d.label)) === JSON.stringify(want))
      );
    }),
    { numRuns: 300 },
  );
  t.pass('300 policies × frames');
  h.engine.updateVni(10, { outer: {} });
  h.net.log.length = 0;
  h.taps.get(10)!.inject(innerFrame({ kind: 'v4', tc: 0, hop: 64, df: true, label: 0 }));
  await settle();
  t.same(
    h.net.log.map((d) => [d.word, d.label]),
    [
      [0, 0],
      [0, 0],
    ],
    'the defaults ask for nothing: no ancillary data, no socket mode switched',
  );
});

t.test('encap: DF not set means no path-MTU answer (the kernel fragments)', async (t) => {
  const h = harness([{ vni: 10, mtu: 9000 }], { underlayMtu: 1500 });
  const big = (df: boolean) => {
    const f = innerFrame({ kind: 'v4', tc: 0, hop: 64, df, label: 0 }, BCAST);
    const g = Buffer.alloc(2000, 0x33);
    f.copy(g, 0, 0, 34);
    g.writeUInt16BE(2000 - 14, 16);
    g.writeUInt16BE(0, 24);
    g.writeUInt16BE(checksum(g, 14, 20), 24);
    return g;
  };
  h.taps.get(10)!.inject(big(true));
  await settle();
  t.equal(h.engine.stats().drops.path_mtu_exceeded, 1, 'df set: too big, answered with ICMP');
  h.engine.updateVni(10, { outer: { df: 'inherit' } });
  h.taps.get(10)!.inject(big(false));
  h.taps.get(10)!.inject(big(true));
  await settle();
  t.equal(
    h.net.log.length,
    2,
    'inner DF clear: sent (to both remotes), for the kernel to fragment',
  );
  t.ok(h.net.log.every((d) => (d.word & OuterFlag.NO_DF) !== 0));
  t.equal(h.engine.stats().drops.path_mtu_exceeded, 2, 'inner DF set: inherited, answered');
});

t.test('decap: the inner ECN field after RFC 6040, for IPv4 and IPv6', async (t) => {
  const h = harness([{ vni: 10 }]);
  const tap = h.taps.get(10)!;
  let drops = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('v4' as const, 'v6' as const, 'v4vlan' as const),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      async (kind, tc, outer) => {
        tap.written.length = 0;
        const f = innerFrame({ kind, tc, hop: 9, df: true, label: 0x12345 }, VM_B, VM_A);
        h.underlay.receive(vxlan(10, f), h.peerA, outer);
        await settle();
        if (decapVerdict(outer, tc) === EcnVerdict.DROP) {
          drops++;
          return tap.written.length === 0 && h.engine.stats().drops.ecn_ce_not_ect === drops;
        }
        const got = tap.written[0];
        const l3 = kind === 'v4vlan' ? 18 : 14;
        const want = (tc & 0xfc) | decapEcn(outer, tc);
        if (kind === 'v6') {
          const word = got.readUInt32BE(14);
          return ((word >>> 20) & 0xff) === want && (word & 0xfffff) === 0x12345;
        }
        return got[l3 + 1] === want && checksum(got, l3, 20) === 0;
      },
    ),
    { numRuns: 400 },
  );
  t.ok(drops > 0, `outer CE over Not-ECT dropped (${drops} times), counted as ecn_ce_not_ect`);
  const s = h.engine.stats();
  t.ok(s.ecn.marked > 0 && s.ecn.unexpected > 0, 'marks and unexpected combinations counted');
  tap.written.length = 0;
  const arp = innerFrame({ kind: 'arp', tc: 0, hop: 0, df: false, label: 0 }, VM_B, VM_A);
  h.underlay.receive(vxlan(10, arp), h.peerA, Ecn.CE);
  await settle();
  t.same(tap.written[0], arp, 'a frame that is not IP passes as it is under any outer ECN');
});

t.test('encap then decap: the RFC 6040 result, whatever the path marks', async (t) => {
  const h = harness([{ vni: 10 }]);
  const tap = h.taps.get(10)!;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('v4' as const, 'v6' as const),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
      async (kind, tc, congested) => {
        h.net.log.length = 0;
        tap.written.length = 0;
        // out through the tunnel...
        h.taps.get(10)!.inject(innerFrame({ kind, tc, hop: 9, df: true, label: 7 }, VM_A, VM_B));
        await settle();
        const sent = h.net.log.find((d) => d.to === `${PEER_A}:4789`);
        if (sent === undefined) return false;
        // ...a router on the way marks congestion on ECN-capable packets only (RFC 3168)...
        let outer = sent.word & 0xff;
        if (congested && (outer & 3) !== 0) outer |= 3;
        // ...and back in, as if the peer had turned it around
        const back = Buffer.from(sent.bytes);
        back.writeUIntBE(VM_B, 8, 6);
        back.writeUIntBE(VM_A, 14, 6);
        h.underlay.receive(back, h.peerA, outer);
        await settle();
        const got = tap.written[0];
        if (got === undefined) return false; // never dropped: Not-ECT is never marked
        const field = kind === 'v4' ? got[15] : (got.readUInt32BE(14) >>> 20) & 0xff;
        const expected = congested && (tc & 3) !== 0 ? Ecn.CE : tc & 3;
        return (field & 3) === expected && (kind === 'v6' || checksum(got, 14, 20) === 0);
      },
    ),
    { numRuns: 300 },
  );
  t.pass('ECN survives the tunnel; congestion on the path reaches the inner packet');
});

function tso(tc: number) {
  const payload = Uint8Array.from({ length: 1000 * 12 }, (_, i) => (i * 3) & 0xff);
  const sf = superFrame({
    v: 4,
    vlan: false,
    ipOptions: 0,
    tcpOptions: 0,
    payload,
    mss: 1000,
    seq: 1,
    flags: 0x18,
    id: 1,
  });
  sf.frame[15] = tc;
  sf.frame.writeUInt16BE(0, 24);
  sf.frame.writeUInt16BE(checksum(sf.frame, 14, 20), 24);
  sf.frame.writeUIntBE(VM_A, 0, 6);
  sf.frame.writeUIntBE(VM_B, 6, 6);
  return sf;
}

/**
 * An engine with an offloading TAP on VNI 5 and VM_A learned behind PEER_A (with or without UDP
 * GSO senders), after one TCP super-frame from the TAP with IP TOS `tos`: what left.
 */
async function cutOne(
  outer: Parameters<Engine['addVni']>[0]['outer'],
  gsoOn: boolean,
  tos: number,
) {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789);
  net.bind(PEER_A, 4789);
  const remotes = new Remotes();
  const fdb = new Fdb();
  const gso = gsoOn ? new FakeGso(underlay) : undefined;
  const engine = new Engine({ underlay, fdb, gso });
  const tap = new FakeTap('t0', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
  engine.addVni({ vni: 5, tap, remotes: [remotes.get(PEER_A)], mtu: 1500, outer });
  tap.start(
    (n) => engine.tapReceived(5, n, 0),
    () => {},
  );
  fdb.learn(5, VM_A, remotes.get(PEER_A), 0);
  const sf = tso(tos);
  const meta = Buffer.alloc(VNET_HDR_LEN);
  writeVnetHdr(meta, 0, sf.hdr);
  tap.inject(sf.frame, meta);
  await settle();
  return { net, gso, engine };
}

t.test('a TCP super-frame: UDP GSO and the per-segment path ask for one header', async (t) => {
  for (const gsoOn of [true, false]) {
    const outer = { ttl: 'inherit', tos: 'inherit', df: 'inherit', flowLabel: 99 } as const;
    const { net, gso } = await cutOne(outer, gsoOn, 0xb8 | Ecn.CE);
    t.equal(net.log.length, 12, `${gsoOn ? 'gso' : 'per segment'}: 12 datagrams`);
    const words = new Set(net.log.map((d) => `${d.word}/${d.label}`));
    t.same(
      [...words],
      [`${0xba | (64 << 8)}/99`],
      'every one: DSCP inherited, CE sent as ECT(0), TTL inherited, DF kept, the fixed label',
    );
    if (gso) t.equal(gso.calls.length, 1, 'in one GSO send');
  }
});

t.test('udpCsum false: a super-frame goes segment by segment, never by UDP GSO', async (t) => {
  // the kernel refuses UDP GSO from a socket sending zero checksums (EINVAL)
  const { net, gso, engine } = await cutOne({ udpCsum: false }, true, 0);
  t.equal(gso!.calls.length, 0, 'no GSO send');
  t.equal(net.log.length, 12, '12 datagrams');
  t.ok(
    net.log.every((d) => (d.word & OuterFlag.NO_CSUM) !== 0),
    'each asking for the zero checksum',
  );
  t.equal(engine.stats().drops.underlay_send_failed ?? 0, 0);
});

t.test('decap into an offloading TAP: CE-marked segments are not merged with others', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789);
  const peer = net.bind(PEER_A, 4789);
  const tap = new FakeTap('gro0', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
  const remotes = new Remotes();
  const engine = new Engine({ underlay, fdb: new Fdb() });
  engine.addVni({ vni: 5, tap, remotes: [remotes.get(PEER_A)], mtu: 1500 });
  underlay.start(
    (n) => engine.underlayReceived(n, 0),
    () => {},
  );
  const sf = tso(Ecn.ECT0);
  sf.frame.writeUIntBE(VM_B, 0, 6);
  sf.frame.writeUIntBE(VM_A, 6, 6);
  const segs = Buffer.alloc(1 << 20);
  const out = { offsets: new Uint32Array(64), lengths: new Uint32Array(64) };
  const n = segment(sf.frame, 0, sf.frame.length, sf.hdr, segs, 0, segs.length, 0, out);
  const marked = [2, 3, 7];
  for (let k = 0; k < n; k++) {
    const seg = segs.subarray(out.offsets[k], out.offsets[k] + out.lengths[k]);
    underlay.receive(vxlan(5, Buffer.from(seg)), peer, marked.includes(k) ? Ecn.CE : Ecn.ECT0);
  }
  await settle();
  const frames = tap.written.map((f) => ({ ecn: f[15] & 3, payload: f.length - sf.hdr.hdrLen }));
  t.same(
    frames,
    [
      { ecn: Ecn.ECT0, payload: 2000 },
      { ecn: Ecn.CE, payload: 2000 },
      { ecn: Ecn.ECT0, payload: 3000 },
      { ecn: Ecn.CE, payload: 1000 },
      { ecn: Ecn.ECT0, payload: 4000 },
    ],
    'runs split where the mark changes, as the kernel GRO splits on a TOS change',
  );
  t.ok(
    tap.written.every((f) => checksum(f, 14, 20) === 0),
    'every IPv4 header verifies',
  );
  t.equal(engine.stats().ecn.marked, 3);
});

t.test('IPv6 underlay: without a label to give, one per inner flow from its hash', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind('2001:db8::2', 4789);
  net.bind('2001:db8::1', 4789);
  const remotes = new Remotes();
  const engine = new Engine({ underlay, fdb: new Fdb() });
  const tap = new FakeTap('l0');
  engine.addVni({ vni: 5, tap, remotes: [remotes.get('2001:db8::1')], mtu: 1500 });
  tap.start(
    (n) => engine.tapReceived(5, n, 0),
    () => {},
  );
  const flow = (port: number, label = 0) => {
    const f = innerFrame({ kind: 'v6', tc: 0, hop: 9, df: true, label });
    f.writeUInt16BE(port, 56);
    return f;
  };
  for (const p of [1, 2, 3, 1]) tap.inject(flow(p));
  await settle();
  const labels = net.log.map((d) => d.label);
  t.ok(
    labels.every((l) => l > 0 && l <= 0xfffff),
    'never 0 (that would ask the kernel)',
  );
  t.equal(labels[0], labels[3], 'one flow, one label');
  t.equal(new Set(labels).size, 3, 'three flows, three labels');
  net.log.length = 0;
  engine.updateVni(5, { outer: { flowLabel: 'inherit' } });
  tap.inject(flow(1, 0xabcde));
  tap.inject(flow(1, 0));
  await settle();
  t.equal(net.log[0].label, 0xabcde, 'inherit: the inner label');
  t.equal(net.log[1].label, labels[0], 'inherit, inner label 0: the flow hash again');
});
