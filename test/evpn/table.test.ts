// The table of the fabric's EVPN routes: what a VNI floods to, where each MAC is, what an IP's
// MAC is. A property holds it to a model recomputed from the routes alive after any sequence of
// announcements and withdrawals; examples pin the rules (sequence numbers, sticky, ties).
import fc from 'fast-check';
import t from 'tap';
import { RtImport, type EvpnRoute, type MacRoute } from '../../src/evpn/routes.js';
import { EvpnTable, compareAddr } from '../../src/evpn/table.js';

const OWN = '192.0.2.2';

function imports(): RtImport {
  const i = new RtImport();
  i.add(100, '*:100');
  i.add(200, '65000:200');
  return i;
}

function mac(o: Partial<MacRoute> = {}): MacRoute {
  return {
    type: 2,
    rd: '192.0.2.3:100',
    etag: 0,
    rts: ['65000:100'],
    from: '192.0.2.3',
    nexthop: '192.0.2.3',
    mac: 0x020000000001,
    ip: '',
    label: 100,
    seq: 0,
    sticky: false,
    ...o,
  };
}

function imet(origin: string, o: Partial<EvpnRoute> = {}): EvpnRoute {
  return {
    type: 3,
    rd: `${origin}:100`,
    etag: 0,
    rts: ['65000:100'],
    from: origin,
    nexthop: origin,
    origin,
    pmsi: { type: 6, label: 100 },
    ...o,
  } as EvpnRoute;
}

t.test('flood list: type-3 originators with ingress replication', async (t) => {
  const tb = new EvpnTable(imports(), OWN);
  t.equal(tb.add(imet('192.0.2.4')), undefined);
  tb.add(imet('192.0.2.3'));
  tb.add(imet('192.0.2.5', { pmsi: undefined } as Partial<EvpnRoute>));
  tb.add(imet('192.0.2.6', { pmsi: { type: 3, label: 100 } } as Partial<EvpnRoute>));
  t.same(tb.flood(100), ['192.0.2.3', '192.0.2.4'], 'sorted; none without PMSI type 6 (as FRR)');
  t.same(tb.counts(100), [0, 4]);
  t.same([...tb.takeDirty().keys()], [100]);
  t.same(tb.takeDirty().size, 0, 'taken');
  t.ok(tb.withdraw(imet('192.0.2.4')));
  t.notOk(tb.withdraw(imet('192.0.2.4')), 'twice: not held');
  t.same(tb.flood(100), ['192.0.2.3']);
  t.match(tb.takeDirty().get(100), { flood: true });
  t.same(tb.flood(999), []);
});

t.test('what is not taken: ours, not imported, a label that is not the VNI', async (t) => {
  const tb = new EvpnTable(imports(), OWN);
  t.equal(tb.add(imet(OWN)), 'own', 'our type-3 coming back');
  t.equal(tb.add(mac({ nexthop: OWN })), 'own', 'our type-2 coming back');
  t.equal(tb.add(mac({ from: '' })), 'own', "the speaker's own (added through its API)");
  t.equal(tb.add(mac({ rts: ['65000:300'] })), 'no_import');
  t.equal(tb.add(mac({ rts: [] })), 'no_import', 'no target, no import');
  t.equal(tb.add(mac({ label: 101 })), 'label');
  t.equal(tb.add(mac({ rts: ['65000:200'], label: 200 })), undefined, 'an explicit target');
  t.equal(tb.size, 1);
  t.same(tb.heldVnis(), [200]);
});

t.test('where a MAC is: sticky, then sequence, then the lower VTEP', async (t) => {
  const tb = new EvpnTable(imports(), OWN);
  const M = 0x020000000001;
  tb.add(mac({ from: '192.0.2.9', nexthop: '192.0.2.9', rd: 'x:1' }));
  tb.add(mac({ from: '192.0.2.10', nexthop: '192.0.2.10', rd: 'y:1' }));
  t.equal(tb.best(100, M)?.nexthop, '192.0.2.9', 'a tie: the lower address (numerically)');
  tb.add(mac({ from: '192.0.2.10', nexthop: '192.0.2.10', rd: 'y:1', seq: 1 }));
  t.equal(tb.best(100, M)?.nexthop, '192.0.2.10', 'the higher sequence number');
  t.same(tb.counts(100), [2, 0], 'a re-announcement replaces, it does not add');
  tb.add(mac({ from: '192.0.2.9', nexthop: '192.0.2.9', rd: 'x:1', sticky: true }));
  t.equal(tb.best(100, M)?.nexthop, '192.0.2.9', 'sticky beats a higher sequence number');
  t.same(tb.senders(100), ['192.0.2.10', '192.0.2.9']);
  t.same(tb.macs(100), [M]);
  tb.withdraw(mac({ from: '192.0.2.9', nexthop: '192.0.2.9', rd: 'x:1' }));
  tb.withdraw(mac({ from: '192.0.2.10', nexthop: '192.0.2.10', rd: 'y:1' }));
  t.equal(tb.best(100, M), undefined);
  t.same(tb.senders(100), []);
  t.equal(tb.size, 0);
});

t.test('MAC+IP: the neighbour of an IP, by the best-placed MAC', async (t) => {
  const tb = new EvpnTable(imports(), OWN);
  tb.add(mac({ ip: '10.0.0.1' }));
  tb.add(
    mac({ ip: '10.0.0.1', mac: 0x020000000002, from: '192.0.2.4', nexthop: '192.0.2.4', seq: 2 }),
  );
  t.equal(tb.neighbour(100, '10.0.0.1'), 0x020000000002, 'the MAC with the higher sequence number');
  t.same([...tb.takeDirty().get(100)!.ips], ['10.0.0.1']);
  tb.withdraw(
    mac({ ip: '10.0.0.1', mac: 0x020000000002, from: '192.0.2.4', nexthop: '192.0.2.4' }),
  );
  t.equal(tb.neighbour(100, '10.0.0.1'), 0x020000000001);
  tb.withdraw(mac({ ip: '10.0.0.1' }));
  t.equal(tb.neighbour(100, '10.0.0.1'), undefined);
  t.equal(tb.neighbour(7, '10.0.0.1'), undefined);
});

t.test('new import rules: everything re-filed', async (t) => {
  const tb = new EvpnTable(imports(), OWN);
  tb.add(mac({ rd: '192.0.2.3:300', rts: ['65000:300'], label: 300 }));
  tb.add(mac());
  const i = imports();
  i.add(300, '*:300');
  tb.reimport(i);
  t.same(tb.heldVnis().sort(), [100, 300]);
  tb.clear();
  t.equal(tb.size, 0);
});

t.test('stale routes (a lost session): kept until swept, unless announced again', async (t) => {
  const tb = new EvpnTable(imports(), OWN);
  tb.add(imet('192.0.2.3'));
  tb.add(mac());
  tb.add(mac({ rd: 'x:1', rts: ['65000:999'] })); // held aside, not imported
  tb.markStale();
  tb.takeDirty();
  tb.reimport(imports()); // a new session's sync: still stale
  tb.add(mac()); // announced again by the new session
  t.equal(tb.sweepStale(), 2, 'the type-3 and the unimported one were not');
  t.same(tb.flood(100), []);
  t.equal(tb.best(100, 0x020000000001)?.nexthop, '192.0.2.3', 'the re-announced MAC stays');
  t.equal(tb.size, 1);
  t.equal(tb.sweepStale(), 0, 'nothing twice');
  tb.markStale();
  tb.withdraw(mac());
  t.equal(tb.sweepStale(), 0, 'a withdrawn one is gone already');
});

t.test('compareAddr: numeric for IPv4, text otherwise', async (t) => {
  t.ok(compareAddr('192.0.2.9', '192.0.2.10') < 0);
  t.equal(compareAddr('192.0.2.9', '192.0.2.9'), 0);
  t.ok(compareAddr('2001:db8::1', '2001:db8::2') < 0);
  t.ok(compareAddr('2001:db8::2', '2001:db8::1') > 0);
  t.equal(compareAddr('::1', '::1'), 0);
});

// The model: from the routes alive (last announcement per key, not withdrawn since).
const PEERS = ['192.0.2.3', '192.0.2.4', '192.0.2.10'];
const arbRoute = fc.oneof(
  fc.record({
    type: fc.constant(2 as const),
    peer: fc.constantFrom(...PEERS),
    mac: fc.integer({ min: 1, max: 4 }),
    ip: fc.constantFrom('', '10.0.0.1', '10.0.0.2'),
    seq: fc.integer({ min: 0, max: 3 }),
    sticky: fc.boolean(),
    vni: fc.constantFrom(100, 101),
  }),
  fc.record({
    type: fc.constant(3 as const),
    peer: fc.constantFrom(...PEERS),
    vni: fc.constantFrom(100, 101),
  }),
);
const arbOp = fc.record({ withdraw: fc.boolean(), r: arbRoute });

type Gen =
  | { type: 2; peer: string; mac: number; ip: string; seq: number; sticky: boolean; vni: number }
  | { type: 3; peer: string; vni: number };

function toRoute(g: Gen): EvpnRoute {
  return g.type === 2
    ? mac({
        from: g.peer,
        nexthop: g.peer,
        rd: `${g.peer}:${g.vni}`,
        rts: [`65000:${g.vni}`],
        label: g.vni,
        mac: g.mac,
        ip: g.ip,
        seq: g.seq,
        sticky: g.sticky,
      })
    : imet(g.peer, { rd: `${g.peer}:${g.vni}`, rts: [`65000:${g.vni}`] });
}

t.test('property: the table equals a model of the routes alive', async (t) => {
  fc.assert(
    fc.property(fc.array(arbOp, { maxLength: 60 }), (ops) => {
      const i = new RtImport();
      i.add(100, '*:100');
      i.add(101, '*:101');
      const tb = new EvpnTable(i, OWN);
      const alive = new Map<string, EvpnRoute>();
      const key = (r: EvpnRoute) =>
        r.type === 2 ? `2${r.rd}${r.mac}${r.ip}${r.from}` : `3${r.rd}${r.from}`;
      for (const op of ops) {
        const r = toRoute(op.r);
        if (op.withdraw) {
          tb.withdraw(r);
          alive.delete(key(r));
        } else {
          tb.add(r);
          alive.set(key(r), r);
        }
      }
      for (const vni of [100, 101]) {
        const routes = [...alive.values()].filter((r) => r.rts[0] === `65000:${vni}`);
        const flood = [
          ...new Set(
            routes.filter((r) => r.type === 3).map((r) => (r as { origin: string }).origin),
          ),
        ].sort();
        if (tb.flood(vni).join() !== flood.join()) return false;
        const macs = routes.filter((r): r is MacRoute => r.type === 2);
        const senders = [...new Set(macs.map((r) => r.nexthop))].sort();
        if (tb.senders(vni).join() !== senders.join()) return false;
        for (let m = 1; m <= 4; m++) {
          const mine = macs.filter((r) => r.mac === m);
          const best = mine.sort(
            (a, b) =>
              Number(b.sticky) - Number(a.sticky) ||
              b.seq - a.seq ||
              compareAddr(a.nexthop, b.nexthop),
          )[0];
          const got = tb.best(vni, m);
          if (
            best?.nexthop !== got?.nexthop ||
            best?.seq !== got?.seq ||
            best?.sticky !== got?.sticky
          )
            return false;
        }
        const [n2, n3] = tb.counts(vni);
        if (n2 !== macs.length || n3 !== routes.length - macs.length) return false;
      }
      return tb.size === alive.size;
    }),
    { numRuns: 500 },
  );
  t.pass('500 sequences of announcements and withdrawals');
});
