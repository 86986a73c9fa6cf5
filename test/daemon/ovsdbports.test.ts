// The data-plane side of the OVSDB gateway (src/daemon/ovsdbports.ts) over fakes: views of the
// database applied to a real engine and FDB with fake TAPs; bindings move TAPs between VNIs
// without closing them, only what changed is touched, an operator's entries win.
import t from 'tap';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { FakeNetwork, FakeTap } from '../../src/io/testdevices.js';
import { OvsdbPorts } from '../../src/daemon/ovsdbports.js';
import type { TapPort } from '../../src/daemon/tapport.js';
import { Planes } from '../../src/daemon/threads/planes.js';
import type { GatewayView, LogicalSwitchView } from '../../src/ovsdb/hwvtep.js';
import type { Level } from '../../src/util/log.js';
import { Engine } from '../../src/engine/engine.js';

function setup(opts: { maxEntries?: number; statics?: number[] } = {}) {
  const net = new FakeNetwork();
  const fdb = new Fdb({ maxEntries: opts.maxEntries });
  const engine = new Engine({ underlay: net.bind('192.0.2.2', 4789), fdb });
  const remotes = new Remotes();
  const ports = new Map<number, TapPort>();
  const lines: { level: Level; event: string; msg: string }[] = [];
  const gw = new OvsdbPorts({
    planes: Planes.single(engine, fdb),
    fdb,
    remotes,
    ports,
    staticVnis: () => new Set(opts.statics ?? []),
    dstPort: () => 4789,
    outer: () => ({ ttl: 7 }),
    log: (level, event, msg) => lines.push({ level, event, msg }),
    clock: () => 1000,
  });
  const taps = ['tap0', 'tap1'].map((name) => {
    const tap = new FakeTap(name);
    const spec = { vni: -1, name, mtu: 1450, mac: 0x020000000001, slotSize: 2048 };
    const port = {
      spec,
      tap,
      setVni: (vni: number) => (spec.vni = vni),
      queue: () => ({ name, slotSize: 2048, offloads: 0 }),
    };
    gw.add(port as unknown as TapPort);
    return { port, tap };
  });
  return { fdb, engine, ports, gw, lines, taps };
}

function ls(
  uuid: string,
  vni: number,
  port: string,
  macs: [number, string][] = [],
  flood: string[] = [],
  neighbours: [string, number][] = [],
): LogicalSwitchView {
  const senders = [...new Set([...macs.map(([, ip]) => ip), ...flood])].sort();
  return {
    uuid,
    name: uuid,
    vni,
    port,
    remoteMacs: new Map(macs),
    neighbours: new Map(neighbours),
    flood,
    senders,
  };
}

function view(...switches: LogicalSwitchView[]): GatewayView {
  return {
    registered: true,
    tunnelIps: [],
    portUuids: [],
    ports: [],
    switches: new Map(switches.map((s) => [s.uuid, s])),
    localRows: new Map(),
    mcastLocalRows: new Map(),
    malformed: 0,
  };
}

const A = 0x525400000001;
const B = 0x525400000002;

t.test('bindings, remote MACs and flood lists applied; only changes touched', async (t) => {
  const s = setup();
  s.gw.apply(view(ls('ls1', 5000, 'tap0', [[A, '192.0.2.1']], ['192.0.2.1', '192.0.2.3'])));
  t.equal(s.taps[0].port.spec.vni, 5000, 'the TAP carries the VNI');
  t.equal(s.ports.get(5000), s.taps[0].port as unknown as TapPort);
  t.same(s.gw.vnis(), [5000]);
  t.same(
    s.fdb.list(0, 5000).map((r) => [r.mac, r.remote, r.source]),
    [['52:54:00:00:00:01', '192.0.2.1:4789', 'ovsdb']],
  );
  t.same(
    s.fdb.floodList(5000).map((r) => r.key),
    ['192.0.2.1:4789', '192.0.2.3:4789'],
  );
  t.same(s.gw.localMacs(5000), [], 'no TAP-side MAC yet');
  t.same(s.gw.localMacs(1), [], 'not ours');
  t.match(s.lines, [{ event: 'ovsdb_bind', msg: /tap0: bound to logical switch ls1, vni 5000/ }]);

  // A MAC moves, one comes, the flood list shrinks; the operator's own entry is left alone.
  s.fdb.addStatic(5000, 0x52540000000f, s.engine.fdb.floodList(5000)[0], 0);
  s.gw.apply(
    view(
      ls(
        'ls1',
        5000,
        'tap0',
        [
          [A, '192.0.2.3'],
          [B, '192.0.2.1'],
          [0x52540000000f, '192.0.2.3'],
        ],
        ['192.0.2.3'],
      ),
    ),
  );
  t.same(
    s.fdb.list(0, 5000).map((r) => [r.mac, r.remote, r.source]),
    [
      ['52:54:00:00:00:01', '192.0.2.3:4789', 'ovsdb'],
      ['52:54:00:00:00:02', '192.0.2.1:4789', 'ovsdb'],
      ['52:54:00:00:00:0f', '192.0.2.1:4789', 'static'],
    ],
  );
  t.same(
    s.fdb.floodList(5000).map((r) => r.key),
    ['192.0.2.3:4789'],
  );
  // The operator replaces one of ours: when OVSDB withdraws it, theirs stays.
  s.fdb.addStatic(5000, B, s.engine.fdb.floodList(5000)[0], 0);
  s.gw.apply(view(ls('ls1', 5000, 'tap0', [[A, '192.0.2.3']], ['192.0.2.3'])));
  t.same(
    s.fdb.list(0, 5000).map((r) => [r.mac, r.source]),
    [
      ['52:54:00:00:00:01', 'ovsdb'],
      ['52:54:00:00:00:02', 'static'],
      ['52:54:00:00:00:0f', 'static'],
    ],
  );
  s.gw.apply(view(ls('ls1', 5000, 'tap0', [], ['192.0.2.3'])));
  t.notOk(s.fdb.get(5000, A), 'withdrawn');
  // ipaddr (OVN's port addresses): pinned for ARP/ND suppression, which bound VNIs have.
  const suppressed = () => s.engine.stats().vnis.find((v) => v.vni === 5000)!.suppress!.entries;
  s.gw.apply(view(ls('ls1', 5000, 'tap0', [[A, '192.0.2.3']], ['192.0.2.3'], [['10.0.0.1', A]])));
  t.equal(suppressed(), 1, 'pinned');
  s.gw.apply(view(ls('ls1', 5000, 'tap0', [[A, '192.0.2.3']], ['192.0.2.3'], [['10.0.0.1', B]])));
  t.equal(suppressed(), 1, 'moved to another MAC: still one');
  s.gw.apply(view(ls('ls1', 5000, 'tap0', [], ['192.0.2.3'])));
  t.equal(suppressed(), 0, 'gone with its row');

  // The logical switch moves to the other TAP, and tap0 gets another one.
  s.gw.apply(view(ls('ls1', 5000, 'tap1'), ls('ls2', 6000, 'tap0')));
  t.same(
    [s.taps[0].port.spec.vni, s.taps[1].port.spec.vni],
    [6000, 5000],
    'moved without closing either TAP',
  );
  t.equal(s.taps[0].tap.closed, false);
  t.same(
    s.engine
      .stats()
      .vnis.map((v) => [v.vni, v.tap])
      .sort(),
    [
      [5000, 'tap1'],
      [6000, 'tap0'],
    ],
  );
  s.gw.apply(view());
  t.same([s.taps[0].port.spec.vni, s.taps[1].port.spec.vni], [-1, -1], 'both unbound');
  t.equal(s.ports.size, 0);
  t.ok(s.lines.some((l) => l.event === 'ovsdb_unbind'));
});

t.test('a binding to a static VNI is refused; a full table is said, not thrown', async (t) => {
  const s = setup({ statics: [7000], maxEntries: 1 });
  s.gw.apply(view(ls('ls1', 7000, 'tap0')));
  t.equal(s.taps[0].port.spec.vni, -1, 'not bound');
  t.equal(
    s.gw.refused.get('tap0'),
    'vni 7000 of logical switch ls1 is a static VNI of this vtep; not bound',
  );
  s.gw.apply(view(ls('ls1', 7000, 'tap0')));
  t.equal(s.lines.filter((l) => l.event === 'ovsdb_port').length, 1, 'said once');
  s.gw.apply(
    view(
      ls('ls2', 5000, 'tap1', [
        [A, '192.0.2.1'],
        [B, '192.0.2.1'],
      ]),
    ),
  );
  t.equal(s.fdb.size, 1, 'one fits');
  t.match(s.lines.find((l) => l.event === 'ovsdb_fdb')?.msg, /not installed: .*table full/);
  // Thousands that do not fit (the first one takes the free place): one line per update.
  const many = Array.from({ length: 5000 }, (_, i): [number, string] => [
    0x02aa00000000 + i,
    '192.0.2.1',
  ]);
  const before = s.lines.length;
  s.gw.apply(view(ls('ls2', 5000, 'tap1', many)));
  s.gw.apply(view(ls('ls2', 5000, 'tap1', [...many, [0x02bb00000001, '192.0.2.1']])));
  const said = s.lines.slice(before).filter((l) => l.event === 'ovsdb_fdb');
  t.equal(said.length, 2, 'two updates, two lines');
  t.match(said[0].msg, /^vni 5000: 4999 remote MACs not installed: .*table full.* \(the first: /);
  t.match(said[1].msg, /^vni 5000: 5000 remote MACs not installed/);
});
