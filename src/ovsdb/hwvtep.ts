import { isIP, isIPv4 } from 'node:net';
import { formatMac, isValidUnicast, parseMac } from '../wire/mac.js';

/**
 * The hardware_vtep database as a gateway sees it, and what follows from it. Pure: a `Replica`
 * holds the monitored rows (RFC 7047 `monitor` updates applied to it), `gatewayView` reads from
 * them what the data plane must do (which TAP carries which VNI, the remote MACs and flood list
 * of each), and `reconcileOps` writes the transaction that makes the database say what we are
 * (our Physical_Switch and Physical_Ports, the MACs behind our TAPs). Nothing here does I/O, so
 * all of it is tested over plain rows; `gateway.ts` moves the bytes.
 *
 * A database row is untrusted input: a column of the wrong type reads as absent, never throws.
 */

/** What we monitor: table → columns (see /usr/share/openvswitch/vtep.ovsschema). */
export const MONITORED: Record<string, string[]> = {
  Global: ['switches'],
  Physical_Switch: ['name', 'tunnel_ips', 'ports'],
  Physical_Port: ['name', 'vlan_bindings'],
  Logical_Switch: ['name', 'tunnel_key', 'replication_mode'],
  Ucast_Macs_Remote: ['MAC', 'logical_switch', 'locator', 'ipaddr'],
  Mcast_Macs_Remote: ['MAC', 'logical_switch', 'locator_set'],
  Ucast_Macs_Local: ['MAC', 'logical_switch', 'locator'],
  Mcast_Macs_Local: ['MAC', 'logical_switch', 'locator_set'],
  Physical_Locator_Set: ['locators'],
  Physical_Locator: ['encapsulation_type', 'dst_ip'],
};

export const DB = 'hardware_vtep';

/**
 * What the server's schema lacks of what we read and write (empty: it serves us). A database
 * whose tables or columns differ from vtep.ovsschema's is refused with their names rather than
 * misread.
 */
export function schemaGaps(schema: unknown): string[] {
  const tables = (schema as { tables?: Record<string, { columns?: Record<string, unknown> }> })
    ?.tables;
  if (typeof tables !== 'object' || tables === null) return ['(no tables)'];
  const gaps: string[] = [];
  for (const [table, columns] of Object.entries(MONITORED)) {
    const have = tables[table]?.columns;
    if (typeof have !== 'object' || have === null) gaps.push(table);
    else for (const c of columns) if (!(c in have)) gaps.push(`${table}.${c}`);
  }
  return gaps;
}
/** The only encapsulation the schema knows. */
export const ENCAP = 'vxlan_over_ipv4';

export type Row = Record<string, unknown>;

// ---- OVSDB datum readers (RFC 7047 §5.1) ------------------------------------------------

/** The elements of a datum: a `["set", [...]]` or a single atom. */
export function elements(datum: unknown): unknown[] {
  if (Array.isArray(datum) && datum[0] === 'set' && Array.isArray(datum[1])) return datum[1];
  return datum === undefined ? [] : [datum];
}

/** A `["uuid", "…"]` atom's text. */
export function uuidOf(atom: unknown): string | undefined {
  return Array.isArray(atom) && atom[0] === 'uuid' && typeof atom[1] === 'string'
    ? atom[1]
    : undefined;
}

export function uuids(datum: unknown): string[] {
  return elements(datum)
    .map(uuidOf)
    .filter((u): u is string => u !== undefined);
}

export function str(datum: unknown): string | undefined {
  const e = elements(datum);
  return e.length === 1 && typeof e[0] === 'string' ? e[0] : undefined;
}

export function int(datum: unknown): number | undefined {
  const e = elements(datum);
  return e.length === 1 && Number.isSafeInteger(e[0]) ? (e[0] as number) : undefined;
}

/** A `["map", [[k, v], …]]` datum's pairs. */
export function pairs(datum: unknown): [unknown, unknown][] {
  if (!Array.isArray(datum) || datum[0] !== 'map' || !Array.isArray(datum[1])) return [];
  return (datum[1] as unknown[]).filter(
    (p): p is [unknown, unknown] => Array.isArray(p) && p.length === 2,
  );
}

// ---- the replica ------------------------------------------------------------------------

export class Replica {
  private readonly tables = new Map<string, Map<string, Row>>();

  constructor() {
    for (const t of Object.keys(MONITORED)) this.tables.set(t, new Map());
  }

  /** Start over from a monitor's initial contents (a resync after reconnecting). */
  reset(initial: unknown): void {
    for (const t of this.tables.values()) t.clear();
    this.apply(initial);
  }

  /**
   * Apply a `monitor` update: a row with `new` is (re)written whole (for a modify, `new` holds
   * every monitored column), a row without it is gone. Returns how many rows were malformed
   * (skipped).
   */
  apply(updates: unknown): number {
    let bad = 0;
    if (typeof updates !== 'object' || updates === null) return 1;
    for (const [table, rows] of Object.entries(updates as Record<string, unknown>)) {
      const t = this.tables.get(table);
      if (t === undefined || typeof rows !== 'object' || rows === null) {
        bad++;
        continue;
      }
      for (const [uuid, change] of Object.entries(rows as Record<string, unknown>)) {
        if (typeof change !== 'object' || change === null) {
          bad++;
          continue;
        }
        const next = (change as { new?: unknown }).new;
        if (next === undefined) t.delete(uuid);
        else if (typeof next === 'object' && next !== null && !Array.isArray(next))
          t.set(uuid, next as Row);
        else bad++;
      }
    }
    return bad;
  }

  rows(table: string): Map<string, Row> {
    return this.tables.get(table) ?? new Map();
  }

  row(table: string, uuid: string | undefined): Row | undefined {
    return uuid === undefined ? undefined : this.tables.get(table)?.get(uuid);
  }
}

// ---- what the database means for us -----------------------------------------------------

export interface Me {
  /** Physical_Switch name. */
  name: string;
  /** Our underlay (IPv4) address: tunnel_ips, and our Physical_Locator's dst_ip. */
  tunnelIp: string;
  /** Our ports: TAP names. */
  ports: string[];
}

export interface PortView {
  name: string;
  /** The Physical_Port row, once it exists in our switch. */
  uuid?: string;
  /** The VNI of the logical switch bound at VLAN 0, when it has a tunnel key. */
  vni: number | null;
  /** The bound Logical_Switch (uuid, name). */
  logicalSwitch?: { uuid: string; name: string };
  /** Why a binding is not in effect (no tunnel key yet, other VLANs, a clash). */
  problem?: string;
}

export interface LogicalSwitchView {
  uuid: string;
  name: string;
  vni: number;
  /** The port carrying it. */
  port: string;
  /** Ucast_Macs_Remote: MAC → the locator's dst_ip. */
  remoteMacs: Map<number, string>;
  /** Ucast_Macs_Remote `ipaddr` (OVN writes a logical port's address there): IP → MAC. */
  neighbours: Map<string, number>;
  /** Where unknown-dst (broadcast, multicast, unknown unicast) goes, per replication_mode. */
  flood: string[];
  /** Every remote locator of the switch: who may send to us. */
  senders: string[];
}

export interface GatewayView {
  switchUuid?: string;
  /** Whether our switch is listed in Global.switches (vtep-ctl list-ps reads it from there). */
  registered: boolean;
  globalUuid?: string;
  tunnelIps: string[];
  portUuids: string[];
  ports: PortView[];
  /** By Logical_Switch uuid: the switches bound to our ports. */
  switches: Map<string, LogicalSwitchView>;
  /** Our Physical_Locator (dst_ip = our tunnel IP), if it exists. */
  locator?: string;
  /** Ucast_Macs_Local rows at our locator: `${lsUuid} ${mac}` → row uuid. */
  localRows: Map<string, string>;
  /** Mcast_Macs_Local unknown-dst rows naming our locator, by logical switch uuid → row uuids. */
  mcastLocalRows: Map<string, string[]>;
  /** Rows that could not be read (a MAC that is not one, a locator without an address). */
  malformed: number;
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function gatewayView(db: Replica, me: Me): GatewayView {
  const bad = { rows: 0 };
  const locatorIp = (uuid: string | undefined): string | undefined => {
    const ip = str(db.row('Physical_Locator', uuid)?.dst_ip);
    if (ip === undefined || !isIPv4(ip)) {
      bad.rows++;
      return undefined;
    }
    return ip;
  };
  const us = ourSwitch(db, me);
  const { ports, switches } = portViews(db, me, us.sw);
  remotes(db, me, switches, locatorIp, bad);
  return {
    ...(us.switchUuid ? { switchUuid: us.switchUuid } : {}),
    registered: us.registered,
    ...(us.globalUuid ? { globalUuid: us.globalUuid } : {}),
    tunnelIps: elements(us.sw?.tunnel_ips).filter((x): x is string => typeof x === 'string'),
    portUuids: us.sw ? uuids(us.sw.ports) : [],
    ports,
    switches,
    ...localRows(db, me),
    malformed: bad.rows,
  };
}

/** Our Physical_Switch (by name), and the Global row that lists it (or the first one). */
function ourSwitch(db: Replica, me: Me) {
  let switchUuid: string | undefined;
  for (const [uuid, row] of db.rows('Physical_Switch'))
    if (str(row.name) === me.name) switchUuid = uuid;
  let globalUuid: string | undefined;
  let registered = false;
  for (const [uuid, row] of db.rows('Global')) {
    globalUuid ??= uuid;
    if (switchUuid !== undefined && uuids(row.switches).includes(switchUuid)) {
      registered = true;
      globalUuid = uuid;
    }
  }
  return { switchUuid, sw: db.row('Physical_Switch', switchUuid), globalUuid, registered };
}

/** Each of our ports: its row, its binding at vlan 0 and the VNI it carries, or why not. */
function portViews(db: Replica, me: Me, sw: Row | undefined) {
  const ourPorts = new Map<string, string>();
  for (const u of sw ? uuids(sw.ports) : []) {
    const name = str(db.row('Physical_Port', u)?.name);
    if (name !== undefined && !ourPorts.has(name)) ourPorts.set(name, u);
  }
  const ports: PortView[] = [];
  const switches = new Map<string, LogicalSwitchView>();
  const vniUsed = new Map<number, string>();
  for (const name of me.ports) {
    const uuid = ourPorts.get(name);
    const port: PortView = { name, vni: null, ...(uuid ? { uuid } : {}) };
    ports.push(port);
    const bindings = pairs(db.row('Physical_Port', uuid)?.vlan_bindings);
    const others = bindings.filter(([vlan]) => vlan !== 0).map(([vlan]) => String(vlan));
    const at0 = bindings.find(([vlan]) => vlan === 0);
    const problems: string[] = [];
    if (others.length)
      problems.push(
        `vlan ${others.join(', ')} bindings are ignored: a TAP port carries one logical switch, bound at vlan 0`,
      );
    const lsUuid = at0 ? uuidOf(at0[1]) : undefined;
    const ls = db.row('Logical_Switch', lsUuid);
    if (lsUuid !== undefined && ls !== undefined) {
      const problem = bindTo(port, lsUuid, ls, switches, vniUsed);
      if (problem) problems.push(problem);
    }
    if (problems.length) port.problem = problems.join('; ');
  }
  return { ports, switches };
}

/** Bind `port` to logical switch `lsUuid`, or say why it cannot carry it. */
function bindTo(
  port: PortView,
  lsUuid: string,
  ls: Row,
  switches: Map<string, LogicalSwitchView>,
  vniUsed: Map<number, string>,
): string | undefined {
  const lsName = str(ls.name) ?? lsUuid;
  port.logicalSwitch = { uuid: lsUuid, name: lsName };
  // ovn-controller-vtep writes 0 into the key of a switch no OVN network uses.
  const key = int(ls.tunnel_key);
  if (key === undefined || key <= 0 || key > 0xffffff)
    return `logical switch ${lsName} has no tunnel_key yet`;
  if (switches.has(lsUuid))
    return `logical switch ${lsName} is already carried by port ${switches.get(lsUuid)!.port}`;
  if (vniUsed.has(key)) return `vni ${key} is already carried by port ${vniUsed.get(key)}`;
  port.vni = key;
  vniUsed.set(key, port.name);
  switches.set(lsUuid, {
    uuid: lsUuid,
    name: lsName,
    vni: key,
    port: port.name,
    remoteMacs: new Map(),
    neighbours: new Map(),
    flood: [],
    senders: [],
  });
  return undefined;
}

/** Remote MACs, flood lists and the senders they allow, into each bound switch's view. */
function remotes(
  db: Replica,
  me: Me,
  switches: Map<string, LogicalSwitchView>,
  locatorIp: (uuid: string | undefined) => string | undefined,
  bad: { rows: number },
): void {
  const senders = new Map<string, Set<string>>();
  const sendersOf = (ls: string) => {
    let s = senders.get(ls);
    if (s === undefined) senders.set(ls, (s = new Set()));
    return s;
  };
  for (const row of db.rows('Ucast_Macs_Remote').values()) {
    const ls = switches.get(uuidOf(row.logical_switch) ?? '');
    if (ls === undefined) continue;
    const mac = parseMac(str(row.MAC) ?? '');
    const ip = locatorIp(uuidOf(row.locator));
    if (mac === undefined || !isValidUnicast(mac)) bad.rows++;
    if (mac === undefined || ip === undefined || !isValidUnicast(mac)) continue;
    ls.remoteMacs.set(mac, ip);
    const addr = str(row.ipaddr);
    if (addr && isIP(addr)) ls.neighbours.set(addr, mac);
    sendersOf(ls.uuid).add(ip);
  }
  for (const row of db.rows('Mcast_Macs_Remote').values()) {
    const ls = switches.get(uuidOf(row.logical_switch) ?? '');
    if (ls === undefined || str(row.MAC) !== 'unknown-dst') continue;
    const set = db.row('Physical_Locator_Set', uuidOf(row.locator_set));
    const ips = [
      ...new Set(
        uuids(set?.locators)
          .map(locatorIp)
          .filter((ip): ip is string => ip !== undefined && ip !== me.tunnelIp),
      ),
    ].sort(byText);
    for (const ip of ips) sendersOf(ls.uuid).add(ip);
    // Source-node replication (what OVN asks for) sends a copy to every locator; service-node
    // replication (the schema's default) sends one copy to a node that replicates it.
    const mode = str(db.row('Logical_Switch', ls.uuid)?.replication_mode) ?? 'service_node';
    ls.flood = mode === 'source_node' ? ips : ips.slice(0, 1);
  }
  for (const ls of switches.values()) ls.senders = [...(senders.get(ls.uuid) ?? [])].sort(byText);
}

/** Our locator, and the Ucast/Mcast_Macs_Local rows at it. */
function localRows(db: Replica, me: Me) {
  let locator: string | undefined;
  for (const [uuid, row] of db.rows('Physical_Locator'))
    if (str(row.dst_ip) === me.tunnelIp && str(row.encapsulation_type) === ENCAP) locator = uuid;
  const localRows = new Map<string, string>();
  const mcastLocalRows = new Map<string, string[]>();
  if (locator !== undefined) {
    for (const [uuid, row] of db.rows('Ucast_Macs_Local')) {
      if (uuidOf(row.locator) !== locator) continue;
      const mac = parseMac(str(row.MAC) ?? '');
      const ls = uuidOf(row.logical_switch);
      if (mac === undefined || ls === undefined) continue;
      localRows.set(`${ls} ${formatMac(mac)}`, uuid);
    }
    for (const [uuid, row] of db.rows('Mcast_Macs_Local')) {
      const set = db.row('Physical_Locator_Set', uuidOf(row.locator_set));
      const ls = uuidOf(row.logical_switch);
      if (str(row.MAC) !== 'unknown-dst' || ls === undefined) continue;
      if (!uuids(set?.locators).includes(locator)) continue;
      mcastLocalRows.set(ls, [...(mcastLocalRows.get(ls) ?? []), uuid]);
    }
  }
  return { ...(locator ? { locator } : {}), localRows, mcastLocalRows };
}

// ---- what we write ----------------------------------------------------------------------

const set = (xs: unknown[]) => ['set', xs];
const uuidAtom = (u: string) => ['uuid', u];
const named = (n: string) => ['named-uuid', n];

/**
 * The transaction that makes the database say what we are, or `[]` when it already does:
 *
 * - our Physical_Switch, with `tunnel_ips` = our address, listed in Global (created if absent);
 * - a Physical_Port per TAP in it (ports someone else added are left alone);
 * - per bound logical switch, `Mcast_Macs_Local unknown-dst` at our locator (as ovs-vtep does)
 *   and exactly `localMacs` as `Ucast_Macs_Local` at our locator (our Physical_Locator is
 *   created in the same transaction when missing).
 *
 * Every insert is guarded by a `wait` on what it was computed from, so that two writers (or a
 * reply that crosses an update) can never duplicate a row: the transaction fails instead, and
 * the caller computes it again from the update that made it fail.
 */
export function reconcileOps(
  view: GatewayView,
  me: Me,
  /** Logical switch uuid → the MACs behind its port. */
  localMacs: Map<string, number[]>,
): object[] {
  const ops = switchOps(view, me);
  const locator = { needed: false };
  const macs = macOps(view, localMacs, locator);
  if (locator.needed)
    ops.push({
      op: 'insert',
      table: 'Physical_Locator',
      'uuid-name': 'loc',
      row: { encapsulation_type: ENCAP, dst_ip: me.tunnelIp },
    });
  ops.push(...macs);
  return ops;
}

const where = (uuid: string) => [['_uuid', '==', uuidAtom(uuid)]];

/** Our Physical_Switch, its listing in Global and a Physical_Port per TAP. */
function switchOps(view: GatewayView, me: Me): object[] {
  const ops: object[] = [];
  const sw = view.switchUuid ? uuidAtom(view.switchUuid) : named('ps');
  if (view.switchUuid === undefined) {
    ops.push({
      op: 'insert',
      table: 'Physical_Switch',
      'uuid-name': 'ps',
      row: { name: me.name, tunnel_ips: set([me.tunnelIp]) },
    });
  } else if (view.tunnelIps.length !== 1 || view.tunnelIps[0] !== me.tunnelIp) {
    ops.push({
      op: 'update',
      table: 'Physical_Switch',
      where: where(view.switchUuid),
      row: { tunnel_ips: set([me.tunnelIp]) },
    });
  }
  if (!view.registered) {
    if (view.globalUuid === undefined) {
      ops.push(
        {
          op: 'wait',
          table: 'Global',
          where: [],
          columns: ['switches'],
          until: '==',
          rows: [],
          timeout: 0,
        },
        { op: 'insert', table: 'Global', row: { switches: set([sw]) } },
      );
    } else
      ops.push({
        op: 'mutate',
        table: 'Global',
        where: where(view.globalUuid),
        mutations: [['switches', 'insert', set([sw])]],
      });
  }
  const missing = view.ports.filter((p) => p.uuid === undefined);
  if (missing.length === 0) return ops;
  if (view.switchUuid !== undefined)
    ops.push({
      op: 'wait',
      table: 'Physical_Switch',
      where: where(view.switchUuid),
      columns: ['ports'],
      until: '==',
      rows: [{ ports: set(view.portUuids.map(uuidAtom)) }],
      timeout: 0,
    });
  missing.forEach((p, i) =>
    ops.push({
      op: 'insert',
      table: 'Physical_Port',
      'uuid-name': `port${i}`,
      row: { name: p.name },
    }),
  );
  const added = set(missing.map((_, i) => named(`port${i}`)));
  if (view.switchUuid === undefined) (ops[0] as { row: Record<string, unknown> }).row.ports = added;
  else
    ops.push({
      op: 'mutate',
      table: 'Physical_Switch',
      where: where(view.switchUuid),
      mutations: [['ports', 'insert', added]],
    });
  return ops;
}

/** The MACs behind our ports, and unknown-dst at our locator, per bound switch. */
function macOps(
  view: GatewayView,
  localMacs: Map<string, number[]>,
  locator: { needed: boolean },
): object[] {
  const loc = () => {
    if (view.locator !== undefined) return uuidAtom(view.locator);
    locator.needed = true;
    return named('loc');
  };
  const ops: object[] = [];
  const wanted = new Set<string>();
  for (const [ls, macs] of localMacs) {
    if (!view.switches.has(ls)) continue;
    for (const m of macs) {
      const mac = formatMac(m);
      const key = `${ls} ${mac}`;
      wanted.add(key);
      if (view.localRows.has(key)) continue;
      const rowWhere = [
        ['MAC', '==', mac],
        ['logical_switch', '==', uuidAtom(ls)],
      ];
      ops.push(
        {
          op: 'wait',
          table: 'Ucast_Macs_Local',
          where: rowWhere,
          columns: ['MAC'],
          until: '==',
          rows: [],
          timeout: 0,
        },
        {
          op: 'insert',
          table: 'Ucast_Macs_Local',
          row: { MAC: mac, logical_switch: uuidAtom(ls), locator: loc() },
        },
      );
    }
  }
  for (const [key, row] of view.localRows)
    if (!wanted.has(key)) ops.push({ op: 'delete', table: 'Ucast_Macs_Local', where: where(row) });
  let sets = 0;
  for (const ls of view.switches.keys()) {
    if (view.mcastLocalRows.has(ls)) continue;
    const name = `set${sets++}`;
    ops.push(
      {
        op: 'insert',
        table: 'Physical_Locator_Set',
        'uuid-name': name,
        row: { locators: set([loc()]) },
      },
      {
        op: 'insert',
        table: 'Mcast_Macs_Local',
        row: { MAC: 'unknown-dst', logical_switch: uuidAtom(ls), locator_set: named(name) },
      },
    );
  }
  for (const [ls, rows] of view.mcastLocalRows)
    for (const [i, row] of rows.entries())
      // A switch no longer ours, or a duplicate: withdrawn.
      if (!view.switches.has(ls) || i > 0)
        ops.push({ op: 'delete', table: 'Mcast_Macs_Local', where: where(row) });
  return ops;
}
