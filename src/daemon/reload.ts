import { ConfigError, type RemoteSpec, type VniSpec } from '../config/config.js';
import type { Remotes } from '../fdb/remote.js';
import type { UnderlayLink } from '../io/netif.js';
import type { Log } from '../util/log.js';
import type { EngineSettings } from '../engine/engine.js';
import { formatMac, parseMac, stableMac } from '../wire/mac.js';
import type { OuterPolicy } from '../engine/outer.js';
import { L2_MAX, largestMtu, udpPayloadMax, type Resolved } from './mtu.js';
import type { TapPort } from './tapport.js';
import type { Planes } from './threads/planes.js';

/**
 * A reload in two halves: `planReload` compares the running configuration with the next one
 * and says what to add, remove and change, or why it is refused; it reads nothing but its
 * arguments. `applyPlan` carries a plan out on the running endpoint. Everything that can fail
 * (refusals, opening new TAPs) happens before anything changes, so a refused reload leaves the
 * running configuration exactly as it was.
 */

export type ResolvedVni = VniSpec & { mtu: number };

/** Settings bound to sockets opened at start: a reload that changes them is refused. */
export const RESTART_ONLY = [
  'ovsdb',
  'evpn',
  'tapOffload',
  'workers',
  'busyPoll',
  'ioUring',
  'nice',
  'local',
  'port',
  'sourcePortMode',
  'control',
  'udp6ZeroChecksumTx',
  'udp6ZeroChecksumRx',
  'metrics',
] as const;

/** Engine-wide settings a reload may change, and their names in what it says. */
const SETTINGS = [
  'reservedBits',
  'invalidSourceMac',
  'sourcePortMin',
  'sourcePortMax',
  'ageingMs',
  'maxEntries',
] as const;

/** One change of a VNI that stays (same VNI, same TAP). */
export type VniChange =
  | { vni: number; kind: 'remotes'; remotes: RemoteSpec[]; line: string }
  | { vni: number; kind: 'suppressArp' | 'learnRemotes'; value: boolean; line: string }
  | { vni: number; kind: 'learning'; learning: boolean; maxEntries: number; line: string }
  | { vni: number; kind: 'mtu'; mtu: number; line: string }
  | { vni: number; kind: 'mac'; mac: number; line: string }
  | { vni: number; kind: 'bridge'; bridge: string | undefined; line: string }
  | { vni: number; kind: 'outer'; outer: OuterPolicy; line: string };

export interface ReloadPlan {
  /** VNIs that go (their TAPs are closed); a VNI whose TAP name changes goes and comes back. */
  removed: ResolvedVni[];
  added: ResolvedVni[];
  changes: VniChange[];
  settings: Required<Pick<EngineSettings, 'reservedBits' | 'invalidSourceMac'>> & {
    sourcePortMin: number;
    sourcePortMax: number;
  };
  limits: { ageingMs: number; maxEntries: number };
  /** Engine-wide settings that differ, as said ("ageing 300 s -> 30 s"). */
  settingLines: string[];
  /** The underlay MTU, when it changes. */
  underlayMtu?: { from: number; to: number };
  /** The file's outer header, when it changes: for the VNIs OVSDB bindings carry. */
  ovsdbOuter?: { vnis: number[]; outer: OuterPolicy; line: string };
}

/** What `planReload` needs to know of the running endpoint besides its configuration. */
export interface RunningFacts {
  /** Flows hash over bound GSO sender ports (hash mode with offloads): the range is fixed. */
  portsBound: boolean;
  /** The underlay ring's slot capacity. */
  underlayCapacity: number;
  /** Frames a VNI's TAP ring holds (undefined: no TAP open). */
  tapCapacity(vni: number): number | undefined;
  /** VNIs that OVSDB bindings carry now. */
  ovsdbVnis: readonly number[];
  link: UnderlayLink;
  nextLink: UnderlayLink;
}

/** The TAP's MAC: as configured, or derived from its name and VNI so it survives restarts. */
export function tapMac(v: VniSpec): number {
  return v.mac !== undefined ? parseMac(v.mac)! : stableMac(`vtep:${v.tap}:${v.vni}`);
}

/**
 * Where a VNI floods: its remotes and, with a multicast underlay, its group (as Linux VXLAN
 * floods to the group of its default entry and to each `bridge fdb append` remote beside it).
 * The group is never a sender: datagrams come from members' unicast addresses.
 */
export function floodSpecs(v: VniSpec, port: number): RemoteSpec[] {
  return v.group === undefined ? v.remotes : [...v.remotes, { address: v.group, port }];
}

const remoteKeys = (list: readonly RemoteSpec[]) =>
  list.map((r) => `${r.address}:${r.port}`).join(',');

/** How a setting reads in what a reload says: its YAML name, in its YAML unit. */
function settingLine(k: (typeof SETTINGS)[number], from: unknown, to: unknown): string {
  if (k === 'ageingMs') return `ageing ${Number(from) / 1000} s -> ${Number(to) / 1000} s`;
  return `${k} ${String(from)} -> ${String(to)}`;
}

/** Compare `cur` with `next`: the plan, or a ConfigError thrown naming what is refused. */
export function planReload(cur: Resolved, next: Resolved, facts: RunningFacts): ReloadPlan {
  refusals(cur, next, facts);
  const before = new Map(cur.vnis.map((v) => [v.vni, v]));
  const after = new Map(next.vnis.map((v) => [v.vni, v]));
  const kept = next.vnis.filter((v) => before.get(v.vni)?.tap === v.tap);
  for (const v of kept) {
    const cap = facts.tapCapacity(v.vni);
    if (cap !== undefined && v.mtu + L2_MAX > cap)
      throw new ConfigError(
        `vni ${v.vni} mtu`,
        v.mtu,
        `exceeds what tap ${v.tap}'s receive ring holds (${cap - L2_MAX}); restart to raise it`,
      );
  }
  return {
    removed: cur.vnis.filter((v) => after.get(v.vni)?.tap !== v.tap),
    added: next.vnis.filter((v) => before.get(v.vni)?.tap !== v.tap),
    changes: kept.flatMap((v) => vniChanges(before.get(v.vni)!, v, next.maxEntries, next.port)),
    settings: {
      reservedBits: next.reservedBits,
      invalidSourceMac: next.invalidSourceMac,
      sourcePortMin: next.sourcePortMin,
      sourcePortMax: next.sourcePortMax,
    },
    limits: { ageingMs: next.ageingMs, maxEntries: next.maxEntries },
    settingLines: SETTINGS.filter((k) => cur[k] !== next[k]).map((k) =>
      settingLine(k, cur[k], next[k]),
    ),
    ...(facts.nextLink.mtu !== facts.link.mtu
      ? { underlayMtu: { from: facts.link.mtu, to: facts.nextLink.mtu } }
      : {}),
    ...(facts.ovsdbVnis.length > 0 && outerText(cur.outer) !== outerText(next.outer)
      ? {
          ovsdbOuter: {
            vnis: [...facts.ovsdbVnis],
            outer: next.outer,
            line: `ovsdb vnis outer ${outerText(cur.outer)} -> ${outerText(next.outer)}`,
          },
        }
      : {}),
  };
}

/** An outer-header policy as a reload says it: `ttl 64 tos inherit`, `default`. */
export function outerText(p: OuterPolicy): string {
  const parts = (['ttl', 'tos', 'df', 'flowLabel', 'udpCsum'] as const)
    .filter((k) => p[k] !== undefined)
    .map((k) => {
      const v = p[k];
      return `${k} ${typeof v === 'number' && k !== 'ttl' ? `0x${v.toString(16)}` : String(v)}`;
    });
  return parts.join(' ') || 'default';
}

/** Throw for what a running endpoint cannot take without a restart. */
function refusals(cur: Resolved, next: Resolved, facts: RunningFacts): void {
  const payload = udpPayloadMax(next, facts.nextLink);
  if (payload > facts.underlayCapacity)
    throw new ConfigError(
      'mtu',
      largestMtu(next),
      `needs ${payload}-byte underlay receive slots, the running ones hold ${facts.underlayCapacity}; restart to raise it`,
    );
  for (const v of next.vnis)
    if (facts.ovsdbVnis.includes(v.vni) && !cur.vnis.some((c) => c.vni === v.vni))
      throw new ConfigError(
        `vni ${v.vni}`,
        v.vni,
        'is carried by an OVSDB port now (its logical switch has this tunnel_key)',
      );
  for (const k of RESTART_ONLY)
    if (JSON.stringify(cur[k]) !== JSON.stringify(next[k]))
      throw new ConfigError(
        k,
        next[k],
        `cannot change while vtep runs (running with ${JSON.stringify(cur[k])}); restart to change it`,
      );
  if (
    facts.portsBound &&
    (cur.sourcePortMin !== next.sourcePortMin || cur.sourcePortMax !== next.sourcePortMax)
  )
    throw new ConfigError(
      'sourcePorts',
      `${next.sourcePortMin}-${next.sourcePortMax}`,
      `cannot change while vtep runs with TAP offloads (running with ${cur.sourcePortMin}-${cur.sourcePortMax}): flows use the ports its UDP GSO senders are bound to; restart to change it`,
    );
}

/** What changes in a VNI that stays, in the order it is applied and said. */
function vniChanges(
  old: ResolvedVni,
  v: ResolvedVni,
  maxEntries: number,
  port: number,
): VniChange[] {
  const out: VniChange[] = [];
  const vni = v.vni;
  if (remoteKeys(old.remotes) !== remoteKeys(v.remotes))
    out.push({
      vni,
      kind: 'remotes',
      remotes: floodSpecs(v, port),
      line: `vni ${vni} remotes ${remoteKeys(old.remotes) || '-'} -> ${remoteKeys(v.remotes) || '-'}`,
    });
  else if (old.group !== v.group)
    out.push({
      vni,
      kind: 'remotes',
      remotes: floodSpecs(v, port),
      line: `vni ${vni} group ${old.group ?? '-'} -> ${v.group ?? '-'}`,
    });
  for (const kind of ['suppressArp', 'learnRemotes'] as const)
    if (old[kind] !== v[kind])
      out.push({ vni, kind, value: v[kind], line: `vni ${vni} ${kind} ${v[kind]}` });
  if (old.learning !== v.learning || old.maxEntries !== v.maxEntries)
    out.push({
      vni,
      kind: 'learning',
      learning: v.learning,
      maxEntries: v.maxEntries ?? maxEntries,
      line: `vni ${vni} learning ${v.learning} maxEntries ${v.maxEntries ?? 'default'}`,
    });
  if (old.mtu !== v.mtu)
    out.push({ vni, kind: 'mtu', mtu: v.mtu, line: `vni ${vni} mtu ${old.mtu} -> ${v.mtu}` });
  const mac = tapMac(v);
  if (mac !== tapMac(old))
    out.push({ vni, kind: 'mac', mac, line: `vni ${vni} mac ${formatMac(mac)}` });
  if (outerText(old.outer) !== outerText(v.outer))
    out.push({
      vni,
      kind: 'outer',
      outer: v.outer,
      line: `vni ${vni} outer ${outerText(old.outer)} -> ${outerText(v.outer)}`,
    });
  if (old.bridge !== v.bridge)
    out.push({
      vni,
      kind: 'bridge',
      bridge: v.bridge,
      line: `vni ${vni} bridge ${old.bridge ?? '-'} -> ${v.bridge ?? '-'}`,
    });
  return out;
}

/** The running endpoint, as `applyPlan` changes it. */
export interface ReloadTarget {
  planes: Planes;
  remotes: Remotes;
  ports: Map<number, TapPort>;
  openPort(v: ResolvedVni): TapPort;
  addVni(v: ResolvedVni, port: TapPort): void;
  log: Log;
}

/** Carry `plan` out; returns what changed, as said in the log. */
export function applyPlan(plan: ReloadPlan, t: ReloadTarget): string[] {
  // Open the new TAPs whose names are free now; any failure refuses the reload.
  const freed = new Set(plan.removed.map((v) => v.tap));
  const fresh = new Map<number, TapPort>();
  try {
    for (const v of plan.added) if (!freed.has(v.tap)) fresh.set(v.vni, t.openPort(v));
  } catch (err) {
    for (const p of fresh.values()) p.close();
    const v = plan.added.find((a) => !fresh.has(a.vni))!;
    throw new ConfigError(`vni ${v.vni} tap`, v.tap, (err as Error).message);
  }
  const changes: string[] = [];
  const say = (line: string) => {
    changes.push(line);
    t.log('info', 'reload', `reload: ${line}`, { change: line });
  };
  t.planes.configure(plan.settings);
  t.planes.limits(plan.limits.ageingMs, plan.limits.maxEntries);
  plan.settingLines.forEach(say);
  for (const v of plan.removed) {
    t.ports.get(v.vni)?.close();
    t.ports.delete(v.vni);
    t.planes.removeVni(v.vni);
    say(`vni ${v.vni} removed (tap ${v.tap} closed)`);
  }
  for (const v of plan.added) {
    // A TAP name the removed VNIs just freed; should it fail now, the port's own retry loop
    // keeps trying, as after a lost device.
    t.addVni(v, fresh.get(v.vni) ?? t.openPort(v));
    say(`vni ${v.vni} added on tap ${v.tap}`);
  }
  for (const c of plan.changes) applyChange(c, t, say);
  if (plan.underlayMtu) {
    t.planes.configure({ underlayMtu: plan.underlayMtu.to });
    say(`underlay mtu ${plan.underlayMtu.from} -> ${plan.underlayMtu.to}`);
  }
  if (plan.ovsdbOuter) {
    for (const vni of plan.ovsdbOuter.vnis)
      t.planes.updateVni(vni, { outer: plan.ovsdbOuter.outer });
    say(plan.ovsdbOuter.line);
  }
  if (changes.length === 0) say('no changes');
  return changes;
}

function applyChange(c: VniChange, t: ReloadTarget, say: (line: string) => void): void {
  const port = t.ports.get(c.vni)!;
  switch (c.kind) {
    case 'remotes':
      t.planes.updateVni(c.vni, {
        remotes: c.remotes.map((r) => t.remotes.get(r.address, r.port)),
      });
      return say(c.line);
    case 'suppressArp':
    case 'learnRemotes':
      t.planes.updateVni(c.vni, { [c.kind]: c.value });
      return say(c.line);
    case 'learning':
      t.planes.updateVni(c.vni, { learning: c.learning, maxEntries: c.maxEntries });
      return say(c.line);
    case 'mtu':
      // on the device: the kernel enforces it, the engine takes what the TAP's slots hold
      return trySet(c.line, () => port.setMtu(c.mtu), say);
    case 'mac':
      t.planes.updateVni(c.vni, { ownMacs: [c.mac] });
      return trySet(c.line, () => port.setMac(c.mac), say);
    case 'bridge':
      port.setBridge(c.bridge);
      return say(c.line);
    case 'outer':
      t.planes.updateVni(c.vni, { outer: c.outer });
      return say(c.line);
  }
}

/** Apply a device setting; a failure (the TAP was moved to another namespace) is reported, not fatal. */
function trySet(what: string, fn: () => void, say: (l: string) => void): void {
  try {
    fn();
    say(what);
  } catch (err) {
    say(`${what} (recorded, but the device refused it: ${(err as Error).message})`);
  }
}
