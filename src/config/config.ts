import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { canonicalAddress } from '../io/addr.js';
import { DEFAULT_AGEING_MS, DEFAULT_MAX_ENTRIES } from '../fdb/fdb.js';
import { parseMac } from '../wire/mac.js';
import { VXLAN_PORT } from '../wire/udp.js';
import { MAX_VNI, type ReservedBitsPolicy } from '../wire/vxlan.js';

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
}

export interface Config {
  local: string;
  port: number;
  /** MTU of the underlay path; undefined: the MTU of the interface holding `local` (else 1500). */
  underlayMtu?: number;
  /** IPv6 underlay: send a zero UDP checksum (RFC 6935; Linux `udp6zerocsumtx`). */
  udp6ZeroChecksumTx: boolean;
  /** IPv6 underlay: accept a zero UDP checksum (Linux `udp6zerocsumrx`). */
  udp6ZeroChecksumRx: boolean;
  /** Where to serve Prometheus metrics, `ADDR:PORT` (canonical); off when undefined. */
  metrics?: string;
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
  vnis: VniSpec[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_CONFIG';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly reason: string,
  ) {
    super(
      value === undefined
        ? `missing ${field}: ${reason}`
        : `invalid ${field} ${JSON.stringify(value)}: ${reason}`,
    );
  }
}

/**
 * A decimal integer in min..max. Strings (flags, `"port": "4789"` in YAML) must be plain digits:
 * `1e3`, `' 5'`, `0x10` and `5.0` are refused rather than read as something the user did not
 * write. `quoted` is the value the error names (a whole `A:PORT` rather than just its port).
 */
export function integer(
  field: string,
  value: unknown,
  min: number,
  max: number,
  quoted: unknown = value,
): number {
  const n = typeof value === 'string' && /^-?[0-9]{1,16}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(field, quoted, `must be an integer in ${min}..${max}`);
  }
  return n;
}

function bool(field: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  throw new ConfigError(field, value, 'must be true or false');
}

function address(field: string, value: unknown): string {
  const canonical = typeof value === 'string' ? canonicalAddress(value) : undefined;
  if (canonical === undefined)
    throw new ConfigError(field, value, 'must be an IPv4 or IPv6 address');
  return canonical;
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
  if (canonical === undefined)
    throw new ConfigError(field, value, 'must be an IPv4 or IPv6 address, optionally with :port');
  return {
    address: canonical,
    port: port === undefined ? defaultPort : integer(field, port, 1, 65535, value),
  };
}

const IPV4_MULTICAST = /^(22[4-9]|23\d)\./;

/**
 * Why `r` cannot be a remote VTEP of an endpoint bound to `local`, or undefined. One check for
 * `vtep run` and for `vtep fdb add|flush` on the control socket, so neither accepts what the
 * other refuses. `local` is canonical; `0.0.0.0` / `::` means "any address of this family".
 */
export function remoteProblem(r: RemoteSpec, local: string): string | undefined {
  const v4 = isIPv4(r.address);
  if (v4 !== isIPv4(local)) return `is not of the same IP family as local ${local}`;
  if (r.address === '0.0.0.0' || r.address === '::') return 'is the unspecified address';
  if (r.address === '255.255.255.255') return 'is the broadcast address';
  if (v4 ? IPV4_MULTICAST.test(r.address) : /^ff/i.test(r.address))
    return 'is a multicast group (vtep replicates to unicast remotes; list them instead)';
  if (r.address === local) return 'is our own local address (a loop)';
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

/**
 * The largest TAP MTU: the frame (MTU + 18 with a tag) plus VXLAN, UDP and IPv6 headers must fit
 * one UDP datagram. Receive slots are sized from the configured MTU, so any MTU accepted here is
 * carried whole (jumbo frames were cut at 2 KiB before).
 */
export const MAX_TAP_MTU = 65535 - 18 - 8 - 8 - 40;

const TAP_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

function vniSpec(
  field: string,
  raw: Record<string, unknown>,
  defaults: { mtu?: number; local: string; port: number },
): VniSpec {
  if (typeof raw !== 'object' || raw === null)
    throw new ConfigError(field, raw, 'must be a mapping');
  known(field, raw, [
    'vni',
    'tap',
    'mtu',
    'mac',
    'remotes',
    'learnRemotes',
    'learning',
    'maxEntries',
    'suppressArp',
  ]);
  const vni = integer(`${field}.vni`, raw.vni, 0, MAX_VNI);
  const tap = raw.tap ?? `vtep${vni}`;
  if (typeof tap !== 'string' || !TAP_NAME.test(tap)) {
    throw new ConfigError(
      `${field}.tap`,
      tap,
      'must be an interface name of 1..15 letters, digits, "_", "." or "-"',
    );
  }
  const remotesRaw = raw.remotes ?? [];
  if (!Array.isArray(remotesRaw))
    throw new ConfigError(`${field}.remotes`, remotesRaw, 'must be a list of addresses');
  const remotes: RemoteSpec[] = [];
  remotesRaw.forEach((r, i) => {
    const spec = checkRemote(`${field}.remotes[${i}]`, r, defaults.local, defaults.port);
    const twin = remotes.findIndex((o) => o.address === spec.address && o.port === spec.port);
    // `bridge fdb append` refuses a duplicate too: it would send every flooded frame twice.
    if (twin >= 0)
      throw new ConfigError(
        `${field}.remotes[${i}]`,
        r,
        `is the same remote as ${field}.remotes[${twin}] ${JSON.stringify(remotesRaw[twin])}`,
      );
    remotes.push(spec);
  });
  if (raw.mac !== undefined && (typeof raw.mac !== 'string' || parseMac(raw.mac) === undefined)) {
    throw new ConfigError(`${field}.mac`, raw.mac, 'must be a MAC address like 02:00:00:00:00:01');
  }
  return {
    vni,
    tap,
    mtu: raw.mtu === undefined ? defaults.mtu : integer(`${field}.mtu`, raw.mtu, 68, MAX_TAP_MTU),
    mac: raw.mac as string | undefined,
    remotes,
    learnRemotes: bool(`${field}.learnRemotes`, raw.learnRemotes, false),
    learning: bool(`${field}.learning`, raw.learning, true),
    suppressArp: bool(`${field}.suppressArp`, raw.suppressArp, false),
    maxEntries:
      raw.maxEntries === undefined
        ? undefined
        : integer(`${field}.maxEntries`, raw.maxEntries, 1, 16_777_216),
  };
}

function known(field: string, raw: Record<string, unknown>, keys: string[]): void {
  for (const k of Object.keys(raw)) {
    if (!keys.includes(k))
      throw new ConfigError(`${field}.${k}`, raw[k], `unknown setting (known: ${keys.join(', ')})`);
  }
}

/** Validate a configuration object (from YAML, or assembled from flags). */
export function validate(raw: Record<string, unknown>, where = 'config'): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ConfigError(where, raw, 'must be a mapping');
  known(where, raw, [
    'local',
    'port',
    'control',
    'ageing',
    'maxEntries',
    'reservedBits',
    'invalidSourceMac',
    'sourcePorts',
    'sourcePortMode',
    'mtu',
    'underlayMtu',
    'udp6ZeroChecksumTx',
    'udp6ZeroChecksumRx',
    'metrics',
    'vnis',
  ]);
  const local = address(`${where}.local`, raw.local ?? '0.0.0.0');
  const reservedBits = raw.reservedBits ?? 'drop';
  if (reservedBits !== 'drop' && reservedBits !== 'ignore') {
    throw new ConfigError(`${where}.reservedBits`, reservedBits, 'must be "drop" or "ignore"');
  }
  const invalidSourceMac = raw.invalidSourceMac ?? 'deliver';
  if (invalidSourceMac !== 'deliver' && invalidSourceMac !== 'drop') {
    throw new ConfigError(
      `${where}.invalidSourceMac`,
      invalidSourceMac,
      'must be "deliver" or "drop"',
    );
  }
  const mode = raw.sourcePortMode ?? 'hash';
  if (mode !== 'hash' && mode !== 'fixed')
    throw new ConfigError(`${where}.sourcePortMode`, mode, 'must be "hash" or "fixed"');
  const range = raw.sourcePorts ?? '49152-65535';
  const m = typeof range === 'string' ? /^(\d+)-(\d+)$/.exec(range) : null;
  if (!m)
    throw new ConfigError(
      `${where}.sourcePorts`,
      raw.sourcePorts,
      'must be a range like 49152-65535',
    );
  const sourcePortMin = integer(`${where}.sourcePorts`, m[1], 1, 65535, range);
  if (Number(m[2]) < sourcePortMin)
    throw new ConfigError(`${where}.sourcePorts`, range, 'must be MIN-MAX with MIN ≤ MAX');
  const sourcePortMax = integer(`${where}.sourcePorts`, m[2], sourcePortMin, 65535, range);
  const control = raw.control;
  if (control !== undefined && (typeof control !== 'string' || control === '')) {
    throw new ConfigError(`${where}.control`, control, 'must be a path');
  }
  const vnisRaw = raw.vnis;
  if (!Array.isArray(vnisRaw) || vnisRaw.length === 0)
    throw new ConfigError(`${where}.vnis`, vnisRaw, 'must list at least one VNI');
  const mtu = raw.mtu === undefined ? undefined : integer(`${where}.mtu`, raw.mtu, 68, MAX_TAP_MTU);
  const zeroTx = bool(`${where}.udp6ZeroChecksumTx`, raw.udp6ZeroChecksumTx, false);
  const zeroRx = bool(`${where}.udp6ZeroChecksumRx`, raw.udp6ZeroChecksumRx, false);
  for (const [k, on] of [
    ['udp6ZeroChecksumTx', zeroTx],
    ['udp6ZeroChecksumRx', zeroRx],
  ] as const)
    if (on && isIPv4(local))
      throw new ConfigError(
        `${where}.${k}`,
        true,
        `applies to an IPv6 underlay; local ${local} is IPv4 (IPv4 may always send a zero checksum)`,
      );
  let metrics: string | undefined;
  if (raw.metrics !== undefined) {
    const m = parseRemote(`${where}.metrics`, raw.metrics, 0);
    if (m.port === 0)
      throw new ConfigError(
        `${where}.metrics`,
        raw.metrics,
        'must be ADDR:PORT, e.g. 127.0.0.1:9110',
      );
    metrics = formatRemote(m, -1);
  }
  const underlayMtu =
    raw.underlayMtu === undefined
      ? undefined
      : integer(`${where}.underlayMtu`, raw.underlayMtu, 576, 65535);
  const port = raw.port === undefined ? VXLAN_PORT : integer(`${where}.port`, raw.port, 1, 65535);
  const vnis = vnisRaw.map((v, i) =>
    vniSpec(`${where}.vnis[${i}]`, v as Record<string, unknown>, { mtu, local, port }),
  );
  const seen = new Set<number>();
  const taps = new Set<string>();
  vnis.forEach((v, i) => {
    if (seen.has(v.vni)) throw new ConfigError(`${where}.vnis[${i}].vni`, v.vni, 'appears twice');
    if (taps.has(v.tap))
      throw new ConfigError(`${where}.vnis[${i}].tap`, v.tap, 'is used by two VNIs');
    seen.add(v.vni);
    taps.add(v.tap);
  });
  const ageing = raw.ageing === undefined ? DEFAULT_AGEING_MS / 1000 : raw.ageing;
  if (typeof ageing !== 'number' && typeof ageing !== 'string')
    throw new ConfigError(`${where}.ageing`, ageing, 'must be seconds');
  const ageingS =
    typeof ageing === 'number' || /^[0-9]{1,9}(\.[0-9]{1,3})?$/.test(ageing) ? Number(ageing) : NaN;
  if (!Number.isFinite(ageingS) || ageingS <= 0 || ageingS > 1_000_000) {
    throw new ConfigError(`${where}.ageing`, ageing, 'must be a number of seconds in (0, 1000000]');
  }
  return {
    local,
    port,
    underlayMtu,
    udp6ZeroChecksumTx: zeroTx,
    udp6ZeroChecksumRx: zeroRx,
    ...(metrics !== undefined ? { metrics } : {}),
    control: control as string | undefined,
    ageingMs: Math.round(ageingS * 1000),
    maxEntries:
      raw.maxEntries === undefined
        ? DEFAULT_MAX_ENTRIES
        : integer(`${where}.maxEntries`, raw.maxEntries, 1, 16_777_216),
    reservedBits,
    invalidSourceMac,
    sourcePortMode: mode,
    sourcePortMin,
    sourcePortMax,
    vnis,
  };
}

/** Read and validate a YAML configuration file. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', path, `cannot be read: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      '--config',
      path,
      `is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  return validate(raw as Record<string, unknown>, path);
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
    ...(cfg.udp6ZeroChecksumTx ? { udp6ZeroChecksumTx: true } : {}),
    ...(cfg.udp6ZeroChecksumRx ? { udp6ZeroChecksumRx: true } : {}),
    ...(cfg.metrics !== undefined ? { metrics: cfg.metrics } : {}),
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
    })),
  };
  return out;
}

/** The configuration as a YAML file that `vtep run --config` accepts (`vtep showconf`). */
export function toYaml(cfg: Config): string {
  return stringifyYaml(toSettings(cfg));
}
