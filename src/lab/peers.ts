import { spawn, type ChildProcess } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package.js';
import { veth, type Netns } from './netns.js';
import { PrivateOvs } from './ovs.js';
import { sh, sleep, until } from './sh.js';

/**
 * One side of an overlay, three ways: a host namespace with an underlay address on eth0 and a
 * "VM" namespace behind a VXLAN endpoint that is either the Linux kernel's, a private Open
 * vSwitch's (userspace datapath), or our vtep. Shared by the lab, the tests and the benchmark.
 */
export interface Side {
  host: Netns;
  vm: Netns;
  /** Underlay address of this host (on eth0, or on br-phy for OVS). */
  local: string;
  remotes: string[];
  vni: number;
  /** Inner MTU (1450 on a 1500-byte underlay; OVS userspace does not fragment). */
  mtu: number;
  /** Underlay link MTU, when not 1500 (jumbo frames). */
  underlayMtu?: number;
  /** Extra `ip link add … type vxlan` options of the kernel side (`udp6zerocsumtx`, …). */
  kernelVxlanOpts?: string;
  vmIp: string;
  vmMac: string;
}

/**
 * `ip addr` arguments for an underlay address on `dev`: /24 for IPv4; /64 for IPv6, without
 * duplicate address detection (a fresh namespace would otherwise wait seconds before using it).
 */
export function underlayAddr(addr: string, dev: string): string {
  return isIPv6(addr) ? `${addr}/64 dev ${dev} nodad` : `${addr}/24 dev ${dev}`;
}

/** A compiled file of this package (`dist/…`); tests, the lab and the benchmark run those. */
export function distFile(...parts: string[]): string {
  const file = join(packageRoot(), 'dist', ...parts);
  if (!existsSync(file)) {
    throw Object.assign(new Error(`${file} is missing: run "npm run build" first`), {
      code: 'ERR_NOT_BUILT',
    });
  }
  return file;
}

/** The compiled CLI. */
export function vtepBin(): string {
  return distFile('src', 'cli', 'main.js');
}

/** Linux kernel VXLAN (`dstport 4789`) in a bridge with the VM's veth; flood entries per remote. */
export function kernelSide(s: Side): void {
  const h = s.host;
  h.exec(`ip addr add ${underlayAddr(s.local, 'eth0')}`);
  h.exec(
    `ip link add vx0 type vxlan id ${s.vni} local ${s.local} dstport 4789 ${s.kernelVxlanOpts ?? ''}`,
  );
  h.exec('ip link add br0 type bridge && ip link set br0 up');
  h.exec(`ip link set vx0 master br0 mtu ${s.mtu} up`);
  veth(h, 'vm', s.vm, 'eth0', { mtu: s.mtu, mac: s.vmMac });
  h.exec('ip link set vm master br0');
  s.vm.exec(`ip addr add ${s.vmIp}/24 dev eth0`);
  for (const r of s.remotes) h.exec(`bridge fdb append 00:00:00:00:00:00 dev vx0 dst ${r}`);
}

/**
 * A private Open vSwitch as in the guide: br-phy (netdev) holds the uplink and the underlay
 * address; br0 (netdev) holds the VM port and one VXLAN port per remote (vx_node1, …).
 */
export async function ovsSide(s: Side, dir: string): Promise<PrivateOvs> {
  const h = s.host;
  const ovs = PrivateOvs.start(h, dir);
  ovs.vsctl('add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy eth0');
  await until(
    () => h.exec('ip -o link show br-phy', { allowFail: true }).includes('br-phy'),
    10_000,
  );
  if (s.underlayMtu)
    ovs.vsctl(
      `set interface eth0 mtu_request=${s.underlayMtu} -- set interface br-phy mtu_request=${s.underlayMtu}`,
    );
  h.exec(`ip addr add ${underlayAddr(s.local, 'br-phy')} && ip link set br-phy up`);
  ovs.vsctl('add-br br0 -- set bridge br0 datapath_type=netdev');
  s.remotes.forEach((r, i) =>
    ovs.vsctl(
      `add-port br0 vx_node${i + 1} -- set interface vx_node${i + 1} type=vxlan options:remote_ip=${r} options:key=${s.vni}`,
    ),
  );
  veth(h, 'vm', s.vm, 'eth0', { mtu: s.mtu, mac: s.vmMac });
  ovs.vsctl(`add-port br0 vm${s.underlayMtu ? ` -- set interface vm mtu_request=${s.mtu}` : ''}`);
  s.vm.exec(`ip addr add ${s.vmIp}/24 dev eth0`);
  return ovs;
}

export interface VtepSideOptions {
  tap: string;
  control: string;
  log: string;
  extra?: string[];
  detached?: boolean;
  /** Node options for the vtep process, e.g. `--cpu-prof` (not allowed in NODE_OPTIONS). */
  nodeArgs?: string[];
  /** Start from this YAML file (`run --config FILE`) instead of flags; its VNI `vni` uses `tap`. */
  config?: string;
  /** Extra environment for the vtep process (e.g. NOTIFY_SOCKET). */
  env?: Record<string, string>;
  /** A command that runs node, e.g. `setpriv --bounding-set=-sys_nice` to drop a capability. */
  wrap?: string[];
}

/** `vtep run` in the host namespace, its TAP then moved into the VM namespace. */
export async function vtepSide(s: Side, o: VtepSideOptions): Promise<ChildProcess> {
  s.host.exec(`ip addr replace ${underlayAddr(s.local, 'eth0')}`); // idempotent: a restarted vtep
  const args = o.config
    ? [vtepBin(), 'run', '--config', o.config, '--control', o.control, ...(o.extra ?? [])]
    : [
        vtepBin(),
        'run',
        '--local',
        s.local,
        '--vni',
        String(s.vni),
        '--tap',
        o.tap,
        '--mtu',
        String(s.mtu),
        '--control',
        o.control,
        ...s.remotes.flatMap((r) => ['--remote', r]),
        ...(o.extra ?? []),
      ];
  const log = openSync(o.log, 'a');
  const p = spawn(
    'ip',
    [
      'netns',
      'exec',
      s.host.name,
      ...(o.wrap ?? []),
      process.execPath,
      ...(o.nodeArgs ?? []),
      ...args,
    ],
    {
      stdio: ['ignore', log, log],
      detached: o.detached ?? false,
      env: o.env ? { ...process.env, ...o.env } : process.env,
    },
  );
  const ready = await until(
    () =>
      p.exitCode === null &&
      existsSync(o.control) &&
      s.host.exec(`ip -o link show ${o.tap}`, { allowFail: true }).includes(o.tap),
    10_000,
  );
  if (!ready) {
    p.kill('SIGKILL');
    throw new Error(`vtep did not start: ${sh(`cat ${o.log}`, { allowFail: true })}`);
  }
  s.host.exec(`ip link set ${o.tap} netns ${s.vm.name}`);
  s.vm.exec(
    `ip link set ${o.tap} address ${s.vmMac} && ip addr add ${s.vmIp}/24 dev ${o.tap} && ip link set ${o.tap} up`,
  );
  return p;
}

/**
 * Stop a vtep started by `vtepSide`: SIGTERM first (it exits cleanly, and writes its CPU
 * profile when asked to), SIGKILL after 3 s.
 */
export async function stopVtep(p: ChildProcess | undefined): Promise<void> {
  if (p === undefined || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await Promise.race([exited, sleep(3000)]);
  if (p.exitCode === null) p.kill('SIGKILL');
}
