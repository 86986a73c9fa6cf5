// The reload plan (src/daemon/reload.ts) without root: any two configurations give a plan that
// turns a model of the first into a model of the second, says exactly what differs, and is
// refused exactly when a setting that needs a restart changes.
import fc from 'fast-check';
import t from 'tap';
import { ConfigError, validate, type Config } from '../../src/config/config.js';
import { resolveMtus, type Resolved } from '../../src/daemon/mtu.js';
import {
  RESTART_ONLY,
  floodSpecs,
  planReload,
  tapMac,
  type ReloadPlan,
  type RunningFacts,
} from '../../src/daemon/reload.js';
import type { UnderlayLink } from '../../src/io/netif.js';

const LINK: UnderlayLink = { mtu: 1500, source: 'default' };

const vniRaw = (vni: number) =>
  fc.record(
    {
      vni: fc.constant(vni),
      tap: fc.constantFrom(`t${vni}`, `x${vni}`),
      remotes: fc.subarray(['192.0.2.10', '192.0.2.11', '192.0.2.12:4790']),
      mtu: fc.constantFrom(1300, 1400, 1450),
      mac: fc.constantFrom('02:00:00:00:00:01', '02:00:00:00:00:02'),
      learnRemotes: fc.boolean(),
      learning: fc.boolean(),
      maxEntries: fc.constantFrom(100, 200),
      suppressArp: fc.boolean(),
      group: fc.constantFrom('239.1.1.1', '239.1.1.2'),
    },
    { requiredKeys: ['vni', 'tap', 'remotes'] },
  );

/** Settings as a file gives them: mostly the same base, sometimes a restart-only change. */
const rawConfig = fc
  .record({
    vnis: fc
      .subarray([1, 2, 3, 4, 5], { minLength: 1 })
      .chain((ids) => fc.tuple(...ids.map(vniRaw))),
    ageing: fc.constantFrom(30, 300),
    maxEntries: fc.constantFrom(1000, 8192),
    reservedBits: fc.constantFrom('drop', 'ignore'),
    invalidSourceMac: fc.constantFrom('deliver', 'drop'),
    sourcePorts: fc.constantFrom('49152-65535', '50000-60000'),
    restart: fc.option(
      fc.constantFrom(
        { port: 4790 },
        { tapOffload: false },
        { workers: 3 },
        { sourcePortMode: 'fixed' },
        { metrics: '127.0.0.1:9110' },
        { local: '192.0.2.3' },
        { control: '/run/vtep/other.sock' },
        { ovsdb: { target: 'unix:/run/db.sock', physicalSwitch: 'ps0', ports: ['gw0'] } },
      ),
      { freq: 6 },
    ),
  })
  .map(({ restart, ...r }) => ({ local: '192.0.2.2', ...r, ...(restart ?? {}) }));

const resolved = (raw: Record<string, unknown>): Resolved =>
  resolveMtus(validate(raw, 'test') as Config, LINK);

const facts = (over: Partial<RunningFacts> = {}): RunningFacts => ({
  portsBound: false,
  underlayCapacity: 65536,
  tapCapacity: () => 65536,
  ovsdbVnis: [],
  link: LINK,
  nextLink: LINK,
  ...over,
});

type Model = Map<number, Record<string, unknown>>;
const FIELDS = ['tap', 'remotes', 'suppressArp', 'learnRemotes', 'learning', 'mtu', 'mac'] as const;

function model(c: Resolved): Model {
  return new Map(
    c.vnis.map((v) => [
      v.vni,
      {
        tap: v.tap,
        // where it floods: the remotes, and a group beside them
        remotes: floodSpecs(v, c.port)
          .map((r) => `${r.address}:${r.port}`)
          .join(','),
        suppressArp: v.suppressArp,
        learnRemotes: v.learnRemotes,
        learning: v.learning,
        mtu: v.mtu,
        mac: tapMac(v),
      },
    ]),
  );
}

/** The plan carried out on the model, as applyPlan carries it out on the endpoint. */
function apply(m: Model, plan: ReloadPlan, next: Resolved): Model {
  const out: Model = new Map([...m].map(([k, v]) => [k, { ...v }]));
  for (const v of plan.removed) out.delete(v.vni);
  for (const v of plan.added) out.set(v.vni, model({ ...next, vnis: [v] }).get(v.vni)!);
  for (const c of plan.changes) {
    const e = out.get(c.vni)!;
    if (c.kind === 'remotes') e.remotes = c.remotes.map((r) => `${r.address}:${r.port}`).join(',');
    else if (c.kind === 'suppressArp' || c.kind === 'learnRemotes') e[c.kind] = c.value;
    else if (c.kind === 'learning') e.learning = c.learning;
    else if (c.kind === 'mtu') e.mtu = c.mtu;
    else if (c.kind === 'mac') e.mac = c.mac;
  }
  return out;
}

const same = (a: Model, b: Model) =>
  JSON.stringify([...a].sort((x, y) => x[0] - y[0])) ===
  JSON.stringify([...b].sort((x, y) => x[0] - y[0]));

t.test('any reload: the plan takes the running state to the next one', async (t) => {
  fc.assert(
    fc.property(rawConfig, rawConfig, (a, b) => {
      const cur = resolved(a);
      const next = resolved(b);
      const restart = RESTART_ONLY.find((k) => JSON.stringify(cur[k]) !== JSON.stringify(next[k]));
      let plan: ReloadPlan;
      try {
        plan = planReload(cur, next, facts());
      } catch (err) {
        // refused exactly when a restart-only setting changed, and it names that setting
        return err instanceof ConfigError && restart !== undefined && err.field === restart;
      }
      if (restart !== undefined) return false;
      if (!same(apply(model(cur), plan, next), model(next))) return false;
      // VNIs: each one removed, added, or kept; a TAP rename is a removal and an addition
      const kept = next.vnis.filter((v) =>
        cur.vnis.some((c) => c.vni === v.vni && c.tap === v.tap),
      );
      if (plan.removed.length + kept.length !== cur.vnis.length) return false;
      if (plan.added.length + kept.length !== next.vnis.length) return false;
      // a change is planned for exactly the fields that differ
      for (const v of kept) {
        const before = model(cur).get(v.vni)!;
        const after = model(next).get(v.vni)!;
        const kinds = new Set(plan.changes.filter((c) => c.vni === v.vni).map((c) => c.kind));
        for (const f of FIELDS.filter((f) => f !== 'tap' && f !== 'learning'))
          if ((before[f] !== after[f]) !== kinds.has(f)) return false;
      }
      // engine-wide settings: a line for each that differs, and only those
      const differ =
        (['reservedBits', 'invalidSourceMac', 'ageingMs', 'maxEntries'] as const).filter(
          (k) => cur[k] !== next[k],
        ).length +
        (cur.sourcePortMin !== next.sourcePortMin ? 1 : 0) +
        (cur.sourcePortMax !== next.sourcePortMax ? 1 : 0);
      return plan.settingLines.length === differ;
    }),
    { numRuns: 400 },
  );
});

t.test('the same configuration again: nothing to do', async (t) => {
  fc.assert(
    fc.property(rawConfig, (a) => {
      const cur = resolved(a);
      const plan = planReload(cur, resolved(a), facts());
      return (
        plan.added.length + plan.removed.length + plan.changes.length + plan.settingLines.length ===
          0 && plan.underlayMtu === undefined
      );
    }),
  );
});

t.test('what the running endpoint cannot take is refused by name', async (t) => {
  const base = {
    local: '192.0.2.2',
    vnis: [{ vni: 1, tap: 't1', remotes: ['192.0.2.10'], mtu: 1400 }],
  };
  const cur = resolved(base);
  t.throws(
    () =>
      planReload(
        cur,
        resolved({ ...base, vnis: [{ ...base.vnis[0], mtu: 9000 }] }),
        facts({ underlayCapacity: 2048 }),
      ),
    { field: 'mtu', message: /needs \d+-byte underlay receive slots, the running ones hold 2048/ },
  );
  t.throws(
    () =>
      planReload(
        cur,
        resolved({ ...base, vnis: [{ ...base.vnis[0], mtu: 1450 }] }),
        facts({ tapCapacity: () => 1418 }),
      ),
    { field: 'vni 1 mtu', message: /exceeds what tap t1's receive ring holds \(1400\)/ },
  );
  t.throws(
    () =>
      planReload(
        cur,
        resolved({ ...base, vnis: [...base.vnis, { vni: 7, tap: 't7', remotes: [] }] }),
        facts({ ovsdbVnis: [7] }),
      ),
    { field: 'vni 7', message: /is carried by an OVSDB port now/ },
  );
  t.throws(
    () =>
      planReload(
        cur,
        resolved({ ...base, sourcePorts: '50000-60000' }),
        facts({ portsBound: true }),
      ),
    { field: 'sourcePorts', message: /flows use the ports its UDP GSO senders are bound to/ },
  );
  const plan = planReload(
    cur,
    resolved({ ...base, ageing: 30 }),
    facts({ nextLink: { mtu: 9000, source: 'configured' } }),
  );
  t.same(plan.settingLines, ['ageing 300 s -> 30 s'], 'settings named as in the file, in its unit');
  t.same(plan.underlayMtu, { from: 1500, to: 9000 });
});
