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
 * vtep's raw IPPROTO_UDP sockets in hostB (one per data-plane thread), as /proc/net/raw{,6}
 * lists them: how many, and how many are connected (state 01) to their own local address.
 */
export function rawSocketsOnSelf(topo: Topology, family: 4 | 6): { all: number; onSelf: number } {
  const rows = topo
    .get('hostB')
    .exec(`cat /proc/net/raw${family === 6 ? '6' : ''}`)
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && f[1]!.endsWith(':0011'));
  const onSelf = rows.filter((f) => f[2] === f[1]!.replace(/:0011$/, ':0000') && f[3] === '01');
  return { all: rows.length, onSelf: onSelf.length };
}
