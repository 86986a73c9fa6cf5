import { existsSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { request } from '../control/server.js';
import { Netns, veth } from './netns.js';
import { PrivateOvs } from './ovs.js';
import { sh, until } from './sh.js';

/**
 * The overlay of the OVS VXLAN guide, in network namespaces on one machine:
 *
 *   vmA ── hostA (Open vSwitch, userspace datapath) ┐
 *   vmB ── hostB (our vtep, its TAP in vmB)         ├── underlay bridge, 192.0.2.0/24
 *   vmC ── hostC (Linux kernel VXLAN + bridge)      ┘
 *
 * hostB is the hub: A and C each have one tunnel, to B, as the guide's two hosts do; B floods
 * to both. (A full mesh would make OVS flood tunnel→tunnel, which it does without split
 * horizon, and duplicate every broadcast.) VMs are 10.0.0.1/.2/.3 with fixed MACs. Namespace
 * names are the prefix plus the role (`ul`, `hostA`, `hostB`, `hostC`, `vmA`, `vmB`, `vmC`, `inj`).
 */

export type Peer = 'ovs' | 'kernel';

export interface TopologyOptions {
  /** Namespace name prefix (≤ 8 characters keeps interface names short). */
  prefix: string;
  vni?: number;
  /** Which peers to build beside our vtep (default both). */
  peers?: Peer[];
  /** Extra `vtep run` arguments. */
  vtepArgs?: string[];
  /** Working directory (OVS databases, logs, control socket); a temp dir by default. */
  dir?: string;
  /** Inner MTU on the VMs (OVS userspace does not fragment tunnel packets). */
  mtu?: number;
  /** Add a host `inj` (192.0.2.9) on the underlay for tests that craft packets. */
  injector?: boolean;
}

export const UNDERLAY = {
  ovs: '192.0.2.1',
  vtep: '192.0.2.2',
  kernel: '192.0.2.3',
  injector: '192.0.2.9',
} as const;
export const VM = {
  ovs: { ip: '10.0.0.1', mac: '52:54:00:00:00:0a' },
  vtep: { ip: '10.0.0.2', mac: '52:54:00:00:00:0b' },
  kernel: { ip: '10.0.0.3', mac: '52:54:00:00:00:0c' },
} as const;

/** Where the compiled CLI lives; tests and the lab run the real binary. */
export function vtepBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  const bin = join(dir, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(bin))
    throw Object.assign(new Error(`${bin} is missing: run "npm run build" first`), {
      code: 'ERR_NOT_BUILT',
    });
  return bin;
}

export class Topology {
  readonly ns = new Map<string, Netns>();
  ovs?: PrivateOvs;
  vtep?: ChildProcess;
  readonly vni: number;
  readonly peers: Peer[];
  readonly control: string;
  readonly tap: string;
  readonly vtepLog: string;

  private constructor(
    readonly prefix: string,
    readonly dir: string,
    readonly opts: TopologyOptions,
  ) {
    this.vni = opts.vni ?? 5000;
    this.peers = opts.peers ?? ['ovs', 'kernel'];
    this.control = join(dir, 'vtep.sock');
    this.tap = `${prefix}tap`.slice(0, 15);
    this.vtepLog = join(dir, 'vtep.log');
  }

  /** Namespace by role: ul, hostA, hostB, hostC, vmA, vmB, vmC. */
  get(role: string): Netns {
    const n = this.ns.get(role);
    if (!n) throw new Error(`no namespace ${role} in this topology`);
    return n;
  }

  static async build(opts: TopologyOptions): Promise<Topology> {
    const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'vtep-topo-'));
    mkdirSync(dir, { recursive: true });
    const topo = new Topology(opts.prefix, dir, opts);
    try {
      await topo.buildAll();
    } catch (err) {
      topo.teardown();
      throw err;
    }
    return topo;
  }

  private make(role: string): Netns {
    const ns = Netns.create(`${this.prefix}${role}`);
    this.ns.set(role, ns);
    return ns;
  }

  private async buildAll(): Promise<void> {
    const mtu = this.opts.mtu ?? 1450;
    const ul = this.make('ul');
    ul.exec('ip link add ulbr type bridge && ip link set ulbr up');
    const hosts: [string, string][] = [['hostB', UNDERLAY.vtep]];
    if (this.peers.includes('ovs')) hosts.push(['hostA', UNDERLAY.ovs]);
    if (this.peers.includes('kernel')) hosts.push(['hostC', UNDERLAY.kernel]);
    if (this.opts.injector) hosts.push(['inj', UNDERLAY.injector]);
    for (const [role] of hosts) {
      const host = this.make(role);
      const port = `p${role}`;
      veth(host, 'eth0', ul, port);
      ul.exec(`ip link set ${port} master ulbr`);
    }
    for (const role of ['vmA', 'vmB', 'vmC']) {
      if (role === 'vmA' && !this.peers.includes('ovs')) continue;
      if (role === 'vmC' && !this.peers.includes('kernel')) continue;
      this.make(role);
    }
    this.get('hostB').exec(`ip addr add ${UNDERLAY.vtep}/24 dev eth0`);
    if (this.opts.injector) this.get('inj').exec(`ip addr add ${UNDERLAY.injector}/24 dev eth0`);
    if (this.peers.includes('kernel')) this.buildKernel(mtu);
    if (this.peers.includes('ovs')) await this.buildOvs(mtu);
  }

  private buildKernel(mtu: number): void {
    const h = this.get('hostC');
    const vm = this.get('vmC');
    h.exec(`ip addr add ${UNDERLAY.kernel}/24 dev eth0`);
    h.exec(`ip link add vx0 type vxlan id ${this.vni} local ${UNDERLAY.kernel} dstport 4789`);
    h.exec('ip link add br0 type bridge && ip link set br0 up');
    h.exec(`ip link set vx0 master br0 mtu ${mtu} up`);
    veth(h, 'vmC', vm, 'eth0', { mtu, mac: VM.kernel.mac });
    h.exec('ip link set vmC master br0');
    vm.exec(`ip addr add ${VM.kernel.ip}/24 dev eth0`);
    h.exec(`bridge fdb append 00:00:00:00:00:00 dev vx0 dst ${UNDERLAY.vtep}`);
  }

  private async buildOvs(mtu: number): Promise<void> {
    const h = this.get('hostA');
    const vm = this.get('vmA');
    const ovs = PrivateOvs.start(h, join(this.dir, 'ovs'));
    this.ovs = ovs;
    ovs.vsctl('add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy eth0');
    await until(
      () => h.exec('ip -o link show br-phy', { allowFail: true }).includes('br-phy'),
      10_000,
    );
    h.exec(`ip addr add ${UNDERLAY.ovs}/24 dev br-phy && ip link set br-phy up`);
    ovs.vsctl('add-br br0 -- set bridge br0 datapath_type=netdev');
    ovs.vsctl(
      `add-port br0 vx_node2 -- set interface vx_node2 type=vxlan options:remote_ip=${UNDERLAY.vtep} options:key=${this.vni}`,
    );
    veth(h, 'vmA', vm, 'eth0', { mtu, mac: VM.ovs.mac });
    ovs.vsctl('add-port br0 vmA');
    vm.exec(`ip addr add ${VM.ovs.ip}/24 dev eth0`);
  }

  /** Start `vtep run` in hostB and move its TAP into vmB. */
  async startVtep(extra: string[] = [], opts: { detached?: boolean } = {}): Promise<void> {
    const remotes: string[] = [];
    if (this.peers.includes('ovs')) remotes.push('--remote', UNDERLAY.ovs);
    if (this.peers.includes('kernel')) remotes.push('--remote', UNDERLAY.kernel);
    const args = [
      vtepBin(),
      'run',
      '--local',
      UNDERLAY.vtep,
      '--vni',
      String(this.vni),
      '--tap',
      this.tap,
      '--mtu',
      String(this.opts.mtu ?? 1450),
      '--control',
      this.control,
      ...remotes,
      ...(this.opts.vtepArgs ?? []),
      ...extra,
    ];
    const log = openSync(this.vtepLog, 'a');
    this.vtep = spawn('ip', ['netns', 'exec', this.get('hostB').name, process.execPath, ...args], {
      stdio: ['ignore', log, log],
      detached: opts.detached ?? false,
    });
    const ready = await until(
      () =>
        existsSync(this.control) &&
        this.get('hostB')
          .exec(`ip -o link show ${this.tap}`, { allowFail: true })
          .includes(this.tap),
      10_000,
    );
    if (!ready)
      throw new Error(`vtep did not start: ${sh(`cat ${this.vtepLog}`, { allowFail: true })}`);
    const vm = this.get('vmB');
    this.get('hostB').exec(`ip link set ${this.tap} netns ${vm.name}`);
    vm.exec(
      `ip link set ${this.tap} address ${VM.vtep.mac} && ip addr add ${VM.vtep.ip}/24 dev ${this.tap} && ip link set ${this.tap} up`,
    );
  }

  /** Ask the running vtep (same as `vtep <cmd> --control …`). */
  async ask(cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
    return request(this.control, { cmd, ...args });
  }

  /** Stop the vtep with SIGTERM and wait for its exit status. */
  async stopVtep(): Promise<number | null> {
    const p = this.vtep;
    if (!p || p.exitCode !== null) return p?.exitCode ?? null;
    const done = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    const code = await Promise.race([
      done,
      new Promise<null>((r) => setTimeout(() => r(null), 5000)),
    ]);
    if (code === null) p.kill('SIGKILL');
    return code;
  }

  /** Remove everything: processes, OVS, namespaces (veths go with them), the directory. */
  teardown(keepDir = false): void {
    if (this.vtep && this.vtep.exitCode === null) this.vtep.kill('SIGKILL');
    this.ovs?.stop();
    for (const ns of [...this.ns.values()].reverse()) ns.delete();
    this.ns.clear();
    if (!keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
