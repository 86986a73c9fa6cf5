// vtep as a hardware_vtep gateway, driven by hand through vtep-ctl (what an operator or a
// controller writes): a real ovsdb-server with Debian's vtep.ovsschema, a real `vtep run --ovsdb`
// in a namespace beside a kernel VXLAN peer. Bindings, remote MACs and flood lists written with
// vtep-ctl reach our data plane; the MACs behind our TAP reach the database; the session
// survives the server's restart without stale entries or duplicate rows.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { bg, sleep } from '../../src/lab/sh.js';
import { Topology, UNDERLAY, VM, vtepBin } from '../../src/lab/topology.js';
import { sendFrames } from '../helpers/afpacket.js';
import { logEvents } from '../helpers/log.js';
import { needs } from '../helpers/prereq.js';
import { within } from '../helpers/within.js';
import { VtepDb } from '../helpers/vtepdb.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ping', 'bridge', 'ovsdb-server', 'ovsdb-tool', 'vtep-ctl'],
});
const topo = ready
  ? await Topology.build({ prefix: `o${process.pid % 10000}`, peers: ['kernel'], reap: true })
  : (undefined as unknown as Topology);
const db = ready ? new VtepDb(join(topo.dir, 'vtepdb')) : (undefined as unknown as VtepDb);
if (ready) {
  t.teardown(async () => {
    await topo.stopVtep();
    await db.stop();
    topo.teardown();
  });
  mkdirSync(db.dir, { recursive: true });
  db.start();
  const config = join(topo.dir, 'vtep.yaml');
  writeFileSync(
    config,
    `local: ${UNDERLAY.vtep}\nageing: 3\nmetrics: ${UNDERLAY.vtep}:9110\novsdb:\n  target: ${db.target}\n  physicalSwitch: ps0\n  ports: [${topo.tap}, ${topo.tap}2]\n  mtu: 1450\n`,
  );
  await topo.startVtep([], { config });
}

const test = (name: string, fn: (t: Test) => Promise<void>) =>
  ready ? t.test(name, fn) : undefined;

type Row = { vni: number; mac: string; remote: string; source: string; flood?: boolean };
const fdb = async () => (await topo.ask('fdb.show')) as Row[];
type Stats = {
  vnis: { vni: number; tap: string; remotes: string[] }[];
  drops: Record<string, number>;
  ovsdb: {
    state: string;
    connects: number;
    ports: { name: string; vni: number | null; logicalSwitch?: string; problem?: string }[];
    remoteMacs: number;
    localMacs: number;
    protocolErrors: number;
  };
};
const stats = async () => (await topo.ask('stats')) as Stats;
const ping = (from: string, to: string, count = 3) =>
  topo.get(from).exec(`ping -c ${count} -i 0.2 -W 1 ${to}`, { allowFail: true });
/** `vtep_ovsdb_*` samples from a scrape on the vtep's host: `name{labels} value` lines. */
const ovsdbMetrics = () =>
  topo
    .get('hostB')
    .exec(
      `${process.execPath} -e "fetch('http://${UNDERLAY.vtep}:9110/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"`,
    )
    .split('\n')
    .filter((l) => l.startsWith('vtep_ovsdb_'));
const localMacs = () =>
  db
    .ctl(['list-local-macs', 'ls0'])
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[0-9a-f]{2}:/.test(l) || l.startsWith('unknown-dst'));

test('registers its switch and port; a binding gives the TAP its VNI live', async (t) => {
  t.ok(
    (await within(3000, () => db.ctl(['list-ps']).includes('ps0'))) >= 0,
    'vtep-ctl list-ps shows ps0',
  );
  t.same(
    db.ctl(['list-ports', 'ps0']).trim().split('\n').sort(),
    [topo.tap, `${topo.tap}2`],
    'each TAP is a port',
  );
  t.same(
    db.rows('Physical_Switch').map((r) => r.tunnel_ips),
    [UNDERLAY.vtep],
    'tunnel_ips is our underlay address',
  );
  let s = await stats();
  t.match(s.ovsdb, {
    state: 'connected',
    connects: 1,
    ports: [
      { name: topo.tap, vni: null },
      { name: `${topo.tap}2`, vni: null },
    ],
  });
  const m = ovsdbMetrics();
  t.ok(m.includes(`vtep_ovsdb_connected{target="${db.target}"} 1`), m.join('\n'));
  t.ok(m.includes('vtep_ovsdb_sessions_total 1'));
  t.ok(m.includes('vtep_ovsdb_transactions_total{result="failed"} 0'));
  t.same(s.vnis, [], 'no VNI before a binding');
  t.equal(
    spawnSync(process.execPath, [vtepBin(), 'status', '--control', topo.control]).status,
    0,
    'an unbound port is not a fault',
  );

  db.ctl(['add-ls', 'ls0', '--', 'set', 'Logical_Switch', 'ls0', 'tunnel_key=5000']);
  db.ctl(['bind-ls', 'ps0', topo.tap, '0', 'ls0']);
  t.ok(
    (await within(1000, async () => (await stats()).vnis.some((v) => v.vni === 5000))) >= 0,
    'bound within a second: the TAP carries vni 5000',
  );
  s = await stats();
  t.match(s.ovsdb.ports, [{ name: topo.tap, vni: 5000, logicalSwitch: 'ls0' }]);
  t.equal(s.vnis[0].tap, topo.tap);

  // A second port on another logical switch: a second VNI of the same switch.
  db.ctl(['add-ls', 'ls1', '--', 'set', 'Logical_Switch', 'ls1', 'tunnel_key=6000']);
  db.ctl(['bind-ls', 'ps0', `${topo.tap}2`, '0', 'ls1']);
  t.ok(
    (await within(1000, async () => (await stats()).vnis.length === 2)) >= 0,
    'two ports, two VNIs',
  );
  t.same(
    (await stats()).vnis.map((v) => [v.vni, v.tap]),
    [
      [5000, topo.tap],
      [6000, `${topo.tap}2`],
    ],
  );
  db.ctl(['unbind-ls', 'ps0', `${topo.tap}2`, '0']);
  t.ok((await within(1000, async () => (await stats()).vnis.length === 1)) >= 0, 'unbound again');
});

test('remote MACs and the flood list from vtep-ctl reach the FDB within a second; ping both ways', async (t) => {
  db.ctl(['add-ucast-remote', 'ls0', VM.kernel.mac, UNDERLAY.kernel]);
  db.ctl(['add-mcast-remote', 'ls0', 'unknown-dst', UNDERLAY.kernel]);
  db.ctl(['set', 'Logical_Switch', 'ls0', 'replication_mode=source_node']);
  const took = await within(1000, async () => {
    const rows = await fdb();
    return (
      rows.some((r) => r.mac === VM.kernel.mac && r.source === 'ovsdb') &&
      rows.some((r) => r.flood && r.remote === `${UNDERLAY.kernel}:4789`)
    );
  });
  t.ok(took >= 0, `in the FDB after ${took} ms`);
  const rows = await fdb();
  t.match(
    rows.find((r) => r.mac === VM.kernel.mac),
    {
      vni: 5000,
      remote: `${UNDERLAY.kernel}:4789`,
      source: 'ovsdb',
    },
  );
  t.match(
    rows.find((r) => r.flood),
    { source: 'ovsdb' },
  );
  const text = spawnSync(process.execPath, [vtepBin(), 'fdb', 'show', '--control', topo.control], {
    encoding: 'utf8',
  }).stdout;
  t.match(
    text,
    `${VM.kernel.mac} dev ${topo.tap} dst ${UNDERLAY.kernel} port 4789 vni 5000 self permanent extern_learn ovsdb`,
  );
  t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'vmB → kernel VM');
  t.match(ping('vmC', VM.vtep.ip), / 0% packet loss/, 'kernel VM → vmB');
});

test('the MACs behind the TAP are what vtep-ctl list-local-macs shows, and age out', async (t) => {
  const took = await within(1000, () =>
    localMacs().some((l) => l.startsWith(VM.vtep.mac) && l.includes(UNDERLAY.vtep)),
  );
  t.ok(took >= 0, `Ucast_Macs_Local has vmB's MAC after ${took} ms`);
  const rows = localMacs();
  t.same(
    rows.filter((l) => /^[0-9a-f]{2}:/.test(l)),
    [`${VM.vtep.mac} -> vxlan_over_ipv4/${UNDERLAY.vtep}`],
    'exactly the MAC behind our TAP, at our locator',
  );
  t.ok(
    rows.includes(`unknown-dst -> vxlan_over_ipv4/${UNDERLAY.vtep}`),
    'and unknown-dst at our locator, as ovs-vtep publishes it',
  );
  t.equal((await stats()).ovsdb.localMacs, 1);

  // A MAC that speaks once is published, then withdrawn when it ages out (ageing: 3 s here).
  const once = '02:00:5e:00:00:42';
  sendFrames(topo.get('vmB'), topo.tap, [
    `ffffffffffff${once.replace(/:/g, '')}88b5${'00'.repeat(46)}`,
  ]);
  t.ok(
    (await within(1000, () => localMacs().some((l) => l.startsWith(once)))) >= 0,
    'a new MAC behind the TAP is published within a second',
  );
  t.ok(
    (await within(6000, () => !localMacs().some((l) => l.startsWith(once)))) >= 0,
    'and withdrawn once it aged out',
  );
});

test('changes apply live: a MAC withdrawn, the port unbound and bound again', async (t) => {
  db.ctl(['del-ucast-remote', 'ls0', VM.kernel.mac]);
  t.ok(
    (await within(
      1000,
      async () => !(await fdb()).some((r) => r.source === 'ovsdb' && !r.flood),
    )) >= 0,
    'the withdrawn MAC leaves the FDB',
  );
  db.ctl(['unbind-ls', 'ps0', topo.tap, '0']);
  t.ok(
    (await within(1000, async () => (await stats()).vnis.length === 0)) >= 0,
    'unbound: the VNI goes',
  );
  t.ok((await within(1000, () => localMacs().length === 0)) >= 0, 'and our rows with it');
  t.ok(
    spawnSync('ip', ['netns', 'exec', topo.get('vmB').name, 'ip', '-o', 'link', 'show', topo.tap], {
      encoding: 'utf8',
    }).stdout.includes(topo.tap),
    'the TAP itself stays (in the VM namespace, addressed)',
  );
  ping('vmB', VM.kernel.ip, 2);
  t.ok((await stats()).drops.port_unbound > 0, 'frames of the unbound port are counted');
  db.ctl(['add-ucast-remote', 'ls0', VM.kernel.mac, UNDERLAY.kernel]);
  db.ctl(['bind-ls', 'ps0', topo.tap, '0', 'ls0']);
  t.ok(
    (await within(1000, async () => (await stats()).vnis.some((v) => v.vni === 5000))) >= 0,
    'bound again',
  );
  t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'forwarding again');
});

test('an ovsdb-server restart: reconnect, resync, no stale entries, no duplicate rows', async (t) => {
  // Traffic flows while the database is away.
  const p = bg(`${topo.get('vmB').prefix} ping -i 0.1 -c 40 -W 1 ${VM.kernel.ip}`);
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  const done = new Promise((r) => p.once('exit', r));
  await db.stop();
  t.ok(
    (await within(2000, async () => (await stats()).ovsdb.state !== 'connected')) >= 0,
    'the session is seen lost',
  );
  t.equal(
    spawnSync(process.execPath, [vtepBin(), 'status', '--control', topo.control]).status,
    1,
    'vtep status says so (exit 1)',
  );
  // While it is down, the remote MAC is deleted from the file: after the resync, it must go.
  const uuid = spawnSync(
    'ovsdb-tool',
    [
      'query',
      db.file,
      JSON.stringify(['hardware_vtep', { op: 'select', table: 'Ucast_Macs_Remote', where: [] }]),
    ],
    { encoding: 'utf8' },
  );
  t.match(uuid.stdout, VM.kernel.mac);
  const del = spawnSync(
    'ovsdb-tool',
    [
      'transact',
      db.file,
      JSON.stringify(['hardware_vtep', { op: 'delete', table: 'Ucast_Macs_Remote', where: [] }]),
    ],
    { encoding: 'utf8' },
  );
  t.equal(del.status, 0, del.stderr);
  db.start();
  t.ok(
    (await within(8000, async () => {
      const s = await stats();
      return s.ovsdb.state === 'connected' && s.ovsdb.connects === 2;
    })) >= 0,
    'connected again',
  );
  t.ok(
    (await within(
      1000,
      async () => !(await fdb()).some((r) => r.source === 'ovsdb' && !r.flood),
    )) >= 0,
    'the MAC deleted while we were away is gone from the FDB',
  );
  await done;
  t.match(out, / 0% packet loss/, 'no ping lost while the database was away');
  await sleep(500);
  t.equal(db.rows('Physical_Switch').length, 1, 'one Physical_Switch');
  t.equal(db.rows('Physical_Port').length, 2, 'one Physical_Port per TAP');
  t.equal(db.rows('Physical_Locator').filter((r) => r.dst_ip === UNDERLAY.vtep).length, 1);
  const macs = db.rows('Ucast_Macs_Local').map((r) => r.MAC);
  t.same(macs, [VM.vtep.mac], 'one Ucast_Macs_Local row, not two');
  t.equal(db.rows('Mcast_Macs_Local').length, 1, 'one unknown-dst row');
  const events = logEvents(topo.vtepLog).map((e) => e.event);
  t.ok(events.includes('ovsdb_lost') && events.includes('ovsdb_connected'), 'logged plainly');
  t.ok(ovsdbMetrics().includes('vtep_ovsdb_sessions_total 2'), 'the metric counts the reconnect');
});
