import { isIPv4 } from 'node:net';
import { Netns, veth } from '../../src/lab/netns.js';
import { kernelSide } from '../../src/lab/peers.js';
import { UNDERLAY, UNDERLAY6, type Topology } from '../../src/lab/topology.js';

/** The routed peer's addresses: a kernel VXLAN host behind a router, per underlay family. */
export const FAR = {
  4: {
    router: '192.0.2.254',
    routerFar: '198.51.100.254',
    host: '198.51.100.5',
    net: '198.51.100.0/24',
  },
  6: {
    router: '2001:db8::fe',
    routerFar: '2001:db8:100::fe',
    host: '2001:db8:100::5',
    net: '2001:db8:100::/64',
  },
  vm: '10.0.0.5',
} as const;

/**
 * Beside the topology: a router `rt` on the underlay bridge whose far link, of `mtu` bytes,
 * leads to a kernel VXLAN host `hostE` with a VM `vmE` (`FAR.vm`), over the topology's
 * underlay family; hostB routes the far network through it. Torn down with the topology.
 */
export function routedPeer(topo: Topology, mtu: number, family: 4 | 6 = 4): Topology {
  const far = FAR[family];
  const plen = family === 4 ? 24 : 64;
  const make = (role: string) => {
    const ns = Netns.create(`${topo.prefix}${role}`, { reap: true });
    topo.ns.set(role, ns);
    return ns;
  };
  const [rt, hostE, vmE] = [make('rt'), make('hostE'), make('vmE')];
  const ul = topo.get('ul');
  veth(rt, 'eth0', ul, 'prt');
  ul.exec('ip link set prt master ulbr');
  veth(rt, 'far', hostE, 'eth0', { mtu });
  const nodad = family === 6 ? ' nodad' : '';
  rt.exec(
    `ip addr add ${far.router}/${plen} dev eth0${nodad} && ip addr add ${far.routerFar}/${plen} dev far${nodad}`,
  );
  rt.exec(
    family === 4 ? 'sysctl -qw net.ipv4.ip_forward=1' : 'sysctl -qw net.ipv6.conf.all.forwarding=1',
  );
  kernelSide({
    host: hostE,
    vm: vmE,
    local: far.host,
    remotes: [family === 4 ? UNDERLAY.vtep : UNDERLAY6.vtep],
    vni: topo.vni,
    mtu: 1500,
    vmIp: FAR.vm,
    vmMac: '52:54:00:00:00:0e',
  });
  hostE.exec(`ip route add default via ${far.routerFar}`);
  topo.get('hostB').exec(`ip route add ${far.net} via ${far.router}`);
  return topo;
}

/**
 * The raw IPPROTO_UDP sockets in hostB (vtep's: one per data-plane thread) as /proc/net/raw{,6}
 * lists them: remote address (hex, as the kernel writes it) and state (01 connected, 07 not).
 */
export function rawUdpSockets(topo: Topology, family: 4 | 6): { remote: string; state: string }[] {
  return topo
    .get('hostB')
    .exec(`cat /proc/net/raw${family === 6 ? '6' : ''}`)
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && f[1]!.endsWith(':0011'))
    .map((f) => ({ remote: f[2]!.split(':')[0]!, state: f[3]! }));
}

/** An address as /proc/net/raw{,6} writes it: each 32-bit word of it in host (little-endian) order. */
export function procAddress(address: string): string {
  const bytes = isIPv4(address)
    ? address.split('.').map(Number)
    : [...Buffer.from(expand6(address), 'hex')];
  let hex = '';
  for (let w = 0; w < bytes.length; w += 4)
    hex += bytes
      .slice(w, w + 4)
      .reverse()
      .map((b) => b.toString(16).padStart(2, '0'))
      .join('');
  return hex.toUpperCase();
}

function expand6(address: string): string {
  const [head, tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const tl = tail ? tail.split(':') : [];
  const groups = address.includes('::')
    ? [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl]
    : h;
  return groups.map((g) => g.padStart(4, '0')).join('');
}
