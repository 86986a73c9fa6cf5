import t from 'tap';
import { makeRemote } from '../../src/fdb/remote.js';
import { ADDR_LEN, writeAddr } from '../../src/io/addr.js';
import { SenderTable } from '../../src/engine/senders.js';

/** An address array with one slot per address, as the receive ring fills it. */
function slots(...addresses: string[]): Uint8Array {
  const a = new Uint8Array(addresses.length * ADDR_LEN);
  addresses.forEach((x, i) => writeAddr(a, i, x, 4789));
  return a;
}

t.test('senders by address slot, both families, no text on lookup', async (t) => {
  const s = new SenderTable();
  const v4 = makeRemote('192.0.2.1');
  const v6 = makeRemote('2001:db8::1');
  s.add(v4);
  s.add(v6);
  t.equal(s.size, 2);
  const a = slots('192.0.2.1', '2001:db8::1', '192.0.2.9', '2001:db8::9', '2001:0db8:0:0::1');
  t.equal(s.lookup(a, 0), v4);
  t.equal(s.lookup(a, 1), v6);
  t.equal(s.lookup(a, 2), undefined);
  t.equal(s.lookup(a, 3), undefined);
  t.equal(s.lookup(a, 4), v6, 'bytes, not spelling, decide');
  const again = makeRemote('2001:db8::1', 8472);
  s.add(again);
  t.equal(s.size, 2, 'the same address replaces its remote');
  t.equal(s.lookup(a, 1), again);
  s.clear();
  t.equal(s.size, 0);
  t.equal(s.lookup(a, 1), undefined);
});

t.test('two IPv6 senders whose hashes collide are told apart by their bytes', async (t) => {
  // FNV-1a(32) of these two addresses is 668896205 for both (found by a birthday search).
  const x = '2001:db8:b2aa:6989:e09e:ae61:1e69:2c0a';
  const y = '2001:db8:4ebf:5d7a:1fb4:d9bb:efa1:3392';
  const s = new SenderTable();
  const rx = makeRemote(x);
  s.add(rx);
  const a = slots(x, y);
  t.equal(s.lookup(a, 1), undefined, 'same bucket, other bytes: not a sender');
  const ry = makeRemote(y);
  s.add(ry);
  t.equal(s.size, 2);
  t.equal(s.lookup(a, 0), rx);
  t.equal(s.lookup(a, 1), ry);
});
