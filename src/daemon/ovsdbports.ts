import type { ChangeEvent } from '../control/api.js';
import type { OuterPolicy } from '../engine/outer.js';
import type { Fdb } from '../fdb/fdb.js';
import type { Remote, Remotes } from '../fdb/remote.js';
import type { GatewayHost } from '../ovsdb/gateway.js';
import type { GatewayView, LogicalSwitchView } from '../ovsdb/hwvtep.js';
import type { Log } from '../util/log.js';
import { formatMac } from '../wire/mac.js';
import type { TapPort } from './tapport.js';
import type { Planes } from './threads/planes.js';

/**
 * The data-plane side of the OVSDB gateway: the TAPs named in `ovsdb.ports`, opened at start and
 * kept whatever their binding, and what the database says about them applied to the engine and
 * the FDB. A binding moves a TAP to a VNI (or off it) without closing the device; remote MACs
 * become static entries marked `ovsdb`, the unknown-dst locators the flood list; only what
 * differs from the last state is touched, so an update or a resync costs what changed.
 */

interface Applied {
  port: TapPort;
  /** MAC → locator address, as installed. */
  macs: Map<number, string>;
  /** IP → MAC, as pinned for ARP/ND suppression. */
  ips: Map<string, number>;
  flood: string;
  senders: string;
}

export interface OvsdbPortsContext {
  /** Every data-plane thread: a binding reaches all of them. */
  planes: Planes;
  fdb: Fdb;
  remotes: Remotes;
  /** The running VNI → port map (static VNIs and bound OVSDB ports); kept up to date here. */
  ports: Map<number, TapPort>;
  /** VNIs of the static configuration: a binding to one of them is refused. */
  staticVnis: () => Set<number>;
  /** UDP port of the remotes (locators carry an address only). */
  dstPort: () => number;
  /** The outer header of bound VNIs: the file's (the database has no such setting). */
  outer: () => OuterPolicy;
  log: Log;
  clock: () => number;
  /**
   * The audit trail (`vtep monitor` and the log): what the database changed. `logged`: the
   * line was already written here, only monitors are to hear it.
   */
  changed?: (e: ChangeEvent, logged?: boolean) => void;
}

export class OvsdbPorts implements GatewayHost {
  /** By TAP name. */
  readonly taps = new Map<string, TapPort>();
  private readonly applied = new Map<number, Applied>();
  /** Bindings refused here (a clash with a static VNI), by port name. */
  readonly refused = new Map<string, string>();

  constructor(private readonly c: OvsdbPortsContext) {}

  add(port: TapPort): void {
    this.taps.set(port.spec.name, port);
  }

  localMacs(vni: number): number[] {
    return this.applied.has(vni) ? this.c.planes.localMacs(vni) : [];
  }

  /** The VNIs bound through OVSDB right now. */
  vnis(): number[] {
    return [...this.applied.keys()];
  }

  apply(view: GatewayView): void {
    const byPort = new Map<string, LogicalSwitchView>();
    for (const ls of view.switches.values()) byPort.set(ls.port, ls);
    const statics = this.c.staticVnis();
    const before = new Map(this.refused);
    this.refused.clear();
    // Unbind first, so that a VNI moving from one port to another is free when bound again.
    const want = new Map<string, LogicalSwitchView | undefined>();
    for (const [name, port] of this.taps) {
      let ls = byPort.get(name);
      if (ls && statics.has(ls.vni)) {
        const why = `vni ${ls.vni} of logical switch ${ls.name} is a static VNI of this vtep; not bound`;
        this.refused.set(name, why);
        ls = undefined;
      }
      want.set(name, ls);
      if (port.spec.vni >= 0 && port.spec.vni !== ls?.vni) this.unbind(port);
    }
    for (const [name, ls] of want) {
      if (!ls) continue;
      const port = this.taps.get(name)!;
      if (port.spec.vni !== ls.vni) this.bind(port, ls);
      this.update(ls);
    }
    for (const [name, why] of this.refused)
      if (before.get(name) !== why)
        this.c.log('warn', 'ovsdb_port', `port ${name}: ${why}`, { port: name });
  }

  private remote(ip: string): Remote {
    return this.c.remotes.get(ip, this.c.dstPort());
  }

  private bind(port: TapPort, ls: LogicalSwitchView): void {
    const flood = ls.flood.map((ip) => this.remote(ip));
    this.c.planes.addVni(
      {
        vni: ls.vni,
        tap: port.tap,
        tapName: port.spec.name,
        remotes: flood,
        floodSource: 'ovsdb',
        senders: ls.senders.map((ip) => this.remote(ip)),
        localMacs: true,
        // Answered from the database's ipaddr column (OVN writes its ports' addresses there).
        suppressArp: true,
        ownMacs: [port.spec.mac],
        mtu: port.spec.mtu,
        outer: this.c.outer(),
      },
      port.queue(),
    );
    port.setVni(ls.vni);
    this.c.ports.set(ls.vni, port);
    this.applied.set(ls.vni, {
      port,
      macs: new Map(),
      ips: new Map(),
      flood: ls.flood.join(','),
      senders: ls.senders.join(','),
    });
    this.c.log(
      'info',
      'ovsdb_bind',
      `port ${port.spec.name}: bound to logical switch ${ls.name}, vni ${ls.vni}`,
      { port: port.spec.name, vni: ls.vni, logicalSwitch: ls.name },
    );
    this.audit('ovsdb.bind', { port: port.spec.name, vni: ls.vni, logicalSwitch: ls.name }, true);
  }

  private unbind(port: TapPort): void {
    const vni = port.spec.vni;
    this.c.planes.removeVni(vni);
    this.c.ports.delete(vni);
    this.applied.delete(vni);
    port.setVni(-1);
    this.c.log('info', 'ovsdb_unbind', `port ${port.spec.name}: no longer carries vni ${vni}`, {
      port: port.spec.name,
      vni,
    });
    this.audit('ovsdb.unbind', { port: port.spec.name, vni }, true);
  }

  private audit(cmd: string, args: Record<string, unknown>, logged = false): void {
    this.c.changed?.(
      { event: 'change', cmd, args, by: 'ovsdb', time: new Date().toISOString() },
      logged,
    );
  }

  /** Flood list, senders and remote MACs of a bound switch: only what changed. */
  private update(ls: LogicalSwitchView): void {
    const a = this.applied.get(ls.vni)!;
    const flood = ls.flood.join(',');
    const senders = ls.senders.join(',');
    const floodChanged = flood !== a.flood;
    let added = 0;
    let removed = 0;
    if (flood !== a.flood || senders !== a.senders) {
      this.c.planes.updateVni(ls.vni, {
        remotes: ls.flood.map((ip) => this.remote(ip)),
        floodSource: 'ovsdb',
        senders: ls.senders.map((ip) => this.remote(ip)),
      });
      a.flood = flood;
      a.senders = senders;
    }
    const now = this.c.clock();
    for (const [mac, ip] of a.macs)
      if (ls.remoteMacs.get(mac) !== ip) {
        a.macs.delete(mac);
        const e = this.c.fdb.get(ls.vni, mac);
        // An operator's `fdb add --replace` took it over: theirs now.
        if (e?.isStatic && e.source === 'ovsdb' && !ls.remoteMacs.has(mac))
          if (this.c.fdb.delete(ls.vni, mac)) removed++;
      }
    // Entries that do not fit are said once per update, not once per MAC: past the FDB's cap a
    // database of 100 000 MACs would otherwise log tens of thousands of lines each time.
    let failed = 0;
    let first: { mac: number; ip: string; why: string } | undefined;
    for (const [mac, ip] of ls.remoteMacs) {
      if (a.macs.get(mac) === ip) continue;
      const e = this.c.fdb.get(ls.vni, mac);
      if (e?.isStatic && e.source === 'static') continue; // the operator's entry wins
      try {
        this.c.fdb.addStatic(ls.vni, mac, this.remote(ip), now, 'ovsdb');
        a.macs.set(mac, ip);
        added++;
      } catch (err) {
        failed++;
        first ??= { mac, ip, why: (err as Error).message };
      }
    }
    for (const [ip, mac] of a.ips)
      if (ls.neighbours.get(ip) !== mac) {
        a.ips.delete(ip);
        this.c.planes.pinNeighbour(ls.vni, ip, undefined);
      }
    for (const [ip, mac] of ls.neighbours)
      if (a.ips.get(ip) !== mac) {
        a.ips.set(ip, mac);
        this.c.planes.pinNeighbour(ls.vni, ip, mac);
      }
    if (first)
      this.c.log(
        'warn',
        'ovsdb_fdb',
        `vni ${ls.vni}: ${failed} remote MAC${failed > 1 ? 's' : ''} not installed: ${first.why} (the first: ${formatMac(first.mac)} behind ${first.ip})`,
        { vni: ls.vni, count: failed, mac: formatMac(first.mac), remote: first.ip },
      );
    // One audit line per update and VNI, with counts: a database may move thousands of MACs.
    if (floodChanged || added || removed)
      this.audit('ovsdb.update', {
        vni: ls.vni,
        ...(floodChanged ? { flood: ls.flood.join(',') } : {}),
        ...(added ? { macsAdded: added } : {}),
        ...(removed ? { macsRemoved: removed } : {}),
      });
  }
}
