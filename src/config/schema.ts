import { z } from 'zod';
import { DEFAULT_MAX_ENTRIES } from '../fdb/fdb.js';
import { VXLAN_PORT } from '../wire/udp.js';
import { MAX_VNI } from '../wire/vxlan.js';
import { parseMac } from '../wire/mac.js';

/**
 * The shape of vtep's configuration — the YAML file's keys, their types, defaults and the
 * messages for wrong values — as a zod schema. What depends on several settings together (a
 * remote against `local`, duplicate remotes, a VNI or TAP used twice, the order of a port range)
 * is checked after it, in config.ts.
 */

/**
 * The largest TAP MTU: the frame (MTU + 18 with a tag) plus VXLAN, UDP and IPv6 headers must fit
 * one UDP datagram. Receive slots are sized from the configured MTU, so any MTU accepted here is
 * carried whole.
 */
export const MAX_TAP_MTU = 65535 - 18 - 8 - 8 - 40;

export const TAP_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * A decimal integer in min..max. Strings (flags, `"port": "4789"` in YAML) must be plain digits:
 * `1e3`, `' 5'`, `0x10` and `5.0` are refused rather than read as something the user did not
 * write.
 */
export function intIn(min: number, max: number) {
  const error = `must be an integer in ${min}..${max}`;
  return z.preprocess(
    (v) => (typeof v === 'string' && /^-?[0-9]{1,16}$/.test(v) ? Number(v) : v),
    z.number({ error }).int({ error }).min(min, { error }).max(max, { error }),
  );
}

const bool = z.boolean({ error: 'must be true or false' });

function oneOf<T extends string>(...values: [T, ...T[]]) {
  return z.enum(values, { error: `must be ${values.map((v) => `"${v}"`).join(' or ')}` });
}

/** A mapping with exactly these keys (others are reported as unknown by the caller). */
function mapping<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'invalid_type' ? 'must be a mapping' : undefined),
  });
}

/**
 * A number in min..max, given as a YAML number or a string of decimal digits or 0x hex (`tos:
 * 0x28`, `--tos 0x28`, `--flow-label 0xabcde`), or one of `words`.
 */
function numberOr(min: number, max: number, words: string[], error: string) {
  return z.preprocess(
    (v) => (typeof v === 'string' && /^(0x[0-9a-f]{1,8}|[0-9]{1,10})$/i.test(v) ? Number(v) : v),
    z.union(
      [
        z.number({ error }).int({ error }).min(min, { error }).max(max, { error }),
        z.enum(words as [string, ...string[]], { error }),
      ],
      { error },
    ),
  );
}

/**
 * The outer header (Linux VXLAN `ttl`, `tos`, `df`, `flowlabel`, `[no]udpcsum`), at the top of
 * the file for every VNI and per VNI; ECN always follows RFC 6040.
 */
export const outerShape = {
  ttl: numberOr(1, 255, ['inherit', 'auto'], 'must be 1..255, "inherit" or "auto"').optional(),
  tos: numberOr(
    0,
    255,
    ['inherit'],
    'must be a TOS byte 0..255 (DSCP << 2, e.g. 0x28) or "inherit"',
  ).optional(),
  df: oneOf('set', 'unset', 'inherit').optional(),
  flowLabel: numberOr(
    0,
    0xfffff,
    ['inherit'],
    'must be a flow label 0..0xfffff or "inherit"',
  ).optional(),
  udpCsum: bool.optional(),
};

const isUnicastMac = (mac: number | undefined) =>
  mac === undefined || (mac !== 0 && Math.floor(mac / 2 ** 40) % 2 === 0);

export const BFD_DEFAULTS = { intervalMs: 300, multiplier: 3 } as const;

/** A VNI's own BFD timers (over the file's `bfd`), or `false`: no BFD with its remotes. */
const vniBfd = z.union(
  [
    z.literal(false),
    z.strictObject({
      interval: intIn(10, 60_000).optional(),
      multiplier: intIn(1, 255).optional(),
    }),
  ],
  { error: 'must be a mapping of interval and multiplier, or false' },
);

export const vniShape = {
  ...outerShape,
  bfd: vniBfd.optional(),
  /** EVPN RD and route targets, or false (checked in config.ts, which names the field). */
  evpn: z.unknown().optional(),
  vni: intIn(0, MAX_VNI),
  tap: z
    .string({ error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"' })
    .regex(TAP_NAME, {
      error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"',
    })
    .optional(),
  mtu: intIn(68, MAX_TAP_MTU).optional(),
  mac: z
    .string({ error: 'must be a MAC address like 02:00:00:00:00:01' })
    .refine((m) => parseMac(m) !== undefined, {
      error: 'must be a MAC address like 02:00:00:00:00:01',
    })
    // a device's own address: the kernel refuses a group or all-zeros one (EADDRNOTAVAIL)
    .refine((m) => isUnicastMac(parseMac(m)), {
      error: 'must be a unicast address (the first byte even, not all zeros)',
    })
    .optional(),
  /** Checked one by one against `local` afterwards. */
  remotes: z.array(z.unknown(), { error: 'must be a list of addresses' }).default([]),
  /** Default: on with a `group` (flood-and-learn), else off. */
  learnRemotes: bool.optional(),
  /** A multicast group to flood to and receive from (Linux VXLAN `group`); checked in config.ts. */
  group: z.string({ error: 'must be a multicast group address such as 239.1.1.1' }).optional(),
  /** The interface the group is joined on and sent from (Linux `dev`). */
  interface: z
    .string({ error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"' })
    .regex(TAP_NAME, {
      error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"',
    })
    .optional(),
  learning: bool.default(true),
  maxEntries: intIn(1, 16_777_216).optional(),
  suppressArp: bool.default(false),
  /** A Linux bridge the TAP is put into (at start, after re-creation and reload). */
  bridge: z
    .string({ error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"' })
    .regex(TAP_NAME, {
      error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"',
    })
    .optional(),
};

/** `ovsdb:`: vtep as a hardware_vtep gateway driven by OVN (ovn-controller-vtep) or vtep-ctl. */
/** `bfd:` BFD with every remote (RFC 5880/8971): intervals, and the VNI its packets go in. */
export const bfdShape = {
  /** Desired transmit and required receive interval, milliseconds. */
  interval: intIn(10, 60_000).default(BFD_DEFAULTS.intervalMs),
  /** Packets missed before the remote is declared down. */
  multiplier: intIn(1, 255).default(BFD_DEFAULTS.multiplier),
  /** A management VNI for every session; default: the first VNI each remote serves. */
  vni: intIn(0, 16_777_215).optional(),
};

/** `evpn:` BGP EVPN (RFC 7432/8365) through a gobgpd that is configured separately. */
export const evpnShape = {
  /** gobgpd's gRPC address, HOST:PORT (`gobgpd --api-hosts`). */
  gobgp: z.string({ error: "must be HOST:PORT of gobgpd's gRPC API, e.g. 127.0.0.1:50051" }),
  /** Default: gobgpd's (GetBgp). */
  routerId: z.string({ error: 'must be an IPv4 address' }).optional(),
  asn: intIn(1, 4_294_967_295).optional(),
  /** Seconds the routes learned are kept while gobgpd cannot be reached (BGP's default hold time). */
  holdTime: intIn(0, 65_535).default(90),
  /** Where GoBGP's API .proto files are (Debian: golang-github-osrg-gobgp-dev). */
  protoDir: z.string({ error: 'must be a path' }).optional(),
};

export const ovsdbShape = {
  /** `unix:PATH`, `tcp:HOST:PORT` or `ssl:HOST:PORT` (checked in config.ts). */
  target: z.string({ error: 'must be unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT' }),
  physicalSwitch: z
    .string({ error: 'must be a Physical_Switch name' })
    .min(1, { error: 'must be a Physical_Switch name' })
    .max(255, { error: 'must be at most 255 characters' }),
  /** TAPs created at start, one Physical_Port each; a port's VNI comes from its binding. */
  ports: z
    .array(
      z
        .string({ error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"' })
        .regex(TAP_NAME, {
          error: 'must be an interface name of 1..15 letters, digits, "_", "." or "-"',
        }),
      { error: 'must list at least one TAP name' },
    )
    .min(1, { error: 'must list at least one TAP name' }),
  mtu: intIn(68, MAX_TAP_MTU).optional(),
  /** ssl: our key, our certificate, and the CA that signed the server's (as ovs-vsctl -p -c -C). */
  privateKey: z.string({ error: 'must be a path' }).optional(),
  certificate: z.string({ error: 'must be a path' }).optional(),
  caCert: z.string({ error: 'must be a path' }).optional(),
  /** The largest message taken from the server, in MiB (a monitor's first answer has every row). */
  maxMessageMiB: intIn(1, 1024).optional(),
};

export const configShape = {
  ...outerShape,
  local: z.string({ error: 'must be an IPv4 or IPv6 address' }).default('0.0.0.0'),
  port: intIn(1, 65535).default(VXLAN_PORT),
  control: z.string({ error: 'must be a path' }).min(1, { error: 'must be a path' }).optional(),
  ageing: z.union([z.number(), z.string()], { error: 'must be seconds' }).default(300),
  maxEntries: intIn(1, 16_777_216).default(DEFAULT_MAX_ENTRIES),
  reservedBits: oneOf('drop', 'ignore').default('drop'),
  invalidSourceMac: oneOf('deliver', 'drop').default('deliver'),
  sourcePorts: z
    .string({ error: 'must be a range like 49152-65535' })
    .regex(/^\d+-\d+$/, { error: 'must be a range like 49152-65535' })
    .default('49152-65535'),
  sourcePortMode: oneOf('hash', 'fixed').default('hash'),
  mtu: intIn(68, MAX_TAP_MTU).optional(),
  underlayMtu: intIn(576, 65535).optional(),
  /** TAP offloads (virtio-net header, checksum, TCP and UDP segmentation): on unless false. */
  tapOffload: bool.default(true),
  udp6ZeroChecksumTx: bool.default(false),
  udp6ZeroChecksumRx: bool.default(false),
  metrics: z.string({ error: 'must be ADDR:PORT, e.g. 127.0.0.1:9110' }).optional(),
  ovsdb: mapping(ovsdbShape).optional(),
  bfd: mapping(bfdShape).optional(),
  evpn: mapping(evpnShape).optional(),
  /** Busy polling after a batch, microseconds (0: off; at most 100 ms). */
  busyPoll: intIn(0, 100_000).default(0),
  /** TAP I/O through io_uring where the kernel allows (default); false: readv/writev. */
  ioUring: bool.default(true),
  /** The process's scheduling niceness; unset: left as started. */
  nice: intIn(-20, 19).optional(),
  /** Data-plane threads (TAP queues and underlay sockets), at most 64; default: decided at start. */
  workers: intIn(1, 64).optional(),
  /** At least one unless `ovsdb` gives ports (checked in config.ts). */
  vnis: z.array(mapping(vniShape), { error: 'must list at least one VNI' }).default([]),
};

export const configSchema = mapping(configShape);

/** The keys a mapping at `path` may have, for "unknown setting" messages. */
export function knownKeys(path: readonly PropertyKey[]): string[] {
  if (path.length === 0) return Object.keys(configShape);
  const top: Record<string, object> = { ovsdb: ovsdbShape, bfd: bfdShape, evpn: evpnShape };
  return Object.keys(top[String(path[0])] ?? vniShape);
}
