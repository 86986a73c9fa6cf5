// FDB replication (src/fdb/replica.ts): a worker's copy follows the main table from its changes
// alone, reports what its own thread learns and sees again, and what the main table refuses of a
// report comes back out of the copy.
import fc from 'fast-check';
import t from 'tap';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { FdbReplica, absorb, toFdbOp } from '../../src/fdb/replica.js';

t.test("a replica kept from the main table's changes alone equals it", async (t) => {
  const remotes = new Remotes();
  const rs = ['192.0.2.1', '192.0.2.2', '192.0.2.3'].map((a) => remotes.get(a));
  const op = fc.oneof(
    fc.record({ k: fc.constant('learn'), mac: fc.integer({ min: 1, max: 12 }), r: fc.nat(2) }),
    fc.record({ k: fc.constant('static'), mac: fc.integer({ min: 1, max: 12 }), r: fc.nat(2) }),
    fc.record({ k: fc.constant('delete'), mac: fc.integer({ min: 1, max: 12 }) }),
    fc.record({ k: fc.constant('flush'), r: fc.nat(2), learnedOnly: fc.boolean() }),
    fc.record({ k: fc.constant('sweep') }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const fdb = new Fdb({ ageingMs: 50, maxEntries: 6 });
      const copy = new Fdb({ ageingMs: 50, maxEntries: 6 });
      for (const f of [fdb, copy]) f.addVni(7, { maxEntries: 5 });
      const replica = new FdbReplica(copy, new Remotes(), 0, () => {});
      // as the threads pass them: plain data
      fdb.onChange = (c) => replica.apply(structuredClone([toFdbOp(c)]), 0);
      let now = 0;
      for (const o of ops) {
        now += 10;
        const mac = 0x020000000000 + ('mac' in o ? o.mac : 0);
        if (o.k === 'learn') fdb.learn(7, mac, rs[o.r], now);
        else if (o.k === 'static') {
          try {
            fdb.addStatic(7, mac, rs[o.r], now, o.r === 2 ? 'ovsdb' : 'static');
          } catch {
            // full of static entries: refused here, so nothing to copy
          }
        } else if (o.k === 'delete') fdb.delete(7, mac);
        else if (o.k === 'flush') fdb.flush({ remote: rs[o.r], learnedOnly: o.learnedOnly });
        else fdb.sweep(now);
      }
      const rows = (f: Fdb) => f.list(now).map((r) => `${r.mac} ${r.remote} ${r.source}`);
      return (
        JSON.stringify(rows(copy)) === JSON.stringify(rows(fdb)) && replica.take().length === 0
      );
    }),
    { numRuns: 500 },
  );
  t.pass('500 random histories of learn, move, static, delete, flush, age and evict');
});

t.test('a replica reports what its thread learns, once, and what it sees again', async (t) => {
  const remotes = new Remotes();
  const r = remotes.get('192.0.2.1');
  const copy = new Fdb({ ageingMs: 1000 });
  copy.addVni(5);
  let scheduled = 0;
  const replica = new FdbReplica(copy, remotes, 0, () => scheduled++);
  copy.learn(5, 0x020000000001, r, 10);
  copy.learn(5, 0x020000000002, r, 10);
  t.equal(scheduled, 1, 'one report scheduled for both');
  t.same(replica.take(), [
    [5, 0x020000000001, '192.0.2.1', 4789],
    [5, 0x020000000002, '192.0.2.1', 4789],
  ]);
  t.same(replica.take(), [], 'taken once');
  copy.learn(5, 0x020000000001, r, 500); // seen again: a refresh, not a change
  t.same(replica.take(), []);
  replica.refresh(600);
  t.same(
    replica.take(),
    [
      [5, 0x020000000001, '192.0.2.1', 4789],
      [5, 0x020000000002, '192.0.2.1', 4789],
    ],
    'the refresh reports what was seen since the last one (the first: since the start)',
  );
  copy.learn(5, 0x020000000002, r, 650);
  replica.refresh(660);
  t.same(replica.take(), [[5, 0x020000000002, '192.0.2.1', 4789]], 'then only what was seen since');
  // what the main table says is applied without being reported back; unknown VNIs are skipped
  replica.apply(
    [
      [5, 0x020000000003, '192.0.2.2', 4789, false, 'static'],
      [5, 0x020000000004, '192.0.2.2', 4789, true, 'ovsdb'],
      [5, 0x020000000001, null, 0, false, 'static'],
      [9, 0x020000000005, '192.0.2.2', 4789, false, 'static'],
    ],
    700,
  );
  t.same(replica.take(), []);
  t.same(
    copy.list(700).map((e) => [e.mac, e.remote, e.source]),
    [
      ['02:00:00:00:00:02', '192.0.2.1:4789', 'learned'],
      ['02:00:00:00:00:03', '192.0.2.2:4789', 'learned'],
      ['02:00:00:00:00:04', '192.0.2.2:4789', 'ovsdb'],
    ],
  );
  // a static entry the copy has no room for: refused here as it was there, nothing thrown
  const full = new Fdb({ maxEntries: 1 });
  full.addVni(5);
  const small = new FdbReplica(full, remotes, 0, () => {});
  small.apply(
    [
      [5, 0x020000000006, '192.0.2.2', 4789, true, 'static'],
      [5, 0x020000000007, '192.0.2.2', 4789, true, 'static'],
    ],
    0,
  );
  t.equal(full.size, 1);
});

t.test('the main table absorbs reports; what it refuses goes back', async (t) => {
  const remotes = new Remotes();
  const fdb = new Fdb({ maxEntries: 3 });
  fdb.addVni(5);
  fdb.addVni(6, { learning: false });
  fdb.addStatic(5, 0x020000000009, remotes.get('192.0.2.9'), 0);
  const back = absorb(
    fdb,
    remotes,
    [
      [5, 0x020000000001, '192.0.2.1', 4789], // new
      [5, 0x020000000009, '192.0.2.1', 4789], // static here: the copy gets the static one
      [6, 0x020000000002, '192.0.2.1', 4789], // learning off: out of the copy
    ],
    0,
  );
  t.same(back, [
    [5, 0x020000000009, '192.0.2.9', 4789, true, 'static'],
    [6, 0x020000000002, null, 0, false, 'static'],
  ]);
  t.ok(fdb.get(5, 0x020000000001), 'the new one is in the main table');
});
