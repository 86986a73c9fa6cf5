// BFD in the data path: control packets from a remote go to the hook, never into the TAP, never
// learned from or counted as tenant traffic; our own go out behind a VXLAN header.
import t from 'tap';
import { BfdState, bfdFrame, parseBfd } from '../../src/wire/bfd.js';
import { decapsulate } from '../../src/wire/vxlan.js';
import { PEER_A, frame, harness, settle, vxlan } from './harness.js';

const OVS_MAC = 0x02aa00000001;
const packet = {
  diag: 0,
  state: BfdState.DOWN,
  poll: false,
  final: false,
  multiplier: 3,
  myDisc: 5,
  yourDisc: 0,
  desiredMinTx: 1e6,
  requiredMinRx: 1e5,
};

t.test('a BFD frame from a remote goes to the hook, not the TAP', async (t) => {
  const h = harness([{ vni: 5000 }]);
  const got: [number, string, number][] = [];
  h.engine.onBfd = (vni, r, slab, off, len) =>
    got.push([vni, r.key, (parseBfd(slab, off, len) as { myDisc: number }).myDisc]);
  h.underlay.receive(vxlan(5000, bfdFrame(packet, OVS_MAC)), h.peerA);
  await settle();
  t.same(got, [[5000, `${PEER_A}:4789`, 5]]);
  t.equal(h.taps.get(5000)!.written.length, 0, 'not into the TAP');
  t.equal(h.fdb.get(5000, OVS_MAC), undefined, 'its source MAC is not learned');
  const s = h.engine.stats(h.clock.now);
  t.same(s.vnis[0].rx, { packets: 0, bytes: 0 }, 'not tenant traffic');
  t.same(s.vnis[0].peers[0].rx, { packets: 0, bytes: 0 });
  t.equal(s.vnis[0].peers[0].heardMsAgo, 0, 'but the remote was heard');
  // tenant frames still go in; with the hook off a BFD frame is a frame like any other
  h.underlay.receive(vxlan(5000, frame(0x525400000002, 0x525400000001)), h.peerA);
  h.engine.onBfd = undefined;
  h.underlay.receive(vxlan(5000, bfdFrame(packet, OVS_MAC)), h.peerA);
  await settle();
  t.equal(h.taps.get(5000)!.written.length, 2);
  t.equal(got.length, 1);
});

t.test('our own control frames leave behind a VXLAN header', async (t) => {
  const h = harness([{ vni: 5000 }]);
  const f = bfdFrame(packet, 0x025202000001);
  t.ok(h.engine.sendControl(5000, h.remotes.get(PEER_A), f));
  const big = Buffer.alloc(600, 1);
  t.ok(h.engine.sendControl(5000, h.remotes.get(PEER_A), big), 'a larger one too');
  await settle();
  const sent = h.inbox.get(PEER_A)!;
  t.equal(sent.length, 2);
  const d = decapsulate(sent[0]);
  t.same(typeof d === 'number' ? d : [d.vni, d.frame.toString('hex')], [5000, f.toString('hex')]);
  t.equal(sent[1].length, 608);
});
