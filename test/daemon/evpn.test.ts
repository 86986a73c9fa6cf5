// The EVPN session (src/daemon/evpn.ts) against a stand-in gobgpd speaking GoBGP's gRPC API:
// our routes written, the fabric's applied to a real engine and FDB, MAC mobility both ways,
// an operator's entry kept, gobgpd lost (routes kept for the hold time) and back (one resync).
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { ChangeEvent } from '../../src/control/api.js';
import { Evpn, evpnProblems, evpnVnis } from '../../src/daemon/evpn.js';
import { Planes } from '../../src/daemon/threads/planes.js';
import { validate } from '../../src/config/config.js';
import { Engine } from '../../src/engine/engine.js';
import { AnyCodec, DEFAULT_PROTO_DIR, type ApiPath } from '../../src/evpn/gobgp.js';
import { decodePath, imetPath, macPath, type EvpnRoute } from '../../src/evpn/routes.js';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { FakeNetwork, FakeTap } from '../../src/io/testdevices.js';
import { until } from '../../src/lab/sh.js';
import { FakeGobgp } from '../../src/evpn/testgobgp.js';
import { needs } from '../helpers/prereq.js';

/** GoBGP's .proto files (golang-github-osrg-gobgp-dev), which the stand-in serves. */
const PROTOS = [join(DEFAULT_PROTO_DIR, 'gobgp.proto')];

const VNI = 100;
const PEER = '192.0.2.3';
const X = 0x525400000003;
const Y = 0x525400000002;
const Z = 0x525400000009;

/** A session against a fresh stand-in, started; both stopped when `t` ends. */
async function setup(t: Test, hold = 1) {
  const codec = AnyCodec.load();
  const fake = await FakeGobgp.start();
  const fdb = new Fdb({});
  const engine = new Engine({ underlay: new FakeNetwork().bind('192.0.2.2', 4789), fdb });
  const remotes = new Remotes();
  engine.addVni({
    vni: VNI,
    tap: new FakeTap('t0'),
    remotes: [],
    localMacs: true,
    suppressArp: true,
  });
  const lines: string[] = [];
  const changes: ChangeEvent[] = [];
  let vnis = [{ vni: VNI, statics: [remotes.get('192.0.2.7', 4789)] }];
  const evpn = new Evpn({
    spec: { gobgp: fake.target, holdTimeS: hold },
    planes: Planes.single(engine, fdb),
    fdb,
    remotes,
    vnis: () => vnis,
    local: '192.0.2.2',
    dstPort: () => 4789,
    log: (_l, event, msg) => lines.push(`${event}: ${msg}`),
    clock: () => performance.now(),
    changed: (e) => changes.push(e),
    backoffMs: [20, 50],
    initMs: 30,
  });
  t.teardown(async () => {
    await evpn.close();
    await fake.stop();
  });
  evpn.start();
  /** Our routes in the fake, decoded (as a peer would see them). */
  const ours = () =>
    fake.live().map((p) => decodePath(codec, { ...p, neighbor_ip: '192.0.2.2' }) as EvpnRoute);
  const o = { rd: `${PEER}:${VNI}`, rt: [`65000:${VNI}`], vni: VNI, vtep: PEER };
  const theirs = {
    imet: (): ApiPath => ({ ...imetPath(codec, o), neighbor_ip: PEER }),
    mac: (
      mac: number,
      x: { seq?: number; ip?: string; rt?: string[]; vni?: number } = {},
    ): ApiPath => ({
      ...macPath(codec, {
        ...o,
        ...(x.rt ? { rt: x.rt } : {}),
        vni: x.vni ?? VNI,
        mac,
        ip: x.ip,
        seq: x.seq ?? 0,
        sticky: false,
      }),
      neighbor_ip: PEER,
    }),
  };
  const withdraw = (p: ApiPath): ApiPath => ({ ...p, is_withdraw: true });
  return {
    fake,
    fdb,
    engine,
    remotes,
    evpn,
    lines,
    changes,
    ours,
    theirs,
    withdraw,
    setVnis: (v: typeof vnis) => (vnis = v),
  };
}

t.test("our routes, the fabric's routes, MAC mobility, an operator's entry", async (t) => {
  if (!needs(t, { files: PROTOS })) return;
  const s = await setup(t);
  t.ok(await until(() => s.ours().some((r) => r.type === 3), 3000), 'our type-3 written');
  t.match(
    s.ours().find((r) => r.type === 3),
    {
      rd: '192.0.2.2:100',
      rts: ['65000:100'],
      origin: '192.0.2.2',
      pmsi: { type: 6, label: VNI },
    },
  );
  t.ok(await until(() => s.fake.watching === 1), 'watching the table');

  s.fake.push([s.theirs.imet(), s.theirs.mac(X), s.theirs.mac(X, { ip: '10.0.0.3' })]);
  s.fake.push([
    s.theirs.mac(Z, { rt: ['65000:999'] }), // no VNI of ours
    s.theirs.mac(Z, { vni: 101 }), // label 101 under our target
  ]);
  t.ok(await until(() => s.fdb.get(VNI, X)), 'the remote MAC installed');
  t.match(s.fdb.get(VNI, X), { isStatic: true, source: 'evpn', remote: { key: `${PEER}:4789` } });
  t.same(
    s.fdb.floodList(VNI).map((r) => r.key),
    ['192.0.2.7:4789', `${PEER}:4789`],
    'the static remote, then the EVPN one',
  );
  t.equal(s.engine.stats().vnis[0]!.suppress!.entries, 1, 'MAC+IP pinned for suppression');
  const st = s.evpn.status();
  t.match(st, {
    state: 'connected',
    routerId: '192.0.2.2',
    asn: 65000,
    skipped: { no_import: 1, label: 1 },
  });
  t.match(st.vnis[0], {
    vni: VNI,
    routesIn: { mac: 2, multicast: 1 },
    routesOut: { multicast: 1 },
    flood: [PEER],
  });
  t.match(s.changes.at(-1), { cmd: 'evpn.update', by: 'evpn', args: { vni: VNI, macsAdded: 1 } });
  s.fake.peer('192.0.2.3', 'ESTABLISHED');
  s.fake.peer('192.0.2.5', 'ACTIVE');
  await until(() => s.evpn.status().peers.length === 2);
  t.same(
    evpnProblems(s.evpn.status()),
    ['evpn: BGP peer 192.0.2.5 active'],
    'a peer not up is a problem',
  );

  // A TAP-side MAC: announced with sequence 0.
  s.evpn.localMac(VNI, Y, true);
  s.evpn.localMac(VNI, Y, true); // again: nothing new
  s.evpn.localMac(7, Y, true); // not an EVPN VNI: ignored
  t.ok(await until(() => s.ours().some((r) => r.type === 2 && r.mac === Y)));
  t.match(
    s.ours().find((r) => r.type === 2 && r.mac === Y),
    { seq: 0, ip: '', nexthop: '192.0.2.2' },
  );
  // ARP snooping knows its IP: a MAC+IP route too (and none for a MAC that is not ours).
  s.evpn.neighbour(VNI, 0x0a000002, Y);
  s.evpn.neighbour(VNI, 0x0a000002, Y);
  s.evpn.neighbour(VNI, 0x0a000009, Z);
  s.evpn.neighbour(VNI, 'fd000000000000000000000000000002', Y);
  t.ok(await until(() => s.ours().filter((r) => r.type === 2 && r.mac === Y).length === 3));
  t.same(
    s
      .ours()
      .filter((r) => r.type === 2 && r.mac === Y)
      .map((r) => (r as { ip: string }).ip)
      .sort(),
    ['', '10.0.0.2', 'fd00::2'],
  );

  // X moves here: announced with the next sequence number; the entry to the old place goes.
  s.evpn.localMac(VNI, X, true);
  t.ok(await until(() => s.ours().some((r) => r.type === 2 && r.mac === X)));
  t.match(
    s.ours().find((r) => r.type === 2 && r.mac === X),
    { seq: 1 },
  );
  t.equal(s.fdb.get(VNI, X), undefined, 'no longer sent to the peer');
  t.ok(
    s.lines.some((l) =>
      /evpn_move: .*52:54:00:00:00:03 moved here from 192\.0\.2\.3 \(sequence 1\)/.test(l),
    ),
  );
  // …and back: the peer says sequence 2. Ours is withdrawn, the entry points there again.
  s.fake.push([s.theirs.mac(X, { seq: 2 })]);
  t.ok(await until(() => s.fdb.get(VNI, X)?.remote.key === `${PEER}:4789`), 'moved back');
  t.ok(await until(() => !s.ours().some((r) => r.type === 2 && r.mac === X)), 'ours withdrawn');
  t.ok(s.lines.some((l) => /moved to 192\.0\.2\.3 \(sequence 2\)/.test(l)));

  // An operator's entry is not replaced by a route.
  s.fdb.addStatic(VNI, Z, s.remotes.get('192.0.2.8', 4789), 0, 'static');
  s.fake.push([s.theirs.mac(Z)]);
  await new Promise((r) => setTimeout(r, 100));
  t.match(
    s.fdb.get(VNI, Z),
    { source: 'static', remote: { key: '192.0.2.8:4789' } },
    'the operator wins',
  );

  // Y ages out: its three routes go.
  const before = s.fake.deleted.length;
  s.evpn.localMac(VNI, Y, false);
  s.evpn.localMac(VNI, Y, false); // again: nothing
  t.ok(await until(() => s.fake.deleted.length === before + 3), 'withdrawn, with its IPs');

  // Withdrawals from the fabric.
  s.fake.push([
    s.withdraw(s.theirs.imet()),
    s.withdraw(s.theirs.mac(X, { seq: 2 })),
    s.withdraw(s.theirs.mac(X, { ip: '10.0.0.3' })),
  ]);
  t.ok(await until(() => s.fdb.get(VNI, X) === undefined), 'the MAC removed');
  t.same(
    s.fdb.floodList(VNI).map((r) => r.key),
    ['192.0.2.7:4789'],
    'the static remote stays',
  );
  t.equal(s.engine.stats().vnis[0]!.suppress!.entries, 0, 'the pinned address taken back');
});

t.test('gobgpd lost: routes kept for the hold time; back: one resync, ours again', async (t) => {
  if (!needs(t, { files: PROTOS })) return;
  const s = await setup(t);
  await until(() => s.fake.watching === 1, 3000);
  s.evpn.localMac(VNI, Y, true);
  s.fake.push([s.theirs.imet(), s.theirs.mac(X)]);
  t.ok(await until(() => s.fdb.get(VNI, X)));
  const port = s.fake.port;
  await s.fake.stop();
  t.ok(await until(() => s.evpn.status().state !== 'connected', 3000), 'the loss noticed');
  t.ok(s.fdb.get(VNI, X), 'kept meanwhile');
  t.match(evpnProblems(s.evpn.status())[0], /^evpn: gobgpd 127\.0\.0\.1:\d+ (backoff|connecting)/);
  t.ok(
    await until(() => s.fdb.get(VNI, X) === undefined, 3000),
    'removed after the hold time (1 s)',
  );
  t.same(
    s.fdb.floodList(VNI).map((r) => r.key),
    ['192.0.2.7:4789'],
  );
  t.ok(s.lines.some((l) => l.startsWith('evpn_hold_expired')));

  // gobgpd back (empty: it forgot what the API added): ours written again, its table applied.
  const again = await FakeGobgp.start(port);
  t.teardown(() => again.stop());
  t.ok(await until(() => again.watching === 1, 5000), 'reconnected');
  const routes = () =>
    again.live().map((p) => decodePath(AnyCodec.load(), { ...p, neighbor_ip: 'x' }) as EvpnRoute);
  t.ok(await until(() => routes().length === 2, 3000), 'our type-3 and the TAP-side MAC, again');
  again.push([s.theirs.imet(), s.theirs.mac(X)]);
  t.ok(await until(() => s.fdb.get(VNI, X)), "the fabric's again");
  t.equal(s.fdb.floodList(VNI).length, 2, 'no duplicate');
  t.equal(s.evpn.status().connects, 2);

  // A VNI gone (a reload): its routes go, and what it installed.
  s.setVnis([]);
  s.evpn.sync();
  t.ok(await until(() => again.live().length === 0, 3000), 'retracted');
  t.equal(s.fdb.get(VNI, X), undefined);
});

t.test(
  'a quick restart of gobgpd: nothing interrupted; what it did not announce again goes',
  async (t) => {
    if (!needs(t, { files: PROTOS })) return;
    const s = await setup(t, 2);
    await until(() => s.fake.watching === 1, 3000);
    s.fake.push([s.theirs.imet(), s.theirs.mac(X), s.theirs.mac(Z)]);
    t.ok(await until(() => s.fdb.get(VNI, Z)));
    const port = s.fake.port;
    await s.fake.stop();
    await until(() => s.evpn.status().state !== 'connected', 3000);
    const again = await FakeGobgp.start(port);
    t.teardown(() => again.stop());
    t.ok(await until(() => again.watching === 1, 5000), 'reconnected within the hold time');
    again.push([s.theirs.imet(), s.theirs.mac(X)]); // Z was withdrawn meanwhile
    let gap = false;
    const t0 = Date.now();
    while (Date.now() - t0 < 1000) {
      if (!s.fdb.get(VNI, X) || s.fdb.floodList(VNI).length !== 2) gap = true;
      await new Promise((r) => setTimeout(r, 20));
    }
    t.notOk(gap, 'the MAC and the flood list stayed throughout');
    t.ok(
      await until(() => s.fdb.get(VNI, Z) === undefined, 3000),
      'the one not announced again goes after the hold time',
    );
    t.ok(s.fdb.get(VNI, X), 'the others stay');
    t.ok(s.lines.some((l) => /evpn_hold_expired: .*1 routes not announced again/.test(l)));
  },
);

t.test("the file's VNIs as EVPN sees them", async (t) => {
  const cfg = validate({
    local: '192.0.2.2',
    evpn: { gobgp: '127.0.0.1:50051' },
    vnis: [
      {
        vni: 100,
        mac: '02:00:00:00:00:01',
        remotes: ['192.0.2.7'],
        evpn: { rd: '1:1', rt: '2:2' },
      },
      { vni: 101, tap: 'b', evpn: false },
      { vni: 102, tap: 'c', group: '239.1.1.1', interface: 'lo' },
    ],
  });
  const r = new Remotes();
  t.same(
    evpnVnis(cfg, (x) => r.get(x.address, x.port)).map((v) => ({
      ...v,
      statics: v.statics.map((s) => s.key),
    })),
    [
      { vni: 100, statics: ['192.0.2.7:4789'], rd: '1:1', rt: ['2:2'], stickyMac: 0x020000000001 },
      { vni: 102, statics: ['239.1.1.1:4789'] },
    ],
  );
});
