import fc from 'fast-check';
import t from 'tap';
import { Fdb, Learn } from '../../src/fdb/fdb.js';
import { Remotes, remoteKey } from '../../src/fdb/remote.js';
import { RateLimiter } from '../../src/util/ratelimit.js';
import { parseMac } from '../../src/wire/mac.js';

const remotes = new Remotes();
const A = remotes.get('192.0.2.1');
const B = remotes.get('192.0.2.2');
const C = remotes.get('2001:db8::1', 8472);
const mac = (s: string) => parseMac(s)!;

t.test('remotes are interned and validated', async (t) => {
  t.equal(remotes.get('192.0.2.1', 4789), A, 'same object for the same address:port');
  t.equal(A.key, '192.0.2.1:4789');
  t.equal(C.key, '[2001:db8::1]:8472');
  t.equal(C.family, 6);
  t.equal(remoteKey('::1', 1), '[::1]:1');
  t.equal(remotes.find('192.0.2.2:4789'), B);
  t.equal(remotes.find('192.0.2.9:4789'), undefined);
  t.throws(() => remotes.get('host.example'), { name: 'RemoteError' });
  t.throws(() => remotes.get('192.0.2.1', 0), { code: 'ERR_REMOTE_ADDRESS' });
  t.throws(() => remotes.get('192.0.2.1', 65536), /1\.\.65535/);
  t.equal(remotes.size, 3);
});

t.test('learning follows vxlan_snoop', async (t) => {
  const moves: string[] = [];
  const fdb = new Fdb({
    onMove: (m) => moves.push(`${m.mac.toString(16)} ${m.from.key}->${m.to.key}`),
  });
  fdb.addVni(5000, { flood: [A, B] });
  const vm = mac('52:54:00:00:00:01');
  t.equal(fdb.learn(5000, vm, A, 0), Learn.NEW);
  t.equal(fdb.learn(5000, vm, A, 10), Learn.REFRESHED);
  t.equal(fdb.get(5000, vm)?.updated, 10);
  t.equal(fdb.learn(5000, vm, B, 20), Learn.MOVED);
  t.same(moves, ['525400000001 192.0.2.1:4789->192.0.2.2:4789']);
  t.equal(fdb.lookup(5000, vm, 30), B);
  t.equal(fdb.get(5000, vm)?.used, 30, 'lookup records used');
  t.equal(fdb.get(5000, vm)?.updated, 20, 'but does not refresh');
  for (const bad of [
    '00:00:00:00:00:00',
    'ff:ff:ff:ff:ff:ff',
    '01:00:5e:00:00:01',
    '33:33:00:00:00:01',
  ]) {
    t.equal(fdb.learn(5000, mac(bad), A, 40), Learn.INVALID_MAC, bad);
  }
  t.equal(fdb.learn(7, vm, A, 0), Learn.UNKNOWN_VNI);
  t.equal(fdb.lookup(7, vm, 0), null);
  t.same(fdb.counters, { learned: 1, moved: 1, aged: 0, evicted: 0, capHit: 0, staticConflict: 0 });
});

t.test('static entries never move, never age, never get evicted', async (t) => {
  const fdb = new Fdb({ ageingMs: 1000, maxEntries: 2 });
  fdb.addVni(1);
  const s = mac('02:00:00:00:00:aa');
  fdb.addStatic(1, s, A, 0);
  t.equal(fdb.learn(1, s, B, 1), Learn.STATIC);
  t.equal(fdb.lookup(1, s, 2), A);
  t.equal(fdb.counters.staticConflict, 1);
  t.equal(fdb.learn(1, mac('02:00:00:00:00:01'), B, 3), Learn.NEW);
  t.equal(fdb.learn(1, mac('02:00:00:00:00:02'), B, 4), Learn.EVICTED, 'the learned one goes');
  t.equal(fdb.sweep(100_000).removed, 1);
  t.equal(fdb.lookup(1, s, 100_000), A, 'static survives ageing');
  fdb.addStatic(1, mac('02:00:00:00:00:bb'), B, 5);
  t.equal(
    fdb.learn(1, mac('02:00:00:00:00:03'), B, 6),
    Learn.CAP_HIT,
    'all static: nothing to evict',
  );
  t.throws(() => fdb.addStatic(1, mac('02:00:00:00:00:cc'), B, 7), { code: 'ERR_FDB_FULL' });
  t.throws(() => fdb.addStatic(1, mac('01:00:00:00:00:cc'), B, 7), { code: 'ERR_FDB_MAC' });
  t.equal(fdb.counters.capHit, 1);
  // a learned entry turned static leaves the learned list
  const g = new Fdb();
  g.addVni(1);
  g.learn(1, 0x020000000001, A, 0);
  g.addStatic(1, 0x020000000001, B, 0);
  t.equal(g.sweep(1e9).removed, 0);
  t.equal(g.get(1, 0x020000000001)?.isStatic, true);
});

t.test('ageing: sweep removes expired entries and says when the next is due', async (t) => {
  const fdb = new Fdb({ ageingMs: 300_000 });
  fdb.addVni(1);
  fdb.addVni(2);
  fdb.learn(1, 0x020000000001, A, 0);
  fdb.learn(2, 0x020000000002, A, 100_000);
  fdb.learn(1, 0x020000000003, B, 200_000);
  t.same(fdb.sweep(299_999), { removed: 0, nextDue: 300_000 });
  t.same(fdb.sweep(300_000), { removed: 1, nextDue: 400_000 });
  fdb.learn(2, 0x020000000002, A, 350_000); // refreshed: now due later
  t.same(fdb.sweep(400_000), { removed: 0, nextDue: 500_000 });
  t.same(fdb.sweep(10_000_000), { removed: 2, nextDue: undefined });
  t.equal(fdb.counters.aged, 3);
});

t.test('caps per VNI and overall; eviction stays inside the VNI', async (t) => {
  const fdb = new Fdb({ maxEntries: 4 });
  fdb.addVni(1, { maxEntries: 2 });
  fdb.addVni(2);
  t.equal(fdb.learn(1, 0x020000000001, A, 0), Learn.NEW);
  t.equal(fdb.learn(1, 0x020000000002, A, 1), Learn.NEW);
  t.equal(fdb.learn(1, 0x020000000003, A, 2), Learn.EVICTED);
  t.equal(fdb.get(1, 0x020000000001), undefined, 'the least recently updated went');
  t.equal(fdb.learn(2, 0x020000000011, A, 3), Learn.NEW);
  t.equal(fdb.learn(2, 0x020000000012, A, 4), Learn.NEW);
  t.equal(fdb.size, 4);
  t.equal(fdb.learn(2, 0x020000000013, A, 5), Learn.EVICTED, 'overall cap: evicts in VNI 2');
  t.equal(fdb.sizeOf(1), 2, 'VNI 1 untouched by VNI 2 flooding');
  t.equal(fdb.counters.evicted, 2);
});

t.test('flood lists, learning switch, flush, list', async (t) => {
  const fdb = new Fdb();
  fdb.addVni(10, { flood: [A], learning: false });
  t.throws(() => fdb.addVni(10), { code: 'ERR_FDB_VNI_EXISTS' });
  t.throws(() => fdb.addVni(11, { maxEntries: 0 }), { code: 'ERR_FDB_CONFIG' });
  t.throws(() => fdb.setLearning(99, true), { code: 'ERR_FDB_VNI' });
  t.ok(fdb.hasVni(10));
  t.same(fdb.vnis(), [10]);
  fdb.addFlood(10, B);
  fdb.addFlood(10, B);
  t.same(fdb.floodList(10), [A, B]);
  t.equal(fdb.removeFlood(10, A), true);
  t.equal(fdb.removeFlood(10, A), false);
  t.same(fdb.floodList(10), [B]);
  t.same(fdb.floodList(99), []);
  t.equal(fdb.learn(10, 0x020000000001, A, 0), Learn.DISABLED);
  fdb.setLearning(10, true);
  fdb.learn(10, 0x020000000001, A, 0);
  fdb.setLearning(10, false);
  t.equal(fdb.learn(10, 0x020000000001, B, 1), Learn.DISABLED, 'no move while learning is off');
  fdb.setLearning(10, true);
  fdb.learn(10, 0x020000000002, B, 0);
  fdb.addStatic(10, 0x020000000003, B, 0);
  fdb.addVni(20);
  fdb.learn(20, 0x020000000002, B, 0);
  t.same(fdb.list(61_500, 10), [
    {
      vni: 10,
      mac: '02:00:00:00:00:01',
      remote: '192.0.2.1:4789',
      static: false,
      source: 'learned',
      ageSeconds: 61,
      usedSeconds: 61,
    },
    {
      vni: 10,
      mac: '02:00:00:00:00:02',
      remote: '192.0.2.2:4789',
      static: false,
      source: 'learned',
      ageSeconds: 61,
      usedSeconds: 61,
    },
    {
      vni: 10,
      mac: '02:00:00:00:00:03',
      remote: '192.0.2.2:4789',
      static: true,
      source: 'static',
      ageSeconds: 61,
      usedSeconds: 61,
    },
  ]);
  t.equal(fdb.list(0).length, 4);
  // Entries the OVSDB controller installs say so, and are flushed apart from the operator's.
  fdb.addStatic(10, 0x020000000004, B, 0, 'ovsdb');
  t.equal(fdb.list(0, 10).find((r) => r.mac === '02:00:00:00:00:04')?.source, 'ovsdb');
  t.equal(fdb.flush({ source: 'ovsdb' }), 1, 'only the ovsdb entry');
  fdb.addStatic(10, 0x020000000004, B, 0, 'ovsdb');
  fdb.addStatic(10, 0x020000000004, B, 0);
  t.equal(fdb.get(10, 0x020000000004)?.source, 'static', 'an operator replacing it owns it');
  t.equal(fdb.flush({ source: 'ovsdb' }), 0);
  t.ok(fdb.delete(10, 0x020000000004));
  t.equal(fdb.flush({ remote: B, learnedOnly: true }), 2);
  t.equal(fdb.flush({ vni: 10 }), 2);
  t.equal(fdb.delete(10, 0x020000000003), false);
  t.equal(fdb.delete(99, 1), false);
  t.equal(fdb.flush(), 0);
  t.equal(fdb.size, 0);
  t.throws(() => new Fdb({ ageingMs: 0 }), { name: 'FdbError' });
  t.throws(() => new Fdb({ maxEntries: 1.5 }), { code: 'ERR_FDB_CONFIG' });
});

t.test('moves are reported rate-limited, and all are counted', async (t) => {
  const reports: number[] = [];
  const fdb = new Fdb({ onMove: (m) => reports.push(m.suppressed) });
  fdb.addVni(1);
  for (let i = 0; i < 100; i++) fdb.learn(1, 0x020000000001, i % 2 ? A : B, i);
  t.equal(fdb.counters.moved, 99);
  t.equal(reports.length, 10, 'a burst of 10, then silence');
  fdb.learn(1, 0x020000000001, B, 10_000);
  t.equal(reports.length, 11);
  t.equal(reports[10], 89, 'the next report says how many were suppressed');
});

t.test('rate limiter refills over time', async (t) => {
  const r = new RateLimiter(2, 1000);
  t.ok(r.allow(0) && r.allow(0));
  t.notOk(r.allow(0));
  t.notOk(r.allow(400));
  t.ok(r.allow(500));
  t.equal(r.takeSuppressed(), 2);
  t.equal(r.suppressed, 0);
});

t.test('a MAC flood of 1 000 000 random source MACs stays at the cap', async (t) => {
  const cap = 8192;
  fc.assert(
    fc.property(fc.integer(), (seed) => {
      const fdb = new Fdb({ maxEntries: cap });
      fdb.addVni(1, { flood: [A] });
      fdb.addVni(2);
      const statics = [0x020000000001, 0x020000000002, 0x020000000003];
      for (const s of statics) fdb.addStatic(1, s, B, 0);
      fdb.addStatic(2, 0x02000000ffff, C, 0);
      let x = seed | 1;
      for (let i = 0; i < 1_000_000; i++) {
        // xorshift32 for the low 32 bits, a counter for the high 16: fast and distinct enough
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        const mac = (i & 0xfeff) * 2 ** 32 + (x >>> 0); // clear the group bit of byte 0
        fdb.learn(1, mac, i & 1 ? A : C, i);
        if (fdb.size > cap) return false;
      }
      return (
        fdb.size === cap &&
        statics.every((s) => fdb.lookup(1, s, 1e6) === B) &&
        fdb.lookup(2, 0x02000000ffff, 1e6) === C &&
        fdb.sizeOf(2) === 1
      );
    }),
    { numRuns: 2 },
  );
  t.pass('table at the cap, statics resolvable, other VNI untouched');
});

t.test(
  'live changes: VNI removal, per-VNI options, flood list, limits, chunked listing',
  async (t) => {
    const r = new Remotes();
    const a = r.get('192.0.2.1');
    const fdb = new Fdb({ maxEntries: 100 });
    fdb.addVni(1, { flood: [a] });
    fdb.addVni(2);
    for (let m = 1; m <= 10; m++) fdb.learn(1, 0x020000000000 + m, a, 0);
    fdb.learn(2, 0x020000000099, a, 0);
    t.equal(fdb.removeVni(1), true);
    t.equal(fdb.removeVni(1), false);
    t.equal(fdb.size, 1, 'the total follows');
    fdb.setVniOptions(2, { learning: false });
    t.equal(fdb.learn(2, 0x0200000000aa, a, 0), Learn.DISABLED);
    fdb.setVniOptions(2, { learning: true, maxEntries: 1 });
    t.equal(fdb.learn(2, 0x0200000000aa, a, 0), Learn.EVICTED, 'the new cap applies');
    fdb.setFlood(2, [a, r.get('192.0.2.3')]);
    t.same(
      fdb.floodList(2).map((x) => x.key),
      ['192.0.2.1:4789', '192.0.2.3:4789'],
    );
    t.throws(() => fdb.setVniOptions(9, {}), { code: 'ERR_FDB_VNI' });
    fdb.setLimits({ ageingMs: 10 });
    t.equal(fdb.sweep(10).removed, 1, 'the new ageing time applies');
    t.throws(() => fdb.setLimits({ ageingMs: 0 }), { code: 'ERR_FDB_CONFIG' });
    t.throws(() => fdb.setLimits({ maxEntries: 0 }), { code: 'ERR_FDB_CONFIG' });
    t.equal(fdb.ageingMs, 10, 'a refused change leaves the old value');

    fdb.setVniOptions(2, { maxEntries: 100 });
    for (let m = 1; m <= 25; m++) fdb.learn(2, 0x060000000000 + m, a, 0);
    const chunks = fdb.listChunks(0, 2, 10);
    const first = chunks.next().value as { mac: string }[];
    t.equal(first.length, 10);
    fdb.delete(2, 0x060000000000 + 15); // removed between two chunks: left out
    const rest = [...chunks].flat();
    t.equal(rest.length, 14);
    t.notOk(rest.some((x) => x.mac === '06:00:00:00:00:0f'));
    t.same(fdb.list(0, 2).length, 24, 'list is the chunks joined');
    const withFlood = [...fdb.listChunks(0, 2, 512, { flood: true })].flat();
    t.same(
      withFlood.filter((row) => row.flood),
      [
        {
          vni: 2,
          mac: '00:00:00:00:00:00',
          remote: '192.0.2.1:4789',
          static: true,
          source: 'static',
          ageSeconds: 0,
          usedSeconds: 0,
          flood: true,
        },
        {
          vni: 2,
          mac: '00:00:00:00:00:00',
          remote: '192.0.2.3:4789',
          static: true,
          source: 'static',
          ageSeconds: 0,
          usedSeconds: 0,
          flood: true,
        },
      ],
      'the flood list, first, as all-zeros rows',
    );
    t.equal(withFlood.length, 26);
    fdb.setFlood(2, fdb.floodList(2), 'ovsdb');
    t.ok(
      [...fdb.listChunks(0, 2, 512, { flood: true })]
        .flat()
        .filter((row) => row.flood)
        .every((row) => row.source === 'ovsdb'),
      'a flood list set by OVSDB says so',
    );
    // EVPN beside static remotes: one source per entry.
    fdb.setFlood(2, [a, r.get('192.0.2.9')], ['static', 'evpn']);
    t.same(
      [...fdb.listChunks(0, 2, 512, { flood: true })]
        .flat()
        .filter((row) => row.flood)
        .map((row) => [row.remote, row.source]),
      [
        [a.key, 'static'],
        ['192.0.2.9:4789', 'evpn'],
      ],
      'each flood entry says who set it',
    );
    fdb.setFlood(2, [a, r.get('192.0.2.9')], ['evpn']);
    t.equal(
      [...fdb.listChunks(0, 2, 512, { flood: true })].flat().filter((row) => row.flood)[1]!.source,
      'static',
      'an entry without a source of its own is static',
    );
  },
);

t.test('one VNI filling the table cannot lock another out of learning', async (t) => {
  const fdb = new Fdb({ maxEntries: 100 });
  fdb.addVni(1);
  fdb.addVni(2);
  for (let m = 0; m < 1000; m++) fdb.learn(1, 0x020000000000 + m, A, m);
  t.equal(fdb.sizeOf(1), 100, 'VNI 1 holds the whole table');
  const results = [];
  for (let m = 0; m < 50; m++) results.push(fdb.learn(2, 0x020100000000 + m, A, 2000 + m));
  t.ok(
    results.every((r) => r === Learn.EVICTED),
    'every MAC of VNI 2 is learned, at the expense of VNI 1',
  );
  t.same([fdb.sizeOf(1), fdb.sizeOf(2)], [50, 50], 'a fair split');
  t.equal(fdb.counters.capHit, 0, 'no cap-hit');
  t.equal(fdb.get(1, 0x020000000000 + 949), undefined, 'VNI 1 lost its least recently updated');
  t.ok(fdb.get(1, 0x020000000000 + 999), 'and kept its newest');
  // VNI 1 flooding on now only evicts its own entries: VNI 2 keeps what it learned.
  for (let m = 1000; m < 2000; m++) fdb.learn(1, 0x020000000000 + m, A, 3000 + m);
  t.same([fdb.sizeOf(1), fdb.sizeOf(2)], [50, 50], 'VNI 2 is not pushed out');

  // Any sequence of learns over 4 VNIs: a VNI below its fair share always gets its MAC learned.
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 500 })), {
        maxLength: 600,
      }),
      (seq) => {
        const f = new Fdb({ maxEntries: 40 });
        for (const v of [1, 2, 3, 4]) f.addVni(v);
        for (const [vni, m] of seq) {
          const share = Math.floor(40 / 4);
          const below = f.sizeOf(vni) < share;
          const r = f.learn(vni, 0x020000000000 + m * 8 + vni, A, 0);
          if (below && r === Learn.CAP_HIT) return false;
          if (f.size > 40) return false;
        }
        return f.counters.capHit === 0;
      },
    ),
  );
});

t.test('events while watched: learn, move, evict, age; none while not', async (t) => {
  const r = new Remotes();
  const a = r.get('192.0.2.1');
  const c = r.get('192.0.2.3');
  const fdb = new Fdb({ maxEntries: 2, ageingMs: 100 });
  fdb.addVni(1);
  fdb.learn(1, 0x020000000001, a, 0); // not watched: no event, no cost
  const events: string[] = [];
  fdb.onEvent = (e) =>
    events.push(
      `${e.type} ${e.vni} ${e.mac.toString(16)} ${e.remote.key}${e.from ? ` from ${e.from.key}` : ''}`,
    );
  fdb.learn(1, 0x020000000002, a, 10);
  fdb.learn(1, 0x020000000002, c, 20);
  fdb.learn(1, 0x020000000003, c, 30);
  fdb.sweep(200);
  t.same(events, [
    'learn 1 20000000002 192.0.2.1:4789',
    'move 1 20000000002 192.0.2.3:4789 from 192.0.2.1:4789',
    'evict 1 20000000001 192.0.2.1:4789',
    'learn 1 20000000003 192.0.2.3:4789',
    'age 1 20000000002 192.0.2.3:4789',
    'age 1 20000000003 192.0.2.3:4789',
  ]);
});

t.test('the one-entry cache never outlives an entry', async (t) => {
  const remotes = new Remotes();
  const A = remotes.get('192.0.2.1');
  const B = remotes.get('192.0.2.2');
  const fdb = new Fdb({ ageingMs: 1000 });
  fdb.addVni(1);
  const mac = 0x525400000001;
  t.equal(fdb.learnHalves(1, 0x525400, 0x000001, A, 0), Learn.NEW, 'learned by halves');
  t.equal(fdb.lookup(1, mac, 0), A, 'found (and cached)');
  t.equal(fdb.learn(1, mac, A, 1), Learn.REFRESHED, 'the cached entry refreshed');
  fdb.delete(1, mac);
  t.equal(fdb.lookup(1, mac, 2), null, 'deleted: not served from the cache');
  fdb.learn(1, mac, B, 3);
  t.equal(fdb.lookup(1, mac, 3), B);
  fdb.sweep(5000);
  t.equal(fdb.lookup(1, mac, 5000), null, 'aged out: not served from the cache');
  fdb.learn(1, mac, A, 6000);
  fdb.flush({ vni: 1 });
  t.equal(fdb.learn(1, mac, B, 6001), Learn.NEW, 'flushed: learned anew, not refreshed');
});

t.test('refreshes are not changes; updatedSince gives what was seen again', async (t) => {
  const remotes = new Remotes();
  const A = remotes.get('192.0.2.1');
  const fdb = new Fdb();
  fdb.addVni(1);
  fdb.addVni(2);
  const changes: string[] = [];
  fdb.onChange = (c) => changes.push(`${c.op} ${c.vni} ${c.mac}`);
  fdb.learn(1, 0x0200000001, A, 10);
  fdb.learn(1, 0x0200000002, A, 20);
  fdb.learn(2, 0x0200000003, A, 30);
  t.same(changes, ['set 1 8589934593', 'set 1 8589934594', 'set 2 8589934595']);
  fdb.learn(1, 0x0200000001, A, 40);
  t.equal(changes.length, 3, 'a refresh is not sent to the copies');
  fdb.addStatic(2, 0x0200000009, A, 45);
  t.same(
    [...fdb.updatedSince(25)].map((e) => `${e.vni} ${e.mac}`),
    ['1 8589934593', '2 8589934595'],
    'learned entries updated after 25 ms, static ones never',
  );
  t.same([...fdb.updatedSince(40)], [], 'nothing after the last update');
});

t.test('wouldLearn says what learn would do, and changes nothing', async (t) => {
  const r = new Remotes();
  const A = r.get('192.0.2.1');
  const C = r.get('192.0.2.3');
  const fdb = new Fdb({ maxEntries: 3 });
  fdb.addVni(10, { flood: [A] });
  fdb.addVni(11, { flood: [A], learning: false });
  const M1 = 0x525400000001;
  const M2 = 0x525400000002;
  fdb.learn(10, M1, A, 0);
  fdb.learn(11, M1, A, 0); // not learned: learning is off
  fdb.addStatic(11, M2, C, 0);
  const before = JSON.stringify([fdb.list(0), fdb.counters]);
  t.same(fdb.wouldLearn(99, M1, A), { verdict: 'unknown_vni' });
  t.same(fdb.wouldLearn(10, 0x010000000001, A), { verdict: 'invalid_mac' });
  t.same(fdb.wouldLearn(10, M1, A), { verdict: 'refreshed' });
  t.same(fdb.wouldLearn(10, M1, C), { verdict: 'moved', from: A.key });
  t.same(fdb.wouldLearn(10, M2, C), { verdict: 'new' });
  t.same(fdb.wouldLearn(11, M2, A), { verdict: 'static' });
  t.same(fdb.wouldLearn(11, M1, A), { verdict: 'disabled' });
  fdb.setLearning(11, true);
  fdb.learn(11, M1, A, 0);
  fdb.setLearning(11, false);
  t.same(fdb.wouldLearn(11, M1, C), { verdict: 'disabled' }, 'an entry there, learning off');
  // the table is full (3 of 3): learning M2 evicted M1, the oldest of the VNI with most learned
  fdb.learn(10, M2, A, 0);
  t.same(fdb.wouldLearn(10, 0x525400000009, A), { verdict: 'evicts', vni: 10, mac: M2 });
  t.same(
    [...fdb.macsByRemote()].map(([v, m]) => [v, Object.fromEntries(m)]),
    [
      [10, { [A.key]: 1 }],
      [11, { [A.key]: 1, [C.key]: 1 }],
    ],
  );
  t.notSame(JSON.stringify([fdb.list(0), fdb.counters]), before, '(the learns above changed it)');
  const now = JSON.stringify([fdb.list(0), fdb.counters]);
  fdb.wouldLearn(10, 0x525400000009, A);
  t.equal(JSON.stringify([fdb.list(0), fdb.counters]), now, 'wouldLearn itself changes nothing');
});
