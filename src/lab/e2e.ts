import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Netns, veth } from './netns.js';
import type { PrivateOvs } from './ovs.js';
import { distFile, kernelSide, ovsSide, stopVtep, vtepSide, type Side } from './peers.js';
import { bg, sh, sleep, until } from './sh.js';

/**
 * End-to-end benchmark: the same two-host overlay three ways. The system under test (our vtep,
 * Open vSwitch with the userspace datapath, or Linux kernel VXLAN) is on side S; side P is
 * always a kernel VXLAN peer, the fastest of the three, so that it is not what limits. Traffic
 * goes both ways: from the VM behind S to the VM behind P (S encapsulates: "encap") and back
 * (S decapsulates: "decap"). Runs alternate between the systems (vtep, ovs, kernel, vtep, …) so
 * machine drift hits all of them alike; medians are reported.
 */

/** `vtep` runs two workers (the default on a two-core machine), `vtep1` one, side by side. */
export type System = 'vtep' | 'vtep1' | 'vtepbp' | 'ovs' | 'kernel';
export const SYSTEMS: System[] = ['vtep', 'vtep1', 'vtepbp', 'ovs', 'kernel'];
/** `vtep run` flags of each vtep system (`vtepbp`: busy polling, for latency). */
const VTEP_FLAGS: Partial<Record<System, string[]>> = {
  vtep: ['--workers', '2'],
  vtep1: ['--workers', '1'],
  vtepbp: ['--workers', '2', '--busy-poll', '200'],
};
/** Namespace prefix letter of each system. */
const LETTER: Record<System, string> = {
  vtep: 'v',
  vtep1: 'w',
  vtepbp: 'b',
  ovs: 'o',
  kernel: 'k',
};
/** The systems whose CPU at rest is measured (what busy polling could cost). */
const IDLE: System[] = ['vtep', 'vtepbp'];
/** Flows of the multi-flow runs: TCP streams (iperf3 -P), UDP source ports. */
export const TCP_FLOWS = 4;
export const UDP_FLOWS = 8;

export interface Sample {
  /** Encap: the VM behind the system under test sends. */
  tcpMbps: number;
  pps64: number;
  /** Decap: the VM behind the kernel peer sends, the system under test decapsulates. */
  tcpRevMbps: number;
  pps64Rev: number;
  /** The same with several flows (TCP_FLOWS streams, UDP_FLOWS source ports): what workers spread. */
  tcp4Mbps: number;
  tcp4RevMbps: number;
  pps64x8: number;
  pps64x8Rev: number;
  /**
   * 64 B encap with every datagram its own send in the VM (sendmmsg), so that no offload carries
   * them: the frame-by-frame path. The other UDP runs send a batch of one flow as one
   * UDP_SEGMENT message, as our sockets and QUIC stacks do (USO hands it over whole).
   */
  pps64Plain: number;
  pps1400: number;
  rttP50Us: number;
  rttP99Us: number;
  /** Request/response latency as sockperf ping-pong reports it (half the round trip), 64 B, µs. */
  udpRrP50Us: number;
  udpRrP99Us: number;
  udpRrP999Us: number;
  tcpRrP50Us: number;
  tcpRrP99Us: number;
  /** CPU of the tunnel process with no traffic, % of a core (IDLE systems; null otherwise). */
  idleCpuPct: number | null;
  /** CPU seconds of the tunnel process per million packets (64-byte run); null for the kernel. */
  cpuSecPerMpps: number | null;
  /**
   * The share of that CPU spent in softirq handling in the process's context (perf samples
   * under handle_softirqs): on veths, a send runs the receiving namespaces' stack (the peer's
   * VXLAN, bridge and socket delivery) right there, work a NIC would take off the sender. Null
   * without perf, or for the kernel.
   */
  softirqShare: number | null;
  /** `cpuSecPerMpps` less that share: the tunnel's own work. */
  ownCpuSecPerMpps: number | null;
  /** CPU seconds of the whole machine per million packets (64-byte run, generator included). */
  machineCpuSecPerMpps: number;
  /**
   * Syscalls of the tunnel process per packet delivered, 64-byte runs (encap, decap): what
   * batching does (perf's raw_syscalls:sys_enter; null for the kernel, or without perf).
   */
  syscallsPerPkt: number | null;
  syscallsPerPktRev: number | null;
}

export interface E2eOptions {
  rounds?: number;
  /** Seconds per TCP run; UDP runs take two thirds of it. */
  seconds?: number;
  prefix?: string;
  progress?: (done: number, total: number, what: string) => void;
  log?: (line: string) => void;
  /** Write a V8 CPU profile of the vtep process here (node --cpu-prof), to see where time goes. */
  profileDir?: string;
  /**
   * GRO on both hosts' underlay links, as a NIC has it (a veth does not by default): the kernel
   * then coalesces the tunnel's datagrams for whoever can take them (kernel VXLAN, vtep's
   * UDP_GRO socket; OVS userspace reads packets one by one).
   */
  gro?: boolean;
  /** More `vtep run` flags for both vtep systems (e.g. `--ttl inherit --tos inherit`). */
  vtepArgs?: string[];
  /**
   * Measure only these (default: all); the others' medians are NaN. The machinery's test takes
   * one of each kind of host, vtep, OVS and kernel, to keep the suite short.
   */
  systems?: System[];
}

const S_UL = '192.0.2.1';
const P_UL = '192.0.2.2';
const S_VM = { ip: '10.0.0.1', mac: '52:54:00:00:01:01' };
const P_VM = { ip: '10.0.0.2', mac: '52:54:00:00:01:02' };
const VNI = 5000;
const MTU = 1450;

class Pair {
  readonly ns: Netns[] = [];
  ovs?: PrivateOvs;
  vtep?: ChildProcess;
  constructor(
    readonly system: System,
    readonly prefix: string,
    readonly dir: string,
    readonly profileDir?: string,
    readonly gro = false,
    readonly vtepArgs: readonly string[] = [],
  ) {}

  make(role: string): Netns {
    // reaped: a benchmark stopped with ^C must not leave its hosts behind
    const n = Netns.create(`${this.prefix}${role}`, { reap: true });
    this.ns.push(n);
    return n;
  }

  get(role: string): Netns {
    return this.ns.find((n) => n.name === `${this.prefix}${role}`)!;
  }

  async build(): Promise<void> {
    const ul = this.make('ul');
    ul.exec('ip link add ulbr type bridge && ip link set ulbr up');
    for (const role of ['hs', 'hp']) {
      const h = this.make(role);
      veth(h, 'eth0', ul, `p${role}`);
      ul.exec(`ip link set p${role} master ulbr`);
      if (this.gro) h.exec('ethtool -K eth0 gro on');
    }
    const side = (
      host: string,
      vm: string,
      local: string,
      remote: string,
      v: { ip: string; mac: string },
    ): Side => ({
      host: this.get(host),
      vm: this.make(vm),
      local,
      remotes: [remote],
      vni: VNI,
      mtu: MTU,
      vmIp: v.ip,
      vmMac: v.mac,
    });
    kernelSide(side('hp', 'vp', P_UL, S_UL, P_VM));
    const s = side('hs', 'vs', S_UL, P_UL, S_VM);
    if (this.system === 'kernel') kernelSide(s);
    else if (this.system === 'ovs') this.ovs = await ovsSide(s, join(this.dir, 'ovs'));
    else {
      this.vtep = await vtepSide(s, {
        extra: [...VTEP_FLAGS[this.system]!, ...this.vtepArgs],
        tap: `${this.prefix}tap`.slice(0, 15),
        control: join(this.dir, 'vtep.sock'),
        log: join(this.dir, 'vtep.log'),
        nodeArgs: this.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${this.profileDir}`] : [],
      });
    }
    // the other end of the request/response runs (UDP and TCP)
    const vp = this.get('vp');
    for (const [port, tcp] of [
      [RR_PORT, ''],
      [RR_PORT + 1, ' --tcp'],
    ] as const)
      this.servers.push(
        spawn(
          'ip',
          [
            'netns',
            'exec',
            vp.name,
            'sh',
            '-c',
            `exec sockperf server -i ${P_VM.ip} -p ${port}${tcp}`,
          ],
          {
            stdio: 'ignore',
          },
        ),
      );
    // warm up: ARP and FDB learning on every hop
    await until(
      () =>
        this.get('vs')
          .exec(`ping -c 1 -W 1 ${P_VM.ip}`, { allowFail: true })
          .includes(' 0% packet loss'),
      10_000,
    );
  }

  /** The process doing the tunnelling, for its CPU time. */
  pid(): number | undefined {
    if (this.vtep) return this.vtep.pid;
    if (this.ovs)
      return Number(readFileSync(join(this.dir, 'ovs', 'run', 'ovs-vswitchd.pid'), 'utf8').trim());
    return undefined;
  }

  readonly servers: ChildProcess[] = [];

  async teardown(): Promise<void> {
    for (const s of this.servers) s.kill('SIGKILL');
    await stopVtep(this.vtep);
    this.ovs?.stop();
    for (const n of this.ns.reverse()) n.delete();
  }
}

const TICK = 100; // USER_HZ: /proc times are in 1/100 s

function procCpu(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // utime + stime
}

function machineCpu(): number {
  const [, ...v] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .map(Number);
  return (v[0] + v[1] + v[2] + v[5] + v[6]) / TICK; // user nice system irq softirq
}

async function tcp(pair: Pair, seconds: number, decap = false, streams = 1): Promise<number> {
  const srv = bg(`${pair.get('vp').prefix} iperf3 -s -1 -B ${P_VM.ip}`);
  await sleep(300);
  try {
    // -R: the server (behind the kernel peer) sends, so the system under test decapsulates
    const out = pair
      .get('vs')
      .exec(`iperf3 -c ${P_VM.ip} -t ${seconds} -P ${streams} -J${decap ? ' -R' : ''}`, {
        allowFail: true,
      });
    const j = JSON.parse(out);
    return (j.end?.sum_received?.bits_per_second ?? 0) / 1e6;
  } catch {
    return 0;
  } finally {
    srv.kill('SIGKILL');
  }
}

/**
 * Counts the syscalls of process `pid` (all its threads) until the returned function is called,
 * which resolves with the count (undefined without perf); undefined without a pid.
 */
function countSyscalls(pid: number | undefined): (() => Promise<number | undefined>) | undefined {
  if (pid === undefined) return undefined;
  const perf = spawn('perf', ['stat', '-x,', '-e', 'raw_syscalls:sys_enter', '-p', String(pid)]);
  let err = '';
  perf.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // no perf on the machine: 'error' instead of 'exit', and no count
  const exited = new Promise((r) => perf.once('exit', r).once('error', r));
  return async () => {
    perf.kill('SIGINT');
    await Promise.race([exited, sleep(3000)]);
    const n = Number(/^(\d+),/m.exec(err)?.[1]);
    return Number.isFinite(n) ? n : undefined;
  };
}

/**
 * Samples the stacks of process `pid` (perf record) until the returned function is called,
 * which resolves with the share of samples inside softirq handling (undefined without perf).
 */
function softirqShare(pid: number | undefined): (() => Promise<number | undefined>) | undefined {
  if (pid === undefined) return undefined;
  const file = join(tmpdir(), `vtep-e2e-${process.pid}-${pid}.perf`);
  const perf = spawn('perf', ['record', '-F', '199', '-g', '-q', '-o', file, '-p', String(pid)], {
    stdio: 'ignore',
  });
  const exited = new Promise((r) => perf.once('exit', r).once('error', r));
  return async () => {
    perf.kill('SIGINT');
    await Promise.race([exited, sleep(5000)]);
    const report = sh(`perf report -i ${file} --children --sort sym -g none --stdio 2>/dev/null`, {
      allowFail: true,
    });
    rmSync(file, { force: true });
    if (!/%/.test(report)) return undefined;
    const m = /^\s*([\d.]+)%\s+[\d.]+%\s+\[k\] (?:handle_softirqs|__do_softirq)\s*$/m.exec(report);
    return m ? Number(m[1]) / 100 : 0;
  };
}

interface UdpRun {
  /** The VM behind the kernel peer sends (the system under test decapsulates). */
  decap?: boolean;
  flows?: number;
  /** Each datagram its own send in the VM (no UDP_SEGMENT). */
  plain?: boolean;
  /** Sample the tunnel process's stacks for its softirq share. */
  softirq?: boolean;
}

async function udp(
  pair: Pair,
  size: number,
  seconds: number,
  o: UdpRun = {},
): Promise<{
  pps: number;
  cpu: number;
  machine: number;
  syscalls: number | null;
  softirq: number | null;
}> {
  const { decap = false, flows = 1 } = o;
  const flood = distFile('bench', 'udpflood.js');
  const [from, to, toIp] = decap ? ['vp', 'vs', S_VM.ip] : ['vs', 'vp', P_VM.ip];
  const rx = bg(
    `${pair.get(to).prefix} ${process.execPath} ${flood} recv ${toIp} 9000 ${seconds + 1.5}`,
  );
  let out = '';
  rx.stdout!.on('data', (d) => (out += d));
  await until(() => out.includes('ready'), 5000);
  const pid = pair.pid();
  const syscalls = countSyscalls(pid);
  const irq = o.softirq ? softirqShare(pid) : undefined;
  const cpu0 = procCpu(pid);
  const m0 = machineCpu();
  pair
    .get(from)
    .exec(
      `${process.execPath} ${flood} send ${toIp} 9000 ${size} ${seconds} ${flows}${o.plain ? ' plain' : ''}`,
    );
  const cpu1 = procCpu(pid);
  const m1 = machineCpu();
  const calls = await syscalls?.();
  const share = await irq?.();
  await until(() => out.includes('received'), (seconds + 5) * 1000);
  rx.kill('SIGKILL');
  const r = JSON.parse(
    out.split('\n').find((l) => l.includes('received')) ?? '{"received":0,"pps":0}',
  );
  const mpkts = Math.max(r.received, 1) / 1e6;
  return {
    pps: r.pps,
    cpu: (cpu1 - cpu0) / mpkts,
    machine: (m1 - m0) / mpkts,
    syscalls: calls === undefined ? null : calls / Math.max(r.received, 1),
    softirq: share ?? null,
  };
}

function latency(pair: Pair): { p50: number; p99: number } {
  const out = pair.get('vs').exec(`ping -c 200 -i 0.005 -W 1 ${P_VM.ip}`, { allowFail: true });
  const rtts = [...out.matchAll(/time=([\d.]+) ms/g)]
    .map((m) => Number(m[1]) * 1000)
    .sort((a, b) => a - b);
  const q = (p: number) =>
    rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))] : 0;
  return { p50: q(0.5), p99: q(0.99) };
}

const RR_PORT = 11111;

/**
 * Request/response latency the way users measure it: `sockperf ping-pong`, 64-byte messages,
 * one outstanding, for `seconds`; sockperf reports half the round trip.
 */
function rr(pair: Pair, seconds: number, tcp: boolean): { p50: number; p99: number; p999: number } {
  const out = pair
    .get('vs')
    .exec(
      `sockperf ping-pong -i ${P_VM.ip} -p ${RR_PORT + (tcp ? 1 : 0)}${tcp ? ' --tcp' : ''} -t ${seconds} --msg-size 64 2>&1`,
      { allowFail: true },
    );
  const pc = (q: string) =>
    Number(new RegExp(`percentile ${q} =\\s+([\\d.]+)`).exec(out)?.[1] ?? 0);
  return { p50: pc('50.000'), p99: pc('99.000'), p999: pc('99.900') };
}

/** The tunnel process's CPU over `seconds` of no traffic, % of a core. */
async function idleCpu(pair: Pair, seconds: number): Promise<number> {
  const pid = pair.pid();
  const c0 = procCpu(pid);
  await sleep(seconds * 1000);
  return ((procCpu(pid) - c0) / seconds) * 100;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export interface E2eResult {
  machine: {
    cpu: string | undefined;
    cores: number;
    node: string;
    kernel: string;
    ovs: string;
    date: string;
  };
  rounds: number;
  seconds: number;
  /** GRO was on on the underlay links (`BENCH_GRO=1`). */
  underlayGro?: boolean;
  generator: string;
  samples: Record<System, Sample[]>;
  medians: Record<System, Sample>;
  ratios: {
    vtepOverOvs: Record<string, number>;
    vtepOverKernel: Record<string, number>;
    /** `--workers 2` over `--workers 1`, same run. */
    workers2OverWorkers1: Record<string, number>;
    /** `--busy-poll 200` (2 workers) over kernel VXLAN. */
    busyPollOverKernel?: Record<string, number>;
  };
  targets: { name: string; value: number; target: number; met: boolean }[];
}

export async function runE2e(o: E2eOptions = {}): Promise<E2eResult> {
  const rounds = o.rounds ?? 3;
  const seconds = o.seconds ?? 3;
  const prefix = o.prefix ?? `e${process.pid % 10000}`;
  const log = o.log ?? (() => {});
  const base = mkdtempSync(join(tmpdir(), 'vtep-e2e-'));
  const measured = o.systems ?? SYSTEMS;
  const pairs = measured.map((s) => {
    mkdirSync(join(base, s));
    return new Pair(
      s,
      `${prefix}${LETTER[s]}`,
      join(base, s),
      o.profileDir,
      o.gro === true,
      o.vtepArgs,
    );
  });
  const samples = Object.fromEntries(SYSTEMS.map((s) => [s, []])) as unknown as Record<
    System,
    Sample[]
  >;
  const total = rounds * measured.length * STEPS;
  let done = 0;
  const step = (what: string) => o.progress?.(++done, total, what);
  try {
    for (const p of pairs) {
      log(`building ${p.system} pair`);
      await p.build();
    }
    for (let r = 0; r < rounds; r++)
      for (const p of pairs) samples[p.system].push(await sampleOf(p, seconds, step));
  } finally {
    for (const p of pairs) await p.teardown();
    rmSync(base, { recursive: true, force: true });
  }
  return resultOf(samples, rounds, seconds, o.gro === true);
}

/** Measurements a round takes of each system. */
const STEPS = 14;

/** One round of every measurement on one pair; `step` after each. */
async function sampleOf(p: Pair, seconds: number, step: (what: string) => void): Promise<Sample> {
  const udpSeconds = Math.max(1, Math.round((seconds * 2) / 3));
  const take = async <T>(what: string, f: () => Promise<T> | T): Promise<T> => {
    const v = await f();
    step(`${p.system} ${what}`);
    return v;
  };
  const tcpMbps = await take('tcp', () => tcp(p, seconds));
  const tcpRevMbps = await take('tcp decap', () => tcp(p, seconds, true));
  const tcp4Mbps = await take(`tcp x${TCP_FLOWS}`, () => tcp(p, seconds, false, TCP_FLOWS));
  const tcp4RevMbps = await take(`tcp x${TCP_FLOWS} decap`, () => tcp(p, seconds, true, TCP_FLOWS));
  const u64 = await take('udp 64B', () => udp(p, 64, udpSeconds, { softirq: true }));
  const u64Rev = await take('udp 64B decap', () => udp(p, 64, udpSeconds, { decap: true }));
  const u64x8 = await take(`udp 64B x${UDP_FLOWS}`, () =>
    udp(p, 64, udpSeconds, { flows: UDP_FLOWS }),
  );
  const u64x8Rev = await take(`udp 64B x${UDP_FLOWS} decap`, () =>
    udp(p, 64, udpSeconds, { decap: true, flows: UDP_FLOWS }),
  );
  const u64Plain = await take('udp 64B no GSO', () => udp(p, 64, udpSeconds, { plain: true }));
  const u1400 = await take('udp 1400B', () => udp(p, 1400, udpSeconds));
  const lat = await take('latency', () => latency(p));
  const rrSeconds = Math.max(1, Math.round(seconds / 2));
  const urr = await take('udp req/resp', () => rr(p, rrSeconds, false));
  const trr = await take('tcp req/resp', () => rr(p, rrSeconds, true));
  // At rest: nothing sent for as long as a TCP run and a half (bench:e2e: about 10 s).
  const idle = await take('idle', () => (IDLE.includes(p.system) ? idleCpu(p, seconds * 3) : null));
  return {
    tcpMbps,
    tcpRevMbps,
    tcp4Mbps,
    tcp4RevMbps,
    pps64: u64.pps,
    pps64Rev: u64Rev.pps,
    pps64x8: u64x8.pps,
    pps64x8Rev: u64x8Rev.pps,
    pps64Plain: u64Plain.pps,
    pps1400: u1400.pps,
    rttP50Us: lat.p50,
    rttP99Us: lat.p99,
    udpRrP50Us: urr.p50,
    udpRrP99Us: urr.p99,
    udpRrP999Us: urr.p999,
    tcpRrP50Us: trr.p50,
    tcpRrP99Us: trr.p99,
    idleCpuPct: idle,
    cpuSecPerMpps: p.system === 'kernel' ? null : u64.cpu,
    softirqShare: p.system === 'kernel' ? null : u64.softirq,
    ownCpuSecPerMpps:
      p.system === 'kernel' || u64.softirq === null ? null : u64.cpu * (1 - u64.softirq),
    machineCpuSecPerMpps: u64.machine,
    syscallsPerPkt: u64.syscalls,
    syscallsPerPktRev: u64Rev.syscalls,
  };
}

/** The median of the values measured, or null when none was. */
function orNull(values: (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length ? median(known) : null;
}

/** Each system's medians over the rounds. */
function mediansOf(samples: Record<System, Sample[]>): Record<System, Sample> {
  return Object.fromEntries(
    SYSTEMS.map((s) => {
      const m = (f: (x: Sample) => number) => median(samples[s].map(f));
      return [
        s,
        {
          tcpMbps: m((x) => x.tcpMbps),
          tcpRevMbps: m((x) => x.tcpRevMbps),
          tcp4Mbps: m((x) => x.tcp4Mbps),
          tcp4RevMbps: m((x) => x.tcp4RevMbps),
          pps64: m((x) => x.pps64),
          pps64Rev: m((x) => x.pps64Rev),
          pps64x8: m((x) => x.pps64x8),
          pps64x8Rev: m((x) => x.pps64x8Rev),
          pps64Plain: m((x) => x.pps64Plain ?? 0),
          pps1400: m((x) => x.pps1400),
          rttP50Us: m((x) => x.rttP50Us),
          rttP99Us: m((x) => x.rttP99Us),
          udpRrP50Us: m((x) => x.udpRrP50Us),
          udpRrP99Us: m((x) => x.udpRrP99Us),
          udpRrP999Us: m((x) => x.udpRrP999Us),
          tcpRrP50Us: m((x) => x.tcpRrP50Us),
          tcpRrP99Us: m((x) => x.tcpRrP99Us),
          idleCpuPct: IDLE.includes(s) ? m((x) => x.idleCpuPct ?? 0) : null,
          cpuSecPerMpps: s === 'kernel' ? null : m((x) => x.cpuSecPerMpps ?? 0),
          softirqShare: orNull(samples[s].map((x) => x.softirqShare ?? null)),
          ownCpuSecPerMpps: orNull(samples[s].map((x) => x.ownCpuSecPerMpps ?? null)),
          machineCpuSecPerMpps: m((x) => x.machineCpuSecPerMpps),
          syscallsPerPkt: orNull(samples[s].map((x) => x.syscallsPerPkt)),
          syscallsPerPktRev: orNull(samples[s].map((x) => x.syscallsPerPktRev)),
        },
      ];
    }),
  ) as Record<System, Sample>;
}

/** `a` over `b`, measure by measure (latency: theirs over ours, so higher is better for us). */
function ratio(a: Sample, b: Sample): Record<string, number> {
  return {
    tcp: a.tcpMbps / b.tcpMbps,
    tcpDecap: a.tcpRevMbps / b.tcpRevMbps,
    tcp4: a.tcp4Mbps / b.tcp4Mbps,
    tcp4Decap: a.tcp4RevMbps / b.tcp4RevMbps,
    pps64: a.pps64 / b.pps64,
    pps64Decap: a.pps64Rev / b.pps64Rev,
    pps64x8: a.pps64x8 / b.pps64x8,
    pps64x8Decap: a.pps64x8Rev / b.pps64x8Rev,
    pps64Plain: a.pps64Plain / b.pps64Plain,
    pps1400: a.pps1400 / b.pps1400,
    latencyP50: b.rttP50Us / a.rttP50Us,
    udpRrP50: b.udpRrP50Us / a.udpRrP50Us,
    tcpRrP50: b.tcpRrP50Us / a.tcpRrP50Us,
  };
}

/**
 * The speed issues' targets, each a ratio that meets its target when at least it: TCP at least
 * the kernel's, 64-byte rates at least OVS's and the kernel's, each way, CPU, latency, idle.
 */
function targetsOf(
  medians: Record<System, Sample>,
  vo: Record<string, number>,
  vk: Record<string, number>,
  bpk: Record<string, number>,
): E2eResult['targets'] {
  return [
    { name: 'TCP throughput vs OVS userspace (encap)', value: vo.tcp, target: 1.0 },
    { name: 'UDP 64 B packet rate vs OVS userspace (encap)', value: vo.pps64, target: 1.0 },
    { name: 'UDP 64 B packet rate vs OVS userspace (decap)', value: vo.pps64Decap, target: 1.0 },
    { name: 'round-trip latency (p50) vs OVS userspace', value: vo.latencyP50, target: 1.0 },
    { name: 'TCP throughput vs kernel VXLAN (encap)', value: vk.tcp, target: 1.0 },
    { name: 'TCP throughput vs kernel VXLAN (decap)', value: vk.tcpDecap, target: 1.0 },
    { name: 'UDP 64 B packet rate vs kernel VXLAN (encap)', value: vk.pps64, target: 1.0 },
    { name: 'UDP 64 B packet rate vs kernel VXLAN (decap)', value: vk.pps64Decap, target: 1.0 },
    { name: `UDP 64 B x${UDP_FLOWS} vs kernel VXLAN (encap)`, value: vk.pps64x8, target: 1.0 },
    {
      name: `UDP 64 B x${UDP_FLOWS} vs kernel VXLAN (decap)`,
      value: vk.pps64x8Decap,
      target: 1.0,
    },
    { name: 'UDP 64 B, no GSO, vs kernel VXLAN (encap)', value: vk.pps64Plain, target: 1.0 },
    { name: 'UDP 1400 B packet rate vs kernel VXLAN', value: vk.pps1400, target: 1.0 },
    // CPU: 2 s per Mpkt over ours, at least 1 (the tunnel's own work, outside softirq)
    {
      name: 'tunnel CPU outside softirq ≤ 2.0 s / Mpkt (64 B encap)',
      value: 2 / Math.max(medians.vtep.ownCpuSecPerMpps ?? Infinity, 1e-3),
      target: 1.0,
    },
    // The same target against OVS measured beside: the issue set 2.0 s where OVS took 4.76 s
    // per Mpkt (another machine); the ratio holds where absolute CPU seconds do not travel.
    {
      name: "tunnel process CPU, OVS userspace's over ours (≥ 4.76 / 2.0)",
      value:
        (medians.ovs.cpuSecPerMpps ?? 0) / Math.max(medians.vtep.cpuSecPerMpps ?? Infinity, 1e-3),
      target: 4.76 / 2.0,
    },
    // latency ratios are theirs over ours: "p50 ≤ 3× the kernel's" is a ratio of at least 1/3
    {
      name: 'UDP req/resp p50, busy-poll vs kernel VXLAN (≤ 3×)',
      value: bpk.udpRrP50,
      target: 1 / 3,
    },
    { name: 'UDP req/resp p50 vs OVS userspace (≤ 1×)', value: vo.udpRrP50, target: 1.0 },
    // idle CPU under 2 % of a core: 2 over it, at least 1
    {
      name: 'idle CPU with busy-poll < 2 % of a core',
      value: 2 / Math.max(medians.vtepbp.idleCpuPct ?? 0, 1e-3),
      target: 1.0,
    },
  ].map((x) => ({ ...x, value: Number(x.value.toFixed(3)), met: x.value >= x.target }));
}

function resultOf(
  samples: Record<System, Sample[]>,
  rounds: number,
  seconds: number,
  gro: boolean,
): E2eResult {
  const medians = mediansOf(samples);
  const vo = ratio(medians.vtep, medians.ovs);
  const vk = ratio(medians.vtep, medians.kernel);
  const workers = ratio(medians.vtep, medians.vtep1);
  const bpk = ratio(medians.vtepbp, medians.kernel);
  const round = (r: Record<string, number>) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v.toFixed(3))]));
  const targets = targetsOf(medians, vo, vk, bpk);
  return {
    machine: {
      cpu: cpus()[0]?.model,
      cores: cpus().length,
      node: process.version,
      kernel: sh('uname -r').trim(),
      ovs: sh('ovs-vswitchd --version | head -1', { allowFail: true }).trim(),
      date: new Date().toISOString(),
    },
    rounds,
    seconds,
    underlayGro: gro,
    generator: `bench/udpflood: sendmmsg batches of 64 from one VM (from ${UDP_FLOWS} source ports in the x${UDP_FLOWS} runs), a recvmmsg counter in the other (encap: from the VM behind the system under test; decap: towards it); iperf3 (-R for decap, -P ${TCP_FLOWS} in the x${TCP_FLOWS} runs); vtep with --workers 2 and --workers 1`,
    samples,
    medians,
    ratios: {
      vtepOverOvs: round(vo),
      vtepOverKernel: round(vk),
      workers2OverWorkers1: round(workers),
      busyPollOverKernel: round(bpk),
    },
    targets,
  };
}

const pct = (x: number | null | undefined) =>
  x === null || x === undefined ? 'n/a' : (x * 100).toFixed(0);

/** The terminal table. */
export function formatE2e(r: E2eResult): string {
  const rows: [string, (s: Sample) => string][] = [
    ['TCP encap (Mbit/s)', (s) => s.tcpMbps.toFixed(0)],
    ['TCP decap (Mbit/s)', (s) => s.tcpRevMbps.toFixed(0)],
    [`TCP x${TCP_FLOWS} encap (Mbit/s)`, (s) => s.tcp4Mbps.toFixed(0)],
    [`TCP x${TCP_FLOWS} decap (Mbit/s)`, (s) => s.tcp4RevMbps.toFixed(0)],
    ['UDP 64 B encap (kpps received)', (s) => (s.pps64 / 1e3).toFixed(0)],
    ['UDP 64 B decap (kpps received)', (s) => (s.pps64Rev / 1e3).toFixed(0)],
    [`UDP 64 B x${UDP_FLOWS} encap (kpps)`, (s) => (s.pps64x8 / 1e3).toFixed(0)],
    [`UDP 64 B x${UDP_FLOWS} decap (kpps)`, (s) => (s.pps64x8Rev / 1e3).toFixed(0)],
    ['UDP 64 B encap, no GSO (kpps)', (s) => ((s.pps64Plain ?? 0) / 1e3).toFixed(0)],
    ['UDP 1400 B (kpps received)', (s) => (s.pps1400 / 1e3).toFixed(0)],
    ['RTT p50 (µs)', (s) => s.rttP50Us.toFixed(0)],
    ['RTT p99 (µs)', (s) => s.rttP99Us.toFixed(0)],
    ['UDP req/resp p50 (µs)', (s) => s.udpRrP50Us.toFixed(1)],
    ['UDP req/resp p99 (µs)', (s) => s.udpRrP99Us.toFixed(1)],
    ['UDP req/resp p99.9 (µs)', (s) => s.udpRrP999Us.toFixed(1)],
    ['TCP req/resp p50 (µs)', (s) => s.tcpRrP50Us.toFixed(1)],
    ['TCP req/resp p99 (µs)', (s) => s.tcpRrP99Us.toFixed(1)],
    ['idle CPU (% of a core)', (s) => (s.idleCpuPct === null ? 'n/a' : s.idleCpuPct.toFixed(2))],
    [
      'tunnel CPU s / Mpkt (64 B)',
      (s) => (s.cpuSecPerMpps === null ? 'n/a' : s.cpuSecPerMpps.toFixed(2)),
    ],
    ['  of which softirq (%)', (s) => pct(s.softirqShare)],
    ['  outside softirq: s / Mpkt', (s) => s.ownCpuSecPerMpps?.toFixed(2) ?? 'n/a'],
    ['machine CPU s / Mpkt (64 B)', (s) => s.machineCpuSecPerMpps.toFixed(2)],
    ['syscalls / pkt (64 B encap)', (s) => s.syscallsPerPkt?.toFixed(3) ?? 'n/a'],
    ['syscalls / pkt (64 B decap)', (s) => s.syscallsPerPktRev?.toFixed(3) ?? 'n/a'],
  ];
  const w = [32, 10, 10, 10, 10, 10];
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' ');
  const out = [
    ...(r.underlayGro ? ['underlay links with GRO on (BENCH_GRO=1)'] : []),
    line(['median of ' + r.rounds + ' rounds', 'vtep', 'vtep', 'vtep', 'ovs', 'kernel']),
    line(['', '2 workers', '1 worker', 'busy-poll', '', '']),
  ];
  for (const [name, f] of rows) out.push(line([name, ...SYSTEMS.map((s) => f(r.medians[s]))]));
  out.push(
    '',
    'ratios vtep (2 workers)/OVS: ' + JSON.stringify(r.ratios.vtepOverOvs),
    'ratios vtep (2 workers)/kernel: ' + JSON.stringify(r.ratios.vtepOverKernel),
    'ratios vtep 2 workers/1 worker: ' + JSON.stringify(r.ratios.workers2OverWorkers1),
    ...(r.ratios.busyPollOverKernel
      ? ['ratios vtep busy-poll/kernel: ' + JSON.stringify(r.ratios.busyPollOverKernel)]
      : []),
    '',
  );
  for (const t of r.targets)
    out.push(
      `${t.met ? 'MET   ' : 'MISSED'} ${t.name}: ${t.value.toFixed(2)}× (target ≥ ${t.target.toFixed(1)}×)`,
    );
  return out.join('\n');
}

/** An SVG chart: one panel per metric, one bar per system. */
export function chartSvg(r: E2eResult): string {
  const panels: [string, (s: Sample) => number, string][] = [
    ['TCP encap', (s) => s.tcpMbps, 'Mbit/s'],
    ['TCP decap', (s) => s.tcpRevMbps, 'Mbit/s'],
    [`TCP x${TCP_FLOWS} encap`, (s) => s.tcp4Mbps, 'Mbit/s'],
    ['UDP 64 B encap', (s) => s.pps64 / 1e3, 'kpps'],
    ['UDP 64 B decap', (s) => s.pps64Rev / 1e3, 'kpps'],
    [`UDP 64 B x${UDP_FLOWS} encap`, (s) => s.pps64x8 / 1e3, 'kpps'],
    ['UDP 1400 B', (s) => s.pps1400 / 1e3, 'kpps'],
    ['RTT p50 (lower is better)', (s) => s.rttP50Us, 'µs'],
    ['UDP req/resp p50 (lower …)', (s) => s.udpRrP50Us, 'µs'],
    ['TCP req/resp p50 (lower …)', (s) => s.tcpRrP50Us, 'µs'],
  ];
  const colors: Record<System, string> = {
    vtep: '#2b7bb9',
    vtep1: '#8fb9dc',
    vtepbp: '#1d4f7a',
    ovs: '#e08a1e',
    kernel: '#5a9e4b',
  };
  const pw = 270;
  const ph = 220;
  const W = pw * panels.length + 20;
  const H = ph + 90;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">vtep vs Open vSwitch (userspace) vs Linux kernel VXLAN — medians of ${r.rounds} rounds</text>`,
    `<text x="10" y="34" fill="#555">${esc(`${r.machine.cores} cores ${r.machine.cpu ?? ''}, Linux ${r.machine.kernel}, Node ${r.machine.node}, ${r.machine.ovs}, ${r.machine.date.slice(0, 10)}`)}</text>`,
  ];
  panels.forEach(([title, f, unit], i) => {
    const x0 = 10 + i * pw;
    const y0 = 60;
    const max = Math.max(...SYSTEMS.map((s) => f(r.medians[s])), 1e-9);
    parts.push(`<text x="${x0 + 10}" y="${y0}" font-weight="bold">${esc(title)}</text>`);
    SYSTEMS.forEach((s, k) => {
      const v = f(r.medians[s]);
      const h = Math.round((v / max) * (ph - 60));
      const x = x0 + 10 + k * 50;
      const y = y0 + 20 + (ph - 60 - h);
      parts.push(`<rect x="${x}" y="${y}" width="42" height="${h}" fill="${colors[s]}"/>`);
      parts.push(
        `<text x="${x + 21}" y="${y - 4}" text-anchor="middle">${v >= 100 ? v.toFixed(0) : v.toFixed(1)}</text>`,
      );
      parts.push(
        `<text x="${x + 21}" y="${y0 + ph - 25}" text-anchor="middle">${s === 'vtep' ? 'vtep×2' : s === 'vtepbp' ? 'busy' : s}</text>`,
      );
    });
    parts.push(`<text x="${x0 + 10}" y="${y0 + ph - 8}" fill="#555">${unit}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function writeE2e(r: E2eResult, dir: string): { json: string; svg: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'e2e.json');
  const svg = join(dir, 'e2e.svg');
  writeFileSync(json, JSON.stringify(r, null, 2) + '\n');
  writeFileSync(svg, chartSvg(r));
  return { json, svg };
}
