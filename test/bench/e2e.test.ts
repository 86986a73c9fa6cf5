// The end-to-end benchmark's machinery, not its speed (speed is measured in `npm run bench:e2e`):
// one short round builds the three systems, gets a number for every metric from each, and
// leaves nothing behind; the report and the chart are checked on a fixed result.
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  chartSvg,
  formatE2e,
  runE2e,
  writeE2e,
  type E2eResult,
  type Sample,
} from '../../src/lab/e2e.js';
import { sh } from '../../src/lab/sh.js';
import { needs } from '../helpers/prereq.js';

const sample = (k: number): Sample => ({
  tcpMbps: 700 * k,
  tcpRevMbps: 600 * k,
  tcp4Mbps: 900 * k,
  tcp4RevMbps: 800 * k,
  pps64: 90_000 * k,
  pps64x8: 95_000 * k,
  pps64x8Rev: 75_000 * k,
  pps64Rev: 70_000 * k,
  pps64Plain: 60_000 * k,
  pps1400: 80_000 * k,
  rttP50Us: 80 / k,
  rttP99Us: 200 / k,
  udpRrP50Us: 40 / k,
  udpRrP99Us: 60 / k,
  udpRrP999Us: 150 / k,
  tcpRrP50Us: 45 / k,
  tcpRrP99Us: 70 / k,
  idleCpuPct: 0.5,
  cpuSecPerMpps: 9,
  softirqShare: 0.75,
  ownCpuSecPerMpps: 2.25,
  machineCpuSecPerMpps: 20,
  syscallsPerPkt: 0.5,
  syscallsPerPktRev: null,
});

function fixed(): E2eResult {
  return {
    machine: {
      cpu: 'AMD EPYC',
      cores: 2,
      node: 'v20',
      kernel: '6.x',
      ovs: 'ovs-vswitchd (Open vSwitch) 3.1.0',
      date: '2026-11-24T00:00:00Z',
    },
    rounds: 1,
    seconds: 1,
    generator: 'g',
    samples: {
      vtep: [sample(1)],
      vtep1: [sample(0.5)],
      vtepbp: [sample(1.5)],
      ovs: [sample(1)],
      kernel: [{ ...sample(2), cpuSecPerMpps: null, softirqShare: null, ownCpuSecPerMpps: null }],
    },
    medians: {
      vtep: sample(1),
      vtep1: sample(0.5),
      vtepbp: sample(1.5),
      ovs: sample(1),
      kernel: { ...sample(2), cpuSecPerMpps: null, softirqShare: null, ownCpuSecPerMpps: null },
    },
    ratios: {
      vtepOverOvs: { tcp: 1 },
      vtepOverKernel: { tcp: 0.5 },
      workers2OverWorkers1: { tcp4: 2 },
    },
    targets: [
      { name: 'TCP throughput vs OVS userspace', value: 1, target: 1, met: true },
      { name: 'TCP throughput vs kernel VXLAN', value: 0.4, target: 0.5, met: false },
    ],
  };
}

t.test('report and chart from a fixed result', async (t) => {
  const text = formatE2e(fixed());
  t.match(text, /\s+vtep\s+vtep\s+vtep\s+ovs\s+kernel\n\s+2 workers\s+1 worker\s+busy-poll\s*\n/);
  t.match(text, /TCP encap \(Mbit\/s\)\s+700\s+350\s+1050\s+700\s+1400/);
  t.match(text, /TCP decap \(Mbit\/s\)\s+600\s+300\s+900\s+600\s+1200/);
  t.match(text, /TCP x4 encap \(Mbit\/s\)\s+900\s+450\s+1350\s+900\s+1800/);
  t.match(text, /UDP 64 B decap \(kpps received\)\s+70\s+35\s+105\s+70\s+140/);
  t.match(text, /UDP 64 B x8 decap \(kpps\)\s+75\s+38\s+113\s+75\s+150/);
  t.match(text, /UDP req\/resp p50 \(µs\)\s+40\.0\s+80\.0\s+26\.7\s+40\.0\s+20\.0/);
  t.match(text, /TCP req\/resp p99 \(µs\)\s+70\.0\s+140\.0\s+46\.7\s+70\.0\s+35\.0/);
  t.match(text, /idle CPU \(% of a core\)\s+0\.50\s+0\.50\s+0\.50\s+0\.50\s+0\.50/);
  t.match(text, /tunnel CPU s \/ Mpkt \(64 B\)\s+9\.00\s+9\.00\s+9\.00\s+9\.00\s+n\/a/);
  t.match(text, /UDP 64 B encap, no GSO \(kpps\)\s+60\s+30\s+90\s+60\s+120/);
  t.match(text, /of which softirq \(%\)\s+75\s+75\s+75\s+75\s+n\/a/);
  t.match(text, /outside softirq: s \/ Mpkt\s+2\.25\s+2\.25\s+2\.25\s+2\.25\s+n\/a/);
  t.match(text, /ratios vtep 2 workers\/1 worker: \{"tcp4":2\}/);
  t.match(text, /^MET {4}TCP throughput vs OVS userspace: 1\.00× \(target ≥ 1\.0×\)$/m);
  t.match(text, /^MISSED TCP throughput vs kernel VXLAN: 0\.40× \(target ≥ 0\.5×\)$/m);
  const svg = chartSvg(fixed());
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.equal((svg.match(/<rect x=/g) ?? []).length, 50, 'ten panels of five bars');
  t.match(svg, />1400<\/text>/);
  t.match(svg, /2 cores AMD EPYC, Linux 6\.x/);
  const dir = mkdtempSync(join(tmpdir(), 'vtep-e2e-out-'));
  const files = writeE2e(fixed(), dir);
  t.same(JSON.parse(readFileSync(files.json, 'utf8')).medians.kernel.tcpMbps, 1400);
  t.equal(readFileSync(files.svg, 'utf8'), svg);
});

t.test('one short round: every system measured, everything torn down', async (t) => {
  if (
    !needs(t, {
      root: true,
      commands: ['ip', 'ovs-vswitchd', 'iperf3', 'ping', 'bridge', 'sockperf'],
    })
  )
    return;
  const prefix = `b${process.pid % 10000}`;
  const steps: string[] = [];
  // one of each kind of host: vtep1 and vtepbp are the vtep with other flags
  const systems = ['vtep', 'ovs', 'kernel'] as const;
  const r = await runE2e({
    rounds: 1,
    seconds: 1,
    prefix,
    systems: [...systems],
    progress: (_d, _t, what) => steps.push(what),
  });
  t.equal(steps.length, 42, 'fourteen measurements for each of three systems');
  const perf = sh('command -v perf', { allowFail: true }).trim() !== '';
  t.ok(Number.isNaN(r.medians.vtep1.tcpMbps), 'what was not measured has no number');
  for (const s of systems) {
    const m = r.medians[s];
    t.ok(
      m.tcpMbps > 0 &&
        m.tcpRevMbps > 0 &&
        m.pps64 > 0 &&
        m.pps64Rev > 0 &&
        m.tcp4Mbps > 0 &&
        m.tcp4RevMbps > 0 &&
        m.pps64x8 > 0 &&
        m.pps64x8Rev > 0 &&
        m.pps64Plain > 0 &&
        m.pps1400 > 0 &&
        m.rttP50Us > 0 &&
        m.rttP99Us >= m.rttP50Us &&
        m.udpRrP50Us > 0 &&
        m.udpRrP99Us >= m.udpRrP50Us &&
        m.tcpRrP50Us > 0,
      `${s}: a number for every metric (${JSON.stringify(m)})`,
    );
    t.equal(m.idleCpuPct === null, s !== 'vtep', `${s}: idle CPU where asked`);
    t.equal(
      m.cpuSecPerMpps === null,
      s === 'kernel',
      `${s}: process CPU only where there is a process`,
    );
    // with perf (scripts/setup.sh installs it), the softirq share of that process's CPU
    if (s === 'kernel' || !perf) t.equal(m.softirqShare, null, `${s}: no softirq share`);
    else
      t.ok(
        m.softirqShare !== null && m.softirqShare >= 0 && m.softirqShare <= 1,
        `${s}: softirq share ${m.softirqShare}`,
      );
  }
  t.equal(r.targets.length, 17);
  t.notOk(sh('ip netns list').includes(prefix), 'no namespace left');
});
