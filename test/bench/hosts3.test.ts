// The three-host benchmark's report (its speed is measured in `npm run bench:3hosts`; building
// the lab is what bench:e2e's short round already exercises for each kind of host).
import t from 'tap';
import { formatHosts3, type Hosts3Result, type Run3, type Sample3 } from '../../src/lab/hosts3.js';

const run = (pps: number, vxlan: boolean): Run3 => ({
  pps,
  sent: 3 * pps + 7,
  received: 3 * pps,
  underlayRx: 3 * pps + 2,
  vxlanRx: vxlan ? 3 * pps + 1 : null,
  vxlanDropped: vxlan ? 1 : null,
  backlogDrops: 0,
});
const sample = (k: number): Sample3 => ({
  toC: run(150_000 * k, true),
  toCPlain: run(100_000 * k, true),
  toA: run(90_000 * k, false),
  fromC: run(140_000 * k, true),
  fromA: run(60_000 * k, false),
  tcpToCMbps: 1500 * k,
  tcpToAMbps: 900 * k,
});

t.test("the table: medians, ratios, and where each B→C run's packets went", async (t) => {
  const r: Hosts3Result = {
    rounds: 1,
    seconds: 3,
    date: '2026-12-07T00:00:00Z',
    vtepArgs: [],
    samples: { vtep: [sample(1.2)], kernel: [sample(1)] },
    medians: {
      vtep: {
        pps64ToKernel: 180_000,
        pps64ToKernelPlain: 120_000,
        pps64ToOvs: 108_000,
        pps64FromKernel: 168_000,
        pps64FromOvs: 72_000,
        tcpToKernelMbps: 1800,
        tcpToOvsMbps: 1080,
      },
      kernel: {
        pps64ToKernel: 150_000,
        pps64ToKernelPlain: 100_000,
        pps64ToOvs: 90_000,
        pps64FromKernel: 140_000,
        pps64FromOvs: 60_000,
        tcpToKernelMbps: 1500,
        tcpToOvsMbps: 900,
      },
    },
    vtepOverKernel: {
      pps64ToKernel: 1.2,
      pps64ToKernelPlain: 1.2,
      pps64ToOvs: 1.2,
      pps64FromKernel: 1.2,
      pps64FromOvs: 1.2,
      tcpToKernelMbps: 1.2,
      tcpToOvsMbps: 1.2,
    },
  };
  const text = formatHosts3(r);
  t.match(text, /median of 1 rounds of 3 s/);
  t.match(text, /UDP 64 B B→C \(kernel peer\), kpps\s+180\s+150\s+1\.20/);
  t.match(text, /the same, no GSO in the VM, kpps\s+120\s+100\s+1\.20/);
  t.match(text, /TCP B→A, Mbit\/s\s+1080\s+900\s+1\.20/);
  t.match(text, /^ {2}vtep {11}540007 \/ 540002 \/ 540001 \(1\) \/ 540000, 0$/m);
  t.match(text, /^ {2}kernel no GSO {2}300007 \/ 300002 \/ 300001 \(1\) \/ 300000, 0$/m);
});
