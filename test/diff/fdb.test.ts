// Differential learning: generated sequences of frames from two remote VTEPs (source MACs from
// a small pool, so MACs move between remotes, at two VNIs) must leave the same
// (VNI, MAC) → remote table in our vtep and in kernel VXLAN, equal to the model "last remote
// seen". Open vSwitch (NORMAL bridges) is compared and its differences are recorded.
import fc from 'fast-check';
import t from 'tap';
import { inject } from '../helpers/inject.js';
import { needs } from '../helpers/prereq.js';
import { sleep } from '../../src/lab/sh.js';
import { packet, type Input } from './inputs.js';
import { ADDR, DiffTopology, RECEIVERS, VNIS } from './topology.js';

const RUNS = Number(process.env.VTEP_DIFF_RUNS ?? 4);
const POOL = Array.from(
  { length: 6 },
  (_, i) => `02ab0000${(i + 1).toString(16).padStart(2, '0')}aa`,
);

const step = fc.record({
  vni: fc.constantFrom(...VNIS),
  from: fc.constantFrom(0, 1),
  src: fc.constantFrom(...POOL),
});

type Table = string[];
const norm = (rows: { vni: number; mac: string; remote: string }[]): Table =>
  rows
    .filter((r) => POOL.includes(r.mac.replace(/:/g, '')))
    .map((r) => `${r.vni} ${r.mac.replace(/:/g, '')} ${r.remote.replace(/:4789$/, '')}`)
    .sort();

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ovs-vswitchd', 'ovs-ofctl', 'bridge', 'tcpdump'],
});
if (ready) {
  const topo = await DiffTopology.build(`f${process.pid % 10000}`);
  t.teardown(() => topo.teardown());
  topo.ovsNormal(true);
  let previous: Table = [];

  t.test(
    'vtep and the kernel learn the same (VNI, MAC) → remote table; OVS compared',
    async (t) => {
      let frames = 0;
      const ovsDiffers: string[] = [];
      let compared = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 20 }), async (steps) => {
          const inputs: Input[] = steps.map((s) => ({
            vni: s.vni,
            from: s.from,
            inner: 'ffffffffffff' + s.src + '88b5' + '00'.repeat(46),
            mutation: { kind: 'none' },
          }));
          inject(
            topo.get('inj'),
            inputs.flatMap((i) => RECEIVERS.map((r) => packet(i, ADDR[r]))),
          );
          frames += inputs.length;
          // the expected table: the last remote each (VNI, MAC) was seen behind
          const last = new Map<string, string>();
          for (const s of steps) last.set(`${s.vni} ${s.src}`, ['192.0.2.9', '192.0.2.10'][s.from]);
          const expected = (prev: Table) => {
            const m = new Map(
              prev.map((l) => [l.split(' ').slice(0, 2).join(' '), l.split(' ')[2]]),
            );
            for (const [k, v] of last) m.set(k, v);
            return [...m].map(([k, v]) => `${k} ${v}`).sort();
          };
          const want = expected(previous);
          // learning is asynchronous in OVS (upcalls): poll until the tables settle or 3 s pass
          let tables: Record<string, Table> = {};
          const same = () =>
            (['vtep', 'kernel'] as const).every(
              (r) => JSON.stringify(tables[r]) === JSON.stringify(want),
            );
          const ovsSame = () => JSON.stringify(tables.ovs) === JSON.stringify(want);
          for (let waited = 0; ; waited += 200) {
            tables = {
              vtep: norm(await topo.vtepFdb()),
              ovs: norm(topo.ovsFdb()),
              kernel: norm(topo.kernelFdb()),
            };
            if ((same() && ovsSame()) || waited >= 3000) break;
            await sleep(200);
          }
          compared++;
          if (!ovsSame()) ovsDiffers.push(JSON.stringify({ steps, want, ovs: tables.ovs }));
          previous = want;
          return same();
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
      t.pass(
        `${frames} frames in ${compared} sequences: vtep and the kernel learned the model's table`,
      );
      // Recorded, not asserted (see the note on issue 9): after a MAC moves between remotes
      // within a burst, OVS's table was seen keeping the earlier remote.
      t.comment(
        `OVS differed from the model in ${ovsDiffers.length} of ${compared} sequences` +
          (ovsDiffers.length ? `; first: ${ovsDiffers[0]}` : ''),
      );
    },
  );
}
