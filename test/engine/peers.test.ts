// Per-remote counters: what each remote of a VNI sent and was sent, its drops, when it was last
// heard; a table bounded per VNI.
import t from 'tap';
import { makeRemote } from '../../src/fdb/remote.js';
import { OTHER_PEERS, PeerTable, addPeerStats } from '../../src/engine/peers.js';
import { TxStatus } from '../../src/io/types.js';
import { PEER_A, PEER_C, frame, harness, settle, vxlan } from './harness.js';

const VM_A = 0x525400000001; // behind PEER_A
const VM_B = 0x525400000002; // behind our TAP
const VM_C = 0x525400000003; // behind PEER_C
const BCAST = 0xffffffffffff;

const peer = (s: ReturnType<ReturnType<typeof harness>['engine']['stats']>, key: string) =>
  s.vnis[0].peers.find((p) => p.remote === key);

t.test('each remote counts what it sent and was sent, with known packet counts', async (t) => {
  const h = harness([{ vni: 5000, ownMacs: [VM_B] }]);
  const tap = h.taps.get(5000)!;
  // 5 datagrams from A (VM_A learned behind it), 3 from C, of which 1 carries our own MAC
  for (let i = 0; i < 5; i++) h.underlay.receive(vxlan(5000, frame(VM_B, VM_A, 100)), h.peerA);
  for (let i = 0; i < 2; i++) h.underlay.receive(vxlan(5000, frame(VM_B, VM_C, 80)), h.peerC);
  h.underlay.receive(vxlan(5000, frame(VM_A, VM_B, 80)), h.peerC);
  await settle();
  h.clock.now += 250;
  // 4 unicast to A, 2 broadcasts (one copy to each remote)
  for (let i = 0; i < 4; i++) tap.inject(frame(VM_A, VM_B, 70));
  for (let i = 0; i < 2; i++) tap.inject(frame(BCAST, VM_B, 64));
  await settle();
  const s = h.engine.stats(h.clock.now);
  t.same(peer(s, `${PEER_A}:4789`), {
    remote: `${PEER_A}:4789`,
    rx: { packets: 5, bytes: 500 },
    tx: { packets: 6, bytes: 4 * 70 + 2 * 64 },
    drops: {},
    heardMsAgo: 250,
  });
  t.same(peer(s, `${PEER_C}:4789`), {
    remote: `${PEER_C}:4789`,
    rx: { packets: 2, bytes: 160 },
    tx: { packets: 2, bytes: 128 },
    drops: { own_source_mac: 1 },
    heardMsAgo: 250,
  });
  t.equal(h.inbox.get(PEER_A)!.length, 6, 'what A was counted for is what A got');
  t.equal(h.inbox.get(PEER_C)!.length, 2);
  t.equal(tap.written.length, 7, 'and what the TAP got is the sum of the remotes’ rx');
  const sum = s.vnis[0].peers.reduce((n, p) => n + p.tx.packets, 0);
  t.equal(sum, s.vnis[0].tx.packets, "the VNI's tx is the sum of its remotes'");
  t.equal(
    h.engine.stats().vnis[0].peers[0].heardMsAgo,
    null,
    'no clock given: last heard is not made up',
  );
});

t.test('a remote never heard from: counted as sent to, heard never', async (t) => {
  const h = harness([{ vni: 5000 }]);
  h.taps.get(5000)!.inject(frame(BCAST, VM_B, 64));
  await settle();
  const s = h.engine.stats(h.clock.now);
  t.same(peer(s, `${PEER_A}:4789`)?.heardMsAgo, null);
  t.same(peer(s, `${PEER_A}:4789`)?.tx, { packets: 1, bytes: 64 });
  t.same(peer(s, `${PEER_A}:4789`)?.rx, { packets: 0, bytes: 0 });
});

t.test('a failed send is the remote’s drop; a stranger is nobody’s remote', async (t) => {
  const h = harness([{ vni: 5000 }]);
  h.underlay.receive(vxlan(5000, frame(VM_B, VM_A, 60)), h.stranger);
  // the second copy of a flood (to PEER_C) is refused
  const send = h.underlay.send.bind(h.underlay);
  h.underlay.send = (slab, batch) => {
    const n = send(slab, batch);
    batch.status[1] = TxStatus.REFUSED;
    h.underlay.lastError = 'ENETUNREACH';
    return n - 1;
  };
  h.taps.get(5000)!.inject(frame(BCAST, VM_B, 64));
  await settle();
  const s = h.engine.stats(h.clock.now);
  t.equal(s.drops.sender_not_remote, 1);
  t.notOk(
    s.vnis[0].peers.some((p) => p.remote.startsWith('192.0.2.99')),
    'no record for a sender that is not a remote',
  );
  t.same(peer(s, `${PEER_C}:4789`)?.drops, { underlay_send_failed: 1 }, 'the failed copy is C’s');
  t.same(peer(s, `${PEER_C}:4789`)?.tx.packets, 0);
  t.same(peer(s, `${PEER_A}:4789`)?.drops, {});
  t.same(peer(s, `${PEER_A}:4789`)?.tx.packets, 1);
});

t.test('the table is bounded: past the cap, remotes are counted together', async (t) => {
  const table = new PeerTable(2);
  const a = makeRemote('192.0.2.1');
  const b = makeRemote('192.0.2.3');
  const c = makeRemote('192.0.2.4');
  const d = makeRemote('192.0.2.5');
  table.of(a).rxPackets++;
  table.of(b).rxPackets++;
  table.of(c).rxPackets++;
  table.of(d).rxPackets += 2;
  table.of(a).rxPackets++;
  t.same(
    table.all().map((p) => [p.key, p.rxPackets]),
    [
      ['192.0.2.1:4789', 2],
      ['192.0.2.3:4789', 1],
      [OTHER_PEERS, 3],
    ],
  );
  t.equal(
    table.of(makeRemote('192.0.2.1')),
    table.of(a),
    'a remote is one record by key, whichever object stands for it',
  );
});

t.test('adding up: counters summed, last heard the latest', async (t) => {
  const into = {
    rx: { packets: 1, bytes: 10 },
    tx: { packets: 2, bytes: 20 },
    drops: { tap_down: 1 },
    heardMsAgo: null as number | null,
  };
  addPeerStats(into, {
    rx: { packets: 3, bytes: 30 },
    tx: { packets: 4, bytes: 40 },
    drops: { tap_down: 2, own_source_mac: 1 },
    heardMsAgo: 500,
  });
  addPeerStats(into, {
    rx: { packets: 0, bytes: 0 },
    tx: { packets: 0, bytes: 0 },
    drops: {},
    heardMsAgo: 100,
  });
  t.same(into, {
    rx: { packets: 4, bytes: 40 },
    tx: { packets: 6, bytes: 60 },
    drops: { tap_down: 3, own_source_mac: 1 },
    heardMsAgo: 100,
  });
});
