import { ConfigError } from '../config/config.js';
import type { GroupStatus } from '../control/api.js';
import { isUnspecified } from '../io/addr.js';
import { interfaceIndex, interfaceOf } from '../io/netif.js';
import type { RxRing } from '../io/types.js';
import { UdpSocket } from '../io/udp.js';
import type { Log } from '../util/log.js';
import type { Planes } from './threads/planes.js';

/**
 * The multicast underlay (Linux VXLAN `group … dev …`): the groups the VNIs flood to, joined on
 * their interface while a VNI uses them and left when the last one stops. Datagrams to a group
 * have to reach a socket bound to the group or to the wildcard: with a wildcard `local` the
 * underlay socket itself joins; with an address (the usual case) a socket of the group's own,
 * bound to group:port, joins and hands what it reads to the engine like the underlay's. Every
 * thread's sockets send multicast out of the groups' interface (IP_MULTICAST_IF): a group has
 * no route of its own. One interface for all groups, since every thread sends from one set of
 * sockets.
 */

export interface GroupSpec {
  vni: number;
  group?: string;
  interface?: string;
}

/** Per VNI with a group: the interface it is joined on, by name and index. */
export type GroupInterfaces = Map<number, { name: string; index: number }>;

interface Membership {
  group: string;
  ifname: string;
  ifindex: number;
  vnis: Set<number>;
  /** The group's own socket (local is an address); undefined: joined on the underlay socket. */
  socket?: UdpSocket;
}

export interface GroupsOptions {
  local: string;
  port: number;
  /** The main thread's underlay socket: joined on it when `local` is the wildcard. */
  underlay: UdpSocket;
  zeroChecksum6Rx: boolean;
  planes: Planes;
  log: Log;
  /** Datagrams `0..n-1` of a group socket's ring arrived. */
  received(rx: RxRing, n: number): void;
}

export class Groups {
  private readonly joined = new Map<string, Membership>();
  private readonly byVni = new Map<number, string>();
  /** The interface every thread sends multicast from, once a group asked for one. */
  private sendIf: number | undefined;

  constructor(private readonly o: GroupsOptions) {}

  private get wildcard(): boolean {
    return isUnspecified(this.o.local);
  }

  /**
   * The interface of each VNI's group in `vnis` (a configuration about to run): named, or the
   * one holding `local`. Throws a ConfigError naming the VNI when there is no such interface,
   * or when two groups want different ones.
   */
  resolve(vnis: readonly GroupSpec[]): GroupInterfaces {
    const out: GroupInterfaces = new Map();
    let first: { vni: number; name: string } | undefined;
    for (const v of vnis) {
      if (v.group === undefined) continue;
      const name = v.interface ?? interfaceOf(this.o.local);
      const index = name === undefined ? undefined : interfaceIndex(name);
      if (name === undefined || index === undefined)
        throw new ConfigError(
          `vni ${v.vni} interface`,
          name ?? v.interface,
          name === undefined
            ? `is needed: no interface holds local ${this.o.local} to join group ${v.group} on`
            : `is not an interface of this host (to join group ${v.group} on)`,
        );
      if (first !== undefined && first.name !== name)
        throw new ConfigError(
          `vni ${v.vni} interface`,
          name,
          `differs from vni ${first.vni}'s ${first.name}: every group is sent from one interface (the threads send from one set of sockets)`,
        );
      first ??= { vni: v.vni, name };
      out.set(v.vni, { name, index });
    }
    return out;
  }

  /**
   * Make the memberships those of `vnis`: groups no VNI uses any more are left, new ones joined
   * on the interfaces `resolve` found (a reload resolves before it changes anything, and passes
   * them on; then this throws only for what the host refuses, e.g. ENOBUFS past the membership
   * limit, keeping what it had).
   */
  apply(vnis: readonly GroupSpec[], ifs = this.resolve(vnis)): string[] {
    const said: string[] = [];
    const want = new Map<number, string>();
    for (const v of vnis)
      if (v.group !== undefined) want.set(v.vni, `${v.group}%${ifs.get(v.vni)!.name}`);
    for (const [vni, key] of [...this.byVni])
      if (want.get(vni) !== key) said.push(...this.drop(vni));
    const index = [...ifs.values()][0]?.index;
    if (index !== undefined && index !== this.sendIf) {
      this.o.planes.multicastIf(index);
      this.sendIf = index;
    }
    for (const v of vnis) {
      const key = want.get(v.vni);
      if (key === undefined || this.byVni.get(v.vni) === key) continue;
      const { name, index } = ifs.get(v.vni)!;
      said.push(...this.join(v.vni, v.group!, name, index, key));
    }
    return said;
  }

  private join(vni: number, group: string, ifname: string, ifindex: number, key: string): string[] {
    let m = this.joined.get(key);
    const said: string[] = [];
    if (m === undefined) {
      const socket = this.wildcard ? undefined : this.openSocket(group);
      try {
        (socket ?? this.o.underlay).membership(group, ifindex, true);
      } catch (err) {
        socket?.close();
        throw new ConfigError(
          `vni ${vni} group`,
          group,
          `cannot be joined on ${ifname}: ${(err as Error).message}`,
        );
      }
      socket?.start(
        (n) => this.o.received(socket.rx, n),
        (err) =>
          this.o.log('error', 'group_error', `group ${group}: ${err.message}`, {
            group,
            error: err.code,
          }),
      );
      m = { group, ifname, ifindex, vnis: new Set(), socket };
      this.joined.set(key, m);
      said.push(`group ${group} joined on ${ifname}`);
      this.o.log('info', 'group_joined', `group ${group}: joined on ${ifname} (vni ${vni})`, {
        group,
        interface: ifname,
        vni,
      });
    }
    m.vnis.add(vni);
    this.byVni.set(vni, key);
    return said;
  }

  /** A socket bound to group:port, for what is sent to the group. */
  private openSocket(group: string): UdpSocket {
    const u = this.o.underlay;
    return UdpSocket.open({
      address: group,
      port: this.o.port,
      batchSize: u.rx.batchSize,
      headroom: u.rx.headroom,
      slotSize: u.rx.slotSize,
      zeroChecksum6Rx: this.o.zeroChecksum6Rx,
    });
  }

  /** The VNI stops using its group; the last one out leaves it. */
  private drop(vni: number): string[] {
    const key = this.byVni.get(vni);
    if (key === undefined) return [];
    this.byVni.delete(vni);
    const m = this.joined.get(key)!;
    m.vnis.delete(vni);
    if (m.vnis.size > 0) return [];
    this.joined.delete(key);
    this.leave(m);
    this.o.log(
      'info',
      'group_left',
      `group ${m.group}: left on ${m.ifname} (vni ${vni} was the last)`,
      {
        group: m.group,
        interface: m.ifname,
        vni,
      },
    );
    return [`group ${m.group} left on ${m.ifname}`];
  }

  private leave(m: Membership): void {
    try {
      (m.socket ?? this.o.underlay).membership(m.group, m.ifindex, false);
    } catch {
      // the interface went away with the membership; closing the socket is what is left
    }
    m.socket?.close();
  }

  status(): GroupStatus[] {
    return [...this.joined.values()].map((m) => ({
      group: m.group,
      interface: m.ifname,
      vnis: [...m.vnis].sort((a, b) => a - b),
    }));
  }

  /** Leave every group (at stop). */
  close(): void {
    for (const m of this.joined.values()) this.leave(m);
    this.joined.clear();
    this.byVni.clear();
  }
}
