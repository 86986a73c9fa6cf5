import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Netns, veth } from './netns.js';
import type { PrivateOvs } from './ovs.js';
import { median } from './e2e.js';
import { distFile, kernelSide, ovsSide, stopVtep, vtepBin, vtepSide, type Side } from './peers.js';
import { bg, sh, sleep, until } from './sh.js';

/**
 * The three-host lab of the OVS guide, as a benchmark: host A runs Open vSwitch (userspace
 * datapath), host C a Linux kernel VXLAN, and host B — the one measured — either our vtep or a
 * kernel VXLAN in its place. Every host has a VM whose veth has tx checksum offload off (as OVS
 * userspace needs, so no TCP super-frames reach the tunnel). The two variants of host B are
 * built side by side and measured alternately, round by round; besides the rates, each run
 * records what the receiving host counted (its VXLAN device, its softirq backlog), to see where
 * packets that were sent but not received went.
 */

export type Middle = 'vtep' | 'kernel';
export const MIDDLES: Middle[] = ['vtep', 'kernel'];
export type Peer3 = 'A' | 'C';

const UL: Record<'A' | 'B' | 'C', string> = { A: '192.0.2.1', B: '192.0.2.2', C: '192.0.2.3' };
const VMS: Record<'A' | 'B' | 'C', { ip: string; mac: string }> = {
  A: { ip: '10.0.0.1', mac: '52:54:00:00:03:01' },
  B: { ip: '10.0.0.2', mac: '52:54:00:00:03:02' },
  C: { ip: '10.0.0.3', mac: '52:54:00:00:03:03' },
};
const VNI = 5000;
const MTU = 1450;

/** One run of 64-byte datagrams between B's VM and a peer's, and where they went. */
export interface Run3 {
  pps: number;
  sent: number;
  received: number;
  /** Tunnel packets the receiving host's underlay interface took in. */
  underlayRx: number;
  /** Packets its VXLAN device (kernel) counted received and dropped; null on OVS. */
  vxlanRx: number | null;
  vxlanDropped: number | null;
  /** softnet backlog drops on the machine (/proc/net/softnet_stat, all CPUs). */
  backlogDrops: number;
}

export interface Sample3 {
  toC: Run3;
  /** B→C with every datagram its own send in VM B (no UDP_SEGMENT, so no USO either). */
  toCPlain: Run3;
  toA: Run3;
  fromC: Run3;
  fromA: Run3;
  tcpToCMbps: number;
  tcpToAMbps: number;
}

export interface Hosts3Options {
  rounds?: number;
  /** Seconds per run. */
  seconds?: number;
  prefix?: string;
  /** More `vtep run` flags. */
  vtepArgs?: string[];
  log?: (line: string) => void;
}

export class Lab3 {
  readonly ns: Netns[] = [];
  ovs?: PrivateOvs;
  vtep?: ChildProcess;
  constructor(
    readonly middle: Middle,
    readonly prefix: string,
    readonly dir: string,
    readonly vtepArgs: readonly string[],
    /** Node options of the vtep process (`--perf-basic-prof`, `--cpu-prof`, …). */
    readonly nodeArgs: readonly string[] = [],
  ) {}

  get(role: string): Netns {
    return this.ns.find((n) => n.name === `${this.prefix}${role}`)!;
  }

  private make(role: string): Netns {
    const n = Netns.create(`${this.prefix}${role}`, { reap: true });
    this.ns.push(n);
    return n;
  }

  async build(): Promise<void> {
    const ul = this.make('ul');
    ul.exec('ip link add ulbr type bridge && ip link set ulbr up');
    const side = (h: 'A' | 'B' | 'C'): Side => {
      const host = this.make(`h${h}`);
      veth(host, 'eth0', ul, `p${h}`);
      ul.exec(`ip link set p${h} master ulbr`);
      return {
        host,
        vm: this.make(`v${h}`),
        local: UL[h],
        remotes: (['A', 'B', 'C'] as const).filter((x) => x !== h).map((x) => UL[x]),
        vni: VNI,
        mtu: MTU,
        vmIp: VMS[h].ip,
        vmMac: VMS[h].mac,
      };
    };
    this.ovs = await ovsSide(side('A'), join(this.dir, 'ovs'));
    kernelSide(side('C'));
    const b = side('B');
    if (this.middle === 'kernel') kernelSide(b);
    else
      this.vtep = await vtepSide(b, {
        extra: [...this.vtepArgs],
        tap: `${this.prefix}tap`.slice(0, 15),
        control: join(this.dir, 'vtep.sock'),
        log: join(this.dir, 'vtep.log'),
        nodeArgs: [...this.nodeArgs],
      });
    this.place();
    // warm up: ARP on every VM, OVS's learning, every pair of VMs
    for (const [x, y] of [
      ['B', 'C'],
      ['B', 'A'],
      ['A', 'C'],
    ] as const) {
      const ok = await until(
        () =>
          this.get(`v${x}`)
            .exec(`ping -c 1 -W 1 ${VMS[y].ip}`, { allowFail: true })
            .includes(' 0% packet loss'),
        15_000,
      );
      if (!ok) throw new Error(`three hosts (${this.middle} in B): VM ${x} cannot reach VM ${y}`);
    }
  }

  /**
   * Static forwarding entries on B and C for the other two VMs. OVS (NORMAL) floods a broadcast
   * that came in on one tunnel port out of the other: B's ARP reaches C twice, directly and
   * relayed by A, and a learning C (or B) that saw the relayed copy last sends to that VM
   * through A's userspace datapath. Static entries do not move (the kernel drops the relayed
   * copy; so does vtep), so every host sends straight to the VM's host, as in a lab where OVS
   * only had one tunnel.
   */
  private place(): void {
    for (const h of ['B', 'C'] as const) {
      const others = (['A', 'B', 'C'] as const).filter((x) => x !== h);
      for (const o of others) {
        if (h === 'B' && this.middle === 'vtep')
          sh(
            `${process.execPath} ${vtepBin()} fdb replace ${VMS[o].mac} --vni ${VNI} --remote ${UL[o]} --control ${join(this.dir, 'vtep.sock')}`,
          );
        else
          this.get(`h${h}`).exec(
            `bridge fdb replace ${VMS[o].mac} dev vx0 dst ${UL[o]} self permanent`,
          );
      }
    }
  }

  async teardown(): Promise<void> {
    await stopVtep(this.vtep);
    this.ovs?.stop();
    for (const n of this.ns.reverse()) n.delete();
  }
}

/** An interface's rx packets and drops in a namespace (0, 0 when it has none of that name). */
function rxOf(ns: Netns, dev: string): { rx: number; dropped: number } {
  const out = ns.exec(`ip -s -j link show dev ${dev}`, { allowFail: true });
  try {
    const s = JSON.parse(out)[0].stats64.rx;
    return { rx: Number(s.packets), dropped: Number(s.dropped) };
  } catch {
    return { rx: 0, dropped: 0 };
  }
}

/** The softnet backlog drops of all CPUs (second column, hex). */
function backlogDrops(): number {
  return sh('cat /proc/net/softnet_stat')
    .trim()
    .split('\n')
    .reduce((n, l) => n + parseInt(l.trim().split(/\s+/)[1] ?? '0', 16), 0);
}

/** 64-byte datagrams from VM `from` to VM `to` for `seconds`, and the receiving host's counts. */
async function udp3(
  lab: Lab3,
  from: 'A' | 'B' | 'C',
  to: 'A' | 'B' | 'C',
  seconds: number,
  plain = false,
) {
  const flood = distFile('bench', 'udpflood.js');
  const rx = bg(
    `${lab.get(`v${to}`).prefix} ${process.execPath} ${flood} recv ${VMS[to].ip} 9000 ${seconds + 1.5}`,
  );
  let out = '';
  rx.stdout!.on('data', (d) => (out += d));
  await until(() => out.includes('ready'), 5000);
  const host = lab.get(`h${to}`);
  const kernel = to === 'C' || (to === 'B' && lab.middle === 'kernel');
  const ul0 = rxOf(host, 'eth0');
  const vx0 = kernel ? rxOf(host, 'vx0') : undefined;
  const drops0 = backlogDrops();
  const sent = JSON.parse(
    lab
      .get(`v${from}`)
      .exec(
        `${process.execPath} ${flood} send ${VMS[to].ip} 9000 64 ${seconds} 1${plain ? ' plain' : ''}`,
        { allowFail: true },
      ) || '{"sent":0}',
  ).sent as number;
  await until(() => out.includes('received'), (seconds + 5) * 1000);
  rx.kill('SIGKILL');
  const r = JSON.parse(
    out.split('\n').find((l) => l.includes('received')) ?? '{"received":0,"pps":0}',
  );
  const vx1 = kernel ? rxOf(host, 'vx0') : undefined;
  return {
    pps: r.pps,
    sent,
    received: r.received,
    underlayRx: rxOf(host, 'eth0').rx - ul0.rx,
    vxlanRx: vx0 && vx1 ? vx1.rx - vx0.rx : null,
    vxlanDropped: vx0 && vx1 ? vx1.dropped - vx0.dropped : null,
    backlogDrops: backlogDrops() - drops0,
  } satisfies Run3;
}

async function tcp3(lab: Lab3, to: 'A' | 'C', seconds: number): Promise<number> {
  const srv = bg(`${lab.get(`v${to}`).prefix} iperf3 -s -1 -B ${VMS[to].ip}`);
  await sleep(300);
  try {
    const out = lab.get('vB').exec(`iperf3 -c ${VMS[to].ip} -t ${seconds} -J`, { allowFail: true });
    return (JSON.parse(out).end?.sum_received?.bits_per_second ?? 0) / 1e6;
  } catch {
    return 0;
  } finally {
    srv.kill('SIGKILL');
  }
}

async function sample3(lab: Lab3, seconds: number): Promise<Sample3> {
  return {
    toC: await udp3(lab, 'B', 'C', seconds),
    toCPlain: await udp3(lab, 'B', 'C', seconds, true),
    toA: await udp3(lab, 'B', 'A', seconds),
    fromC: await udp3(lab, 'C', 'B', seconds),
    fromA: await udp3(lab, 'A', 'B', seconds),
    tcpToCMbps: await tcp3(lab, 'C', seconds),
    tcpToAMbps: await tcp3(lab, 'A', seconds),
  };
}

export interface Hosts3Result {
  rounds: number;
  seconds: number;
  date: string;
  vtepArgs: string[];
  samples: Record<Middle, Sample3[]>;
  medians: Record<Middle, Record<string, number>>;
  /** vtep in B over a kernel VXLAN in B, measure by measure. */
  vtepOverKernel: Record<string, number>;
}

/** The figures of a sample that are compared, by name. */
function figures(s: Sample3): Record<string, number> {
  return {
    pps64ToKernel: s.toC.pps,
    pps64ToKernelPlain: s.toCPlain.pps,
    pps64ToOvs: s.toA.pps,
    pps64FromKernel: s.fromC.pps,
    pps64FromOvs: s.fromA.pps,
    tcpToKernelMbps: s.tcpToCMbps,
    tcpToOvsMbps: s.tcpToAMbps,
  };
}

export async function runHosts3(o: Hosts3Options = {}): Promise<Hosts3Result> {
  const rounds = o.rounds ?? 3;
  const seconds = o.seconds ?? 3;
  const prefix = o.prefix ?? `t${process.pid % 10000}`;
  const base = mkdtempSync(join(tmpdir(), 'vtep-3h-'));
  const labs = MIDDLES.map((m, i) => {
    mkdirSync(join(base, m));
    return new Lab3(m, `${prefix}${'vk'[i]}`, join(base, m), o.vtepArgs ?? []);
  });
  const samples = { vtep: [], kernel: [] } as Record<Middle, Sample3[]>;
  try {
    for (const l of labs) {
      o.log?.(`building three hosts, ${l.middle} in B`);
      await l.build();
    }
    for (let r = 0; r < rounds; r++)
      for (const l of labs) {
        o.log?.(`round ${r + 1}/${rounds}: ${l.middle} in B`);
        samples[l.middle].push(await sample3(l, seconds));
      }
  } finally {
    for (const l of labs) await l.teardown();
    rmSync(base, { recursive: true, force: true });
  }
  const medians = Object.fromEntries(
    MIDDLES.map((m) => {
      const fs = samples[m].map(figures);
      return [
        m,
        Object.fromEntries(Object.keys(fs[0]).map((k) => [k, median(fs.map((f) => f[k]))])),
      ];
    }),
  ) as Record<Middle, Record<string, number>>;
  const vtepOverKernel = Object.fromEntries(
    Object.keys(medians.vtep).map((k) => [
      k,
      Number((medians.vtep[k] / Math.max(medians.kernel[k], 1e-9)).toFixed(3)),
    ]),
  );
  return {
    rounds,
    seconds,
    date: new Date().toISOString(),
    vtepArgs: o.vtepArgs ?? [],
    samples,
    medians,
    vtepOverKernel,
  };
}

/** The terminal table, with each run's losses (sent, reached the host, reached the VM). */
export function formatHosts3(r: Hosts3Result): string {
  const rows: [string, string, (x: number) => string][] = [
    ['pps64ToKernel', 'UDP 64 B B→C (kernel peer), kpps', (x) => (x / 1e3).toFixed(0)],
    ['pps64ToKernelPlain', '  the same, no GSO in the VM, kpps', (x) => (x / 1e3).toFixed(0)],
    ['pps64ToOvs', 'UDP 64 B B→A (OVS peer), kpps', (x) => (x / 1e3).toFixed(0)],
    ['pps64FromKernel', 'UDP 64 B C→B, kpps', (x) => (x / 1e3).toFixed(0)],
    ['pps64FromOvs', 'UDP 64 B A→B, kpps', (x) => (x / 1e3).toFixed(0)],
    ['tcpToKernelMbps', 'TCP B→C, Mbit/s', (x) => x.toFixed(0)],
    ['tcpToOvsMbps', 'TCP B→A, Mbit/s', (x) => x.toFixed(0)],
  ];
  const out = [
    `three hosts (A: OVS userspace, C: kernel VXLAN), median of ${r.rounds} rounds of ${r.seconds} s`,
    `${'B is'.padEnd(36)}${'vtep'.padStart(10)}${'kernel'.padStart(10)}${'ratio'.padStart(8)}`,
  ];
  for (const [k, name, f] of rows)
    out.push(
      `${name.padEnd(36)}${f(r.medians.vtep[k]).padStart(10)}${f(r.medians.kernel[k]).padStart(10)}${r.vtepOverKernel[k].toFixed(2).padStart(8)}`,
    );
  out.push(
    '',
    'B→C runs: sent by VM B / tunnel packets at C / VXLAN rx at C (dropped) / VM C got, backlog drops',
  );
  for (const m of MIDDLES)
    for (const s of r.samples[m])
      for (const [what, t] of [
        ['', s.toC],
        [' no GSO', s.toCPlain],
      ] as const)
        out.push(
          `  ${(m + what).padEnd(14)} ${t.sent} / ${t.underlayRx} / ${t.vxlanRx} (${t.vxlanDropped}) / ${t.received}, ${t.backlogDrops}`,
        );
  return out.join('\n');
}
