import fc from 'fast-check';
import t from 'tap';
import { addrPort, addrToString } from '../../src/io/addr.js';
import { Engine } from '../../src/engine/engine.js';
import { flowHash } from '../../src/engine/flowhash.js';
import { Drop } from '../../src/wire/drop.js';
import { formatMac, readMac } from '../../src/wire/mac.js';
import { ipv6PseudoSum } from '../../src/wire/checksum.js';
import { decapsulate } from '../../src/wire/vxlan.js';
import { FakeNetwork, FakeTap } from '../../src/io/testdevices.js';
import { TxStatus } from '../../src/io/types.js';
import {
  VNET_HDR_LEN,
  emptyVnetHdr,
  readVnetHdr,
  segment,
  writeVnetHdr,
} from '../../src/wire/gso.js';
import { superFrame } from '../../src/wire/testframes.js';
import { checksum } from '../../src/wire/checksum.js';
import { addrToString as slotText } from '../../src/io/addr.js';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import {
  LOCAL,
  PEER_A,
  PEER_C,
  FakeGso,
  arpFrame,
  ndFrame,
  RecordingSender,
  collect,
  frame,
  harness,
  settle,
  vxlan,
} from './harness.js';

const VM_B = 0x525400000002; // behind our TAP
const VM_A = 0x525400000001; // behind PEER_A
const VM_C = 0x525400000003; // behind PEER_C
const BCAST = 0xffffffffffff;

t.test('broadcast from the TAP is flooded to every remote, encapsulated', async (t) => {
  const h = harness([{ vni: 5000 }]);
  const f = frame(BCAST, VM_B, 64);
  h.taps.get(5000)!.inject(f);
  await settle();
  for (const peer of [PEER_A, PEER_C]) {
    const got = h.inbox.get(peer)!;
    t.equal(got.length, 1, `one copy to ${peer}`);
    const d = decapsulate(got[0]);
    t.same(typeof d === 'number' ? d : { vni: d.vni, frame: d.frame.toString('hex') }, {
      vni: 5000,
      frame: f.toString('hex'),
    });
  }
  t.equal(h.inbox.get('192.0.2.99')!.length, 0, 'nothing to a stranger');
  t.same(h.engine.stats().vnis[0].tx, { packets: 2, bytes: 128 }, 'each copy counted');
});

t.test('learn from the underlay, deliver to the TAP, then unicast back', async (t) => {
  const h = harness([{ vni: 5000 }]);
  const fromA = frame(VM_B, VM_A, 98);
  h.underlay.receive(vxlan(5000, fromA), h.peerA);
  await settle();
  const tap = h.taps.get(5000)!;
  t.same(
    tap.written.map((b) => b.toString('hex')),
    [fromA.toString('hex')],
    'inner frame delivered',
  );
  t.equal(h.fdb.lookup(5000, VM_A, 0)?.key, '192.0.2.1:4789', 'VM_A learned behind PEER_A');
  tap.inject(frame(VM_A, VM_B, 70));
  await settle();
  t.equal(h.inbox.get(PEER_A)!.length, 1, 'unicast to PEER_A');
  t.equal(h.inbox.get(PEER_C)!.length, 0, 'not flooded');
  const s = h.engine.stats();
  t.same(s.vnis[0].rx, { packets: 1, bytes: 98 });
  t.same(s.vnis[0].tx, { packets: 1, bytes: 70 });
  t.equal(s.fdb.entries, 1);
  // unknown unicast floods
  tap.inject(frame(0x0200000000ee, VM_B));
  await settle();
  t.equal(h.inbox.get(PEER_A)!.length + h.inbox.get(PEER_C)!.length, 3);
});

t.test('the TAP write gets views into the underlay slab: no copy on the way through', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789);
  const peer = net.bind(PEER_A, 4789);
  const slabs: Uint8Array[] = [];
  const tap = new FakeTap('spy');
  const write = tap.write.bind(tap);
  tap.write = (slab, batch) => (slabs.push(slab), write(slab, batch));
  const remotes = new Remotes();
  const engine = new Engine({ underlay, fdb: new Fdb() });
  engine.addVni({ vni: 1, tap, remotes: [remotes.get(PEER_A)] });
  underlay.start(
    (n) => engine.underlayReceived(n, 0),
    () => {},
  );
  const sent: Uint8Array[] = [];
  const send = underlay.send.bind(underlay);
  underlay.send = (slab, batch) => (sent.push(slab), send(slab, batch));
  tap.start(
    (n) => engine.tapReceived(1, n, 0),
    () => {},
  );
  underlay.receive(vxlan(1, frame(VM_B, VM_A)), peer);
  tap.inject(frame(VM_A, VM_B));
  await settle();
  t.equal(slabs[0], underlay.rx.slab, 'decap: TAP writes from the underlay receive slab');
  t.equal(sent[0], tap.rx.slab, 'encap: the underlay sends from the TAP receive slab');
});

t.test('drops are counted per reason and nothing reaches the TAP', async (t) => {
  const logs: string[] = [];
  const h = harness([{ vni: 5000, ownMacs: [VM_B], mtu: 100 }], {
    log: (_level, _event, msg) => logs.push(msg),
  });
  const good = frame(VM_B, VM_A);
  const noI = vxlan(5000, good);
  noI[0] = 0;
  const reserved = vxlan(5000, good);
  reserved[7] = 1;
  const reservedFlag = vxlan(5000, good);
  reservedFlag[0] |= 0x80;
  const cases: [Buffer, number, unknown][] = [
    [Buffer.alloc(5), Drop.VXLAN_TRUNCATED, h.peerA],
    [noI, Drop.VXLAN_NO_I_FLAG, h.peerA],
    [reserved, Drop.VXLAN_RESERVED_FIELD, h.peerA],
    [reservedFlag, Drop.VXLAN_RESERVED_FLAGS, h.peerA],
    [vxlan(5000, good).subarray(0, 20), Drop.INNER_TRUNCATED, h.peerA],
    [vxlan(4242, good), Drop.VNI_UNKNOWN, h.peerA],
    [vxlan(5000, good), Drop.SENDER_NOT_REMOTE, h.stranger],
    [vxlan(5000, frame(VM_A, VM_B)), Drop.OWN_SOURCE_MAC, h.peerA],
  ];
  for (const [bytes, , from] of cases) h.underlay.receive(bytes, from as typeof h.peerA);
  await settle();
  t.equal(h.taps.get(5000)!.written.length, 0, 'nothing delivered');
  for (const [, reason] of cases) t.equal(h.engine.drops[reason], 1, `reason ${reason}`);
  const s = h.engine.stats();
  t.equal(s.drops.vni_unknown, 1);
  t.equal(s.drops.sender_not_remote, 1);
  t.ok(
    logs.some((l) => /drop sender_not_remote vni 5000 from 192\.0\.2\.99/.test(l)),
    'logged with the sender',
  );
  t.equal(h.fdb.size, 0, 'nothing learned from dropped packets');

  const tap = h.taps.get(5000)!;
  tap.inject(Buffer.alloc(10));
  tap.inject(frame(BCAST, VM_B, tap.rx.capacity + 1));
  await settle();
  t.equal(h.engine.drops[Drop.ETHERNET_TRUNCATED], 1);
  t.equal(h.engine.drops[Drop.FRAME_TOO_BIG], 1, 'a frame its slot cut');
});

t.test('logs are rate limited and say how many were suppressed', async (t) => {
  const logs: { level: string; event: string; msg: string; fields?: Record<string, unknown> }[] =
    [];
  const h = harness([{ vni: 1 }], {
    log: (level, event, msg, fields) => logs.push({ level, event, msg, fields }),
  });
  for (let i = 0; i < 100; i++) h.underlay.receive(vxlan(99, frame(VM_B, VM_A)), h.peerA);
  await settle();
  t.equal(h.engine.drops[Drop.VNI_UNKNOWN], 100);
  t.equal(logs.length, 10);
  t.same(logs[0], {
    level: 'debug',
    event: 'drop',
    msg: 'drop vni_unknown vni 99 from 192.0.2.1',
    fields: { reason: 'vni_unknown', vni: 99, from: '192.0.2.1' },
  });
  h.clock.now += 60_000;
  h.underlay.receive(vxlan(99, frame(VM_B, VM_A)), h.peerA);
  await settle();
  t.match(logs[10], { msg: /90 similar messages suppressed/, fields: { suppressed: 90 } });
});

t.test('--learn-remotes accepts any sender and learns it as a remote at port 4789', async (t) => {
  const h = harness([{ vni: 7, learnRemotes: true, remotes: [PEER_A] }]);
  h.underlay.receive(vxlan(7, frame(VM_B, 0x020000000077)), h.stranger);
  await settle();
  t.equal(h.taps.get(7)!.written.length, 1);
  t.equal(h.fdb.lookup(7, 0x020000000077, 0)?.key, '192.0.2.99:4789');
  h.taps.get(7)!.inject(frame(0x020000000077, VM_B));
  await settle();
  t.equal(h.inbox.get('192.0.2.99')!.length, 1, 'unicast to the learned remote');
  t.same(h.engine.stats().vnis[0].learnRemotes, true);
});

t.test(
  'a multicast group: floods go to it, what another socket of the port reads is decapsulated and its senders learned',
  async (t) => {
    const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
    const h = harness([{ vni: 7, learnRemotes: true, remotes: [PEER_A, '239.1.1.1'] }], {
      log: (_level, _event, msg, fields) => logs.push({ msg, fields }),
    });
    // the daemon's group socket: bound to group:port beside the underlay's, its ring handed over
    const group = h.net.bind('239.1.1.1', 4789);
    const joined = collect(group);
    h.taps.get(7)!.inject(frame(BCAST, VM_B));
    await settle();
    t.equal(joined.length, 1, 'one copy to the group');
    t.equal(h.inbox.get(PEER_A)!.length, 1, 'and one to the remote beside it');
    // now the group socket's datagrams go to the engine, from its own ring
    const member = h.net.bind('192.0.2.4', 4789);
    group.stop();
    group.start(
      (n) => h.engine.underlayReceived(n, h.clock.now, group.rx),
      () => {},
    );
    group.receive(vxlan(7, frame(BCAST, VM_C)), member);
    await settle();
    t.equal(h.taps.get(7)!.written.length, 1, 'delivered to the TAP');
    t.equal(
      h.fdb.lookup(7, VM_C, 0)?.key,
      '192.0.2.4:4789',
      'its sender learned as a unicast remote',
    );
    const unicast = collect(member);
    h.taps.get(7)!.inject(frame(VM_C, VM_B));
    await settle();
    t.equal(unicast.length, 1, 'the answer goes unicast to it, not to the group');
    t.equal(joined.length, 1, 'the group got nothing more');
    group.receive(vxlan(8, frame(BCAST, VM_C)), member);
    await settle();
    t.match(
      logs.find((l) => /vni_unknown/.test(l.msg))?.fields,
      { from: '192.0.2.4', vni: 8 },
      "a drop names the sender from the group socket's ring",
    );
    t.same(h.engine.stats().vnis[0].remotes, ['192.0.2.1:4789', '239.1.1.1:4789']);
  },
);

t.test('several VNIs share the socket, each with its own TAP and table', async (t) => {
  const h = harness([{ vni: 100 }, { vni: 200, remotes: [PEER_C] }]);
  h.underlay.receive(vxlan(100, frame(BCAST, VM_A)), h.peerA);
  h.underlay.receive(vxlan(200, frame(BCAST, VM_C)), h.peerC);
  h.underlay.receive(vxlan(200, frame(BCAST, VM_A)), h.peerA); // PEER_A is not a remote of VNI 200
  await settle();
  t.equal(h.taps.get(100)!.written.length, 1);
  t.equal(h.taps.get(200)!.written.length, 1);
  t.equal(h.fdb.lookup(100, VM_C, 0), null);
  t.equal(h.fdb.lookup(200, VM_C, 0)?.key, '192.0.2.3:4789');
  h.taps.get(200)!.inject(frame(BCAST, VM_B));
  await settle();
  t.equal(h.inbox.get(PEER_A)!.length, 0, 'VNI 200 floods only to its own remotes');
  t.equal(h.inbox.get(PEER_C)!.length, 1);
  t.equal(
    decapsulate(h.inbox.get(PEER_C)![0]) instanceof Object &&
      (decapsulate(h.inbox.get(PEER_C)![0]) as { vni: number }).vni,
    200,
  );
});

t.test(
  'raw mode: our UDP header, source port from the flow, copies only for other ports',
  async (t) => {
    const raw = new RecordingSender();
    const h = harness([{ vni: 5000 }], { raw, sourcePortMin: 50000, sourcePortMax: 50099 });
    // PEER_C listens on another port in this VNI's flood list
    const remotes = h.remotes;
    h.fdb.addFlood(5000, remotes.get('192.0.2.4', 8472));
    const tap = h.taps.get(5000)!;
    const f = frame(BCAST, VM_B, 80);
    tap.inject(f);
    await settle();
    t.equal(raw.sent.length, 3, 'three copies');
    const ports = raw.sent.map(
      (s) => `${addrToString(s.to, 0)}:${s.bytes.readUInt16BE(2)}:${addrPort(s.to, 0)}`,
    );
    t.same(ports, ['192.0.2.1:4789:4789', '192.0.2.3:4789:4789', '192.0.2.4:8472:8472']);
    const src = raw.sent[0].bytes.readUInt16BE(0);
    t.ok(src >= 50000 && src <= 50099, `source port ${src} in range`);
    t.ok(
      raw.sent.every((s) => s.bytes.readUInt16BE(0) === src),
      'same flow, same port',
    );
    t.ok(
      raw.sent.every((s) => s.bytes.readUInt16BE(4) === 8 + 8 + 80),
      'UDP length',
    );
    t.equal(raw.sent[0].slab, tap.rx.slab, 'same-port copies go from the TAP slab');
    t.not(raw.sent[2].slab, tap.rx.slab, 'the other-port copy was made');
    t.same(
      raw.sent[2].bytes.subarray(8),
      raw.sent[0].bytes.subarray(8),
      'with the same VXLAN payload',
    );
    t.equal(h.engine.stats().vnis[0].tx.packets, 3);
  },
);

/** A 60-byte IPv4 frame from VM_B, 10.0.0.1 -> 10.0.0.2, of protocol `proto` between the ports. */
function ipv4Frame(dst: number, proto: number, sport: number, dport: number): Buffer {
  const f = frame(dst, VM_B, 60);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f[23] = proto;
  f.writeUInt16BE(0x4000, 20); // DF, not a fragment
  f.writeUInt32BE(0x0a000001, 26);
  f.writeUInt32BE(0x0a000002, 30);
  f.writeUInt16BE(sport, 34);
  f.writeUInt16BE(dport, 36);
  return f;
}

t.test('raw mode beside GSO senders: each flow takes one of their ports', async (t) => {
  const raw = new RecordingSender();
  const gso = {
    ports: [61000, 61001, 61002],
    sendSegments: () => 0,
    errnoName: () => 'E?',
    close: () => {},
  };
  const h = harness([{ vni: 5000 }], { raw, gso, sourcePortMin: 50000, sourcePortMax: 50099 });
  const tap = h.taps.get(5000)!;
  const flowFrame = (sport: number) => ipv4Frame(BCAST, 17, sport, 9);
  for (let sport = 1000; sport < 1032; sport++) tap.inject(flowFrame(sport), flowFrame(sport));
  await settle();
  const ports = raw.sent.map((s) => s.bytes.readUInt16BE(0));
  t.ok(
    ports.every((p) => gso.ports.includes(p)),
    'every datagram from a port a GSO socket is bound to (so a run may leave from it)',
  );
  t.equal(new Set(ports).size, 3, '32 flows spread over the three');
  const byFlow = new Map<number, Set<number>>();
  for (const d of raw.sent) {
    const inner = d.bytes.readUInt16BE(8 + 8 + 34);
    byFlow.set(inner, (byFlow.get(inner) ?? new Set()).add(d.bytes.readUInt16BE(0)));
  }
  t.equal(byFlow.size, 32);
  t.ok(
    [...byFlow.values()].every((p) => p.size === 1),
    'every datagram of a flow (both frames, every copy) from one port',
  );
});

t.test('flow hash: stable per flow, spread across flows, never reads past the frame', async (t) => {
  const tcp = (sport: number) => ipv4Frame(VM_A, 6, sport, 80);
  t.equal(flowHash(tcp(1000), 0, 60), flowHash(tcp(1000), 0, 60));
  const buckets = new Set<number>();
  for (let p = 1000; p < 1256; p++) buckets.add(flowHash(tcp(p), 0, 60) % 16);
  t.equal(buckets.size, 16, '256 flows spread over all 16 buckets');
  const frag = tcp(1000);
  frag.writeUInt16BE(0x2000, 20); // more fragments: ports are not looked at
  const frag2 = tcp(2000);
  frag2.writeUInt16BE(0x2000, 20);
  t.equal(flowHash(frag, 0, 60), flowHash(frag2, 0, 60));
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 14, maxLength: 200 }),
      fc.integer({ min: 14, max: 200 }),
      (bytes, cut) => {
        const len = Math.min(cut, bytes.length);
        const padded = Buffer.alloc(bytes.length + 64, 0xff);
        padded.set(bytes);
        const a = flowHash(padded, 0, len);
        padded.fill(0, bytes.length);
        return a === flowHash(padded, 0, len); // bytes past len do not matter
      },
    ),
  );
});

t.test('ageing through the engine, and configuration errors', async (t) => {
  const h = harness([{ vni: 1 }], { ageingMs: 10_000 });
  h.underlay.receive(vxlan(1, frame(VM_B, VM_A)), h.peerA);
  await settle();
  t.equal(h.engine.sweep(h.clock.now), h.clock.now + 10_000);
  t.equal(h.engine.sweep(h.clock.now + 10_000), undefined);
  t.equal(h.fdb.size, 0);
  const remotes = new Remotes();
  t.throws(
    () => h.engine.addVni({ vni: 2, tap: new FakeTap('x'), remotes: [remotes.get('2001:db8::1')] }),
    { code: 'ERR_ENGINE_CONFIG', message: /IPv6, the underlay is IPv4/ },
  );
  const tight = new FakeTap('tight', { headroom: 4 });
  t.throws(() => h.engine.addVni({ vni: 3, tap: tight, remotes: [] }), {
    code: 'ERR_ENGINE_CONFIG',
  });
  h.engine.tapReceived(999, 1, 0); // unknown VNI: ignored
  t.match(
    Engine.formatMove({
      vni: 1,
      mac: VM_A,
      from: remotes.get(PEER_A),
      to: remotes.get(PEER_C),
      suppressed: 2,
    }),
    `${formatMac(VM_A)} moved from 192.0.2.1:4789 to 192.0.2.3:4789 (2 moves not reported)`,
  );
});

t.test('empty flood list and refused sends are counted', async (t) => {
  const h = harness([{ vni: 1, remotes: [] }]);
  h.taps.get(1)!.inject(frame(BCAST, VM_B));
  await settle();
  t.equal(h.engine.drops[Drop.NO_REMOTE], 1);
  const g = harness([{ vni: 1 }]);
  g.underlay.send = () => ((g.underlay.lastError = 'ENOBUFS'), 0);
  g.taps.get(1)!.inject(frame(BCAST, VM_B));
  const tap = g.taps.get(1)!;
  tap.write = () => ((tap.lastError = 'EIO'), 0);
  g.underlay.receive(vxlan(1, frame(VM_B, VM_A)), g.peerA);
  await settle();
  t.equal(g.engine.drops[Drop.UNDERLAY_SEND_FAILED], 2);
  t.equal(g.engine.drops[Drop.TAP_WRITE_FAILED], 1);
  t.same(g.engine.stats().vnis[0].rx, { packets: 0, bytes: 0 }, 'nothing counted as received');
});

t.test('IPv6 underlay, truncated datagrams, and the learned-sender cache bound', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind('2001:db8::2', 4789, { slotSize: 256, headroom: 64 });
  const peer = net.bind('2001:db8::1', 4789);
  const remotes = new Remotes();
  const fdb = new Fdb();
  const engine = new Engine({ underlay, fdb, senderCacheMax: 2 });
  const tap = new FakeTap('v6');
  engine.addVni({ vni: 6, tap, remotes: [remotes.get('2001:db8::1')], learnRemotes: true });
  underlay.start(
    (n) => engine.underlayReceived(n, 0),
    () => {},
  );
  underlay.receive(vxlan(6, frame(VM_B, VM_A)), peer);
  underlay.receive(vxlan(6, frame(VM_B, VM_A, 300)), peer); // larger than the 192-byte slot room
  for (let i = 3; i < 8; i++)
    underlay.receive(vxlan(6, frame(VM_B, 0x020000000100 + i)), {
      address: `2001:db8::${i}`,
      port: 40000,
    });
  await settle();
  t.equal(tap.written.length, 6, 'configured and learned IPv6 senders delivered');
  t.equal(
    engine.drops[Drop.DATAGRAM_TRUNCATED],
    1,
    'the cut datagram is dropped, not delivered cut',
  );
  t.equal(fdb.lookup(6, VM_A, 0)?.key, '[2001:db8::1]:4789');
  t.equal(
    fdb.lookup(6, 0x020000000107, 0)?.key,
    '[2001:db8::7]:4789',
    'learned at our port, not the source port',
  );
  t.equal(fdb.counters.moved, 0, 'restarting the sender cache does not look like moves');
});

t.test('flow hash covers VLAN-tagged and IPv6 inner frames', async (t) => {
  const v6 = (sport: number, vlan?: number) => {
    const f = Buffer.alloc(100);
    let o = 12;
    if (vlan !== undefined) {
      f.writeUInt16BE(0x8100, 12);
      f.writeUInt16BE(vlan, 14);
      o = 16;
    }
    f.writeUInt16BE(0x86dd, o);
    f[o + 2] = 0x60;
    f[o + 2 + 6] = 17;
    f.writeUInt16BE(sport, o + 2 + 40);
    return f;
  };
  t.not(flowHash(v6(1), 0, 100), flowHash(v6(2), 0, 100), 'IPv6 UDP ports count');
  t.not(flowHash(v6(1, 10), 0, 100), flowHash(v6(1, 20), 0, 100), 'the VLAN ID counts');
  t.equal(flowHash(v6(1, 10), 0, 100), flowHash(v6(1, 10), 0, 100));
});

t.test(
  'invalid source MACs: delivered unlearned (OVS), or dropped with --invalid-source-mac drop (Linux)',
  async (t) => {
    for (const policy of ['deliver', 'drop'] as const) {
      const h = harness([{ vni: 1 }], { invalidSourceMac: policy });
      for (const src of [0, 0x01005e000001, BCAST])
        h.underlay.receive(vxlan(1, frame(VM_B, src)), h.peerA);
      await settle();
      t.equal(h.taps.get(1)!.written.length, policy === 'deliver' ? 3 : 0, policy);
      t.equal(h.engine.drops[Drop.INVALID_SOURCE_MAC], policy === 'deliver' ? 0 : 3);
      t.equal(h.fdb.size, 0, 'never learned');
    }
  },
);

t.test(
  'live changes: remotes replaced, VNI removed, settings changed, learned entries kept',
  async (t) => {
    const h = harness([{ vni: 1 }, { vni: 2 }]);
    // Learn a MAC behind each remote in VNI 1, one in VNI 2.
    h.underlay.receive(vxlan(1, frame(VM_B, VM_A)), h.peerA);
    h.underlay.receive(vxlan(1, frame(VM_B, VM_C)), h.peerC);
    h.underlay.receive(vxlan(2, frame(VM_B, VM_A)), h.peerA);
    await settle();
    t.equal(h.fdb.size, 3);

    // PEER_C leaves VNI 1: its learned MAC goes (OVS flushes a deleted port's MACs), PEER_A's stays.
    h.engine.updateVni(1, { remotes: [h.remotes.get(PEER_A)] });
    t.same(h.engine.stats().vnis[0].remotes, ['192.0.2.1:4789']);
    t.equal(h.fdb.get(1, VM_C), undefined, "the removed remote's MAC is flushed");
    t.equal(h.fdb.get(1, VM_A)?.remote.key, '192.0.2.1:4789', 'the kept remote keeps its MAC');
    h.underlay.receive(vxlan(1, frame(VM_B, 0x02000000c0c0)), h.peerC);
    await settle();
    t.equal(h.engine.drops[Drop.SENDER_NOT_REMOTE], 1, 'and PEER_C is no longer accepted');
    h.taps.get(1)!.inject(frame(BCAST, VM_B));
    await settle();
    t.equal(h.inbox.get(PEER_C)!.length, 0, 'nor flooded to');
    t.equal(h.inbox.get(PEER_A)!.length, 1);

    // Settings: learning off, then accept any sender, another own MAC.
    h.engine.updateVni(1, { learning: false, maxEntries: 5, learnRemotes: true });
    h.underlay.receive(vxlan(1, frame(VM_B, 0x02000000dddd)), h.stranger);
    await settle();
    t.equal(h.fdb.get(1, 0x02000000dddd), undefined, 'learning is off');
    t.equal(h.taps.get(1)!.written.length, 3, 'but any sender is accepted now');
    h.engine.updateVni(1, { ownMacs: [VM_A] });
    h.underlay.receive(vxlan(1, frame(VM_B, VM_A)), h.peerA);
    await settle();
    t.equal(h.engine.drops[Drop.OWN_SOURCE_MAC], 1, 'the new own MAC is a loop');

    h.engine.configure({ reservedBits: 'ignore', invalidSourceMac: 'drop' });
    const reserved = vxlan(2, frame(VM_B, VM_A));
    reserved[0] |= 0x01;
    h.underlay.receive(reserved, h.peerA);
    h.underlay.receive(vxlan(2, frame(VM_B, 0)), h.peerA);
    await settle();
    t.equal(h.taps.get(2)!.written.length, 2, 'reserved bits ignored now');
    t.equal(h.engine.drops[Drop.INVALID_SOURCE_MAC], 1, 'a zero source MAC is dropped now');

    // VNI 1 goes; VNI 2 and its learned entry stay.
    t.equal(h.engine.removeVni(1), true);
    t.equal(h.engine.removeVni(1), false, 'twice is a no-op');
    t.equal(h.engine.hasVni(1), false);
    t.equal(h.fdb.hasVni(1), false, 'its table went with it');
    t.equal(h.fdb.get(2, VM_A)?.remote.key, '192.0.2.1:4789');
    t.equal(h.fdb.size, 1);
    h.underlay.receive(vxlan(1, frame(VM_B, VM_A)), h.peerA);
    await settle();
    t.equal(h.engine.drops[Drop.VNI_UNKNOWN], 1);
    t.throws(() => h.engine.updateVni(1, {}), {
      code: 'ERR_ENGINE_CONFIG',
      message: /vni 1 is not configured/,
    });
    t.throws(() => h.engine.updateVni(2, { remotes: [new Remotes().get('2001:db8::1')] }), {
      code: 'ERR_ENGINE_CONFIG',
    });
  },
);

t.test(
  'a lost TAP: frames for its VNI are dropped as tap_down until a new one is set',
  async (t) => {
    const h = harness([{ vni: 7 }]);
    h.engine.setTap(7, null);
    t.equal(h.engine.stats().vnis[0].tapUp, false);
    t.equal(h.engine.stats().vnis[0].tap, 'vx7', 'the name stays known');
    h.underlay.receive(vxlan(7, frame(VM_B, VM_A)), h.peerA);
    await settle();
    t.equal(h.engine.drops[Drop.TAP_DOWN], 1);
    t.equal(h.engine.drops[Drop.TAP_WRITE_FAILED], 0, 'not a failed write');
    h.engine.tapReceived(7, 1, 0); // a late callback from the old device is ignored
    const again = new FakeTap('vx7b', { batchSize: 8 });
    h.engine.setTap(7, again);
    again.start(
      (n) => h.engine.tapReceived(7, n, 0),
      () => {},
    );
    h.underlay.receive(vxlan(7, frame(VM_B, VM_A)), h.peerA);
    again.inject(frame(BCAST, VM_B));
    await settle();
    t.equal(again.written.length, 1, 'the new TAP gets frames');
    t.equal(h.inbox.get(PEER_A)!.length, 1, 'and its frames are sent');
    t.same([h.engine.stats().vnis[0].tap, h.engine.stats().vnis[0].tapUp], ['vx7b', true]);
    t.throws(() => h.engine.setTap(7, new FakeTap('x', { headroom: 0, slotSize: 128 })), {
      code: 'ERR_ENGINE_CONFIG',
      message: /headroom/,
    });
  },
);

t.test('counters are exact under partial failures (fakes)', async (t) => {
  // Two VNIs flood through one underlay batch; the sender refuses datagram 1 (of VNI 1) and
  // reports the queue full from datagram 4 on. Each VNI gets exactly what went.
  const h = harness([{ vni: 1 }, { vni: 2 }]);
  const send = h.underlay.send.bind(h.underlay);
  h.underlay.send = (slab, batch) => {
    const n = send(slab, batch);
    batch.status[1] = TxStatus.REFUSED;
    for (let i = 4; i < batch.count; i++) batch.status[i] = TxStatus.QUEUE_FULL;
    h.underlay.lastError = 'EMSGSIZE';
    return n - 1 - (batch.count - 4);
  };
  // One frame per VNI, interleaved in one engine batch: the harness floods each to 2 remotes.
  const tap1 = h.taps.get(1)!;
  const tap2 = h.taps.get(2)!;
  tap1.inject(frame(BCAST, VM_B, 100)); // datagrams 0, 1 (VNI 1)
  await settle();
  tap2.inject(frame(BCAST, VM_B, 200)); // datagrams 0, 1 (VNI 2) in its own batch
  await settle();
  const [v1, v2] = h.engine.stats().vnis;
  t.same(v1.tx, { packets: 1, bytes: 100 }, 'VNI 1: the refused copy is not credited');
  t.same(v2.tx, { packets: 1, bytes: 200 }, 'VNI 2: likewise, in its own batch');
  t.same(v1.drops, { underlay_send_failed: 1 });

  // A batch of 6 flooded to 2 remotes: 12 datagrams; 1 refused, 8 (4..11) queue full.
  const g = harness([{ vni: 3 }], { txBatch: 64 });
  const gsend = g.underlay.send.bind(g.underlay);
  g.underlay.send = (slab, batch) => {
    gsend(slab, batch);
    batch.status[1] = TxStatus.REFUSED;
    for (let i = 4; i < batch.count; i++) batch.status[i] = TxStatus.QUEUE_FULL;
    return 3;
  };
  for (let k = 0; k < 6; k++) g.taps.get(3)!.inject(frame(BCAST, VM_B, 60 + k));
  await settle();
  const s3 = g.engine.stats();
  t.equal(s3.vnis[0].tx.packets, 3);
  t.equal(
    s3.vnis[0].tx.bytes,
    60 + 61 + 61,
    'bytes of exactly the datagrams sent: 0 (frame 0), 2 and 3 (frame 1)',
  );
  t.same(s3.vnis[0].drops, { underlay_send_failed: 1, underlay_queue_full: 8 });
  t.equal(s3.drops.underlay_queue_full, 8, 'and in the totals');

  // The TAP takes frames 0 and 2 of 3: rx counts those, bytes included.
  const w = harness([{ vni: 4 }]);
  const tap = w.taps.get(4)!;
  const write = tap.write.bind(tap);
  tap.write = (slab, batch) => {
    write(slab, batch);
    batch.status[1] = TxStatus.REFUSED;
    tap.lastError = 'EIO';
    return batch.count - 1;
  };
  for (const size of [70, 80, 90]) w.underlay.receive(vxlan(4, frame(VM_B, VM_A, size)), w.peerA);
  await settle();
  t.same(w.engine.stats().vnis[0].rx, { packets: 2, bytes: 160 });
  t.same(w.engine.stats().vnis[0].drops, { tap_write_failed: 1 });

  // An underlay batch larger than the TAP's: written in parts, none lost or uncounted.
  const big = new FakeNetwork();
  const underlay = big.bind(LOCAL, 4789, { batchSize: 200 });
  const peer = big.bind(PEER_A, 4789);
  const fdb = new Fdb();
  const engine = new Engine({ underlay, fdb });
  const small = new FakeTap('small', { batchSize: 8 });
  engine.addVni({ vni: 9, tap: small, remotes: [new Remotes().get(PEER_A)] });
  underlay.start(
    (n) => engine.underlayReceived(n, 0),
    () => {},
  );
  for (let k = 0; k < 150; k++) underlay.receive(vxlan(9, frame(VM_B, VM_A + k)), peer);
  await settle();
  t.equal(small.written.length, 150, 'every frame reached the TAP');
  t.equal(engine.stats().vnis[0].rx.packets, 150);
});

t.test(
  'path MTU: a frame that fits the TAP but not the underlay is dropped and answered with ICMP',
  async (t) => {
    // Underlay 1500 over IPv4: the largest inner frame is 1500 - 20 - 8 - 8 = 1464.
    const h = harness([{ vni: 5, mtu: 1500 }], { underlayMtu: 1500 });
    const tap = h.taps.get(5)!;
    t.equal(h.engine.stats().pathMaxFrame, 1464);
    const ip4 = (size: number, df: boolean, proto = 6) => {
      const f = frame(VM_A, VM_B, size);
      f.fill(0, 14, 34);
      f[14] = 0x45;
      f.writeUInt16BE(size - 14, 16);
      f.writeUInt16BE(df ? 0x4000 : 0, 20);
      f[22] = 64;
      f[23] = proto;
      f.writeUInt32BE(0x0a000002, 26); // 10.0.0.2, the inner sender
      f.writeUInt32BE(0x0a000001, 30); // 10.0.0.1
      f.writeUInt16BE(checksum(f, 14, 20), 24);
      return f;
    };
    tap.inject(ip4(1464, true));
    tap.inject(ip4(1465, true));
    tap.inject(ip4(1514, false));
    await settle();
    const s = h.engine.stats();
    t.equal(h.inbox.get(PEER_A)!.length, 1, 'the frame that fits is sent');
    t.equal(s.drops.path_mtu_exceeded, 2, 'the two that do not are dropped');
    t.same(s.vnis[0].drops, { path_mtu_exceeded: 2 });
    t.equal(s.icmpTooBig, 1, 'one answer: the packet without DF gets none');
    t.equal(tap.written.length, 1);
    const a = tap.written[0];
    t.equal(readMac(a, 0), VM_B, 'to the sender');
    t.equal(readMac(a, 6), VM_A, 'from the destination');
    t.equal(a.readUInt16BE(12), 0x0800);
    t.equal(checksum(a, 14, 20), 0, 'IPv4 header checksum verifies');
    t.equal(a.readUInt32BE(26), 0x0a000001, 'IP source: the unreachable destination');
    t.equal(a.readUInt32BE(30), 0x0a000002, 'IP destination: the sender');
    t.same([a[34], a[35]], [3, 4], 'ICMP destination unreachable, fragmentation needed');
    t.equal(a.readUInt16BE(40), 1450, 'next-hop MTU: 1464 - 14');
    t.equal(checksum(a, 34, a.length - 34), 0, 'ICMP checksum verifies');
    t.equal(a.length, 14 + 576, 'at most 576 bytes of IP (RFC 1812)');
    t.same(a.subarray(42, 62), ip4(1465, true).subarray(14, 34), 'quotes the original header');
  },
);

t.test(
  'a MAC flood in one VNI does not make another flood its unicast (tenant lockout)',
  async (t) => {
    const h = harness([{ vni: 1 }, { vni: 2 }], { maxEntries: 64 });
    for (let m = 0; m < 500; m++)
      h.underlay.receive(vxlan(1, frame(VM_B, 0x020000100000 + m)), h.peerA);
    for (let k = 0; k < 10; k++) await settle(); // the fake delivers 64 datagrams a turn
    t.equal(h.fdb.sizeOf(1), 64, 'VNI 1 filled the shared table');
    h.underlay.receive(vxlan(2, frame(VM_B, VM_C)), h.peerC);
    await settle();
    t.equal(h.fdb.lookup(2, VM_C, 0)?.key, '192.0.2.3:4789', 'VNI 2 still learns');
    const before = h.inbox.get(PEER_A)!.length;
    h.taps.get(2)!.inject(frame(VM_C, VM_B));
    await settle();
    t.equal(h.inbox.get(PEER_A)!.length, before, 'its unicast is not flooded');
    t.equal(h.inbox.get(PEER_C)!.length, 1, 'but sent to the one remote');
    t.equal(h.engine.stats().fdb.capHit, 0);
  },
);

t.test('misses are reported while watched, at most 100 a second', async (t) => {
  const h = harness([{ vni: 3 }]);
  const misses: string[] = [];
  h.taps.get(3)!.inject(frame(0x0200000000f1, VM_B));
  await settle();
  h.engine.onMiss = (vni, mac) => misses.push(`${vni} ${formatMac(mac)}`);
  h.taps.get(3)!.inject(frame(0x0200000000f2, VM_B));
  h.taps.get(3)!.inject(frame(BCAST, VM_B)); // broadcast: flooded, but not a miss
  await settle();
  t.same(misses, ['3 02:00:00:00:00:f2']);
  for (let k = 0; k < 150; k++) h.taps.get(3)!.inject(frame(0x020000001000 + k, VM_B));
  for (let k = 0; k < 5; k++) await settle();
  t.equal(misses.length, 100, 'rate limited within the same second');
});

/** Text of 16 IPv6 bytes. */
function formatIpv6(b: Uint8Array): string {
  const slot = new Uint8Array(20);
  slot[0] = 6;
  slot.set(b, 4);
  return slotText(slot, 0);
}

t.test(
  'ARP/ND suppression: learned from both sides, answered on the TAP, else flooded',
  async (t) => {
    const h = harness([{ vni: 8, suppressArp: true }]);
    const tap = h.taps.get(8)!;
    const told: [number, number | string, string][] = [];
    h.engine.onNeigh = (vni, ip, mac) => told.push([vni, ip, formatMac(mac)]);
    const IP_A = 0x0a000001;
    const IP_B = 0x0a000002;
    // VM_A answers an ARP request from behind PEER_A: learned.
    h.underlay.receive(vxlan(8, arpFrame(2, VM_B, VM_A, IP_A, IP_B)), h.peerA);
    await settle();
    t.same(told, [[8, IP_A, formatMac(VM_A)]], 'news for the other workers');
    tap.written.length = 0;
    // VM_B asks for 10.0.0.1: answered here, nothing goes to the underlay.
    tap.inject(arpFrame(1, BCAST, VM_B, IP_B, IP_A));
    await settle();
    t.equal(h.inbox.get(PEER_A)!.length + h.inbox.get(PEER_C)!.length, 0, 'not flooded');
    t.equal(tap.written.length, 1, 'one reply into the TAP');
    const r = tap.written[0];
    t.same(
      [readMac(r, 0), readMac(r, 6), r.readUInt16BE(12), r.readUInt16BE(20), readMac(r, 22)],
      [VM_B, VM_A, 0x0806, 2, VM_A],
      'an ARP reply from VM_A to VM_B',
    );
    t.same([r.readUInt32BE(28), readMac(r, 32), r.readUInt32BE(38)], [IP_A, VM_B, IP_B]);
    // Unknown target: flooded as before, and counted.
    tap.inject(arpFrame(1, BCAST, VM_B, IP_B, 0x0a000009));
    // Gratuitous ARP (sender = target) and a tagged request.
    tap.inject(arpFrame(1, BCAST, VM_B, IP_B, IP_B));
    tap.inject(arpFrame(1, BCAST, VM_B, IP_B, IP_A, true));
    await settle();
    t.equal(h.inbox.get(PEER_A)!.length, 2, 'the unknown and the gratuitous one are flooded');
    t.equal(tap.written[1].readUInt32BE(12), 0x81000064, 'the tagged request gets a tagged reply');
    // IPv6: an advertisement teaches, a solicitation from the TAP is answered; DAD is not.
    h.underlay.receive(vxlan(8, ndFrame(136, VM_B, VM_A, 'fd00::1', 'fd00::1')), h.peerA);
    await settle();
    const before = tap.written.length;
    tap.inject(ndFrame(135, 0x3333ff000001, VM_B, 'fd00::2', 'fd00::1'));
    tap.inject(ndFrame(135, 0x3333ff000001, VM_B, '::', 'fd00::1'));
    await settle();
    t.equal(
      tap.written.length,
      before + 1,
      'one advertisement; none for duplicate address detection',
    );
    const na = tap.written[before];
    t.same(
      [readMac(na, 0), readMac(na, 6), na[54], na[58] & 0x60, readMac(na, 80)],
      [VM_B, VM_A, 136, 0x60, VM_A],
    );
    t.equal(formatIpv6(na.subarray(22, 38)), 'fd00::1', 'from the target');
    t.equal(formatIpv6(na.subarray(38, 54)), 'fd00::2', 'to the asker');
    t.equal(na[21], 255, 'hop limit 255');
    const pseudo = ipv6PseudoSum(na.subarray(22, 38), na.subarray(38, 54), 58, 32);
    t.equal(checksum(na, 54, 32, pseudo), 0, 'ICMPv6 checksum verifies');
    // flooded counts requests for unknown addresses; a gratuitous ARP is not one
    t.match(h.engine.stats().vnis[0].suppress, { answered: 3, flooded: 1 });
    // What another worker learned answers here too, and is not told back.
    const n = told.length;
    h.engine.learnNeighbour(8, 0x0a000007, VM_A, 0);
    h.engine.learnNeighbour(99, 0x0a000007, VM_A, 0); // a VNI this engine does not have: ignored
    t.equal(told.length, n, 'learned from another thread: not news to tell');
    tap.inject(arpFrame(1, BCAST, VM_B, IP_B, 0x0a000007));
    await settle();
    t.match(h.engine.stats().vnis[0].suppress, { answered: 4 }, 'answered from it');

    // Off: requests go out as before and nothing is answered.
    h.engine.updateVni(8, { suppressArp: false });
    const sent = h.inbox.get(PEER_A)!.length;
    tap.inject(arpFrame(1, BCAST, VM_B, IP_B, IP_A));
    await settle();
    t.equal(h.inbox.get(PEER_A)!.length, sent + 1, 'suppression off: flooded');
    t.equal(h.engine.stats().vnis[0].suppress, undefined);
    h.engine.updateVni(8, { suppressArp: true });
    t.same(
      h.engine.stats().vnis[0].suppress,
      { answered: 4, flooded: 1, entries: 0 },
      'on again: a fresh table',
    );
  },
);

t.test('a control plane pins an address (EVPN MAC+IP): ARP answered from it', async (t) => {
  const h = harness([{ vni: 8, suppressArp: true }, { vni: 9 }]);
  const tap = h.taps.get(8)!;
  h.engine.pinNeighbour(8, '10.0.0.7', VM_C);
  h.engine.pinNeighbour(9, '10.0.0.7', VM_C); // no suppression table there: nothing
  tap.inject(arpFrame(1, BCAST, VM_B, 0x0a000002, 0x0a000007));
  await settle();
  t.equal(tap.written.length, 1, 'answered on the TAP');
  t.equal(readMac(tap.written[0]!, 22), VM_C, 'with the pinned MAC');
  h.engine.pinNeighbour(8, '10.0.0.7', undefined);
  tap.inject(arpFrame(1, BCAST, VM_B, 0x0a000002, 0x0a000007));
  await settle();
  t.equal(tap.written.length, 1, 'unpinned: flooded, not answered');
  t.same(h.engine.neighboursOf(8, VM_B, h.clock.now), [0x0a000002], "the asker's address, snooped");
  t.same(h.engine.neighboursOf(9, VM_B, h.clock.now), [], 'no table: none');
});

t.test(
  'a controller-driven VNI: TAP-side MACs reported and aged, extra senders, unbound ports',
  async (t) => {
    const h = harness([{ vni: 9, localMacs: true, maxEntries: 3, remotes: [PEER_A] }]);
    const tap = h.taps.get(9)!;
    const events: [number, string, boolean][] = [];
    h.engine.onLocalMac = (vni, mac, present) => events.push([vni, formatMac(mac), present]);
    tap.inject(frame(BCAST, VM_B));
    tap.inject(frame(BCAST, VM_B)); // again: nothing new
    tap.inject(frame(BCAST, 0x010000000001)); // a group source: never published
    await settle();
    t.same(events, [[9, '52:54:00:00:00:02', true]], 'a new TAP-side MAC, once');
    // The cap (the VNI's maxEntries) bounds what is published, not what is forwarded.
    for (const m of [0x020000000011, 0x020000000012, 0x020000000013]) tap.inject(frame(BCAST, m));
    await settle();
    t.same(h.engine.localMacs(9), [0x020000000011, 0x020000000012, VM_B]);
    t.same(h.engine.stats().vnis[0].localMacs, { entries: 3, capHit: 1 });
    t.equal(h.inbox.get(PEER_A)!.length, 6, 'every frame forwarded all the same');
    // Ageing with the FDB's ageing time: a MAC seen again later stays.
    h.clock.now += 200_000;
    tap.inject(frame(BCAST, VM_B));
    await settle();
    events.length = 0;
    h.engine.sweep(h.clock.now + 100_001);
    t.same(
      events.map((e) => e[1]),
      ['02:00:00:00:00:11', '02:00:00:00:00:12'],
      'the two not seen for 300 s are withdrawn',
    );
    t.same(h.engine.localMacs(9), [VM_B]);
    t.same(h.engine.localMacs(77), [], 'no such VNI: none');
    // Across threads: what a worker saw since its last report, and the main thread taking it.
    t.same(h.engine.localMacsSeenSince(h.clock.now), [[9, VM_B]], 'seen since a time');
    t.same(h.engine.localMacsSeenSince(h.clock.now + 1), []);
    events.length = 0;
    h.engine.seeLocalMac(9, 0x020000000021, h.clock.now);
    h.engine.seeLocalMac(9, 0x020000000021, h.clock.now); // again: nothing new
    h.engine.seeLocalMac(77, 0x020000000022, h.clock.now); // no such VNI: ignored
    t.same(events, [[9, '02:00:00:00:00:21', true]], 'another thread’s MAC, announced once');
    h.engine.sweepLocalMacs(h.clock.now + 300_000);
    t.same(h.engine.localMacs(9), [], 'aged by sweepLocalMacs alone');
    // Moved elsewhere (EVPN): forgotten, and new again when it comes back.
    h.engine.seeLocalMac(9, 0x020000000021, h.clock.now);
    h.engine.forgetLocalMac(9, 0x020000000021);
    h.engine.forgetLocalMac(77, 0x020000000021); // no such VNI: nothing
    t.same(h.engine.localMacs(9), [], 'forgotten');
    events.length = 0;
    h.engine.seeLocalMac(9, 0x020000000021, h.clock.now);
    t.same(events, [[9, '02:00:00:00:00:21', true]], 'and announced again when seen');

    // PEER_C is not on the flood list but is one of the controller's senders.
    h.underlay.receive(vxlan(9, frame(VM_B, VM_C)), h.peerC);
    await settle();
    t.equal(h.engine.stats().drops.sender_not_remote, 1, 'not accepted yet');
    h.engine.updateVni(9, { senders: [h.remotes.get(PEER_C)] });
    h.underlay.receive(vxlan(9, frame(VM_B, VM_C)), h.peerC);
    await settle();
    t.equal(h.fdb.lookup(9, VM_C, 0)?.key, '192.0.2.3:4789', 'accepted and learned');
    t.same(
      h.fdb.floodList(9).map((r) => r.key),
      ['192.0.2.1:4789'],
      'the flood list is unchanged',
    );
    h.engine.updateVni(9, {
      remotes: [h.remotes.get(PEER_C)],
      floodSource: 'ovsdb',
      senders: [h.remotes.get(PEER_A)],
    });
    t.same(
      h.fdb.list(0, 9).map((r) => [r.mac, r.source]),
      [['52:54:00:00:00:03', 'learned']],
    );
    t.equal(
      [...h.fdb.listChunks(0, 9, 512, { flood: true })][0][0].source,
      'ovsdb',
      'flood rows say who set them',
    );
    h.underlay.receive(vxlan(9, frame(VM_B, VM_A)), h.peerA);
    await settle();
    t.equal(h.fdb.lookup(9, VM_A, 0)?.key, '192.0.2.1:4789', 'PEER_A still accepted as a sender');

    // A VNI added while its TAP is down, with an OVSDB flood list.
    h.engine.addVni({
      vni: 10,
      tap: null,
      tapName: 'gw1',
      remotes: [h.remotes.get(PEER_A)],
      floodSource: 'ovsdb',
    });
    const s10 = h.engine.stats().vnis.find((v) => v.vni === 10)!;
    t.match(s10, { tap: 'gw1', tapUp: false });
    t.equal(h.fdb.list(0, 10).length, 0);
    t.equal([...h.fdb.listChunks(0, 10, 512, { flood: true })][0][0].source, 'ovsdb');
    h.engine.addVni({ vni: 11, tap: null, remotes: [] });
    t.equal(h.engine.stats().vnis.find((v) => v.vni === 11)!.tap, '-');

    // Frames from a port with no VNI are counted.
    h.engine.unboundReceived(5, h.clock.now);
    t.equal(h.engine.stats().drops.port_unbound, 5);
  },
);

t.test(
  'TAP offloads: super-frames cut into segments, checksums finished, bad requests dropped',
  async (t) => {
    const net = new FakeNetwork();
    const underlay = net.bind(LOCAL, 4789);
    const peer = net.bind(PEER_A, 4789);
    const got: Buffer[] = [];
    peer.start(
      (n) => {
        for (let i = 0; i < n; i++) got.push(Buffer.from(peer.rx.frame(i)));
      },
      () => {},
    );
    const tap = new FakeTap('off0', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
    const remotes = new Remotes();
    const engine = new Engine({ underlay, fdb: new Fdb(), underlayMtu: 1500 });
    engine.addVni({ vni: 7, tap, remotes: [remotes.get(PEER_A)], mtu: 1450 });
    tap.start(
      (n) => engine.tapReceived(7, n, 0),
      () => {},
    );
    /** The peer takes 64 a turn: wait until nothing more comes. */
    const drained = async () => {
      for (let last = -1; last !== got.length;) {
        last = got.length;
        await settle();
      }
    };
    const meta = (h: Parameters<typeof writeVnetHdr>[2]) => {
      const m = new Uint8Array(VNET_HDR_LEN);
      writeVnetHdr(m, 0, h);
      return m;
    };
    const payload = Uint8Array.from({ length: 60_000 }, (_, i) => (i * 7) & 0xff);
    const sf = superFrame({
      v: 4,
      vlan: false,
      ipOptions: 0,
      tcpOptions: 3,
      payload,
      mss: 1398,
      seq: 1000,
      flags: 0x18,
      id: 1,
    });
    tap.inject(sf.frame, meta(sf.hdr));
    await settle();
    const n = Math.ceil(60_000 / 1398);
    t.equal(got.length, n, `one 64 KB super-frame: ${n} datagrams`);
    const inner = got.map((d) => {
      const r = decapsulate(d);
      return typeof r === 'number' ? Buffer.alloc(0) : Buffer.from(r.frame);
    });
    t.ok(
      inner.every((f) => f.length <= 1450 + 14),
      'no segment over the MTU',
    );
    t.same(
      Buffer.concat(inner.map((f) => f.subarray(sf.hdr.hdrLen))),
      Buffer.from(payload),
      'the byte stream arrives whole and in order',
    );
    t.ok(
      inner.every((f) => checksum(f, 14, 20) === 0),
      'every IPv4 header checksum verifies',
    );
    t.match(engine.stats().offload, { superFrames: 1, segments: n, checksums: 0 });

    // Many super-frames in one batch overflow the segment slab: what is queued goes first.
    got.length = 0;
    for (let k = 0; k < 20; k++) tap.inject(sf.frame, meta(sf.hdr));
    await drained();
    t.equal(got.length, 20 * n, 'twenty super-frames, every segment sent');

    // A frame with a partial checksum only: finished in place.
    got.length = 0;
    const small = superFrame({ ...sfSpec(), payload: new Uint8Array(100) });
    small.frame.writeUInt16BE(0x1234, small.l4 + 16); // a partial sum, wrong as a final checksum
    tap.inject(small.frame, meta({ ...small.hdr, gsoType: 0, gsoSize: 0 }));
    await settle();
    const f = decapsulate(got[0]);
    const fr = typeof f === 'number' ? Buffer.alloc(0) : Buffer.from(f.frame);
    t.not(fr.readUInt16BE(small.l4 + 16), 0x1234, 'the checksum field was finished');
    t.equal(engine.stats().offload.checksums, 1);

    // What cannot be done is dropped and counted.
    tap.inject(small.frame, meta({ ...small.hdr, gsoType: 3 })); // UDP fragmentation offload
    tap.inject(small.frame, meta({ ...small.hdr, gsoType: 0, csumStart: 5000 }));
    tap.inject(Buffer.alloc(200), meta({ ...small.hdr })); // not IP at all
    await settle();
    t.equal(engine.stats().drops.offload_invalid, 3);
    // A header with no flags and no GSO: an ordinary frame.
    got.length = 0;
    await drained();
    got.length = 0;
    tap.inject(frame(VM_A, VM_B, 100), new Uint8Array(VNET_HDR_LEN));
    await drained();
    t.equal(got.length, 1);
  },
);

function sfSpec() {
  return {
    v: 4 as const,
    vlan: false,
    ipOptions: 0,
    tcpOptions: 0,
    payload: new Uint8Array(0),
    mss: 1398,
    seq: 1,
    flags: 0x18,
    id: 1,
  };
}

t.test('UDP GSO: a super-frame to a known remote leaves in a few sends; fallbacks', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789);
  const peer = net.bind(PEER_A, 4789, { batchSize: 1024 });
  const other = net.bind(PEER_C, 4789, { batchSize: 1024 });
  const got: Buffer[] = [];
  peer.start(
    (n) => {
      for (let i = 0; i < n; i++) got.push(Buffer.from(peer.rx.frame(i)));
    },
    () => {},
  );
  other.start(
    () => {},
    () => {},
  );
  const drained = async () => {
    for (let last = -1; last !== got.length;) {
      last = got.length;
      await settle();
    }
  };
  const tap = new FakeTap('gso0', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
  const remotes = new Remotes();
  const logs: string[] = [];
  const gso = new FakeGso(underlay);
  const fdb = new Fdb();
  const engine = new Engine({
    underlay,
    fdb,
    gso,
    log: (_l, event) => logs.push(event),
  });
  engine.addVni({ vni: 3, tap, remotes: [remotes.get(PEER_A), remotes.get(PEER_C)], mtu: 1450 });
  tap.start(
    (n) => engine.tapReceived(3, n, 0),
    () => {},
  );
  const meta = (h: Parameters<typeof writeVnetHdr>[2]) => {
    const m = new Uint8Array(VNET_HDR_LEN);
    writeVnetHdr(m, 0, h);
    return m;
  };
  const payload = Uint8Array.from({ length: 64_000 }, (_, i) => (i * 13) & 0xff);
  const sf = superFrame({ ...sfSpec(), payload, tcpOptions: 3 });
  const dstMac = sf.frame.readUIntBE(0, 6);
  // Unknown destination: flooded one by one, not by GSO.
  tap.inject(sf.frame, meta(sf.hdr));
  await drained();
  t.equal(gso.calls.length, 0, 'a flood does not go by GSO');
  const n = Math.ceil(64_000 / 1398);
  t.equal(got.length, n);
  // Known: by GSO, in sends of at most 64 KiB.
  fdb.addStatic(3, dstMac, remotes.get(PEER_A), 0);
  got.length = 0;
  tap.inject(sf.frame, meta(sf.hdr));
  await drained();
  t.equal(gso.calls.length, 2, '64 KB of segments: two sends under 64 KiB each');
  t.ok(gso.calls.every((c) => c.length <= 65000 && c.segSize === 8 + sf.hdr.hdrLen + 1398));
  t.equal(got.length, n, 'the same datagrams arrive');
  const inner = got.map((d) => {
    const r = decapsulate(d);
    return typeof r === 'number' ? Buffer.alloc(0) : Buffer.from(r.frame);
  });
  t.same(
    Buffer.concat(inner.map((f) => f.subarray(sf.hdr.hdrLen))),
    Buffer.from(payload),
    'the byte stream, whole',
  );
  t.ok(inner.every((f) => checksum(f, 14, 20) === 0));
  const s = engine.stats();
  t.match(s.offload, { gsoSends: 2 });
  t.equal(s.vnis[0].tx.packets, 3 * n, 'flooded to two remotes, then once by GSO');

  // Many at once: the segment slab fills and starts over.
  got.length = 0;
  for (let k = 0; k < 20; k++) tap.inject(sf.frame, meta(sf.hdr));
  await drained();
  t.equal(got.length, 20 * n, 'twenty super-frames by GSO');
  // A full queue drops what that send held, counted.
  gso.fail = 11;
  tap.inject(sf.frame, meta(sf.hdr));
  await drained();
  t.equal(engine.stats().drops.underlay_queue_full, n);
  // The kernel refuses GSO: said once, then the segments go one by one.
  gso.fail = 5;
  tap.inject(sf.frame, meta(sf.hdr));
  await drained();
  t.ok(logs.includes('gso_off'));
  gso.fail = undefined;
  const calls = gso.calls.length;
  got.length = 0;
  tap.inject(sf.frame, meta(sf.hdr));
  await drained();
  t.equal(gso.calls.length, calls, 'GSO not tried again');
  t.equal(got.length, n, 'segments still arrive');
});

t.test(
  'USO: a UDP super-frame from the VM leaves by UDP GSO as the datagrams it holds',
  async (t) => {
    const net = new FakeNetwork();
    const underlay = net.bind(LOCAL, 4789);
    const peer = net.bind(PEER_A, 4789, { batchSize: 1024 });
    const got: Buffer[] = [];
    peer.start(
      (n) => {
        for (let i = 0; i < n; i++) got.push(Buffer.from(peer.rx.frame(i)));
      },
      () => {},
    );
    const tap = new FakeTap('uso0', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
    const remotes = new Remotes();
    const gso = new FakeGso(underlay);
    const fdb = new Fdb();
    const engine = new Engine({ underlay, fdb, gso });
    engine.addVni({ vni: 3, tap, remotes: [remotes.get(PEER_A)], mtu: 1450 });
    tap.start(
      (n) => engine.tapReceived(3, n, 0),
      () => {},
    );
    const meta = new Uint8Array(VNET_HDR_LEN);
    const payload = Uint8Array.from({ length: 30_000 }, (_, i) => (i * 11) & 0xff);
    for (const v of [4, 6] as const) {
      const sf = superFrame({ ...sfSpec(), v, payload, mss: 1200, udp: true });
      writeVnetHdr(meta, 0, sf.hdr);
      const n = Math.ceil(30_000 / 1200);
      // unknown destination: flooded, one by one; known: by GSO
      for (const known of [false, true]) {
        if (known) fdb.addStatic(3, sf.frame.readUIntBE(0, 6), remotes.get(PEER_A), 0);
        got.length = 0;
        const calls = gso.calls.length;
        tap.inject(sf.frame, meta);
        await settle();
        t.equal(
          gso.calls.length - calls,
          known ? 1 : 0,
          `IPv${v}, ${known ? 'by GSO' : 'flooded'}`,
        );
        t.equal(got.length, n, `IPv${v}: ${n} datagrams`);
        const inner = got.map((d) => {
          const r = decapsulate(d);
          return typeof r === 'number' ? Buffer.alloc(0) : Buffer.from(r.frame);
        });
        t.same(
          Buffer.concat(inner.map((f) => f.subarray(sf.l4 + 8))),
          Buffer.from(payload),
          'each datagram a piece of the send, in order',
        );
        t.ok(
          inner.every((f) => f.readUInt16BE(sf.l4 + 4) === f.length - sf.l4),
          'UDP lengths their own',
        );
        const pseudo = (f: Buffer) =>
          v === 4
            ? f.readUInt16BE(26) +
              f.readUInt16BE(28) +
              f.readUInt16BE(30) +
              f.readUInt16BE(32) +
              17 +
              (f.length - sf.l4)
            : ipv6PseudoSum(f.subarray(22, 38), f.subarray(38, 54), 17, f.length - sf.l4);
        t.ok(
          inner.every((f) => checksum(f, sf.l4, f.length - sf.l4, pseudo(f)) === 0),
          'every UDP checksum verifies',
        );
      }
      fdb.flush({ vni: 3 });
    }
    t.match(engine.stats().offload, { superFrames: 4, segments: 4 * 25 });
    t.equal(engine.stats().drops.offload_invalid ?? 0, 0);
  },
);

t.test('UDP GSO: other refusals, and segments too big for the path', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789);
  const tap = new FakeTap('gso1', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
  const remotes = new Remotes();
  const gso = new FakeGso(underlay);
  const fdb = new Fdb();
  const engine = new Engine({ underlay, fdb, gso, underlayMtu: 1200 });
  engine.addVni({ vni: 4, tap, remotes: [remotes.get(PEER_A)], mtu: 1450 });
  tap.start(
    (n) => engine.tapReceived(4, n, 0),
    () => {},
  );
  const sf = superFrame({ ...sfSpec(), payload: new Uint8Array(5000) });
  fdb.addStatic(4, sf.frame.readUIntBE(0, 6), remotes.get(PEER_A), 0);
  const m = new Uint8Array(VNET_HDR_LEN);
  writeVnetHdr(m, 0, sf.hdr);
  tap.inject(sf.frame, m);
  await settle();
  t.equal(gso.calls.length, 0, 'segments over the path MTU: not by GSO');
  t.ok(engine.stats().drops.path_mtu_exceeded > 0, 'answered as too big, one by one');
  engine.configure({ underlayMtu: 1500 });
  gso.fail = 90;
  tap.inject(sf.frame, m);
  await settle();
  t.equal(engine.stats().drops.underlay_send_failed, 4, 'EMSGSIZE: that send is lost, counted');
  gso.fail = undefined;
  tap.inject(sf.frame, m);
  await settle();
  t.equal(gso.calls.length, 1, 'and GSO stays on');
  // A super-frame that cannot be cut is left to the other path, which drops it.
  const bad = Buffer.from(sf.frame);
  bad[14 + 9] = 17;
  tap.inject(bad, m);
  await settle();
  t.equal(engine.stats().drops.offload_invalid, 1);
});

t.test(
  'decap: consecutive TCP segments of a flow are written into the TAP as one frame',
  async (t) => {
    const net = new FakeNetwork();
    const underlay = net.bind(LOCAL, 4789);
    const peer = net.bind(PEER_A, 4789);
    const tap = new FakeTap('gro0', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
    const plain = new FakeTap('gro1');
    const remotes = new Remotes();
    const engine = new Engine({ underlay, fdb: new Fdb() });
    engine.addVni({ vni: 5, tap, remotes: [remotes.get(PEER_A)], mtu: 1450 });
    engine.addVni({ vni: 6, tap: plain, remotes: [remotes.get(PEER_A)], mtu: 1450 });
    underlay.start(
      (n) => engine.underlayReceived(n, 0),
      () => {},
    );
    const payload = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 5) & 0xff);
    const sf = superFrame({ ...sfSpec(), payload, flags: 0x18 });
    const segs = Buffer.alloc(1 << 20);
    const out = { offsets: new Uint32Array(64), lengths: new Uint32Array(64) };
    const n = segment(sf.frame, 0, sf.frame.length, sf.hdr, segs, 0, segs.length, 0, out);
    const seg = (k: number) => segs.subarray(out.offsets[k], out.offsets[k] + out.lengths[k]);
    // An ARP-ish frame first, then the flow's segments, then another flow's segment.
    underlay.receive(vxlan(5, frame(VM_B, VM_A, 60)), peer);
    for (let k = 0; k < n; k++) underlay.receive(vxlan(5, seg(k)), peer);
    const other = Buffer.from(seg(0));
    other.writeUInt16BE(40001, 34); // another source port: another flow
    underlay.receive(vxlan(5, other), peer);
    // The same segments to a TAP without a virtio-net header: written one by one.
    for (let k = 0; k < n; k++) underlay.receive(vxlan(6, seg(k)), peer);
    await settle();
    t.equal(tap.written.length, 3, 'the first frame, the coalesced flow, the other flow');
    t.equal(tap.writtenMeta[0], null, 'as they are: a zeroed header');
    const big = tap.written[1];
    t.equal(big.length, sf.frame.length, `${n} segments as one ${big.length}-byte frame`);
    t.same(big.subarray(sf.hdr.hdrLen), Buffer.from(payload), 'the stream whole');
    const m = readVnetHdr(tap.writtenMeta[1]!, 0, emptyVnetHdr());
    t.match(m, { flags: 1, gsoType: 1, gsoSize: 1398, csumStart: 34, csumOffset: 16 });
    t.equal(plain.written.length, n, 'no virtio-net header: no coalescing');
    const s = engine.stats();
    t.match(s.offload, { coalesced: 1, coalescedSegments: n });
    t.equal(s.vnis[0].rx.packets, n + 2, 'rx counts the segments');
    // A TAP that refuses the coalesced frame: its segments count as failed writes.
    tap.write = (_slab, b) => {
      b.status[0] = TxStatus.REFUSED;
      return 0;
    };
    for (let k = 0; k < n; k++) underlay.receive(vxlan(5, seg(k)), peer);
    await settle();
    t.equal(engine.stats().vnis[0].drops.tap_write_failed, n);
  },
);

t.test(
  'decap: a segment whose checksum is wrong is not coalesced; it goes alone, counted',
  async (t) => {
    const net = new FakeNetwork();
    const underlay = net.bind(LOCAL, 4789);
    const peer = net.bind(PEER_A, 4789);
    const tap = new FakeTap('gro2', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
    const remotes = new Remotes();
    const engine = new Engine({ underlay, fdb: new Fdb() });
    engine.addVni({ vni: 5, tap, remotes: [remotes.get(PEER_A)], mtu: 1450 });
    underlay.start(
      (n) => engine.underlayReceived(n, 0),
      () => {},
    );
    const payload = Uint8Array.from({ length: 1000 * 8 }, (_, i) => (i * 7) & 0xff);
    const sf = superFrame({ ...sfSpec(), payload, mss: 1000, flags: 0x10 });
    const segs = Buffer.alloc(1 << 20);
    const out = { offsets: new Uint32Array(64), lengths: new Uint32Array(64) };
    const n = segment(sf.frame, 0, sf.frame.length, sf.hdr, segs, 0, segs.length, 0, out);
    t.equal(n, 8);
    const seg = (k: number) =>
      Buffer.from(segs.subarray(out.offsets[k], out.offsets[k] + out.lengths[k]));
    const sent = Array.from({ length: n }, (_, k) => seg(k));
    sent[2][sf.hdr.hdrLen + 10] ^= 0x40; // payload changed on the way: TCP checksum wrong
    sent[5][14 + 10] ^= 0x01; // IPv4 header checksum wrong
    sent[7][sf.hdr.hdrLen] ^= 0x01; // the last one
    for (const f of sent) underlay.receive(vxlan(5, f), peer);
    await settle();
    t.same(
      tap.written.map((f, i) => [
        f.length === sent[0].length ? 'seg' : f.length,
        tap.writtenMeta[i]?.[0] ?? 0,
      ]),
      [
        [sf.hdr.hdrLen + 2000, 1], // 0 and 1 coalesced, checksum partial
        ['seg', 0], // 2 alone, untouched: the guest verifies and drops it
        [sf.hdr.hdrLen + 2000, 1], // 3 and 4
        ['seg', 0], // 5
        ['seg', 0], // 6: alone, as a run of one is
        ['seg', 0], // 7
      ],
      'frames in order: coalesced, bad alone, coalesced, bad alone, good, bad',
    );
    t.same(tap.written[1], sent[2], 'the bad segment is delivered byte for byte as it came');
    t.same(tap.written[3], sent[5]);
    t.same(tap.written[5], sent[7]);
    t.same(
      tap.written[2].subarray(sf.hdr.hdrLen),
      Buffer.from(payload.subarray(3000, 5000)),
      'the good ones after a bad one coalesce again',
    );
    const s = engine.stats();
    t.match(s.offload, { coalesced: 2, coalescedSegments: 4, checksumBad: 3 });
    t.equal(s.vnis[0].rx.packets, n, 'every segment reached the TAP');
    t.equal(
      Object.values(s.drops).reduce((a, b) => a + b, 0),
      0,
      'not a drop: the guest decides',
    );
  },
);

t.test('UDP GRO: a slot of coalesced datagrams is taken apart, each checked alone', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789, { withSegs: true, slotSize: 8192 });
  const peer = net.bind(PEER_A, 4789);
  const remotes = new Remotes();
  const tap = new FakeTap('gro0');
  const engine = new Engine({ underlay, fdb: new Fdb() });
  engine.addVni({ vni: 7, tap, remotes: [remotes.get(PEER_A)] });
  underlay.start(
    (n) => engine.underlayReceived(n, 0),
    () => {},
  );
  const inner = (k: number, size = 100) => frame(VM_B, VM_A, size, k);
  // five of one size, one of another VNI among them, and a shorter last one
  const datagrams = [1, 2, 3].map((k) => vxlan(7, inner(k)));
  datagrams.push(vxlan(8, inner(4)), vxlan(7, inner(5)));
  underlay.receiveCoalesced([...datagrams, vxlan(7, inner(6, 60))], peer);
  // and a slot the kernel did not coalesce
  underlay.receive(vxlan(7, inner(7)), peer);
  await settle();
  t.same(
    tap.written.map((f) => `${f.length}:${f[20]}`),
    ['100:1', '100:2', '100:3', '100:5', '60:6', '100:7'],
    'every datagram of the slot decapsulated in order; the one of another VNI dropped alone',
  );
  const s = engine.stats();
  t.match(s.offload, { groDatagrams: 1, groSegments: 6 });
  t.equal(s.drops.vni_unknown, 1);
  t.equal(s.vnis[0].rx.packets, 6);
});
