import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, Option } from 'commander';
import {
  ConfigError,
  checkControlPath,
  loadConfigFile,
  readConfigFile,
  validate,
  type Config,
} from '../config/config.js';
import { LEVELS, LOG_FORMATS, type Level, type LogFormat } from '../util/log.js';
import { DEFAULT_CONTROL, collect } from './args.js';

/**
 * `vtep run`: flags or a file become a configuration, a logger is made, the endpoint is started
 * (src/daemon), and signals drive it: SIGHUP reloads, SIGINT and SIGTERM stop.
 */

/** Map config paths to the flags they came from, so errors name what the user typed. */
const FLAG_OF: [RegExp, string][] = [
  [/^flags\.vnis\[0\]\.remotes\[\d+\]$/, '--remote'],
  [/^flags\.vnis\[0\]\.vni$/, '--vni'],
  [/^flags\.vnis\[0\]\.tap$/, '--tap'],
  [/^flags\.vnis\[0\]\.mtu$/, '--mtu'],
  [/^flags\.vnis\[0\]\.mac$/, '--mac'],
  [/^flags\.vnis\[0\]\.bridge$/, '--bridge'],
  [/^flags\.vnis\[0\]\.group$/, '--group'],
  [/^flags\.vnis\[0\]\.interface$/, '--interface'],
  [/^flags\.maxEntries$/, '--max-entries'],
  [/^flags\.reservedBits$/, '--reserved-bits'],
  [/^flags\.invalidSourceMac$/, '--invalid-source-mac'],
  [/^flags\.sourcePorts$/, '--source-ports'],
  [/^flags\.sourcePortMode$/, '--source-port-mode'],
  [/^flags\.underlayMtu$/, '--underlay-mtu'],
  [/^flags\.tapOffload$/, '--no-tap-offload'],
  [/^flags\.flowLabel$/, '--flow-label'],
  [/^flags\.udpCsum$/, '--no-udp-csum'],
  [/^flags\.workers$/, '--workers'],
  [/^flags\.busyPoll$/, '--busy-poll'],
  [/^flags\.ioUring$/, '--no-io-uring'],
  [/^flags\.udp6ZeroChecksumTx$/, '--udp6-zero-checksum-tx'],
  [/^flags\.udp6ZeroChecksumRx$/, '--udp6-zero-checksum-rx'],
  [/^flags\.metrics$/, '--metrics'],
  [/^flags\.bfd\.interval$/, '--bfd-interval'],
  [/^flags\.bfd\.multiplier$/, '--bfd-multiplier'],
  [/^flags\.evpn\.gobgp$/, '--evpn-gobgp'],
  [/^flags\.evpn\.routerId$/, '--evpn-router-id'],
  [/^flags\.evpn\.asn$/, '--evpn-asn'],
  [/^flags\.evpn\.holdTime$/, '--evpn-hold-time'],
  [/^flags\.ovsdb\.target$/, '--ovsdb'],
  [/^flags\.ovsdb\.physicalSwitch$/, '--physical-switch'],
  [/^flags\.ovsdb\.ports(\[\d+\])?$/, '--tap'],
  [/^flags\.ovsdb\.mtu$/, '--mtu'],
  [/^flags\.ovsdb\.privateKey$/, '--ovsdb-private-key'],
  [/^flags\.ovsdb\.certificate$/, '--ovsdb-certificate'],
  [/^flags\.ovsdb\.caCert$/, '--ovsdb-ca-cert'],
  [/^flags\.(\w+)$/, '--$1'],
];

/** The flag a `flags.…` config path came from (`flags.vnis[0].remotes[2]` → `--remote`). */
function flagOf(field: string): string {
  for (const [re, name] of FLAG_OF) if (re.test(field)) return field.replace(re, name);
  return field;
}

/** The OVSDB gateway from flags: `--ovsdb`, `--physical-switch`, `--tap` (repeated) and TLS files. */
function ovsdbFromFlags(o: Record<string, unknown>, taps: string[]): Record<string, unknown> {
  if (o.vni !== undefined)
    throw new ConfigError(
      '--vni',
      o.vni,
      "cannot be given with --ovsdb: a port's VNI comes from its binding (static VNIs beside ovsdb go in --config FILE)",
    );
  for (const [k, flag] of [
    ['remote', '--remote'],
    ['mac', '--mac'],
    ['learnRemotes', '--learn-remotes'],
    ['suppressArp', '--suppress-arp'],
    ['bridge', '--bridge'],
    ['group', '--group'],
    ['interface', '--interface'],
  ] as const)
    if (o[k] !== undefined)
      throw new ConfigError(
        flag,
        Array.isArray(o[k]) ? (o[k] as unknown[])[0] : o[k],
        'sets a static VNI and cannot be given with --ovsdb (the database gives remotes)',
      );
  if (o.physicalSwitch === undefined)
    throw new ConfigError('--physical-switch', undefined, 'required with --ovsdb');
  if (taps.length === 0)
    throw new ConfigError(
      '--tap',
      undefined,
      'required with --ovsdb: the TAP(s) to create as ports',
    );
  const out: Record<string, unknown> = {
    target: o.ovsdb,
    physicalSwitch: o.physicalSwitch,
    ports: taps,
    mtu: o.mtu,
    privateKey: o.ovsdbPrivateKey,
    certificate: o.ovsdbCertificate,
    caCert: o.ovsdbCaCert,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

/** `--evpn-*`: the others need `--evpn-gobgp`. */
function evpnFromFlags(o: Record<string, unknown>): { evpn?: Record<string, unknown> } {
  const more = [
    ['evpnRouterId', '--evpn-router-id'],
    ['evpnAsn', '--evpn-asn'],
    ['evpnHoldTime', '--evpn-hold-time'],
  ] as const;
  if (o.evpnGobgp === undefined) {
    for (const [k, flag] of more)
      if (o[k] !== undefined) throw new ConfigError(flag, o[k], 'needs --evpn-gobgp');
    return {};
  }
  const evpn: Record<string, unknown> = {
    gobgp: o.evpnGobgp,
    routerId: o.evpnRouterId,
    asn: o.evpnAsn,
    holdTime: o.evpnHoldTime,
  };
  for (const k of Object.keys(evpn)) if (evpn[k] === undefined) delete evpn[k];
  return { evpn };
}

function fromFlags(o: Record<string, unknown>): Config {
  const taps = (o.tap as string[] | undefined) ?? [];
  if (o.ovsdb === undefined) {
    for (const [k, flag] of [
      ['physicalSwitch', '--physical-switch'],
      ['ovsdbPrivateKey', '--ovsdb-private-key'],
      ['ovsdbCertificate', '--ovsdb-certificate'],
      ['ovsdbCaCert', '--ovsdb-ca-cert'],
    ] as const)
      if (o[k] !== undefined) throw new ConfigError(flag, o[k], 'needs --ovsdb');
    if (o.vni === undefined)
      throw new ConfigError('--vni', undefined, 'required (or give --config FILE, or --ovsdb)');
    if (taps.length > 1)
      throw new ConfigError(
        '--tap',
        taps[1],
        'is a second TAP: one VNI from flags has one (several: --config FILE, or --ovsdb ports)',
      );
  }
  const raw: Record<string, unknown> = {
    local: o.local,
    port: o.port,
    control: o.control,
    ageing: o.ageing,
    maxEntries: o.maxEntries,
    reservedBits: o.reservedBits,
    invalidSourceMac: o.invalidSourceMac,
    sourcePorts: o.sourcePorts,
    sourcePortMode: o.sourcePortMode,
    underlayMtu: o.underlayMtu,
    tapOffload: o.tapOffload,
    workers: o.workers,
    busyPoll: o.busyPoll,
    ioUring: o.ioUring,
    nice: o.nice,
    udp6ZeroChecksumTx: o.udp6ZeroChecksumTx,
    udp6ZeroChecksumRx: o.udp6ZeroChecksumRx,
    metrics: o.metrics,
    ...(o.bfdInterval !== undefined || o.bfdMultiplier !== undefined
      ? { bfd: { interval: o.bfdInterval, multiplier: o.bfdMultiplier } }
      : {}),
    ttl: o.ttl,
    tos: o.tos,
    df: o.df,
    flowLabel: o.flowLabel,
    // commander's --no-udp-csum leaves true otherwise: only "off" is said
    ...(o.udpCsum === false ? { udpCsum: false } : {}),
    ...(o.ovsdb !== undefined ? { ovsdb: ovsdbFromFlags(o, taps) } : {}),
    ...evpnFromFlags(o),
    vnis: [
      {
        vni: o.vni,
        tap: taps[0],
        mtu: o.mtu,
        mac: o.mac,
        remotes: o.remote,
        learnRemotes: o.learnRemotes === true ? true : undefined,
        suppressArp: o.suppressArp === true,
        bridge: o.bridge,
        group: o.group,
        interface: o.interface,
      },
    ],
  };
  for (const k of Object.keys(raw)) if (raw[k] === undefined) delete raw[k];
  if (raw.ovsdb) raw.vnis = [];
  const vni = (raw.vnis as Record<string, unknown>[])[0] ?? {};
  for (const k of Object.keys(vni)) if (vni[k] === undefined) delete vni[k];
  try {
    return validate(raw, 'flags');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(flagOf(err.field), err.value, err.reason.replace(/flags\.\S+/g, flagOf));
  }
}

/**
 * The configuration `vtep run` was given: the file, or the flags. At start the file is read
 * synchronously (nothing forwards yet); on a reload without blocking the event loop.
 */
function configFrom(opts: Record<string, unknown>): Config {
  // (commander refuses configuration flags beside --config: see runCommand())
  return finish(opts, opts.config ? loadConfigFile(String(opts.config)) : fromFlags(opts));
}

async function configAgain(opts: Record<string, unknown>): Promise<Config> {
  return finish(opts, opts.config ? await readConfigFile(String(opts.config)) : fromFlags(opts));
}

function finish(opts: Record<string, unknown>, cfg: Config): Config {
  if (opts.config && opts.control)
    cfg.control = checkControlPath('--control', String(opts.control));
  cfg.control ??= DEFAULT_CONTROL;
  return cfg;
}

/** How long a stop may take before the process exits anyway. */
const STOP_DEADLINE_MS = 900;

async function run(opts: Record<string, unknown>): Promise<void> {
  const level = (opts.logLevel ?? 'info') as Level;
  const format = (opts.logFormat ?? 'auto') as LogFormat;
  // not configuration settings: they may stand beside --config
  delete opts.logLevel;
  delete opts.logFormat;
  // The daemon (engine, threads, control planes, gRPC) is loaded by the one verb that runs it:
  // every other verb starts in a fraction of the time (`vtep fdb show` in a script's loop).
  const [{ Vtep, notify }, { makeLogger }] = await Promise.all([
    import('../daemon/vtep.js'),
    import('../util/logger.js'),
  ]);
  const log = makeLogger({ level, format });
  // Before anything is read or made: a path sun_path cannot hold would bind a cut name.
  if (opts.control !== undefined) checkControlPath('--control', String(opts.control));
  const cfg = configFrom(opts);
  // The default directory is ours to make; any other must exist (the server says so if not).
  if (cfg.control === DEFAULT_CONTROL) mkdirSync(dirname(DEFAULT_CONTROL), { recursive: true });
  let fatal: ((err: Error) => void) | undefined;
  const vtep = await Vtep.start(cfg, log, {
    source: () => configAgain(opts),
    onFatal: (err) => fatal?.(err),
  });
  let stopping = false;
  const shutdown = (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log('info', 'stop', `vtep: ${signal}, stopping`, { signal });
    notify('STOPPING=1');
    // Whatever a control client or a device does, exit promptly: a replacement is waiting.
    setTimeout(() => {
      log('warn', 'stop_slow', `vtep: stop took more than ${STOP_DEADLINE_MS} ms; exiting anyway`);
      process.exit(code);
    }, STOP_DEADLINE_MS).unref();
    vtep.stop().then(
      () => process.exit(code),
      (err) => {
        log('error', 'stop_failed', `vtep: stop failed: ${(err as Error).message}`, {
          error: (err as Error).message,
        });
        process.exit(1);
      },
    );
  };
  // A worker thread that died leaves its flows unforwarded: stop, failing, for a restart.
  fatal = (err) => {
    log('error', 'worker_died', `vtep: ${err.message}`, { error: err.message });
    shutdown('a worker died', 1);
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGHUP', () => {
    const from = opts.config ? String(opts.config) : 'the command-line flags';
    log('info', 'reload_start', `vtep: SIGHUP, reloading ${from}`, { signal: 'SIGHUP', from });
    vtep
      .reloadFromSource()
      .catch((err: Error) =>
        log(
          'warn',
          'reload_refused',
          `vtep: reload refused, still running the previous configuration: ${err.message}`,
          { error: err.message },
        ),
      );
  });
  notify('READY=1');
}

export function runCommand(p: Command): void {
  const runCmd = p.command('run');
  runCmd.description('run the VTEP (needs root: TAP devices and a raw socket)');
  vniOptions(runCmd);
  ovsdbOptions(runCmd);
  evpnOptions(runCmd);
  underlayOptions(runCmd);
  tableOptions(runCmd);
  runCmd
    .option('--control <path>', `control socket (default ${DEFAULT_CONTROL})`)
    .addOption(
      new Option('--log-level <level>', 'least important events logged')
        .choices(LEVELS)
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'json lines, text, or journal (syslog priority prefixes); auto: journal under systemd, text on a terminal, else json',
      )
        .choices(LOG_FORMATS)
        .default('auto'),
    )
    .action(run);
  // The file is the whole configuration: a flag beside it would be silently ignored, so
  // commander refuses the pair (--control and the --log-* flags are not configuration settings).
  for (const opt of runCmd.options)
    if (!['config', 'control', 'logLevel', 'logFormat'].includes(opt.attributeName()))
      opt.conflicts('config');
}

/** The file, the underlay address, and one VNI from flags. */
function vniOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML configuration (several VNIs); replaces the flags below')
    .option('--local <addr>', 'local underlay address to bind (default 0.0.0.0)')
    .option('--port <port>', 'UDP port (RFC 7348: 4789)')
    .option('--vni <n>', 'VXLAN network identifier')
    .option(
      '--tap <name>',
      'TAP device name (default vtep<VNI>); with --ovsdb, a port to create (repeat for several)',
      collect,
    )
    .option('--remote <addr[:port]>', 'remote VTEP; repeat for several (flood list)', collect);
}

/** BGP EVPN through gobgpd. */
function evpnOptions(cmd: Command): Command {
  return cmd
    .option(
      '--evpn-gobgp <host:port>',
      "join a BGP EVPN fabric through gobgpd's gRPC API (its own config names the neighbours)",
    )
    .option(
      '--evpn-router-id <addr>',
      "with --evpn-gobgp: the router id of our RDs (default: gobgpd's)",
    )
    .option('--evpn-asn <n>', "with --evpn-gobgp: the AS of our route targets (default: gobgpd's)")
    .option(
      '--evpn-hold-time <s>',
      'with --evpn-gobgp: keep learned routes this long while gobgpd is unreachable (default 90)',
    );
}

/** The OVSDB gateway. */
function ovsdbOptions(cmd: Command): Command {
  return cmd
    .option(
      '--ovsdb <target>',
      'be a hardware_vtep gateway (OVN, vtep-ctl): the VTEP database at unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT',
    )
    .option('--physical-switch <name>', 'with --ovsdb: our Physical_Switch (created if absent)')
    .option('--ovsdb-private-key <file>', 'with an ssl: --ovsdb: our private key (PEM)')
    .option('--ovsdb-certificate <file>', 'with an ssl: --ovsdb: our certificate (PEM)')
    .option('--ovsdb-ca-cert <file>', "with an ssl: --ovsdb: the CA of the server's certificate");
}

/** MTUs, offloads, threads, checksums, metrics. */
function underlayOptions(cmd: Command): Command {
  return cmd
    .option(
      '--mtu <bytes>',
      'TAP MTU (default: the underlay MTU less 50 bytes of VXLAN over IPv4, 70 over IPv6)',
    )
    .option(
      '--underlay-mtu <bytes>',
      'underlay path MTU (default: the MTU of the interface holding --local, else 1500)',
    )
    .option(
      '--no-tap-offload',
      'no TAP offloads (by default the kernel hands us 64 KiB TCP super-frames and partial checksums)',
    )
    .option(
      '--workers <n>',
      'data-plane threads, each with its own TAP queue and underlay socket (default: one per core, at most 8)',
    )
    .option(
      '--busy-poll <us>',
      'after a batch, keep reading without sleeping for up to this many microseconds (lower latency, more CPU; default 0: off)',
    )
    .option(
      '--no-io-uring',
      'TAP reads and writes one syscall a frame (readv/writev) instead of batched through io_uring',
    )
    .option(
      '--nice <n>',
      'scheduling niceness of every thread, -20..19 (default: as started; lower needs CAP_SYS_NICE)',
    )
    .option('--ttl <n|inherit|auto>', 'outer TTL / hop limit (default auto: the route’s, 64)')
    .option(
      '--tos <byte|inherit>',
      'outer TOS / traffic class, DSCP << 2 (default 0); ECN is RFC 6040’s',
    )
    .addOption(
      new Option('--df <mode>', 'IPv4 underlay: DF on outer headers (default set)').choices([
        'set',
        'unset',
        'inherit',
      ]),
    )
    .option('--flow-label <n|inherit>', 'IPv6 underlay: outer flow label (default: per-flow hash)')
    .option('--no-udp-csum', 'IPv4 underlay: send a zero UDP checksum (Linux noudpcsum)')
    .option('--udp6-zero-checksum-tx', 'IPv6 underlay: send a zero UDP checksum (RFC 6935)')
    .option('--udp6-zero-checksum-rx', 'IPv6 underlay: accept a zero UDP checksum (RFC 6935)')
    .option(
      '--metrics <addr:port>',
      'serve Prometheus metrics on http://ADDR:PORT/metrics (off by default)',
    )
    .option(
      '--bfd-interval <ms>',
      'BFD with every remote (RFC 8971), at this interval (default 300)',
    )
    .option('--bfd-multiplier <n>', 'with BFD: packets missed before a remote is down (default 3)');
}

/** The TAP, the FDB and the policies of the data path. */
function tableOptions(cmd: Command): Command {
  return cmd
    .option('--mac <mac>', 'TAP MAC address (default: derived from the TAP name and VNI, stable)')
    .option(
      '--bridge <name>',
      'Linux bridge to put the TAP in (at start, after re-creation and reload, while it is out)',
    )
    .option(
      '--group <address>',
      'multicast underlay: flood to this group and take what is sent to it, learning senders (Linux VXLAN group)',
    )
    .option(
      '--interface <name>',
      'the interface the group is joined on and sent from (Linux dev; default: the one holding --local)',
    )
    .option('--ageing <seconds>', 'learned entries expire after this long (default 300)')
    .option('--max-entries <n>', 'FDB capacity over all VNIs (default 8192)')
    .option(
      '--learn-remotes',
      'accept and learn VXLAN from any sender (Linux behaviour; default: configured remotes only, as OVS)',
    )
    .option(
      '--suppress-arp',
      'answer ARP/ND requests for known addresses on the TAP instead of flooding them (Linux neigh_suppress)',
    )
    .addOption(
      new Option(
        '--reserved-bits <policy>',
        'reserved bits set on receive: drop (Linux, OVS) or ignore (RFC 7348 wording)',
      ).choices(['drop', 'ignore']),
    )
    .addOption(
      new Option(
        '--invalid-source-mac <policy>',
        'inner source MAC zero or multicast: deliver (OVS; default) or drop (Linux)',
      ).choices(['deliver', 'drop']),
    )
    .option(
      '--source-ports <min-max>',
      'UDP source port range for per-flow entropy (default 49152-65535)',
    )
    .addOption(
      new Option(
        '--source-port-mode <mode>',
        'hash: per-flow source port (raw socket); fixed: the bound port',
      ).choices(['hash', 'fixed']),
    );
}
