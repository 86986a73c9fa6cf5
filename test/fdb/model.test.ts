// Model-based test: random command sequences against Fdb and a naive reference model.
import fc from 'fast-check';
import t from 'tap';
import { Fdb, Learn, type LearnResult } from '../../src/fdb/fdb.js';
import { Remotes, type Remote } from '../../src/fdb/remote.js';

const remotes = new Remotes();
const REMOTES = ['192.0.2.1', '192.0.2.2', '2001:db8::3'].map((a) => remotes.get(a));
const VNIS = [1, 2, 3];
const VNI_CAPS: Record<number, number> = { 1: 4, 2: 6, 3: 3 };
const TOTAL_CAP = 8;
const AGEING = 10_000;
// Unicast MACs that collide often, plus the ones that must never be learned.
const MACS = [
  0x020000000001, 0x020000000002, 0x020000000003, 0x525400000004, 0x525400000005, 0x525400000006,
  0x000000000007, 0x0, 0xffffffffffff, 0x01005e000001, 0x333300000001,
];

interface MEntry {
  remote: Remote;
  static: boolean;
  updated: number;
  seq: number;
}
interface MTable {
  learning: boolean;
  entries: Map<number, MEntry>;
}
interface Model {
  tables: Map<number, MTable>;
  now: number;
  seq: number;
}

function total(m: Model): number {
  let n = 0;
  for (const tb of m.tables.values()) n += tb.entries.size;
  return n;
}

function validUnicast(mac: number): boolean {
  return mac !== 0 && Math.floor(mac / 2 ** 40) % 2 === 0;
}

/** The oldest learned entry of a table: smallest touch sequence number. */
function oldestLearned(tb: MTable): number | undefined {
  let best: number | undefined;
  let bestSeq = Infinity;
  for (const [mac, e] of tb.entries) {
    if (!e.static && e.seq < bestSeq) {
      best = mac;
      bestSeq = e.seq;
    }
  }
  return best;
}

function modelLearn(m: Model, vni: number, mac: number, remote: Remote): LearnResult {
  const tb = m.tables.get(vni)!;
  if (!validUnicast(mac)) return Learn.INVALID_MAC;
  const e = tb.entries.get(mac);
  if (e) {
    if (e.static) return Learn.STATIC;
    if (!tb.learning) return Learn.DISABLED;
    e.updated = m.now;
    e.seq = ++m.seq;
    if (e.remote === remote) return Learn.REFRESHED;
    e.remote = remote;
    return Learn.MOVED;
  }
  if (!tb.learning) return Learn.DISABLED;
  const room = makeRoom(m, vni);
  if (room === 'full') return Learn.CAP_HIT;
  tb.entries.set(mac, { remote, static: false, updated: m.now, seq: ++m.seq });
  return room === 'evicted' ? Learn.EVICTED : Learn.NEW;
}

/**
 * Room for one more entry in a VNI: free; at the VNI's cap, by evicting its oldest learned entry;
 * at the table-wide cap only, by evicting the oldest learned entry of the VNI with the most learned
 * entries (ties: this VNI, then the lowest VNI); or none.
 */
function makeRoom(m: Model, vni: number): 'free' | 'evicted' | 'full' {
  const tb = m.tables.get(vni)!;
  const learned = (v: number) =>
    [...m.tables.get(v)!.entries.values()].filter((e) => !e.static).length;
  let from = vni;
  if (tb.entries.size < VNI_CAPS[vni]) {
    if (total(m) < TOTAL_CAP) return 'free';
    for (const v of [...VNIS].sort((a, b) => a - b))
      if (learned(v) > learned(from) || (learned(v) === learned(from) && from !== vni && v < from))
        from = v;
  }
  const victim = oldestLearned(m.tables.get(from)!);
  if (victim === undefined) return 'full';
  m.tables.get(from)!.entries.delete(victim);
  return 'evicted';
}

type Real = { fdb: Fdb };
type Cmd = fc.Command<Model, Real>;

function checkInvariants(m: Model, r: Real): void {
  if (r.fdb.size !== total(m)) throw new Error(`size ${r.fdb.size} != model ${total(m)}`);
  if (r.fdb.size > TOTAL_CAP) throw new Error(`size ${r.fdb.size} above the cap`);
  for (const vni of VNIS) {
    const tb = m.tables.get(vni)!;
    if (r.fdb.sizeOf(vni) !== tb.entries.size) throw new Error(`vni ${vni} size differs`);
    if (r.fdb.sizeOf(vni) > VNI_CAPS[vni]) throw new Error(`vni ${vni} above its cap`);
    for (const [mac, e] of tb.entries) {
      const got = r.fdb.get(vni, mac);
      if (!got || got.remote !== e.remote || got.isStatic !== e.static) {
        throw new Error(
          `vni ${vni} mac ${mac.toString(16)}: ${got?.remote.key} != ${e.remote.key}`,
        );
      }
      if (got.vni !== vni) throw new Error('an entry answers for another VNI');
    }
  }
}

class LearnCmd implements Cmd {
  constructor(
    readonly vni: number,
    readonly mac: number,
    readonly remote: Remote,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const expected = modelLearn(m, this.vni, this.mac, this.remote);
    const got = r.fdb.learn(this.vni, this.mac, this.remote, m.now);
    if (got !== expected) throw new Error(`learn → ${got}, model ${expected}`);
    checkInvariants(m, r);
  }
  toString = () => `learn(${this.vni}, ${this.mac.toString(16)}, ${this.remote.key})`;
}

class LookupCmd implements Cmd {
  constructor(
    readonly vni: number,
    readonly mac: number,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const expected = m.tables.get(this.vni)!.entries.get(this.mac)?.remote ?? null;
    const got = r.fdb.lookup(this.vni, this.mac, m.now);
    if (got !== expected) throw new Error(`lookup → ${got?.key}, model ${expected?.key}`);
  }
  toString = () => `lookup(${this.vni}, ${this.mac.toString(16)})`;
}

class AddStaticCmd implements Cmd {
  constructor(
    readonly vni: number,
    readonly mac: number,
    readonly remote: Remote,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const tb = m.tables.get(this.vni)!;
    let expectError = !validUnicast(this.mac);
    if (!expectError && !tb.entries.has(this.mac)) expectError = makeRoom(m, this.vni) === 'full';
    if (!expectError)
      tb.entries.set(this.mac, { remote: this.remote, static: true, updated: m.now, seq: 0 });
    let threw = false;
    try {
      r.fdb.addStatic(this.vni, this.mac, this.remote, m.now);
    } catch {
      threw = true;
    }
    if (threw !== expectError) throw new Error(`addStatic threw=${threw}, model ${expectError}`);
    checkInvariants(m, r);
  }
  toString = () => `addStatic(${this.vni}, ${this.mac.toString(16)}, ${this.remote.key})`;
}

class DeleteCmd implements Cmd {
  constructor(
    readonly vni: number,
    readonly mac: number,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const expected = m.tables.get(this.vni)!.entries.delete(this.mac);
    if (r.fdb.delete(this.vni, this.mac) !== expected) throw new Error('delete differs');
    checkInvariants(m, r);
  }
  toString = () => `delete(${this.vni}, ${this.mac.toString(16)})`;
}

class FlushCmd implements Cmd {
  constructor(
    readonly vni?: number,
    readonly remote?: Remote,
    readonly learnedOnly?: boolean,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    let expected = 0;
    for (const [vni, tb] of m.tables) {
      if (this.vni !== undefined && vni !== this.vni) continue;
      for (const [mac, e] of tb.entries) {
        if (this.remote !== undefined && e.remote !== this.remote) continue;
        if (this.learnedOnly && e.static) continue;
        tb.entries.delete(mac);
        expected++;
      }
    }
    const got = r.fdb.flush({ vni: this.vni, remote: this.remote, learnedOnly: this.learnedOnly });
    if (got !== expected) throw new Error(`flush removed ${got}, model ${expected}`);
    checkInvariants(m, r);
  }
  toString = () => `flush(${this.vni}, ${this.remote?.key}, ${this.learnedOnly})`;
}

class AdvanceCmd implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: Model): void {
    m.now += this.ms;
  }
  toString = () => `advance(${this.ms})`;
}

class SweepCmd implements Cmd {
  check = () => true;
  run(m: Model, r: Real): void {
    let removed = 0;
    let nextDue: number | undefined;
    for (const tb of m.tables.values()) {
      for (const [mac, e] of tb.entries) {
        if (e.static) continue;
        if (m.now - e.updated >= AGEING) {
          tb.entries.delete(mac);
          removed++;
        } else if (nextDue === undefined || e.updated + AGEING < nextDue) {
          nextDue = e.updated + AGEING;
        }
      }
    }
    const got = r.fdb.sweep(m.now);
    if (got.removed !== removed || got.nextDue !== nextDue) {
      throw new Error(`sweep ${JSON.stringify(got)}, model ${removed}/${nextDue}`);
    }
    checkInvariants(m, r);
  }
  toString = () => 'sweep()';
}

class LearningCmd implements Cmd {
  constructor(
    readonly vni: number,
    readonly on: boolean,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    m.tables.get(this.vni)!.learning = this.on;
    r.fdb.setLearning(this.vni, this.on);
  }
  toString = () => `setLearning(${this.vni}, ${this.on})`;
}

const vni = fc.constantFrom(...VNIS);
const mac = fc.constantFrom(...MACS);
const remote = fc.constantFrom(...REMOTES);
const commands = [
  fc.tuple(vni, mac, remote).map(([v, m, r]) => new LearnCmd(v, m, r)),
  fc.tuple(vni, mac, remote).map(([v, m, r]) => new LearnCmd(v, m, r)),
  fc.tuple(vni, mac).map(([v, m]) => new LookupCmd(v, m)),
  fc.tuple(vni, mac, remote).map(([v, m, r]) => new AddStaticCmd(v, m, r)),
  fc.tuple(vni, mac).map(([v, m]) => new DeleteCmd(v, m)),
  fc
    .tuple(fc.option(vni, { nil: undefined }), fc.option(remote, { nil: undefined }), fc.boolean())
    .map(([v, r, l]) => new FlushCmd(v, r, l)),
  fc.integer({ min: 0, max: 6000 }).map((ms) => new AdvanceCmd(ms)),
  fc.constant(new SweepCmd()),
  fc.tuple(vni, fc.boolean()).map(([v, on]) => new LearningCmd(v, on)),
];

t.test('Fdb agrees with the reference model on every command', async (t) => {
  let runs = 0;
  fc.assert(
    fc.property(fc.commands(commands, { maxCommands: 200, size: 'large' }), (cmds) => {
      runs++;
      const fdb = new Fdb({ ageingMs: AGEING, maxEntries: TOTAL_CAP });
      const model: Model = { tables: new Map(), now: 1_000_000, seq: 0 };
      for (const v of VNIS) {
        fdb.addVni(v, { maxEntries: VNI_CAPS[v] });
        model.tables.set(v, { learning: true, entries: new Map() });
      }
      fc.modelRun(() => ({ model, real: { fdb } }), cmds);
    }),
    { numRuns: 1000 },
  );
  t.equal(runs >= 1000, true, `${runs} command sequences`);
});
