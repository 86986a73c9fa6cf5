// A narrower underlay path towards one remote, as the kernel learns it from an underlay router's
// ICMP: the send that fails with EMSGSIZE (or UDP GSO's EINVAL) makes the engine ask for the path
// MTU, answer the inner sender with it, and keep answering without sending; other remotes keep
// the link's width; the entry is asked again when due and dropped when the path is wide again.
import t from 'tap';
import { Engine } from '../../src/engine/engine.js';
import { PATH_RECHECK_MS, Paths } from '../../src/engine/paths.js';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { FakeNetwork, FakeTap } from '../../src/io/testdevices.js';
import { checksum } from '../../src/wire/checksum.js';
import { VNET_HDR_LEN, writeVnetHdr } from '../../src/wire/gso.js';
import { superFrame } from '../../src/wire/testframes.js';
import { FakeGso, LOCAL, PEER_A, PEER_C, frame, harness, settle } from './harness.js';

const VM_A = 0x525400000001; // behind PEER_A
const VM_B = 0x525400000002; // on our TAP
const BCAST = 0xffffffffffff;

/** An IPv4 frame of `size` bytes from VM_B to `dst`, DF set unless said. */
function ip4(dst: number, size: number, df = true): Buffer {
  const f = frame(dst, VM_B, size);
  f.fill(0, 14, 34);
  f[14] = 0x45;
  f.writeUInt16BE(size - 14, 16);
  f.writeUInt16BE(df ? 0x4000 : 0, 20);
  f[22] = 64;
  f[23] = 17;
  f.writeUInt32BE(0x0a000002, 26);
  f.writeUInt32BE(0x0a000001, 30);
  f.writeUInt16BE(checksum(f, 14, 20), 24);
  return f;
}

/** The next-hop MTU of the ICMP "fragmentation needed" written into the TAP, or -1. */
function icmpMtu(f: Buffer): number {
  return f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f[34] === 3 && f[35] === 4
    ? f.readUInt16BE(40)
    : -1;
}

t.test('a narrow path towards one remote: learned on EMSGSIZE, answered, re-asked', async (t) => {
  const h = harness([{ vni: 5, mtu: 1500 }], { underlayMtu: 1500 });
  const tap = h.taps.get(5)!;
  h.fdb.learn(5, VM_A, h.remotes.get(PEER_A), h.clock.now);
  // an underlay router told the kernel: 1400 towards PEER_A
  h.net.pathMtus.set(PEER_A, 1400);
  const max = 1400 - 20 - 8 - 8;

  tap.inject(ip4(VM_A, 1300));
  tap.inject(ip4(VM_A, 1450));
  await settle();
  t.equal(h.inbox.get(PEER_A)!.length, 1, 'the frame that fits the path goes');
  t.equal(tap.written.length, 1, 'the one that does not is answered');
  t.equal(icmpMtu(tap.written[0]), max - 14, 'with the path MTU less our overhead');
  let s = h.engine.stats();
  t.same(s.narrowPaths, { [`${PEER_A}:4789`]: max }, 'the narrow path is in stats');
  t.equal(s.drops.path_mtu_exceeded, 1, 'counted as path_mtu_exceeded');
  t.equal(s.drops.underlay_send_failed, 0, 'not as a failed send');

  const sentBefore = h.net.log.length;
  tap.inject(ip4(VM_A, 1450));
  await settle();
  t.equal(h.net.log.length, sentBefore, 'from then on answered without a send');
  t.equal(tap.written.length, 2);

  // a broadcast as big: the copy to PEER_C (link width) goes, PEER_A's is answered
  tap.inject(ip4(BCAST, 1450));
  await settle();
  t.equal(h.inbox.get(PEER_C)!.length, 1, 'the flood copy to a wide path goes');
  t.equal(h.inbox.get(PEER_A)!.length, 1, 'the copy to the narrow one does not');
  t.equal(tap.written.length, 2, 'no ICMP about a broadcast (as the kernel)');
  t.equal(h.engine.stats().drops.path_mtu_exceeded, 3, 'the dropped copy counted');

  // df unset: the kernel may fragment; nothing is answered
  h.engine.updateVni(5, { outer: { df: 'unset' } });
  tap.inject(ip4(VM_A, 1450, false));
  await settle();
  t.equal(tap.written.length, 2, 'df unset: no answer');
  t.equal(h.inbox.get(PEER_A)!.length, 2, 'the frame is sent, for the kernel to fragment');

  // the route exception expired: asked again when due, and the frame goes
  h.engine.updateVni(5, { outer: {} });
  h.net.pathMtus.delete(PEER_A);
  tap.inject(ip4(VM_A, 1450));
  await settle();
  t.equal(tap.written.length, 3, 'before the recheck time: still the narrow path');
  h.clock.now += PATH_RECHECK_MS;
  tap.inject(ip4(VM_A, 1450));
  await settle();
  t.equal(h.inbox.get(PEER_A)!.length, 3, 'after it: the kernel says wide again, the frame goes');
  s = h.engine.stats();
  t.same(s.narrowPaths, {}, 'and the entry is gone');
});

t.test('a TCP super-frame over a narrow path: GSO EINVAL learns it and GSO stays on', async (t) => {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789);
  net.bind(PEER_A, 4789);
  net.pathMtus.set(PEER_A, 1000);
  const remotes = new Remotes();
  const fdb = new Fdb();
  const gso = new FakeGso(underlay);
  const engine = new Engine({ underlay, fdb, gso });
  const tap = new FakeTap('t0', { metaLen: VNET_HDR_LEN, slotSize: 65536 + 128 });
  engine.addVni({ vni: 5, tap, remotes: [remotes.get(PEER_A)], mtu: 1500 });
  tap.start(
    (n) => engine.tapReceived(5, n, 0),
    () => {},
  );
  fdb.learn(5, VM_A, remotes.get(PEER_A), 0);
  const sf = superFrame({
    v: 4,
    vlan: false,
    ipOptions: 0,
    tcpOptions: 0,
    payload: new Uint8Array(1200 * 8),
    mss: 1200,
    seq: 1,
    flags: 0x18,
    id: 1,
  });
  sf.frame.writeUIntBE(VM_A, 0, 6);
  sf.frame.writeUIntBE(VM_B, 6, 6);
  const meta = Buffer.alloc(VNET_HDR_LEN);
  writeVnetHdr(meta, 0, sf.hdr);
  tap.inject(sf.frame, meta);
  await settle();
  t.equal(net.log.length, 0, 'no segment left');
  t.equal(tap.written.length, 1, 'the sender is answered once');
  t.equal(icmpMtu(tap.written[0]), 1000 - 36 - 14, 'with the narrow path');
  const s = engine.stats();
  t.equal(s.drops.path_mtu_exceeded, 8, 'every segment counted as path_mtu_exceeded');
  t.equal(s.drops.underlay_send_failed, 0);
  // the next super-frame: not offered to GSO any more (the path is known), answered per segment
  tap.inject(sf.frame, meta);
  await settle();
  t.equal(gso.calls.length, 0, 'GSO never sent over the narrow path');
  t.equal(net.log.length, 0);
  t.ok(engine.stats().drops.path_mtu_exceeded > 8, 'answered from the cache');
  // a wide remote still gets GSO: the kernel's refusal did not turn it off
  net.bind(PEER_C, 4789);
  fdb.learn(5, VM_A, remotes.get(PEER_C), 1);
  tap.inject(sf.frame, meta);
  await settle();
  t.equal(gso.calls.length, 1, 'GSO still on for the other remote');
  t.equal(net.log.length, 8, 'its eight segments sent');
});

t.test(
  'the TAP MTU raised on the device: frames its slots hold are taken, and answered',
  async (t) => {
    // configured 1450 (fits the 1500 underlay); an operator set 1500 on the TAP since
    const h = harness([{ vni: 5, mtu: 1450 }], { underlayMtu: 1500 });
    const tap = h.taps.get(5)!;
    h.fdb.learn(5, VM_A, h.remotes.get(PEER_A), h.clock.now);
    tap.inject(ip4(VM_A, 1464));
    tap.inject(ip4(VM_A, 1514));
    tap.inject(ip4(VM_A, tap.rx.capacity + 1));
    await settle();
    t.equal(h.inbox.get(PEER_A)!.length, 1, 'a 1464-byte frame fits the path: sent');
    t.equal(tap.written.length, 1, 'a 1514-byte one does not: answered, as the kernel device does');
    t.equal(icmpMtu(tap.written[0]), 1450, 'with the path MTU');
    const s = h.engine.stats();
    t.equal(s.drops.frame_too_big, 1, 'only a frame the read cut is too big');
    t.equal(s.drops.path_mtu_exceeded, 1);
  },
);

t.test('the table of narrow paths is bounded: past 4096 remotes it starts over', async (t) => {
  const said: string[] = [];
  const paths = new Paths(
    () => 1400,
    (_l, _e, msg) => said.push(msg),
  );
  paths.linkMax = 1464;
  const rs = new Remotes();
  for (let i = 0; i < 4096; i++) paths.probe(rs.get(`10.1.${i >> 8}.${i & 255}`), 0);
  t.equal(paths.size, 4096);
  t.equal(paths.probe(rs.get('10.2.0.1'), 0), 1364, 'the next one is still answered');
  t.equal(paths.size, 1, 'after the table started over');
  t.equal(said.length, 4097, 'each new narrow path said once');
});
