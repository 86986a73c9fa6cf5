// What a capture copies out of the engine: frames each way, or drops with their reason, as the
// filter says; nothing while none runs.
import t from 'tap';
import { CaptureTap, type Captured, type CaptureFilter } from '../../src/engine/engine.js';
import { PEER_A, PEER_C, frame, harness, settle, vxlan } from './harness.js';

const VM_A = 0x525400000001;
const VM_B = 0x525400000002;
const OWN = 0x02000000aaaa;
const BCAST = 0xffffffffffff;

async function run(filter: CaptureFilter) {
  const h = harness([{ vni: 1, ownMacs: [OWN] }, { vni: 2 }]);
  const got: Captured[] = [];
  h.engine.capture = new CaptureTap(filter, (c) => got.push(c));
  h.taps.get(1)!.inject(frame(BCAST, VM_B, 60));
  h.taps.get(2)!.inject(frame(VM_A, VM_B, 70));
  h.taps.get(1)!.inject(Buffer.alloc(10)); // ethernet_truncated
  h.underlay.receive(vxlan(1, frame(VM_B, VM_A, 80)), h.peerA);
  h.underlay.receive(vxlan(1, frame(VM_B, OWN, 90)), h.peerC); // own_source_mac
  h.underlay.receive(vxlan(1, frame(VM_B, VM_A, 64)), h.stranger); // sender_not_remote
  const bad = vxlan(2, frame(VM_B, VM_A, 64));
  bad[0] = 0;
  h.underlay.receive(bad, h.peerA); // vxlan_no_i_flag
  await settle();
  return { got, h };
}

const brief = (c: Captured) => [c.kind, c.vni, c.reason ?? '', c.remote ?? '', c.bytes.length];

t.test('frames both ways, by VNI, MAC and remote', async (t) => {
  t.same((await run({})).got.map(brief), [
    ['from-tap', 1, '', '', 60],
    ['from-tap', 1, '', '', 10],
    ['from-tap', 2, '', '', 70],
    ['to-tap', 1, '', PEER_A, 80],
  ]);
  t.same((await run({ vni: 2 })).got.map(brief), [['from-tap', 2, '', '', 70]]);
  t.same((await run({ mac: VM_A })).got.map(brief), [
    ['from-tap', 2, '', '', 70],
    ['to-tap', 1, '', PEER_A, 80],
  ]);
  t.same((await run({ remote: PEER_A })).got.map(brief), [['to-tap', 1, '', PEER_A, 80]]);
});

t.test('drops with their reason: frames from the TAP, datagrams whole', async (t) => {
  const { got, h } = await run({ drops: true });
  t.same(got.map(brief), [
    ['from-tap', 1, 'ethernet_truncated', '', 10],
    ['underlay', 1, 'own_source_mac', PEER_C, 98],
    ['underlay', 1, 'sender_not_remote', '192.0.2.99', 72],
    ['underlay', -1, 'vxlan_no_i_flag', PEER_A, 72],
  ]);
  t.equal(got[1].port, 4789, 'with the source port');
  const s = h.engine.stats();
  t.equal(s.drops.own_source_mac, 1, 'and counted as ever');
  t.same((await run({ drops: true, vni: 1, remote: PEER_C })).got.map(brief), [
    ['underlay', 1, 'own_source_mac', PEER_C, 98],
  ]);
  t.same((await run({ drops: true, mac: OWN })).got.map(brief), [
    ['underlay', 1, 'own_source_mac', PEER_C, 98],
  ]);
});

t.test('a drop between batches is not blamed on the last packet', async (t) => {
  const h = harness([{ vni: 1 }]);
  const got: Captured[] = [];
  h.engine.capture = new CaptureTap({ drops: true }, (c) => got.push(c));
  h.underlay.receive(vxlan(1, frame(VM_B, VM_A, 80)), h.peerA);
  await settle();
  h.engine.unboundReceived(1, 0); // a frame of a port without a VNI: counted, nothing to copy
  t.same(got, []);
  t.equal(h.engine.stats().drops.port_unbound, 1);
  h.engine.capture = undefined;
  h.taps.get(1)!.inject(Buffer.alloc(5));
  await settle();
  t.same(got, [], 'stopped: nothing more');
});
