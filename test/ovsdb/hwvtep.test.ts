// What the hardware_vtep database means for the gateway (src/ovsdb/hwvtep.ts), over plain rows:
// the datum readers, the replica, the view (bindings, remote MACs, flood lists) and the
// transaction that registers us and publishes our MACs. Malformed rows read as absent.
import t from 'tap';
import {
  Replica,
  elements,
  gatewayView,
  int,
  pairs,
  reconcileOps,
  schemaGaps,
  str,
  uuids,
  type Me,
} from '../../src/ovsdb/hwvtep.js';

const me: Me = { name: 'ps0', tunnelIp: '192.0.2.2', ports: ['tap0', 'tap1'] };
const u = (x: string) => ['uuid', x];
const set = (...xs: unknown[]) => ['set', xs];
const map = (...kv: [unknown, unknown][]) => ['map', kv];

/** A database with our switch, two ports, two logical switches and the hypervisors' rows. */
function populated(): Replica {
  const db = new Replica();
  const n = (row: object) => ({ new: row });
  db.reset({
    Global: { g: n({ switches: set(u('ps')) }) },
    Physical_Switch: {
      ps: n({ name: 'ps0', tunnel_ips: '192.0.2.2', ports: set(u('p0'), u('p1'), u('px')) }),
      other: n({ name: 'ps9', tunnel_ips: set(), ports: set() }),
    },
    Physical_Port: {
      p0: n({ name: 'tap0', vlan_bindings: map([0, u('ls1')], [7, u('ls2')]) }),
      p1: n({ name: 'tap1', vlan_bindings: map([0, u('ls2')]) }),
      px: n({ name: 'someone-else', vlan_bindings: map() }),
    },
    Logical_Switch: {
      ls1: n({ name: 'blue', tunnel_key: 5000, replication_mode: 'source_node' }),
      ls2: n({ name: 'red', tunnel_key: 6000, replication_mode: set() }),
      ls3: n({ name: 'unused', tunnel_key: set() }),
    },
    Physical_Locator: {
      l1: n({ encapsulation_type: 'vxlan_over_ipv4', dst_ip: '192.0.2.1' }),
      l3: n({ encapsulation_type: 'vxlan_over_ipv4', dst_ip: '192.0.2.3' }),
      me: n({ encapsulation_type: 'vxlan_over_ipv4', dst_ip: '192.0.2.2' }),
      bad: n({ encapsulation_type: 'vxlan_over_ipv4', dst_ip: 'not-an-ip' }),
    },
    Physical_Locator_Set: {
      s13: n({ locators: set(u('l3'), u('l1'), u('me')) }),
      s1: n({ locators: u('l1') }),
      smine: n({ locators: u('me') }),
    },
    Ucast_Macs_Remote: {
      r1: n({
        MAC: '52:54:00:00:00:0A',
        logical_switch: u('ls1'),
        locator: u('l1'),
        ipaddr: '10.0.0.1',
      }),
      r2: n({ MAC: '52:54:00:00:00:0c', logical_switch: u('ls1'), locator: u('l3'), ipaddr: '' }),
      r3: n({ MAC: 'nonsense', logical_switch: u('ls1'), locator: u('l1') }),
      r4: n({ MAC: '01:00:5e:00:00:01', logical_switch: u('ls1'), locator: u('l1') }),
      r5: n({ MAC: '52:54:00:00:00:0d', logical_switch: u('ls1'), locator: u('bad') }),
      r6: n({ MAC: '52:54:00:00:00:0e', logical_switch: u('ls3'), locator: u('l1') }),
    },
    Mcast_Macs_Remote: {
      m1: n({ MAC: 'unknown-dst', logical_switch: u('ls1'), locator_set: u('s13') }),
      m2: n({ MAC: 'unknown-dst', logical_switch: u('ls2'), locator_set: u('s13') }),
      m3: n({ MAC: '01:00:5e:00:00:01', logical_switch: u('ls2'), locator_set: u('s1') }),
    },
    Ucast_Macs_Local: {
      a: n({ MAC: '52:54:00:00:00:0b', logical_switch: u('ls1'), locator: u('me') }),
      b: n({ MAC: '52:54:00:00:00:99', logical_switch: u('ls1'), locator: u('me') }),
      c: n({ MAC: '52:54:00:00:00:0a', logical_switch: u('ls1'), locator: u('l1') }),
    },
    Mcast_Macs_Local: {
      ml: n({ MAC: 'unknown-dst', logical_switch: u('ls1'), locator_set: u('smine') }),
      ml2: n({ MAC: 'unknown-dst', logical_switch: u('ls1'), locator_set: u('smine') }),
    },
  });
  return db;
}

t.test('datum readers never throw on the wrong shape', async (t) => {
  t.same(elements(['set', [1, 2]]), [1, 2]);
  t.same(elements('x'), ['x']);
  t.same(elements(undefined), []);
  t.same(uuids(set(u('a'), 'b', ['uuid', 3])), ['a']);
  t.equal(str(set()), undefined);
  t.equal(str(set('a', 'b')), undefined);
  t.equal(int(set(5)), 5);
  t.equal(int('5'), undefined);
  t.same(pairs(map([0, 1])), [[0, 1]]);
  t.same(pairs(['map', [[0], 'x', [1, 2]]]), [[1, 2]]);
  t.same(pairs('x'), []);
  const db = new Replica();
  t.equal(db.apply(null), 1, 'not an object');
  t.equal(
    db.apply({ Nope: {}, Global: 5, Physical_Port: { a: 5, b: { new: [1] }, c: { new: {} } } }),
    4,
    'unknown table, rows that are not objects: counted, skipped',
  );
  t.equal(db.rows('Physical_Port').size, 1);
  t.equal(db.apply({ Physical_Port: { c: {} } }), 0, 'no new: the row is gone');
  t.equal(db.rows('Physical_Port').size, 0);
  t.equal(db.rows('Nope').size, 0);
  t.equal(db.row('Global', undefined), undefined);
});

t.test('schema check: what a server lacks of what we use, by name', async (t) => {
  t.same(schemaGaps(null), ['(no tables)']);
  t.same(schemaGaps({ tables: 5 }), ['(no tables)']);
  const gaps = schemaGaps({ tables: { Global: { columns: { switches: {} } }, Physical_Port: {} } });
  t.equal(gaps[0], 'Physical_Switch');
  t.ok(gaps.includes('Physical_Port'), 'a table without columns');
  t.notOk(gaps.includes('Global') || gaps.includes('Global.switches'));
});

t.test('the view: bindings, remote MACs, flood lists, senders, our rows', async (t) => {
  const v = gatewayView(populated(), me);
  t.equal(v.switchUuid, 'ps');
  t.ok(v.registered);
  t.same(v.tunnelIps, ['192.0.2.2']);
  t.same(
    v.ports.map((p) => [p.name, p.uuid, p.vni, p.logicalSwitch?.name]),
    [
      ['tap0', 'p0', 5000, 'blue'],
      ['tap1', 'p1', 6000, 'red'],
    ],
  );
  t.match(v.ports[0].problem, /vlan 7 bindings are ignored/);
  const blue = v.switches.get('ls1')!;
  t.same(
    [...blue.remoteMacs].map(([m, ip]) => [m.toString(16), ip]),
    [
      ['52540000000a', '192.0.2.1'],
      ['52540000000c', '192.0.2.3'],
    ],
    'unicast remote MACs (case-insensitive), not the bad, group or unlocated ones',
  );
  t.same(
    [...blue.neighbours].map(([ip, m]) => [ip, m.toString(16)]),
    [['10.0.0.1', '52540000000a']],
    "the ipaddr column, where there is one (OVN writes its ports' addresses)",
  );
  t.same(blue.flood, ['192.0.2.1', '192.0.2.3'], 'source_node: every locator but ours');
  t.same(blue.senders, ['192.0.2.1', '192.0.2.3']);
  t.same(v.switches.get('ls2')!.flood, ['192.0.2.1'], 'service_node (the default): one copy');
  t.equal(v.locator, 'me');
  t.same([...v.localRows.keys()], ['ls1 52:54:00:00:00:0b', 'ls1 52:54:00:00:00:99']);
  t.same(v.mcastLocalRows.get('ls1'), ['ml', 'ml2']);
  t.equal(v.malformed, 3, 'the bad MAC, the group MAC and the locator without an address');
});

t.test('the view: what keeps a binding from taking effect', async (t) => {
  const db = populated();
  db.apply({
    Logical_Switch: { ls2: { new: { name: 'red', tunnel_key: 0 } } },
  });
  let v = gatewayView(db, me);
  t.match(v.ports[1], { vni: null, problem: 'logical switch red has no tunnel_key yet' });
  db.apply({ Logical_Switch: { ls2: { new: { name: 'red', tunnel_key: 5000 } } } });
  v = gatewayView(db, me);
  t.match(v.ports[1], { vni: null, problem: 'vni 5000 is already carried by port tap0' });
  db.apply({ Physical_Port: { p1: { new: { name: 'tap1', vlan_bindings: map([0, u('ls1')]) } } } });
  v = gatewayView(db, me);
  t.match(v.ports[1], {
    vni: null,
    problem: 'logical switch blue is already carried by port tap0',
  });
  // Nothing of ours in the database yet.
  v = gatewayView(new Replica(), me);
  t.same(
    [v.switchUuid, v.registered, v.globalUuid, v.locator, v.ports.map((p) => p.vni)],
    [undefined, false, undefined, undefined, [null, null]],
  );
});

t.test('reconcile: registers everything in one transaction on an empty database', async (t) => {
  const v = gatewayView(new Replica(), me);
  const ops = reconcileOps(v, me, new Map()) as Record<string, unknown>[];
  t.same(ops, [
    {
      op: 'insert',
      table: 'Physical_Switch',
      'uuid-name': 'ps',
      row: {
        name: 'ps0',
        tunnel_ips: set('192.0.2.2'),
        ports: set(['named-uuid', 'port0'], ['named-uuid', 'port1']),
      },
    },
    {
      op: 'wait',
      table: 'Global',
      where: [],
      columns: ['switches'],
      until: '==',
      rows: [],
      timeout: 0,
    },
    { op: 'insert', table: 'Global', row: { switches: set(['named-uuid', 'ps']) } },
    { op: 'insert', table: 'Physical_Port', 'uuid-name': 'port0', row: { name: 'tap0' } },
    { op: 'insert', table: 'Physical_Port', 'uuid-name': 'port1', row: { name: 'tap1' } },
  ]);
});

t.test('reconcile: only what differs, each insert guarded', async (t) => {
  const db = populated();
  let v = gatewayView(db, me);
  // Ours: 0b stays, 99 goes, 0f comes; ls2 gets its unknown-dst row; the duplicate ml2 goes.
  const ops = reconcileOps(
    v,
    me,
    new Map([
      ['ls1', [0x52540000000b, 0x52540000000f]],
      ['ls2', []],
      ['ls3', [0x525400000001]], // not one of our bound switches: ignored
    ]),
  ) as Record<string, unknown>[];
  t.same(
    ops.map((o) => `${String(o.op)} ${String(o.table)}`),
    [
      'wait Ucast_Macs_Local',
      'insert Ucast_Macs_Local',
      'delete Ucast_Macs_Local',
      'insert Physical_Locator_Set',
      'insert Mcast_Macs_Local',
      'delete Mcast_Macs_Local',
    ],
  );
  t.same(ops[1], {
    op: 'insert',
    table: 'Ucast_Macs_Local',
    row: { MAC: '52:54:00:00:00:0f', logical_switch: u('ls1'), locator: u('me') },
  });
  t.same(ops[0].where, [
    ['MAC', '==', '52:54:00:00:00:0f'],
    ['logical_switch', '==', u('ls1')],
  ]);
  t.same(ops[2].where, [['_uuid', '==', u('b')]]);
  t.same(ops[5].where, [['_uuid', '==', u('ml2')]]);

  // Our switch with a stale address, not in Global, a port missing; no locator of ours yet.
  db.apply({
    Global: { g: { new: { switches: set() } } },
    Physical_Switch: { ps: { new: { name: 'ps0', tunnel_ips: '192.0.2.7', ports: u('p0') } } },
    Physical_Locator: { me: {} },
  });
  v = gatewayView(db, me);
  const ops2 = reconcileOps(v, me, new Map([['ls1', [0x52540000000b]]])) as Record<
    string,
    unknown
  >[];
  t.same(
    ops2.map((o) => `${String(o.op)} ${String(o.table)}`),
    [
      'update Physical_Switch',
      'mutate Global',
      'wait Physical_Switch',
      'insert Physical_Port',
      'mutate Physical_Switch',
      'insert Physical_Locator',
      'wait Ucast_Macs_Local',
      'insert Ucast_Macs_Local',
      'insert Physical_Locator_Set',
      'insert Mcast_Macs_Local',
    ],
  );
  t.same(ops2[2].rows, [{ ports: set(u('p0')) }], 'the port insert waits on the ports it saw');
  t.same((ops2[7].row as Record<string, unknown>).locator, ['named-uuid', 'loc']);
  t.same(ops2[5].row, { encapsulation_type: 'vxlan_over_ipv4', dst_ip: '192.0.2.2' });
  t.same(
    reconcileOps(gatewayView(populated(), { ...me, ports: ['tap0'] }), me, new Map()).length,
    3,
    'nothing to publish: both Ucast_Macs_Local rows and the duplicate unknown-dst row go',
  );
});
