import t from 'tap';
import { NeighTable, key6 } from '../../src/engine/neigh.js';

t.test('neighbour table: learn, refresh, expire, bounded', async (t) => {
  const n = new NeighTable(100, 2);
  n.learn(1, 0xa, 0);
  n.learn(2, 0xb, 10);
  t.equal(n.lookup(1, 50), 0xa);
  n.learn(1, 0xa, 60); // refreshed: now the newest
  n.learn(3, 0xc, 70); // the oldest (2) goes
  t.equal(n.lookup(2, 70), undefined);
  t.equal(n.size, 2);
  t.equal(n.lookup(3, 169), 0xc);
  t.equal(n.lookup(3, 170), undefined, 'not confirmed for ageingMs: forgotten');
  t.equal(n.size, 1);
  t.equal(key6(new Uint8Array(16).fill(0xab)), 'ab'.repeat(16));
});

t.test('what is news for the other threads: new, changed, or half an ageing time on', async (t) => {
  const n = new NeighTable(100);
  t.equal(n.learn(1, 0xa, 0), true, 'new');
  t.equal(n.learn(1, 0xa, 10), false, 'confirmed: not news');
  t.equal(n.learn(1, 0xb, 20), true, 'another MAC');
  t.equal(n.learn(1, 0xb, 69), false);
  t.equal(n.learn(1, 0xb, 70), true, 'half the ageing time after the last news');
  t.equal(n.lookup(1, 169), 0xb, 'every confirmation still counts here');
});
