import t from 'tap';
import { validate } from '../../../src/config/config.js';
import { Fdb } from '../../../src/fdb/fdb.js';
import { Remotes } from '../../../src/fdb/remote.js';
import { toFdbOp } from '../../../src/fdb/replica.js';
import { MAX_DEFAULT_WORKERS, workerCount } from '../../../src/daemon/vtep.js';
import { mergeStats, threadStats } from '../../../src/daemon/threads/workers.js';
import type { EngineStats } from '../../../src/engine/engine.js';

const base = { local: '192.0.2.2', vnis: [{ vni: 5000, tap: 'vt0', remotes: ['192.0.2.1'] }] };

t.test(
  'worker count: as configured, else the cores, else one where queues cannot be had',
  async (t) => {
    const none = () => undefined;
    t.same(workerCount(validate({ ...base, workers: 3 }), 2, none), {
      count: 3,
      why: 'configured',
    });
    t.same(workerCount(validate(base), 2, none), { count: 2, why: '2 cores' });
    t.equal(
      workerCount(validate(base), 96, none).count,
      MAX_DEFAULT_WORKERS,
      'at most 8 by default',
    );
    t.equal(
      workerCount(validate(base), 2, () => 'multi').count,
      2,
      'a TAP with queues: all of them',
    );
    const single = workerCount(validate(base), 2, () => 'single');
    t.equal(single.count, 1, 'a TAP made without queues (ip tuntap add) takes one reader only');
    t.match(single.why, /tap vt0 exists without queues/);
    const gw = validate({
      local: '192.0.2.2',
      workers: 2,
      ovsdb: { target: 'unix:/tmp/db.sock', physicalSwitch: 'ps', ports: ['p0'] },
    });
    t.same(workerCount(gw, 2, none), { count: 2, why: 'configured' }, 'ovsdb ports on every core');
    const gwSingle = workerCount({ ...gw, workers: undefined }, 2, (tap) =>
      tap === 'p0' ? 'single' : undefined,
    );
    t.match(gwSingle, { count: 1, why: /tap p0 exists without queues/ }, 'its ports count too');
    t.throws(() => validate({ ...base, workers: 0 }), /workers.*1\.\.64/);
    t.throws(() => validate({ ...base, workers: '2x' }), /workers/);
  },
);

const stats = (
  rx: number,
  tx: number,
  drop: number,
  narrowPaths: Record<string, number> = {},
  heard: number | null = null,
): EngineStats => ({
  vnis: [
    {
      vni: 5000,
      tap: 'vt0',
      tapUp: true,
      remotes: ['192.0.2.1:4789'],
      learnRemotes: false,
      fdbEntries: 3,
      fdbCounters: { learned: 3, moved: 0, aged: 0, evicted: 0, capHit: 0, staticConflict: 0 },
      fdbMaxEntries: 16384,
      rx: { packets: rx, bytes: rx * 100 },
      tx: { packets: tx, bytes: tx * 100 },
      drops: drop ? { no_remote: drop } : {},
      suppress: { answered: 1, flooded: 2, entries: 3 },
      peers: [
        {
          remote: '192.0.2.1:4789',
          rx: { packets: rx, bytes: rx * 100 },
          tx: { packets: tx, bytes: tx * 100 },
          drops: drop ? { own_source_mac: drop } : {},
          heardMsAgo: heard,
        },
      ],
    },
  ],
  drops: { no_remote: drop, vni_unknown: 0 },
  icmpTooBig: 1,
  pathMaxFrame: 1450,
  offload: {
    superFrames: 1,
    segments: 2,
    checksums: 3,
    gsoSends: 4,
    coalesced: 5,
    coalescedSegments: 6,
    checksumBad: 9,
    groDatagrams: 7,
    groSegments: 8,
  },
  ecn: { marked: 1, unexpected: 2 },
  narrowPaths,
  fdb: {
    learned: 9,
    moved: 0,
    aged: 0,
    evicted: 0,
    capHit: 0,
    staticConflict: 0,
    entries: 3,
  },
});

t.test('stats of all threads add up; the FDB is the main thread’s', async (t) => {
  const main = stats(10, 20, 1, { '192.0.2.1:4789': 1400 }, null);
  const other = stats(5, 7, 2, { '192.0.2.1:4789': 1300, '192.0.2.3:4789': 1364 }, 250);
  other.vnis[0].peers.push({
    remote: '192.0.2.3:4789',
    rx: { packets: 1, bytes: 64 },
    tx: { packets: 0, bytes: 0 },
    drops: {},
    heardMsAgo: 900,
  });
  other.vnis.push({ ...other.vnis[0], vni: 6000 }); // gone from the main thread: not counted
  other.fdb.learned = 1000;
  const m = mergeStats(main, [other]);
  t.same(m.vnis.length, 1);
  t.same(m.vnis[0].rx, { packets: 15, bytes: 1500 });
  t.same(m.vnis[0].tx, { packets: 27, bytes: 2700 });
  t.same(m.vnis[0].drops, { no_remote: 3 });
  t.same(m.vnis[0].suppress, { answered: 2, flooded: 4, entries: 3 });
  t.same(
    m.vnis[0].peers,
    [
      {
        remote: '192.0.2.1:4789',
        rx: { packets: 15, bytes: 1500 },
        tx: { packets: 27, bytes: 2700 },
        drops: { own_source_mac: 3 },
        heardMsAgo: 250,
      },
      {
        remote: '192.0.2.3:4789',
        rx: { packets: 1, bytes: 64 },
        tx: { packets: 0, bytes: 0 },
        drops: {},
        heardMsAgo: 900,
      },
    ],
    'per remote: summed by remote over threads, heard as lately as any thread heard it',
  );
  t.same(m.drops, { no_remote: 3, vni_unknown: 0 });
  t.equal(m.icmpTooBig, 2);
  t.same(m.offload.coalescedSegments, 12);
  t.same(m.offload.checksumBad, 18);
  t.same(m.ecn, { marked: 2, unexpected: 4 }, 'ECN counters summed over threads');
  t.same(
    m.narrowPaths,
    { '192.0.2.1:4789': 1300, '192.0.2.3:4789': 1364 },
    'the narrow paths any thread learned, the narrowest of each',
  );
  t.equal(m.fdb.learned, 9, 'the main table is the one vtep fdb shows');
  t.equal(main.vnis[0].rx.packets, 10, 'the main thread’s own counters are left as they were');
  t.same(threadStats(1, other), {
    worker: 1,
    rx: { packets: 10, bytes: 1000 },
    tx: { packets: 14, bytes: 1400 },
    drops: 2,
  });
});

t.test('FDB changes cross to the workers as plain data', async (t) => {
  const r = new Remotes().get('192.0.2.1', 4790);
  const fdb = new Fdb();
  fdb.addVni(1);
  const ops: unknown[] = [];
  fdb.onChange = (c) => ops.push(toFdbOp(c));
  fdb.learn(1, 0x020000000001, r, 0);
  fdb.addStatic(1, 0x020000000002, r, 0, 'ovsdb');
  fdb.delete(1, 0x020000000001);
  t.same(ops, [
    [1, 0x020000000001, '192.0.2.1', 4790, false, 'static'],
    [1, 0x020000000002, '192.0.2.1', 4790, true, 'ovsdb'],
    [1, 0x020000000001, null, 0, false, 'static'],
  ]);
  t.same(structuredClone(ops), ops, 'they survive postMessage as they are');
});
