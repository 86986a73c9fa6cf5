import t from 'tap';
import { NeighTable, key6, neighKey } from '../../src/engine/neigh.js';

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

t.test(
  'pinned by a control plane (EVPN MAC+IP): never aged, not overridden by snooping',
  async (t) => {
    const n = new NeighTable(100, 1);
    n.pin(1, 0xa);
    t.equal(n.learn(1, 0xb, 0), false, 'snooping does not move a pinned address');
    t.equal(n.lookup(1, 1_000_000), 0xa, 'and it does not age');
    t.equal(n.peek(1, 1_000_000), 0xa);
    n.learn(2, 0xc, 0);
    t.equal(n.size, 2, 'pinned entries count, beside the learned (and outside their bound)');
    n.pin(1, undefined);
    t.equal(n.lookup(1, 0), undefined, 'unpinned: gone');
    t.equal(n.learn(1, 0xb, 0), true, 'and snooping takes it again');
    n.learn(3, 0xc, 50);
    t.same(n.addressesOf(0xc, 120), [3], 'the addresses at a MAC, not the aged ones');
    t.same(n.addressesOf(0xd, 0), []);
    t.equal(neighKey('192.0.2.1'), 0xc0000201, 'IPv4 keys are numbers');
    t.equal(neighKey('fd00::1'), `fd${'00'.repeat(14)}01`, 'IPv6 keys are hex');
  },
);
