// The differential topology: one injector and three VXLAN receivers side by side, each with
// "VM" namespaces whose inbound captures show what the receiver delivered.
//
//   inj (192.0.2.9, .10, .11: three remote VTEPs)
//     ─┬─ hostA: Open vSwitch, br<VNI> per VNI, a tunnel port per remote
//      ├─ hostB: vtep, TAP per VNI in a Linux bridge with the VM's veth
//      └─ hostC: kernel vxlan per VNI in a Linux bridge with the VM's veth
//
// What a receiver delivered is captured right behind its VXLAN endpoint, before any bridge:
// on our TAP, on the kernel's vxlan device, and for Open vSwitch on the VM port of a bridge
// whose flows send tunnel traffic straight to it (no NORMAL action: MAC learning and bridge
// rules would otherwise differ from the Linux bridge's, and that is not what is compared).
// The Linux bridges and NORMAL-mode learning stay for the FDB comparison, which also watches
// the underlay: a capture on the injector sees which remote each receiver sends a frame to.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { Netns, veth } from '../../src/lab/netns.js';
import { PrivateOvs } from '../../src/lab/ovs.js';
import { vtepBin } from '../../src/lab/peers.js';
import { bg, sleep, until } from '../../src/lab/sh.js';
import { request } from '../../src/control/client.js';
import { Drop } from '../../src/wire/drop.js';
import { EtherType, EthernetFrame } from '../../src/wire/ethernet.js';
import { Ipv4Packet, formatIpv4Address } from '../../src/wire/ipv4.js';
import { HEADER_LEN as UDP_HEADER_LEN } from '../../src/wire/udp.js';
import { decapsulate } from '../../src/wire/vxlan.js';
import { readPcap } from '../helpers/pcapread.js';
import { CAPTURE_BUFFER_KIB } from '../helpers/capture.js';

export const RECEIVERS = ['ovs', 'vtep', 'kernel'] as const;
export type Receiver = (typeof RECEIVERS)[number];
export const ADDR: Record<Receiver, string> = {
  ovs: '192.0.2.1',
  vtep: '192.0.2.2',
  kernel: '192.0.2.3',
};
export const REMOTES = ['192.0.2.9', '192.0.2.10', '192.0.2.11'];
/** An injector address no receiver has as a remote: an unconfigured sender. */
export const STRANGER = '192.0.2.12';
/** Who can send an input: the remotes, then the stranger (index REMOTES.length). */
export const SENDERS = [...REMOTES, STRANGER];
export const VNIS = [5000, 5001];
export const VM_MAC = '52:54:00:d1:ff:01';
const HOST: Record<Receiver, string> = { ovs: 'hA', vtep: 'hB', kernel: 'hC' };

export class DiffTopology {
  readonly ns = new Map<string, Netns>();
  ovs?: PrivateOvs;
  vtep?: ChildProcess;
  readonly captures = new Map<string, { file: string; proc: ChildProcess; seen: number }>();
  underlay?: { file: string; proc: ChildProcess };
  readonly control: string;

  private constructor(
    readonly prefix: string,
    readonly dir: string,
  ) {
    this.control = join(dir, 'vtep.sock');
  }

  get(role: string): Netns {
    return this.ns.get(role)!;
  }

  private make(role: string): Netns {
    const n = Netns.create(`${this.prefix}${role}`, { reap: true });
    // No IPv6: link-local chatter (RS, MLD, DAD) from bridges and VMs would be noise in the captures.
    n.exec('sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1');
    this.ns.set(role, n);
    return n;
  }

  static async build(prefix: string): Promise<DiffTopology> {
    const t = new DiffTopology(prefix, mkdtempSync(join(tmpdir(), 'vtep-diff-')));
    try {
      await t.buildAll();
    } catch (err) {
      t.teardown();
      throw err;
    }
    return t;
  }

  private vmFor(r: Receiver, vni: number, host: Netns, port: string): void {
    const vm = this.make(`v${r[0]}${vni}`);
    veth(host, port, vm, 'eth0', { mac: VM_MAC, mtu: 1500 });
  }

  private async buildAll(): Promise<void> {
    const ul = this.make('ul');
    ul.exec('ip link add ulbr type bridge && ip link set ulbr up');
    for (const role of ['inj', ...RECEIVERS.map((r) => HOST[r])]) {
      const h = this.make(role);
      veth(h, 'eth0', ul, `p${role}`);
      ul.exec(`ip link set p${role} master ulbr`);
    }
    const inj = this.get('inj');
    for (const a of SENDERS) inj.exec(`ip addr add ${a}/24 dev eth0`);

    // kernel
    const hc = this.get(HOST.kernel);
    hc.exec(`ip addr add ${ADDR.kernel}/24 dev eth0`);
    for (const vni of VNIS) {
      hc.exec(`ip link add vx${vni} type vxlan id ${vni} local ${ADDR.kernel} dstport 4789`);
      hc.exec(
        `ip link add br${vni} type bridge && ip link set br${vni} up && ip link set vx${vni} master br${vni} up`,
      );
      for (const r of REMOTES) hc.exec(`bridge fdb append 00:00:00:00:00:00 dev vx${vni} dst ${r}`);
      this.vmFor('kernel', vni, hc, `vm${vni}`);
      hc.exec(`ip link set vm${vni} master br${vni}`);
    }

    // Open vSwitch
    const ha = this.get(HOST.ovs);
    const ovs = PrivateOvs.start(ha, join(this.dir, 'ovs'));
    this.ovs = ovs;
    ovs.vsctl('add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy eth0');
    await until(
      () => ha.exec('ip -o link show br-phy', { allowFail: true }).includes('br-phy'),
      10_000,
    );
    ha.exec(`ip addr add ${ADDR.ovs}/24 dev br-phy && ip link set br-phy up`);
    for (const vni of VNIS) {
      ovs.vsctl(`add-br br${vni} -- set bridge br${vni} datapath_type=netdev`);
      REMOTES.forEach((r, i) =>
        ovs.vsctl(
          `add-port br${vni} t${vni}r${i} -- set interface t${vni}r${i} type=vxlan options:remote_ip=${r} options:key=${vni}`,
        ),
      );
      this.vmFor('ovs', vni, ha, `vm${vni}`);
      ovs.vsctl(`add-port br${vni} vm${vni}`);
    }
    this.ovsNormal(false);

    // vtep: persistent TAPs made first (as `vtep setup host` does), so that they, their bridges
    // and the captures on them outlive a restart of vtep with other flags
    const hb = this.get(HOST.vtep);
    hb.exec(`ip addr add ${ADDR.vtep}/24 dev eth0`);
    for (const vni of VNIS) {
      hb.exec(
        `ip tuntap add dev d${vni} mode tap && ip link add br${vni} type bridge && ip link set br${vni} up`,
      );
      hb.exec(`ip link set d${vni} master br${vni} up`);
      this.vmFor('vtep', vni, hb, `vm${vni}`);
      hb.exec(`ip link set vm${vni} master br${vni}`);
    }
    await this.startVtep();
    // ARP between the receivers and the injector's two addresses, so nothing waits on it later
    for (const r of RECEIVERS)
      for (const a of SENDERS) this.get(HOST[r]).exec(`ping -c 1 -W 1 ${a}`, { allowFail: true });
    await this.startCaptures();
  }

  /**
   * (Re)start vtep with these extra configuration settings (YAML keys; `vniSettings` for every
   * VNI); the TAPs stay.
   */
  async startVtep(
    settings: Record<string, string> = {},
    vniSettings: Record<string, string> = {},
  ): Promise<void> {
    await this.stopVtep();
    const hb = this.get(HOST.vtep);
    const config = join(this.dir, 'vtep.yaml');
    writeFileSync(
      config,
      [
        `local: ${ADDR.vtep}`,
        `control: ${this.control}`,
        ...Object.entries(settings).map(([k, v]) => `${k}: ${v}`),
        'vnis:',
        ...VNIS.flatMap((v) => [
          `  - vni: ${v}`,
          `    tap: d${v}`,
          `    mtu: 1500`,
          `    remotes: [${REMOTES.join(', ')}]`,
          ...Object.entries(vniSettings).map(([k, val]) => `    ${k}: ${val}`),
        ]),
        '',
      ].join('\n'),
    );
    this.vtep = bg(`${hb.prefix} ${process.execPath} ${vtepBin()} run --config ${config}`);
    let log = '';
    this.vtep.stderr!.on('data', (d) => (log += d));
    if (!(await until(() => log.includes('vtep: listening'), 10_000)))
      throw new Error(`vtep did not start: ${log}`);
  }

  async stopVtep(): Promise<void> {
    const p = this.vtep;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([exited, sleep(3000)]);
    if (p.exitCode === null) p.kill('SIGKILL');
  }

  /**
   * NORMAL (MAC learning, for the FDB comparison) or direct flows tunnel → VM port (for the
   * decap comparison) on every OVS bridge.
   */
  ovsNormal(on: boolean): void {
    for (const vni of VNIS) {
      this.ovs!.ofctl(`del-flows br${vni}`);
      if (on) this.ovs!.ofctl(`add-flow br${vni} actions=NORMAL`);
      else
        REMOTES.forEach((_, i) =>
          this.ovs!.ofctl(`add-flow br${vni} in_port=t${vni}r${i},actions=output:vm${vni}`),
        );
    }
  }

  private async startCaptures(): Promise<void> {
    const where: Record<Receiver, (vni: number) => [Netns, string]> = {
      ovs: (vni) => [this.get(`vo${vni}`), 'eth0'],
      vtep: (vni) => [this.get(HOST.vtep), `d${vni}`],
      kernel: (vni) => [this.get(HOST.kernel), `vx${vni}`],
    };
    for (const r of RECEIVERS) {
      for (const vni of VNIS) {
        const key = `${r}/${vni}`;
        const [ns, dev] = where[r](vni);
        const file = join(this.dir, `${r}-${vni}.pcap`);
        const proc = bg(
          `${ns.prefix} tcpdump -i ${dev} -B ${CAPTURE_BUFFER_KIB} -Q in -U -n -s 0 -w ${file}`,
        );
        let err = '';
        proc.stderr!.on('data', (d) => (err += d));
        await until(() => err.includes('listening'), 5000);
        this.captures.set(key, { file, proc, seen: 0 });
      }
    }
  }

  /**
   * Frames delivered to each receiver's VM per VNI since the last call, up to the fence frame of
   * that VNI (`fences[i]` for `VNIS[i]`: a valid broadcast sent after the inputs to all three).
   */
  async collect(fences: Buffer[], timeoutMs = 5000): Promise<Map<string, Buffer[]>> {
    const out = new Map<string, Buffer[]>();
    await until(() => {
      for (const [key, c] of this.captures) {
        if (out.has(key)) continue;
        const fenceHex = fences[VNIS.indexOf(Number(key.split('/')[1]))].toString('hex');
        const frames = readPcap(c.file).slice(c.seen);
        const at = frames.findIndex((f) => f.toString('hex') === fenceHex);
        if (at >= 0) {
          out.set(key, frames.slice(0, at));
          c.seen += at + 1;
        }
      }
      return out.size === this.captures.size;
    }, timeoutMs);
    if (out.size !== this.captures.size) {
      const missing = [...this.captures.keys()].filter((k) => !out.has(k));
      throw new Error(`fence not seen at ${missing.join(', ')} within ${timeoutMs} ms`);
    }
    return out;
  }

  /** What `vtep fdb show --json` prints, the command a user runs. */
  async vtepFdb(): Promise<{ vni: number; mac: string; remote: string }[]> {
    const r = spawnSync(
      process.execPath,
      [vtepBin(), 'fdb', 'show', '--json', '--control', this.control],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`vtep fdb show: ${r.stderr}`);
    // learned and static entries; the 00:00:00:00:00:00 flood-list rows are configuration
    return (
      JSON.parse(r.stdout) as { vni: number; mac: string; remote: string; flood?: boolean }[]
    ).filter((row) => !row.flood);
  }

  /** OVS learned MACs per VNI, mapped from OpenFlow port numbers to the tunnel's remote_ip. */
  ovsFdb(): { vni: number; mac: string; remote: string }[] {
    const rows: { vni: number; mac: string; remote: string }[] = [];
    for (const vni of VNIS) {
      const ports = new Map<number, string>();
      REMOTES.forEach((r, i) =>
        ports.set(Number(this.ovs!.vsctl(`get interface t${vni}r${i} ofport`).trim()), r),
      );
      for (const e of this.ovs!.fdb(`br${vni}`)) {
        const remote = ports.get(Number(e.port));
        if (remote) rows.push({ vni, mac: e.mac, remote });
      }
    }
    return rows;
  }

  /** The kernel's learned entries per VNI (`bridge fdb show dev vxN`, entries with a dst). */
  kernelFdb(): { vni: number; mac: string; remote: string }[] {
    const rows: { vni: number; mac: string; remote: string }[] = [];
    for (const vni of VNIS) {
      const entries = JSON.parse(this.get(HOST.kernel).exec(`bridge -j fdb show dev vx${vni}`)) as {
        mac: string;
        dst?: string;
        state?: string;
      }[];
      for (const e of entries)
        if (e.dst && e.mac !== '00:00:00:00:00:00') rows.push({ vni, mac: e.mac, remote: e.dst });
    }
    return rows;
  }

  /** The "VM" namespace behind receiver `r` at `vni`. */
  vm(r: Receiver, vni: number): Netns {
    return this.get(`v${r[0]}${vni}`);
  }

  /**
   * Wait until Open vSwitch's MAC learning has caught up with every packet it received before
   * this call. OVS learns a source MAC when a packet misses the datapath flow cache (upcall) and
   * again when its revalidators push the statistics of cached flows that packets did hit; one
   * revalidation cycle may already be under way, so wait for two to end.
   */
  ovsSettle(): void {
    this.ovs!.appctl('revalidator/wait');
    this.ovs!.appctl('revalidator/wait');
  }

  /** Start capturing the VXLAN packets the receivers send to the injector's remote addresses. */
  async captureUnderlay(): Promise<void> {
    const file = join(this.dir, 'underlay.pcap');
    const proc = bg(
      `${this.get('inj').prefix} tcpdump -i eth0 -B ${CAPTURE_BUFFER_KIB} -Q in -U -n -s 0 -w ${file} udp dst port 4789`,
    );
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    await until(() => err.includes('listening'), 5000);
    this.underlay = { file, proc };
  }

  /** The VXLAN packets captured on the underlay so far: outer source and destination, VNI, inner frame. */
  underlayPackets(): { from: string; to: string; vni: number; inner: Buffer }[] {
    const out: { from: string; to: string; vni: number; inner: Buffer }[] = [];
    const eth = new EthernetFrame();
    const ip = new Ipv4Packet();
    for (const f of readPcap(this.underlay!.file)) {
      if (eth.bind(f).checkLen() !== Drop.NONE || eth.ethertype !== EtherType.IPV4) continue;
      if (ip.bind(f, eth.headerLen).checkLen() !== Drop.NONE) continue;
      const udpPayload = ip.payloadOffset + UDP_HEADER_LEN;
      const d = decapsulate(f.subarray(udpPayload, ip.payloadOffset + ip.payloadLen), 'ignore');
      if (typeof d === 'number') continue;
      out.push({
        from: formatIpv4Address(ip.src),
        to: formatIpv4Address(ip.dst),
        vni: d.vni,
        inner: d.frame,
      });
    }
    return out;
  }

  async stats(): Promise<{ drops: Record<string, number> }> {
    return (await request(this.control, { cmd: 'stats' })) as { drops: Record<string, number> };
  }

  teardown(): void {
    for (const c of this.captures.values()) c.proc.kill('SIGKILL');
    this.underlay?.proc.kill('SIGKILL');
    if (this.vtep && this.vtep.exitCode === null) this.vtep.kill('SIGKILL');
    this.ovs?.stop();
    for (const n of [...this.ns.values()].reverse()) n.delete();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export { sleep };
