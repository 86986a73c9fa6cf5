import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from '../control/client.js';
import { Netns, veth } from './netns.js';
import type { PrivateOvs } from './ovs.js';
import { kernelSide, ovsSide, underlayAddr, vtepBin, vtepSide, type Side } from './peers.js';

/**
 * The overlay of the OVS VXLAN guide, in network namespaces on one machine:
 *
 *   vmA ── hostA (Open vSwitch, userspace datapath) ┐
 *   vmB ── hostB (our vtep, its TAP in vmB)         ├── underlay bridge, 192.0.2.0/24
 *   vmC ── hostC (Linux kernel VXLAN + bridge)      ┘
 *   (vmD ── hostD, a second kernel peer: `kernel2`, 192.0.2.4, VM 10.0.0.4)
 *
 * hostB is the hub: A and C each have one tunnel, to B, as the guide's two hosts do; B floods
 * to both. (A full mesh would make OVS flood tunnel→tunnel, which it does without split
 * horizon, and duplicate every broadcast.) VMs are 10.0.0.1/.2/.3 with fixed MACs. Namespace
 * names are the prefix plus the role (`ul`, `hostA`…`hostD`, `vmA`…`vmD`, `inj`).
 */

export type Peer = 'ovs' | 'kernel' | 'kernel2';

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
  /** MTU of the underlay links (default 1500); 9050 carries 9000-byte inner frames over IPv4. */
  underlayMtu?: number;
  /** Underlay IP family (default 4): 6 uses UNDERLAY6, inner MTU 1430 unless `mtu` says. */
  family?: 4 | 6;
  /** Extra options for the kernel peer's `ip link add … type vxlan`. */
  kernelVxlanOpts?: string;
  /**
   * A multicast underlay: the kernel peers flood to this group (`group G dev eth0`) instead of
   * to hostB, vtep is given no remote for them, and the underlay bridge floods multicast to
   * every port (no IGMP snooping, which would wait for a querier).
   */
  group?: string;
  /** No flood entries anywhere (a control plane, EVPN, is to provide them). */
  noRemotes?: boolean;
  /** Add a host `inj` (192.0.2.9) on the underlay for tests that craft packets. */
  injector?: boolean;
  /** Delete the namespaces even if this process is killed (tests; the lab outlives `lab up`). */
  reap?: boolean;
}

export { vtepBin };

export const UNDERLAY = {
  ovs: '192.0.2.1',
  vtep: '192.0.2.2',
  kernel: '192.0.2.3',
  kernel2: '192.0.2.4',
  injector: '192.0.2.9',
} as const;
/** The same hosts over an IPv6 underlay (`family: 6`). */
export const UNDERLAY6 = {
  ovs: '2001:db8::1',
  vtep: '2001:db8::2',
  kernel: '2001:db8::3',
  kernel2: '2001:db8::4',
  injector: '2001:db8::9',
} as const;
export const VM = {
  ovs: { ip: '10.0.0.1', mac: '52:54:00:00:00:0a' },
  vtep: { ip: '10.0.0.2', mac: '52:54:00:00:00:0b' },
  kernel: { ip: '10.0.0.3', mac: '52:54:00:00:00:0c' },
  kernel2: { ip: '10.0.0.4', mac: '52:54:00:00:00:0d' },
} as const;

export class Topology {
  readonly ns = new Map<string, Netns>();
  ovs?: PrivateOvs;
  vtep?: ChildProcess;
  readonly vni: number;
  readonly peers: Peer[];
  readonly control: string;
  readonly tap: string;
  readonly vtepLog: string;
  /** Underlay addresses of this topology's family. */
  readonly ul: typeof UNDERLAY | typeof UNDERLAY6;

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
    this.ul = opts.family === 6 ? UNDERLAY6 : UNDERLAY;
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
    const ns = Netns.create(`${this.prefix}${role}`, { reap: this.opts.reap });
    this.ns.set(role, ns);
    return ns;
  }

  private async buildAll(): Promise<void> {
    const ul = this.make('ul');
    const snooping = this.opts.group ? ' mcast_snooping 0' : '';
    ul.exec(`ip link add ulbr type bridge${snooping} && ip link set ulbr up`);
    const roles = ['hostB'];
    if (this.peers.includes('ovs')) roles.push('hostA');
    if (this.peers.includes('kernel')) roles.push('hostC');
    if (this.peers.includes('kernel2')) roles.push('hostD');
    if (this.opts.injector) roles.push('inj');
    for (const role of roles) {
      const host = this.make(role);
      veth(host, 'eth0', ul, `p${role}`, { mtu: this.opts.underlayMtu });
      ul.exec(`ip link set p${role} master ulbr`);
    }
    this.make('vmB');
    if (this.opts.injector)
      this.get('inj').exec(`ip addr add ${underlayAddr(this.ul.injector, 'eth0')}`);
    // With a group the kernel peers flood to it, as `group … dev eth0` does, and to no one else.
    const toVtep = this.opts.group || this.opts.noRemotes ? [] : [this.ul.vtep];
    if (this.peers.includes('kernel')) kernelSide(this.side('hostC', 'vmC', 'kernel', toVtep));
    if (this.peers.includes('kernel2')) kernelSide(this.side('hostD', 'vmD', 'kernel2', toVtep));
    if (this.peers.includes('ovs'))
      this.ovs = await ovsSide(
        this.side('hostA', 'vmA', 'ovs', [this.ul.vtep]),
        join(this.dir, 'ovs'),
      );
  }

  private side(host: string, vm: string, who: keyof typeof VM, remotes: string[]): Side {
    if (!this.ns.has(vm)) this.make(vm);
    return {
      host: this.get(host),
      vm: this.get(vm),
      local: this.ul[who],
      remotes,
      vni: this.vni,
      mtu: this.opts.mtu ?? (this.opts.family === 6 ? 1430 : 1450),
      underlayMtu: this.opts.underlayMtu,
      kernelVxlanOpts: [
        this.opts.kernelVxlanOpts,
        who !== 'vtep' && this.opts.group ? `group ${this.opts.group} dev eth0` : undefined,
      ]
        .filter(Boolean)
        .join(' '),
      vmIp: VM[who].ip,
      vmMac: VM[who].mac,
    };
  }

  /** Start `vtep run` in hostB and move its TAP into vmB. */
  async startVtep(
    extra: string[] = [],
    opts: {
      detached?: boolean;
      nodeArgs?: string[];
      config?: string;
      env?: Record<string, string>;
      wrap?: string[];
    } = {},
  ): Promise<void> {
    const remotes: string[] = [];
    if (this.peers.includes('ovs') && !this.opts.noRemotes) remotes.push(this.ul.ovs);
    if (this.peers.includes('kernel') && !this.opts.group && !this.opts.noRemotes)
      remotes.push(this.ul.kernel);
    this.vtep = await vtepSide(this.side('hostB', 'vmB', 'vtep', remotes), {
      tap: this.tap,
      control: this.control,
      log: this.vtepLog,
      extra: [...(this.opts.vtepArgs ?? []), ...extra],
      detached: opts.detached,
      nodeArgs: opts.nodeArgs,
      config: opts.config,
      env: opts.env,
      wrap: opts.wrap,
    });
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
