// `vtep trace` in the engine: for any frame, the verdict of the trace is what the data path then
// actually does with the same frame, and the trace itself changes nothing.
import fc from 'fast-check';
import t from 'tap';
import type { Harness } from './harness.js';
import { arpFrame, frame, harness, ndFrame, settle, vxlan, PEER_A, PEER_C } from './harness.js';
import { key6 } from '../../src/engine/neigh.js';
import { ipv6Bytes } from '../../src/io/addr.js';
import type { TraceVerdict } from '../../src/engine/engine.js';
import { ENGINE_DROP_REASONS, dropReasonName } from '../../src/wire/drop.js';
import { writeMac } from '../../src/wire/mac.js';

const VNI = 5000;
const VM_A = 0x525400000001; // learned behind PEER_A
const VM_B = 0x525400000002; // behind our TAP
const VM_S = 0x525400000005; // static, at PEER_C
const OWN = 0x02000000aaaa; // the VNI's own MAC
const BCAST = 0xffffffffffff;
const MCAST = 0x01005e000001;
const UNKNOWN = 0x0200000000ee;
const IP_A = 0x0a000001;
const IP_B = 0x0a000002;
const IP_UNKNOWN = 0x0a000009;
const A = `${PEER_A}:4789`;
const C = `${PEER_C}:4789`;

async function setup(): Promise<Harness> {
  const h = harness([{ vni: VNI, ownMacs: [OWN], suppressArp: true, mtu: 1500 }], {
    underlayMtu: 1500,
  });
  h.underlay.receive(vxlan(VNI, frame(VM_B, VM_A, 60)), h.peerA);
  h.fdb.addStatic(VNI, VM_S, h.remotes.get(PEER_C), 0);
  h.engine.learnNeighbour(VNI, IP_A, VM_A, h.clock.now);
  await settle();
  return h;
}

/** Everything a trace could touch, as text: counters, per-remote counters, the table. */
function state(h: Harness): string {
  return JSON.stringify([h.engine.stats(h.clock.now), h.fdb.list(h.clock.now)]);
}

/** What the data path did with one input: run it and look at the counters, inboxes and TAP. */
async function actual(h: Harness, run: () => void): Promise<TraceVerdict> {
  const drops = Float64Array.from(h.engine.drops);
  const inA = h.inbox.get(PEER_A)!.length;
  const inC = h.inbox.get(PEER_C)!.length;
  const tap = h.taps.get(VNI)!;
  const written = tap.written.length;
  run();
  await settle();
  const reasons = ENGINE_DROP_REASONS.filter((r) => h.engine.drops[r] > drops[r]);
  const to = [
    ...(h.inbox.get(PEER_A)!.length > inA ? [A] : []),
    ...(h.inbox.get(PEER_C)!.length > inC ? [C] : []),
  ];
  const wrote = tap.written.length > written;
  if (reasons.length === 1 && to.length === 0 && !wrote)
    return { action: 'drop', reason: dropReasonName(reasons[0]) };
  if (to.length > 0 && reasons.length === 0) return { action: 'send', remotes: to, flooded: false };
  if (wrote && reasons.length === 0) return { action: 'deliver', tap: tap.name };
  return {
    action: 'drop',
    reason: `unclear: drops ${reasons.map(dropReasonName).join(',')} sent ${to} wrote ${wrote}`,
  };
}

/** A trace verdict in the terms `actual` can see (an answer is a write into the TAP). */
function seen(v: TraceVerdict, tap: string): TraceVerdict {
  if (v.action === 'answer') return { action: 'deliver', tap };
  if (v.action === 'send') return { ...v, flooded: false };
  return v;
}

async function check(
  h: Harness,
  input: { tap: Buffer } | { from: 'A' | 'C' | 'stranger'; datagram: Buffer },
) {
  const before = state(h);
  const tr =
    'tap' in input
      ? h.engine.trace({ from: 'tap', vni: VNI, frame: input.tap }, h.clock.now)
      : h.engine.trace(
          {
            from: 'remote',
            address: { A: PEER_A, C: PEER_C, stranger: '192.0.2.99' }[input.from],
            port: 4789,
            datagram: input.datagram,
          },
          h.clock.now,
        );
  const unchanged = state(h) === before;
  const real = await actual(h, () => {
    if ('tap' in input) h.taps.get(VNI)!.inject(input.tap);
    else
      h.underlay.receive(
        input.datagram,
        { A: h.peerA, C: h.peerC, stranger: h.stranger }[input.from],
      );
  });
  return {
    unchanged,
    trace: tr,
    real,
    same: JSON.stringify(seen(tr.verdict, `vx${VNI}`)) === JSON.stringify(real),
  };
}

t.test('a table of frames: the trace says what the data path does', async (t) => {
  const h = await setup();
  const big = frame(VM_A, VM_B, 1490);
  const cases: [string, Parameters<typeof check>[1], RegExp][] = [
    [
      'known unicast',
      { tap: frame(VM_A, VM_B, 100) },
      /fdb: 52:54:00:00:00:01 at 192\.0\.2\.1:4789 \(learned/,
    ],
    ['static entry', { tap: frame(VM_S, VM_B, 100) }, /at 192\.0\.2\.3:4789 \(static\)/],
    ['unknown unicast', { tap: frame(UNKNOWN, VM_B, 100) }, /unknown, flooded/],
    [
      'broadcast',
      { tap: frame(BCAST, VM_B, 60) },
      /flood list: 192\.0\.2\.1:4789, 192\.0\.2\.3:4789/,
    ],
    ['too big for the path', { tap: big }, /path_mtu_exceeded/],
    ['suppressed ARP', { tap: arpFrame(1, BCAST, VM_B, IP_B, IP_A) }, /answered into the TAP/],
    [
      'ARP for an unknown address',
      { tap: arpFrame(1, BCAST, VM_B, IP_B, IP_UNKNOWN) },
      /not known, flooded/,
    ],
    ['from a remote', { from: 'A', datagram: vxlan(VNI, frame(VM_B, VM_A, 80)) }, /refreshed/],
    [
      'a new MAC from a remote',
      { from: 'C', datagram: vxlan(VNI, frame(VM_B, 0x52540000000c, 80)) },
      /would be learned at 192\.0\.2\.3/,
    ],
    [
      'a move',
      { from: 'C', datagram: vxlan(VNI, frame(VM_B, VM_A, 80)) },
      /would move from 192\.0\.2\.1:4789/,
    ],
    [
      'from a non-remote',
      { from: 'stranger', datagram: vxlan(VNI, frame(VM_B, VM_A, 80)) },
      /sender_not_remote/,
    ],
    [
      'our own MAC back',
      { from: 'A', datagram: vxlan(VNI, frame(VM_B, OWN, 80)) },
      /own_source_mac/,
    ],
    ['an unknown VNI', { from: 'A', datagram: vxlan(77, frame(VM_B, VM_A, 80)) }, /vni_unknown/],
  ];
  for (const [name, input, text] of cases) {
    const r = await check(h, input);
    t.ok(r.unchanged, `${name}: the trace changed nothing`);
    t.ok(
      r.same,
      `${name}: trace ${JSON.stringify(r.trace.verdict)}, real ${JSON.stringify(r.real)}`,
    );
    t.match(
      r.trace.steps.map((s) => `${s.step}: ${s.result}`).join('\n'),
      text,
      `${name}: says why`,
    );
  }
  const ans = h.engine.trace(
    { from: 'tap', vni: VNI, frame: arpFrame(1, BCAST, VM_B, IP_B, IP_A) },
    h.clock.now,
  );
  t.same(ans.verdict, { action: 'answer', mac: '52:54:00:00:00:01' });
  const uni = h.engine.trace({ from: 'tap', vni: VNI, frame: frame(BCAST, VM_B, 60) }, h.clock.now);
  t.same(uni.verdict, { action: 'send', remotes: [A, C], flooded: true });
  t.match(uni.steps.at(-1), {
    step: 'outer',
    result:
      /^to 192\.0\.2\.1:4789, 192\.0\.2\.3:4789, source port .*, ttl default \(64\), tos 0x02, df set$/,
  });
});

t.test(
  'property: for any frame, trace verdict == real verdict, and the trace changes nothing',
  async (t) => {
    const h = await setup();
    const mac = fc.constantFrom(VM_A, VM_B, VM_S, OWN, BCAST, MCAST, UNKNOWN, 0x52540000000c, 0);
    const plain = fc.record({
      dst: mac,
      src: mac,
      size: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 1400, max: 1530 })),
    });
    const arp = fc.record({ target: fc.constantFrom(IP_A, IP_B, IP_UNKNOWN), src: mac });
    const input = fc.oneof(
      plain.map((p) => ({ tap: bytes(p) })),
      arp.map((a) => ({ tap: arpFrame(1, BCAST, a.src, IP_B, a.target) })),
      fc
        .record({
          from: fc.constantFrom('A' as const, 'C' as const, 'stranger' as const),
          p: plain,
          vni: fc.constantFrom(VNI, VNI, VNI, 77),
          flags: fc.constantFrom(0x08, 0x08, 0x08, 0x00, 0x88),
        })
        .map((d) => {
          const g = vxlan(d.vni, bytes(d.p));
          g[0] = d.flags;
          return { from: d.from, datagram: g };
        }),
    );
    let runs = 0;
    const kinds = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(input, async (i) => {
        runs++;
        h.clock.now += 10;
        const r = await check(h, i);
        const v = r.trace.verdict;
        const kind = v.action === 'drop' ? v.reason : v.action;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        if (!r.same) t.comment(`${JSON.stringify(r.trace)} vs ${JSON.stringify(r.real)}`);
        return r.same;
      }),
      { numRuns: 300 },
    );
    t.ok(runs >= 300, `${runs} frames`);
    t.comment(JSON.stringify(Object.fromEntries(kinds)));
    for (const k of [
      'send',
      'answer',
      'deliver',
      'path_mtu_exceeded',
      'sender_not_remote',
      'vni_unknown',
      'own_source_mac',
      'ethernet_truncated',
    ])
      t.ok(kinds.has(k), `the frames reached ${k}`);
  },
);

/** A frame of `size` bytes (a short one is cut, header and all). */
function bytes(p: { dst: number; src: number; size: number }): Buffer {
  const f = Buffer.alloc(Math.max(14, p.size), 0x42);
  writeMac(f, 0, p.dst);
  writeMac(f, 6, p.src);
  f.writeUInt16BE(0x88b5, 12);
  return f.subarray(0, p.size);
}

t.test('every decision is named', async (t) => {
  const says = (steps: { step: string; result: string }[]) =>
    steps.map((s) => `${s.step}: ${s.result}`).join('\n');
  // learning off, a learnRemotes VNI, a VNI whose table is full, our own MACs and ECN
  const h = harness(
    [
      { vni: 1, learning: false, remotes: [PEER_A] },
      { vni: 2, learnRemotes: true, remotes: [] },
      { vni: 3, maxEntries: 1, remotes: [PEER_A, PEER_C], suppressArp: true },
    ],
    { underlayMtu: 1500, invalidSourceMac: 'deliver' },
  );
  const run = async (
    vni: number,
    from: 'A' | 'C' | 'stranger',
    inner: Buffer,
    outerTos?: number,
  ) => {
    const address = { A: PEER_A, C: PEER_C, stranger: '192.0.2.99' }[from];
    const tr = h.engine.trace(
      { from: 'remote', address, port: 4789, datagram: vxlan(vni, inner), outerTos },
      h.clock.now,
    );
    return tr;
  };
  t.match(says((await run(1, 'A', frame(VM_B, VM_A))).steps), /learning is off/);
  const learned = await run(2, 'stranger', frame(VM_B, VM_A));
  t.match(
    says(learned.steps),
    /192\.0\.2\.99: not known, accepted \(learnRemotes\) as 192\.0\.2\.99:4789/,
  );
  t.same(learned.verdict, { action: 'deliver', tap: 'vx2' });
  t.match(says((await run(3, 'A', frame(VM_B, MCAST))).steps), /is not learned \(invalid_mac\)/);
  // VNI 3 holds one entry: a learned one is evicted for a new MAC; a static one is not
  h.underlay.receive(vxlan(3, frame(VM_B, VM_A)), h.peerA);
  await settle();
  t.match(
    says((await run(3, 'C', frame(VM_B, VM_S))).steps),
    /evicting 52:54:00:00:00:01 of vni 3/,
  );
  h.fdb.flush({ vni: 3 });
  h.fdb.addStatic(3, VM_S, h.remotes.get(PEER_C), 0);
  t.match(says((await run(3, 'A', frame(VM_B, VM_A))).steps), /full of static entries/);
  t.match(says((await run(3, 'A', frame(VM_B, VM_S))).steps), /has a static entry: not learned/);
  // ECN (RFC 6040): CE over not-ECT is dropped; CE over ECT(0) marks
  const ip = (ecn: number) => {
    const f = frame(VM_B, VM_A, 60);
    f[15] = ecn;
    return f;
  };
  t.same((await run(3, 'A', ip(0), 3)).verdict, { action: 'drop', reason: 'ecn_ce_not_ect' });
  t.match(says((await run(3, 'A', ip(2), 3)).steps), /ecn: outer 3, inner 2/);
  t.match(
    says((await run(3, 'A', ip(0), 1)).steps),
    /\(unexpected\)/,
    'outer ECT(1) over not-ECT: unexpected',
  );
  // from the TAP: an unknown VNI, a frame over the TAP's size, an empty flood list, ND
  const fromTap = (vni: number, f: Buffer) =>
    h.engine.trace({ from: 'tap', vni, frame: f }, h.clock.now);
  t.same(fromTap(9, frame(BCAST, VM_B)).verdict, { action: 'drop', reason: 'vni_unknown' });
  t.same(fromTap(3, frame(BCAST, VM_B, 3000)).verdict, { action: 'drop', reason: 'frame_too_big' });
  t.same(fromTap(2, frame(BCAST, VM_B)).verdict, { action: 'drop', reason: 'no_remote' });
  h.engine.learnNeighbour(3, key6(ipv6Bytes('fd00::1')), VM_A, h.clock.now);
  const ns = fromTap(3, ndFrame(135, 0x3333ff000001, VM_B, 'fd00::2', 'fd00::1'));
  t.same(ns.verdict, { action: 'answer', mac: '52:54:00:00:00:01' });
  t.match(says(ns.steps), /nd neighbor-solicitation for fd00::1: known at 52:54:00:00:00:01/);
  const nsUnknown = fromTap(3, ndFrame(135, 0x3333ff000009, VM_B, 'fd00::2', 'fd00::9'));
  t.match(says(nsUnknown.steps), /fd00::9: not known, flooded/);
});

t.test('a narrow path towards one remote', async (t) => {
  const h = harness([{ vni: 4, remotes: [PEER_A, PEER_C] }], { underlayMtu: 1500 });
  // a router on the way to C answered "fragmentation needed": the kernel knows 1300 bytes
  h.net.pathMtus.set(PEER_C, 1300);
  h.taps.get(4)!.inject(frame(BCAST, VM_B, 1400));
  await settle();
  const tr = h.engine.trace({ from: 'tap', vni: 4, frame: frame(BCAST, VM_B, 1400) }, h.clock.now);
  t.match(
    tr.steps.map((s) => s.result).join('\n'),
    /towards 192\.0\.2\.3:4789 carries \d+: 1400 bytes do not fit/,
  );
  t.same(tr.verdict, { action: 'send', remotes: [A], flooded: true });
});
