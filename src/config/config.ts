import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  openSync,
  readSync,
  type Stats,
} from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { LineCounter, parseDocument, stringify as stringifyYaml } from 'yaml';
import { canonicalAddress, isMulticastAddress, isUnspecified } from '../io/addr.js';
import { targetOf } from '../ovsdb/target.js';
import type { z } from 'zod';
import type { OuterPolicy } from '../engine/outer.js';
import { BFD_DEFAULTS, configSchema, intIn, knownKeys, type outerShape } from './schema.js';
import { VXLAN_PORT } from '../wire/udp.js';
import type { ReservedBitsPolicy } from '../wire/vxlan.js';

export { MAX_TAP_MTU } from './schema.js';

/**
 * The VTEP's configuration, from `vtep run` flags or a YAML file, validated in one place.
 * Every error names the field and the value it got (`ConfigError`), and the CLI exits 2.
 */

export interface RemoteSpec {
  address: string;
  port: number;
}

export interface VniSpec {
  vni: number;
  tap: string;
  /** TAP MTU; undefined: the underlay MTU less the VXLAN overhead (50 bytes over IPv4, 70 over IPv6). */
  mtu?: number;
  mac?: string;
  remotes: RemoteSpec[];
  learnRemotes: boolean;
  learning: boolean;
  maxEntries?: number;
  /** ARP/ND suppression: answer requests for known addresses on the TAP (Linux neigh_suppress). */
  suppressArp: boolean;
  /** The Linux bridge the TAP belongs in. */
  bridge?: string;
  /**
   * A multicast underlay (Linux VXLAN `group … dev …`): flooded frames go to this group (beside
   * any `remotes`), datagrams to it are taken, and their senders learned as unicast remotes.
   */
  group?: string;
  /** The interface the group is joined on and sent from; default: the one holding `local`. */
  interface?: string;
  /** Its outer header: the file's settings, then the VNI's own. */
  outer: OuterPolicy;
  /** BFD with its remotes: the file's timers, then the VNI's own; false: none. Undefined: as the file says. */
  bfd?: false | { intervalMs: number; multiplier: number };
  /** With `evpn`: this VNI's own RD and route targets; false: not advertised. Undefined: automatic. */
  evpn?: false | { rd?: string; rt?: string[] };
}

/** `evpn:` (see schema.ts): the BGP speaker (gobgpd) vtep drives. */
export interface EvpnSpec {
  /** gobgpd's gRPC address, HOST:PORT. */
  gobgp: string;
  routerId?: string;
  asn?: number;
  holdTimeS: number;
  protoDir?: string;
}

/** `ovsdb:` (see schema.ts): the hardware_vtep database that drives the gateway ports. */
export interface OvsdbSpec {
  target: string;
  physicalSwitch: string;
  ports: string[];
  mtu?: number;
  privateKey?: string;
  certificate?: string;
  caCert?: string;
  /** The largest message taken from the server (default: the client's, 64 MiB). */
  maxMessageMiB?: number;
}

export interface Config {
  local: string;
  port: number;
  /** MTU of the underlay path; undefined: the MTU of the interface holding `local` (else 1500). */
  underlayMtu?: number;
  /** TAP offloads: partial checksums and TCP and UDP super-frames from the kernel (default on). */
  tapOffload: boolean;
  /** IPv6 underlay: send a zero UDP checksum (RFC 6935; Linux `udp6zerocsumtx`). */
  udp6ZeroChecksumTx: boolean;
  /** IPv6 underlay: accept a zero UDP checksum (Linux `udp6zerocsumrx`). */
  udp6ZeroChecksumRx: boolean;
  /** Where to serve Prometheus metrics, `ADDR:PORT` (canonical); off when undefined. */
  metrics?: string;
  /** BFD with every configured remote; off when undefined. */
  bfd?: { intervalMs: number; multiplier: number; vni?: number };
  control?: string;
  ageingMs: number;
  maxEntries: number;
  reservedBits: ReservedBitsPolicy;
  /** Decapsulated frames with a zero or multicast source MAC: deliver (OVS) or drop (Linux). */
  invalidSourceMac: 'deliver' | 'drop';
  /** `hash`: per-flow source port through a raw socket (RFC 7348 §5); `fixed`: the bound port. */
  sourcePortMode: 'hash' | 'fixed';
  sourcePortMin: number;
  sourcePortMax: number;
  ovsdb?: OvsdbSpec;
  evpn?: EvpnSpec;
  /**
   * After a batch, a data-plane thread keeps reading its TAP queues and socket without sleeping
   * for up to this many microseconds since the last frame (at most 2 ms in a row), then returns
   * to epoll. 0: off. Idle threads do not spin.
   */
  busyPoll: number;
  /**
   * TAP reads and writes through io_uring where the kernel allows it (batches of frames in one
   * syscall); false: readv and writev, a frame a syscall. A thread that cannot set a ring up
   * falls back by itself, and `vtep stats` says why.
   */
  ioUring: boolean;
  /**
   * The niceness of every thread of the process (-20..19; undefined: as started, like any
   * process). Lower gives the data plane more of a contended core, at the expense of the VMs it
   * carries (see README "Priority"). Lowering it needs CAP_SYS_NICE (the systemd unit sets it
   * with `Nice=`); a vtep without it runs where it started and says so.
   */
  nice?: number;
  /**
   * Data-plane threads: each with its own TAP queue per VNI (IFF_MULTI_QUEUE) and underlay
   * socket (SO_REUSEPORT); the kernel spreads flows over them. Undefined: decided at start
   * (`vtep run`: the cores, at most 8; one with a TAP made without queues).
   */
  workers?: number;
  /** The outer header of every VNI's datagrams unless the VNI says otherwise (and of OVSDB ports). */
  outer: OuterPolicy;
  vnis: VniSpec[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_CONFIG';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
    /** Where in the configuration (keys and indexes), when it came from one: for file positions. */
    readonly path?: readonly (string | number)[],
  ) {
    super(
      value === undefined
        ? `missing ${field}: ${reason}`
        : `invalid ${field} ${JSON.stringify(value)}: ${reason}`,
    );
  }
}

/** `intIn(min, max)` (schema.ts) for one value, as a ConfigError naming `field` (and `quoted`). */
export function integer(
  field: string,
  value: unknown,
  min: number,
  max: number,
  quoted: unknown = value,
): number {
  const r = intIn(min, max).safeParse(value);
  if (!r.success) throw new ConfigError(field, quoted, `must be an integer in ${min}..${max}`);
  return r.data;
}

/**
 * `192.0.2.1`, `192.0.2.1:8472`, `2001:db8::1` or `[2001:db8::1]:8472`, in canonical form
 * (`::ffff:192.0.2.1` is the IPv4 remote, `2001:DB8:0::1` is `2001:db8::1`), so that equal
 * remotes compare equal as text wherever they came from.
 */
export function parseRemote(field: string, value: unknown, defaultPort = VXLAN_PORT): RemoteSpec {
  if (typeof value !== 'string')
    throw new ConfigError(field, value, 'must be an address, optionally with :port');
  const bracket = /^\[([^\]]+)\](?::([^:]*))?$/.exec(value);
  const v4port = /^([\d.]+):([^:]*)$/.exec(value);
  const [addr, port] = bracket
    ? [bracket[1], bracket[2]]
    : v4port
      ? [v4port[1], v4port[2]]
      : [value, undefined];
  const canonical = canonicalAddress(addr);
  if (canonical === undefined && isIPv6(addr.split('%')[0]) && addr.includes('%'))
    throw new ConfigError(
      field,
      value,
      'is a scoped address (%zone): a VTEP is reached over a routed underlay; give a global or unique-local address',
    );
  if (canonical === undefined)
    throw new ConfigError(field, value, 'must be an IPv4 or IPv6 address, optionally with :port');
  return {
    address: canonical,
    port: port === undefined ? defaultPort : integer(field, port, 1, 65535, value),
  };
}

/**
 * Why `r` cannot be a remote VTEP of an endpoint bound to `local`, or undefined. One check for
 * `vtep run` and for `vtep fdb add|flush` on the control socket, so neither accepts what the
 * other refuses. `local` is canonical; `0.0.0.0` / `::` means "any address of this family".
 */
export function remoteProblem(r: RemoteSpec, local: string): string | undefined {
  const v4 = isIPv4(r.address);
  if (v4 !== isIPv4(local)) return `is not of the same IP family as local ${local}`;
  if (isUnspecified(r.address)) return 'is the unspecified address';
  if (r.address === '255.255.255.255') return 'is the broadcast address';
  if (isMulticastAddress(r.address))
    return 'is a multicast group (vtep replicates to unicast remotes; list them instead)';
  if (r.address === local) return 'is our own local address (a loop)';
  if (!v4 && /^fe[89ab]/i.test(r.address))
    return 'is link-local (fe80::/10): it needs an interface to be reached, and the underlay socket has none; give a global or unique-local address';
  return undefined;
}

/** `parseRemote` then `remoteProblem`, as a ConfigError naming `field`. */
export function checkRemote(
  field: string,
  value: unknown,
  local: string,
  defaultPort = VXLAN_PORT,
): RemoteSpec {
  const r = parseRemote(field, value, defaultPort);
  const problem = remoteProblem(r, local);
  if (problem) throw new ConfigError(field, value, problem);
  return r;
}

/** `.vnis[0].remotes[1]` for a path. */
function pathText(path: readonly PropertyKey[]): string {
  return path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('');
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const k of path)
    v = v === null || typeof v !== 'object' ? undefined : (v as Record<PropertyKey, unknown>)[k];
  return v;
}

/** The first schema issue, in the form every configuration error takes. */
function schemaError(err: z.ZodError, raw: unknown, where: string): ConfigError {
  const iss = err.issues[0];
  let path = iss.path as (string | number)[];
  let reason = iss.message;
  if (iss.code === 'unrecognized_keys') {
    reason = `unknown setting (known: ${knownKeys(path).join(', ')})`;
    path = [...path, iss.keys[0]];
  }
  return new ConfigError(`${where}${pathText(path)}`, valueAt(raw, path), reason, path);
}

/**
 * Validate a configuration object (from YAML, or assembled from flags): the schema (types,
 * defaults, known keys), then what depends on several settings at once. Every error names the
 * field and its value, and carries its path.
 */
export function validate(raw: Record<string, unknown>, where = 'config'): Config {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw schemaError(parsed.error, raw, where);
  const c = parsed.data;
  const fail: Fail = (path, value, reason) => {
    throw new ConfigError(`${where}${pathText(path)}`, value, reason, path);
  };
  const local =
    canonicalAddress(c.local) ?? fail(['local'], c.local, 'must be an IPv4 or IPv6 address');
  const [lo, hi] = c.sourcePorts.split('-');
  const sourcePortMin = integer(`${where}.sourcePorts`, lo, 1, 65535, c.sourcePorts);
  if (Number(hi) < sourcePortMin)
    fail(['sourcePorts'], c.sourcePorts, 'must be MIN-MAX with MIN ≤ MAX');
  const sourcePortMax = integer(`${where}.sourcePorts`, hi, sourcePortMin, 65535, c.sourcePorts);
  const ageingS =
    typeof c.ageing === 'number' || /^[0-9]{1,9}(\.[0-9]{1,3})?$/.test(c.ageing)
      ? Number(c.ageing)
      : NaN;
  if (!Number.isFinite(ageingS) || ageingS <= 0 || ageingS > 1_000_000)
    fail(['ageing'], raw.ageing, 'must be a number of seconds in (0, 1000000]');
  for (const k of ['udp6ZeroChecksumTx', 'udp6ZeroChecksumRx'] as const)
    if (c[k] && isIPv4(local))
      fail(
        [k],
        true,
        `applies to an IPv6 underlay; local ${local} is IPv4 (IPv4 may always send a zero checksum)`,
      );
  let metrics: string | undefined;
  if (c.metrics !== undefined) {
    // `:9110`, the exporters' convention for every address
    const text =
      typeof c.metrics === 'string' && /^:\d+$/.test(c.metrics) ? `0.0.0.0${c.metrics}` : c.metrics;
    if (typeof text === 'string' && /^\d+$/.test(text))
      fail(
        ['metrics'],
        c.metrics,
        'must be ADDR:PORT, or :PORT for every address (e.g. 127.0.0.1:9110 or :9110)',
      );
    const m = parseRemote(`${where}.metrics`, text, 0);
    if (m.port === 0)
      fail(
        ['metrics'],
        c.metrics,
        'must be ADDR:PORT, or :PORT for every address (e.g. 127.0.0.1:9110 or :9110)',
      );
    metrics = formatRemote(m, -1);
  }
  const ovsdb = c.ovsdb === undefined ? undefined : ovsdbOf(c.ovsdb, c.local, local, fail);
  if (!ovsdb && c.vnis.length === 0) fail(['vnis'], raw.vnis, 'must list at least one VNI');
  return {
    local,
    port: c.port,
    underlayMtu: c.underlayMtu,
    tapOffload: c.tapOffload,
    udp6ZeroChecksumTx: c.udp6ZeroChecksumTx,
    udp6ZeroChecksumRx: c.udp6ZeroChecksumRx,
    ...(metrics !== undefined ? { metrics } : {}),
    ...(c.bfd ? { bfd: bfdOf(c, fail) } : {}),
    control: c.control === undefined ? undefined : checkControlPath(`${where}.control`, c.control),
    ageingMs: Math.round(ageingS * 1000),
    maxEntries: c.maxEntries,
    reservedBits: c.reservedBits,
    invalidSourceMac: c.invalidSourceMac,
    sourcePortMode: c.sourcePortMode,
    sourcePortMin,
    sourcePortMax,
    ...(ovsdb ? { ovsdb } : {}),
    ...(c.evpn ? { evpn: evpnOf(c.evpn, c.local, local, fail) } : {}),
    ...(c.workers !== undefined ? { workers: c.workers } : {}),
    busyPoll: c.busyPoll,
    ioUring: c.ioUring,
    ...(c.nice !== undefined ? { nice: c.nice } : {}),
    outer: outerOf(c, {}, [], isIPv6(local) ? 6 : 4, fail),
    vnis: vnisOf(c, local, ovsdb, where, fail),
  };
}

/** `bfd:`: its management VNI must be one of the file's. */
function bfdOf(c: z.output<typeof configSchema>, fail: Fail): NonNullable<Config['bfd']> {
  const b = c.bfd!;
  if (b.vni !== undefined && !c.vnis.some((v) => v.vni === b.vni))
    fail(['bfd', 'vni'], b.vni, `is not a configured VNI (${c.vnis.map((v) => v.vni).join(', ')})`);
  return {
    intervalMs: b.interval,
    multiplier: b.multiplier,
    ...(b.vni !== undefined ? { vni: b.vni } : {}),
  };
}

type OuterKeys = { [K in keyof typeof outerShape]?: z.output<(typeof outerShape)[K]> };

/**
 * An outer-header policy: `own` keys over `base`, checked against the underlay's family (DF and
 * the IPv4 checksum are IPv4 fields, the flow label IPv6's, as for Linux VXLAN).
 */
function outerOf(
  own: OuterKeys,
  base: OuterPolicy,
  path: (string | number)[],
  family: 4 | 6,
  fail: Fail,
): OuterPolicy {
  const p: OuterPolicy = { ...base };
  if (own.ttl !== undefined) {
    if (own.ttl === 'auto') delete p.ttl;
    else p.ttl = own.ttl as number | 'inherit';
  }
  if (own.tos !== undefined) {
    if (typeof own.tos === 'number' && own.tos & 3)
      fail(
        [...path, 'tos'],
        own.tos,
        `sets ECN bits (0x${(own.tos & 3).toString(16)}): ECN follows RFC 6040, not a setting; give DSCP << 2, e.g. 0x${(own.tos & 0xfc).toString(16)}`,
      );
    p.tos = own.tos as number | 'inherit';
  }
  const only = (key: 'df' | 'flowLabel' | 'udpCsum', fam: 4 | 6, value: unknown) => {
    if (family !== fam)
      fail(
        [...path, key],
        value,
        `applies to an IPv${fam} underlay; local is IPv${family}${key === 'udpCsum' ? ' (see udp6ZeroChecksumTx)' : ''}`,
      );
  };
  if (own.df !== undefined) {
    only('df', 4, own.df);
    p.df = own.df;
  }
  if (own.flowLabel !== undefined) {
    only('flowLabel', 6, own.flowLabel);
    p.flowLabel = own.flowLabel as number | 'inherit';
  }
  if (own.udpCsum !== undefined) {
    only('udpCsum', 4, own.udpCsum);
    p.udpCsum = own.udpCsum;
  }
  return p;
}

type Fail = (path: (string | number)[], value: unknown, reason: string) => never;
type Parsed = z.output<typeof configSchema>;

/** `ovsdb:` checked against itself and the underlay it announces. */
function ovsdbOf(
  o: NonNullable<Parsed['ovsdb']>,
  given: string,
  local: string,
  fail: Fail,
): OvsdbSpec {
  const why: { reason?: string } = {};
  if (!targetOf(o.target, why)) fail(['ovsdb', 'target'], o.target, why.reason!);
  if (o.target.startsWith('ssl:'))
    for (const k of ['privateKey', 'certificate', 'caCert'] as const)
      if (o[k] === undefined)
        fail(
          ['ovsdb', k],
          undefined,
          'is needed for an ssl: target (our key, our certificate, the CA of the server)',
        );
  // The schema's only encapsulation is vxlan_over_ipv4, and tunnel_ips must name an address.
  if (!isIPv4(local) || local === '0.0.0.0')
    fail(
      ['local'],
      given,
      'must be the IPv4 address announced as tunnel_ips when ovsdb is configured (hardware_vtep knows vxlan_over_ipv4 only)',
    );
  const names = new Set<string>();
  o.ports.forEach((name, i) => {
    if (names.has(name)) fail(['ovsdb', 'ports', i], name, 'appears twice');
    names.add(name);
  });
  return {
    target: o.target,
    physicalSwitch: o.physicalSwitch,
    ports: o.ports,
    ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
    ...(o.privateKey !== undefined ? { privateKey: o.privateKey } : {}),
    ...(o.certificate !== undefined ? { certificate: o.certificate } : {}),
    ...(o.caCert !== undefined ? { caCert: o.caCert } : {}),
    ...(o.maxMessageMiB !== undefined ? { maxMessageMiB: o.maxMessageMiB } : {}),
  };
}

/** `evpn:` checked: a reachable gobgpd address, and an underlay address to announce. */
function evpnOf(
  e: NonNullable<Parsed['evpn']>,
  given: string,
  local: string,
  fail: Fail,
): EvpnSpec {
  const m = /^(.+):(\d+)$/.exec(e.gobgp);
  const host = m?.[1]?.replace(/^\[|\]$/g, '');
  if (!m || !host || Number(m[2]) < 1 || Number(m[2]) > 65535)
    fail(
      ['evpn', 'gobgp'],
      e.gobgp,
      "must be HOST:PORT of gobgpd's gRPC API, e.g. 127.0.0.1:50051",
    );
  if (e.routerId !== undefined && (!isIPv4(e.routerId) || e.routerId === '0.0.0.0'))
    fail(['evpn', 'routerId'], e.routerId, 'must be an IPv4 address (a BGP identifier)');
  if (local === '0.0.0.0' || local === '::')
    fail(['local'], given, 'must be the address to announce as our VTEP when evpn is configured');
  return {
    gobgp: e.gobgp,
    holdTimeS: e.holdTime,
    ...(e.routerId !== undefined ? { routerId: e.routerId } : {}),
    ...(e.asn !== undefined ? { asn: e.asn } : {}),
    ...(e.protoDir !== undefined ? { protoDir: e.protoDir } : {}),
  };
}

/** `AS:N`, `A.B.C.D:N` (route distinguisher: N < 65536 after an address or a 4-byte AS). */
const RD_RT = /^(\d+|\d+\.\d+\.\d+\.\d+):(\d+)$/;

function rdRtOk(text: string): boolean {
  const m = RD_RT.exec(text);
  if (!m) return false;
  const admin = m[1]!;
  const n = Number(m[2]);
  if (admin.includes('.')) return isIPv4(admin) && n <= 0xffff;
  const asn = Number(admin);
  if (asn > 0xffffffff) return false;
  return asn > 0xffff ? n <= 0xffff : n <= 0xffffffff;
}

function vniEvpnOf(
  v: Parsed['vnis'][number],
  i: number,
  fail: Fail,
): { evpn?: false | { rd?: string; rt?: string[] } } {
  const e = v.evpn;
  const at = ['vnis', i, 'evpn'];
  if (e === undefined) return {};
  if (e === false) return { evpn: false };
  if (typeof e !== 'object' || e === null || Array.isArray(e))
    fail(at, e, 'must be a mapping of rd and rt, or false');
  const o = e as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'rd' && k !== 'rt') fail([...at, k], o[k], 'is not a setting here (rd, rt)');
  const rd = o.rd;
  if (rd !== undefined && (typeof rd !== 'string' || !rdRtOk(rd)))
    fail([...at, 'rd'], rd, 'must be a route distinguisher like 192.0.2.2:100 or 65000:100');
  const given = o.rt;
  if (given !== undefined && typeof given !== 'string' && !Array.isArray(given))
    fail([...at, 'rt'], given, 'must be a route target like 65000:100, or a list of them');
  const rts = given === undefined ? undefined : [given].flat();
  rts?.forEach((rt, j) => {
    if (typeof rt !== 'string' || !rdRtOk(rt))
      fail(
        [...at, 'rt', ...(Array.isArray(given) ? [j] : [])],
        rt,
        'must be a route target like 65000:100',
      );
  });
  return {
    evpn: {
      ...(rd !== undefined ? { rd: rd as string } : {}),
      ...(rts !== undefined ? { rt: rts as string[] } : {}),
    },
  };
}

/** The VNIs: unique numbers and TAPs (none an OVSDB port), their remotes checked. */
function vnisOf(
  c: Parsed,
  local: string,
  ovsdb: OvsdbSpec | undefined,
  where: string,
  fail: Fail,
): VniSpec[] {
  const family = isIPv6(local) ? 6 : 4;
  const base = outerOf(c, {}, [], family, fail);
  const seen = new Set<number>();
  const taps = new Set<string>(ovsdb?.ports);
  return c.vnis.map((v, i) => {
    const tap = v.tap ?? `vtep${v.vni}`;
    if (seen.has(v.vni)) fail(['vnis', i, 'vni'], v.vni, 'appears twice');
    if (taps.has(tap))
      fail(
        ['vnis', i, 'tap'],
        tap,
        ovsdb?.ports.includes(tap) ? 'is an ovsdb port' : 'is used by two VNIs',
      );
    seen.add(v.vni);
    taps.add(tap);
    return {
      vni: v.vni,
      tap,
      mtu: v.mtu ?? c.mtu,
      mac: v.mac,
      remotes: remotesOf(v.remotes, i, local, c.port, where, fail),
      ...groupOf(v, i, local, fail),
      learnRemotes: v.learnRemotes ?? v.group !== undefined,
      learning: v.learning,
      maxEntries: v.maxEntries,
      suppressArp: v.suppressArp,
      ...(v.bridge !== undefined ? { bridge: v.bridge } : {}),
      outer: outerOf(v, base, ['vnis', i], family, fail),
      ...vniEvpnOf(v, i, fail),
      ...(v.bfd === false
        ? { bfd: false as const }
        : v.bfd
          ? {
              bfd: {
                intervalMs: v.bfd.interval ?? c.bfd?.interval ?? BFD_DEFAULTS.intervalMs,
                multiplier: v.bfd.multiplier ?? c.bfd?.multiplier ?? BFD_DEFAULTS.multiplier,
              },
            }
          : {}),
    };
  });
}

/**
 * A VNI's multicast group and its interface: a group address of the underlay's family (not a
 * link-local one: 224.0.0.0/24 and ff02:: are for protocols on one link, not for tunnels), and
 * with a wildcard `local` an `interface` to join it on, for there is no address to tell it by.
 */
function groupOf(
  v: Parsed['vnis'][number],
  i: number,
  local: string,
  fail: Fail,
): { group?: string; interface?: string } {
  if (v.group === undefined) {
    if (v.interface !== undefined)
      fail(['vnis', i, 'interface'], v.interface, 'is the interface of a group: give group too');
    return {};
  }
  const group = canonicalAddress(v.group);
  const v4 = group !== undefined && isIPv4(group);
  if (group === undefined || !isMulticastAddress(group))
    fail(
      ['vnis', i, 'group'],
      v.group,
      'must be a multicast group address such as 239.1.1.1 or ff05::100',
    );
  if (v4 !== isIPv4(local))
    fail(['vnis', i, 'group'], v.group, `is not of the same IP family as local ${local}`);
  if (v4 ? /^224\.0\.0\./.test(group) : /^ff[0-9a-f][12]:/i.test(group))
    fail(
      ['vnis', i, 'group'],
      v.group,
      'is a link-local or node-local group (224.0.0.0/24, ffx1::, ffx2::), reserved for protocols; use an administratively scoped one such as 239.1.1.1 or ff05::100',
    );
  if (v.interface === undefined && isUnspecified(local))
    fail(
      ['vnis', i, 'interface'],
      undefined,
      `is needed with a group when local is ${local}: the interface to join ${group} on`,
    );
  return { group, ...(v.interface !== undefined ? { interface: v.interface } : {}) };
}

/** A VNI's remotes: each an address other than ours, none twice. */
function remotesOf(
  list: readonly unknown[],
  i: number,
  local: string,
  port: number,
  where: string,
  fail: Fail,
): RemoteSpec[] {
  const remotes: RemoteSpec[] = [];
  list.forEach((r, k) => {
    const field = `${where}.vnis[${i}].remotes[${k}]`;
    let spec: RemoteSpec;
    try {
      spec = checkRemote(field, r, local, port);
    } catch (err) {
      const e = err as ConfigError;
      throw new ConfigError(e.field, e.value, e.reason, ['vnis', i, 'remotes', k]);
    }
    const twin = remotes.findIndex((o) => o.address === spec.address && o.port === spec.port);
    // `bridge fdb append` refuses a duplicate too: it would send every flooded frame twice.
    if (twin >= 0)
      fail(
        ['vnis', i, 'remotes', k],
        r,
        `is the same remote as ${where}.vnis[${i}].remotes[${twin}] ${JSON.stringify(list[twin])}`,
      );
    remotes.push(spec);
  });
  return remotes;
}

/** Bytes of a unix socket path (sun_path holds 108 with its terminating zero). */
export const MAX_SOCKET_PATH = 107;

/** A control socket path that fits sun_path; longer ones would bind a cut name. */
export function checkControlPath(field: string, path: string): string {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH)
    throw new ConfigError(
      field,
      path,
      `is ${bytes} bytes; a unix socket path holds at most ${MAX_SOCKET_PATH}`,
    );
  return path;
}

/** The largest configuration file read: a file of thousands of VNIs is a few hundred KiB. */
export const MAX_CONFIG_BYTES = 16 << 20;
/** YAML aliases a file may expand (the "billion laughs" guard; a real file uses none or few). */
export const MAX_CONFIG_ALIASES = 100;

/**
 * Read and validate a YAML configuration file. Only a regular file of at most
 * MAX_CONFIG_BYTES is read (a FIFO would block the reader, /dev/zero would never end): it is
 * opened without blocking and checked before a byte is read. An error names the file, line and
 * column of the value at fault (`/etc/vtep.yaml:7:9 vnis[0].remotes[1]`), as a compiler would.
 * Synchronous, for `vtep run` before it forwards and for `vtep setup`; a running vtep reloads
 * with `readConfigFile`.
 */
export function loadConfigFile(path: string): Config {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw unreadable(path, err);
  }
  try {
    const size = checkFile(path, fstatSync(fd));
    const buf = Buffer.alloc(size + 1);
    let got = 0;
    for (let n; got < buf.length && (n = readSync(fd, buf, got, buf.length - got, null)) > 0;)
      got += n;
    return parseConfigText(path, text(path, buf, got));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw unreadable(path, err);
  } finally {
    closeSync(fd);
  }
}

/** `loadConfigFile` without blocking the event loop: for reloads while forwarding. */
export async function readConfigFile(path: string): Promise<Config> {
  let fh: FileHandle;
  try {
    fh = await open(path, OPEN_FLAGS);
  } catch (err) {
    throw unreadable(path, err);
  }
  try {
    const size = checkFile(path, await fh.stat());
    const buf = Buffer.alloc(size + 1);
    let got = 0;
    for (
      let n;
      got < buf.length && (n = (await fh.read(buf, got, buf.length - got)).bytesRead) > 0;
    )
      got += n;
    return parseConfigText(path, text(path, buf, got));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw unreadable(path, err);
  } finally {
    await fh.close();
  }
}

/** Read-only, and never waiting for a writer (a FIFO) or a carrier (a tty). */
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

const unreadable = (path: string, err: unknown) =>
  new ConfigError('--config', path, `cannot be read: ${(err as Error).message}`);

/** A regular file within the size limit: its size; anything else is refused by name. */
function checkFile(path: string, st: Stats): number {
  if (!st.isFile()) {
    const kind = st.isFIFO()
      ? 'a FIFO'
      : st.isCharacterDevice()
        ? 'a character device'
        : st.isBlockDevice()
          ? 'a block device'
          : st.isSocket()
            ? 'a socket'
            : st.isDirectory()
              ? 'a directory'
              : 'not a file';
    throw new ConfigError('--config', path, `is not a regular file (${kind})`);
  }
  if (st.size > MAX_CONFIG_BYTES) throw tooBig(path, st.size);
  return st.size;
}

const tooBig = (path: string, size: number) =>
  new ConfigError(
    '--config',
    path,
    `is larger than ${MAX_CONFIG_BYTES >> 20} MiB (${size} bytes): not a vtep configuration`,
  );

/** The bytes read; a file that grew past the limit while read is refused too. */
function text(path: string, buf: Buffer, got: number): string {
  if (got > MAX_CONFIG_BYTES) throw tooBig(path, got);
  return buf.toString('utf8', 0, got);
}

/** The YAML text of the file at `path`, validated. */
export function parseConfigText(path: string, text: string): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const at = lines.linePos(e.pos[0]);
    throw new ConfigError(
      '--config',
      path,
      `is not valid YAML at line ${at.line}, column ${at.col}: ${e.message.split('\n')[0]}`,
    );
  }
  let raw: Record<string, unknown>;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_CONFIG_ALIASES }) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(
      '--config',
      path,
      `expands YAML aliases too far (at most ${MAX_CONFIG_ALIASES}): ${(err as Error).message}`,
    );
  }
  try {
    return validate(raw, path);
  } catch (err) {
    if (!(err instanceof ConfigError) || err.path === undefined) throw err;
    // The node of the value at fault, or of the nearest enclosing one that exists (a missing key).
    let node: unknown;
    for (let n = err.path.length; n >= 0 && !node; n--)
      node = doc.getIn(err.path.slice(0, n), true);
    const range = (node as { range?: [number, number] } | undefined)?.range ?? [0, 0];
    const at = lines.linePos(range[0]);
    throw new ConfigError(
      `${path}:${at.line}:${at.col} ${pathText(err.path).slice(1)}`,
      err.value,
      err.reason.split(`${path}.`).join(''), // other places it names, relative to the file
      err.path,
    );
  }
}

/** `192.0.2.1`, or `192.0.2.1:8472` / `[2001:db8::1]:8472` when the port is not `defaultPort`. */
export function formatRemote(r: RemoteSpec, defaultPort: number): string {
  if (r.port === defaultPort) return r.address;
  return isIPv4(r.address) ? `${r.address}:${r.port}` : `[${r.address}]:${r.port}`;
}

/**
 * The settings `validate` turns into `cfg`, in the YAML file's own keys: what `vtep showconf`
 * prints, and what live changes (`vtep remote add`, …) edit before validating the result again.
 * `validate(toSettings(cfg))` gives `cfg` back. Defaults are written out, so the file says
 * exactly what runs.
 */
export function toSettings(cfg: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {
    local: cfg.local,
    port: cfg.port,
    ...(cfg.control !== undefined ? { control: cfg.control } : {}),
    ageing: cfg.ageingMs / 1000,
    maxEntries: cfg.maxEntries,
    reservedBits: cfg.reservedBits,
    invalidSourceMac: cfg.invalidSourceMac,
    sourcePortMode: cfg.sourcePortMode,
    sourcePorts: `${cfg.sourcePortMin}-${cfg.sourcePortMax}`,
    ...(cfg.underlayMtu !== undefined ? { underlayMtu: cfg.underlayMtu } : {}),
    ...(cfg.tapOffload ? {} : { tapOffload: false }),
    ...(cfg.udp6ZeroChecksumTx ? { udp6ZeroChecksumTx: true } : {}),
    ...(cfg.udp6ZeroChecksumRx ? { udp6ZeroChecksumRx: true } : {}),
    ...(cfg.metrics !== undefined ? { metrics: cfg.metrics } : {}),
    ...(cfg.bfd
      ? {
          bfd: {
            interval: cfg.bfd.intervalMs,
            multiplier: cfg.bfd.multiplier,
            ...(cfg.bfd.vni !== undefined ? { vni: cfg.bfd.vni } : {}),
          },
        }
      : {}),
    ...(cfg.ovsdb !== undefined ? { ovsdb: { ...cfg.ovsdb, ports: [...cfg.ovsdb.ports] } } : {}),
    ...(cfg.evpn !== undefined
      ? {
          evpn: {
            gobgp: cfg.evpn.gobgp,
            ...(cfg.evpn.routerId !== undefined ? { routerId: cfg.evpn.routerId } : {}),
            ...(cfg.evpn.asn !== undefined ? { asn: cfg.evpn.asn } : {}),
            holdTime: cfg.evpn.holdTimeS,
            ...(cfg.evpn.protoDir !== undefined ? { protoDir: cfg.evpn.protoDir } : {}),
          },
        }
      : {}),
    ...(cfg.workers !== undefined ? { workers: cfg.workers } : {}),
    ...(cfg.busyPoll ? { busyPoll: cfg.busyPoll } : {}),
    ...(cfg.ioUring ? {} : { ioUring: false }),
    ...(cfg.nice !== undefined ? { nice: cfg.nice } : {}),
    ...cfg.outer,
    vnis: cfg.vnis.map((v) => ({
      vni: v.vni,
      tap: v.tap,
      ...(v.mtu !== undefined ? { mtu: v.mtu } : {}),
      ...(v.mac !== undefined ? { mac: v.mac } : {}),
      remotes: v.remotes.map((r) => formatRemote(r, cfg.port)),
      learnRemotes: v.learnRemotes,
      learning: v.learning,
      ...(v.maxEntries !== undefined ? { maxEntries: v.maxEntries } : {}),
      ...(v.suppressArp ? { suppressArp: true } : {}),
      ...(v.bridge !== undefined ? { bridge: v.bridge } : {}),
      ...(v.group !== undefined ? { group: v.group } : {}),
      ...(v.bfd === false
        ? { bfd: false }
        : v.bfd
          ? { bfd: { interval: v.bfd.intervalMs, multiplier: v.bfd.multiplier } }
          : {}),
      ...(v.interface !== undefined ? { interface: v.interface } : {}),
      ...(v.evpn === false ? { evpn: false } : v.evpn ? { evpn: { ...v.evpn } } : {}),
      ...v.outer,
      // a VNI back at the route's TTL under a file-wide one says so (`outerOf` deletes `auto`)
      ...(v.outer.ttl === undefined && cfg.outer.ttl !== undefined ? { ttl: 'auto' } : {}),
    })),
  };
  return out;
}

/** The configuration as a YAML file that `vtep run --config` accepts (`vtep showconf`). */
export function toYaml(cfg: Config): string {
  return stringifyYaml(toSettings(cfg));
}
