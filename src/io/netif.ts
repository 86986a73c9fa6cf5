import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { canonicalAddress, isUnspecified } from './addr.js';
import { native } from './native.js';

/**
 * Facts about this host's interfaces that the composition root needs: which interface holds the
 * underlay address, and its MTU (the path MTU vtep assumes for every remote, as Linux vxlan uses
 * the route's device MTU). Read from the kernel once, at start and on reload.
 */
export interface UnderlayLink {
  /** Interface holding the local address; undefined for 0.0.0.0 / :: or an address not found. */
  name?: string;
  mtu: number;
  /** Where `mtu` came from. */
  source: 'configured' | 'interface' | 'default';
}

/** The interface that has `address`, if any. */
export function interfaceOf(address: string): string | undefined {
  const want = canonicalAddress(address);
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => canonicalAddress(a.address.split('%')[0]) === want)) return name;
  }
  return undefined;
}

/** A positive integer attribute of interface `name` (/sys/class/net/NAME/ATTR), if it has one. */
function sysNumber(name: string, attr: string): number | undefined {
  try {
    const n = Number(readFileSync(`/sys/class/net/${name}/${attr}`, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function interfaceMtu(name: string): number | undefined {
  return sysNumber(name, 'mtu');
}

/** The interface index of `name` in this namespace, if there is such an interface. */
export function interfaceIndex(name: string): number | undefined {
  return sysNumber(name, 'ifindex');
}

/**
 * The interface index of TUN/TAP device `name` in this namespace; undefined when there is no
 * such device or it is another kind (no `tun_flags`). A TAP moved into another namespace leaves
 * its name free here, for a device that is not ours: this is how the port knows the name still
 * means its TAP.
 */
export function tapIndex(name: string): number | undefined {
  return existsSync(`/sys/class/net/${name}/tun_flags`) ? interfaceIndex(name) : undefined;
}

/** The underlay MTU: as configured, else the MTU of the interface holding `local`, else 1500. */
export function underlayLink(local: string, configured?: number): UnderlayLink {
  const name = interfaceOf(local);
  if (configured !== undefined) return { name, mtu: configured, source: 'configured' };
  const mtu = name === undefined ? undefined : interfaceMtu(name);
  return mtu === undefined
    ? { name, mtu: 1500, source: 'default' }
    : { name, mtu, source: 'interface' };
}

/** Whether the link is up, from /sys/class/net (undefined: no such interface here). */
export function linkUp(name: string): boolean | undefined {
  try {
    const state = readFileSync(`/sys/class/net/${name}/operstate`, 'utf8').trim();
    // `unknown` is what links without carrier detection report while up (tun, loopback).
    return state === 'up' || state === 'unknown';
  } catch {
    return undefined;
  }
}

/**
 * What is wrong with the underlay now, if anything: its address gone from every interface, or
 * the link that held it down. (An interface whose link is down is not listed with its
 * addresses, so `linkName`, where the address was at start, tells the two apart.)
 */
export function underlayProblem(local: string, linkName: string | undefined): string | undefined {
  if (isUnspecified(canonicalAddress(local) ?? local)) return undefined;
  if (interfaceOf(local) !== undefined) return undefined;
  if (linkName !== undefined && linkUp(linkName) === false)
    return `the underlay link ${linkName} is down: nothing is sent or received`;
  return `the underlay address ${local} is on no interface (removed?): nothing is sent or received`;
}

/**
 * The bridge (or other master) a device is in: its name, null for none, undefined when the
 * device is not in this namespace.
 */
export function masterOf(name: string): string | null | undefined {
  try {
    return readlinkSync(`/sys/class/net/${name}/master`).split('/').pop() ?? null;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') return undefined;
    return existsSync(`/sys/class/net/${name}`) ? null : undefined;
  }
}

/** Whether `name` is a Linux bridge in this namespace (it has /sys/class/net/NAME/bridge). */
export function isLinuxBridge(name: string): boolean {
  return existsSync(`/sys/class/net/${name}/bridge`);
}

/**
 * Put device `name` into Linux bridge `bridge` (SIOCBRADDIF, as `ip link set NAME master
 * BRIDGE`): undefined when done, else why not.
 */
export function addToBridge(bridge: string, name: string): string | undefined {
  if (!isLinuxBridge(bridge))
    return existsSync(`/sys/class/net/${bridge}`)
      ? `${bridge} is not a Linux bridge (an Open vSwitch bridge keeps its ports itself: add the TAP with ovs-vsctl add-port)`
      : `there is no bridge ${bridge}`;
  const rc = native().bridgeAddIf(bridge, name);
  return rc === 0 ? undefined : native().errnoName(-rc);
}

/** Take device `name` out of Linux bridge `bridge` (SIOCBRDELIF): undefined when done, else why not. */
export function removeFromBridge(bridge: string, name: string): string | undefined {
  const rc = native().bridgeAddIf(bridge, name, true);
  return rc === 0 ? undefined : native().errnoName(-rc);
}

/** IFF_PERSIST in /sys/class/net/NAME/tun_flags: the device outlives its last fd. */
const IFF_PERSIST = 0x800;

/**
 * Whether closing our fds on TUN/TAP device `name` would delete it anyway: it is not persistent
 * and no other fd holds a queue of it (`queues` attached, ours, as /sys lists its tx queues).
 */
export function tapGoesWithUs(name: string, queues: number): boolean {
  try {
    const flags = parseInt(readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8'), 16);
    const attached = readdirSync(`/sys/class/net/${name}/queues`).filter((q) =>
      q.startsWith('tx-'),
    ).length;
    return (flags & IFF_PERSIST) === 0 && attached <= queues;
  } catch {
    return false;
  }
}

/**
 * Delete devices (ifindexes in this namespace) as one batch, through an interface group no
 * device here is in: the count deleted, or a negative errno (then the caller's closes delete
 * them one by one, as before).
 */
export function deleteTogether(ifindexes: readonly number[]): number {
  if (ifindexes.length === 0) return 0;
  const used = new Set(readdirSync('/sys/class/net').map((d) => sysNumber(d, 'netdev_group') ?? 0));
  let group: number;
  do group = 0x40000000 + Math.floor(Math.random() * 0x3fffffff);
  while (used.has(group));
  return native().linkGroupDelete(Int32Array.from(ifindexes), group);
}
