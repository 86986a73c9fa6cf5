#!/usr/bin/env node
// `vtep`: composition root only. Parses the command line, hands the work to the modules.
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, integer, loadConfigFile, validate, type Config } from '../config/config.js';
import { formatEvent, formatFdb, formatStats, formatStatus } from '../control/format.js';
import { ControlError, request, subscribe } from '../control/server.js';
import type { FdbRow } from '../fdb/fdb.js';
import { LEVELS, type Level, type Log } from '../util/log.js';
import { parseMac } from '../wire/mac.js';
import { pino } from 'pino';
import pinoPretty from 'pino-pretty';
import { MAX_VNI } from '../wire/vxlan.js';
import { formatE2e, runE2e, writeE2e } from '../lab/e2e.js';
import { LAB_DIR, LAB_PREFIX, labDown, labUp } from '../lab/lab.js';
import { applyHost } from '../setup/host.js';
import { applyLibvirt, interfaceXml, printInstall, withInterface } from '../setup/libvirt.js';
import { applyOvs, showOvs } from '../setup/ovs.js';
import { executor, printer, render, type Runner } from '../setup/runner.js';
import { checkUnitName, unitText, writeUnit } from '../setup/systemd.js';
import { MONITOR_KINDS, notify, startVtep, type RunningStats, type Status } from './run.js';

/** In a directory of its own, so a service running as its own user can create it (systemd RuntimeDirectory=vtep). */
export const DEFAULT_CONTROL = '/run/vtep/vtep.sock';
/** Exit status for bad command-line input or configuration (like commander's usage errors). */
export const EXIT_USAGE = 2;

/**
 * The service's logger: pino, one JSON object per line on stderr (level, time, event, msg and
 * the event's fields), readable text when stderr is a terminal. Synchronous, so the last lines
 * before an exit are not lost.
 */
function makeLog(level: Level): Log {
  const stream = process.stderr.isTTY
    ? pinoPretty({
        destination: 2,
        sync: true,
        ignore: 'pid,hostname',
        translateTime: 'SYS:HH:MM:ss.l',
      })
    : pino.destination({ fd: 2, sync: true });
  const logger = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  return (lvl, event, msg, fields) => logger[lvl]({ event, ...fields }, msg);
}

/** Map config paths to the flags they came from, so errors name what the user typed. */
const FLAG_OF: [RegExp, string][] = [
  [/^flags\.vnis\[0\]\.remotes\[\d+\]$/, '--remote'],
  [/^flags\.vnis\[0\]\.vni$/, '--vni'],
  [/^flags\.vnis\[0\]\.tap$/, '--tap'],
  [/^flags\.vnis\[0\]\.mtu$/, '--mtu'],
  [/^flags\.vnis\[0\]\.mac$/, '--mac'],
  [/^flags\.maxEntries$/, '--max-entries'],
  [/^flags\.reservedBits$/, '--reserved-bits'],
  [/^flags\.invalidSourceMac$/, '--invalid-source-mac'],
  [/^flags\.sourcePorts$/, '--source-ports'],
  [/^flags\.sourcePortMode$/, '--source-port-mode'],
  [/^flags\.underlayMtu$/, '--underlay-mtu'],
  [/^flags\.tapOffload$/, '--no-tap-offload'],
  [/^flags\.workers$/, '--workers'],
  [/^flags\.udp6ZeroChecksumTx$/, '--udp6-zero-checksum-tx'],
  [/^flags\.udp6ZeroChecksumRx$/, '--udp6-zero-checksum-rx'],
  [/^flags\.metrics$/, '--metrics'],
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
    udp6ZeroChecksumTx: o.udp6ZeroChecksumTx,
    udp6ZeroChecksumRx: o.udp6ZeroChecksumRx,
    metrics: o.metrics,
    ...(o.ovsdb !== undefined ? { ovsdb: ovsdbFromFlags(o, taps) } : {}),
    vnis: [
      {
        vni: o.vni,
        tap: taps[0],
        mtu: o.mtu,
        mac: o.mac,
        remotes: o.remote,
        learnRemotes: o.learnRemotes === true,
        suppressArp: o.suppressArp === true,
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

/** The configuration `vtep run` was given: the file, or the flags (read again on reload). */
function configFrom(opts: Record<string, unknown>): Config {
  let cfg: Config;
  if (opts.config) {
    // (commander refuses configuration flags beside --config: see program())
    cfg = loadConfigFile(String(opts.config));
    if (opts.control) cfg.control = String(opts.control);
  } else cfg = fromFlags(opts);
  cfg.control ??= DEFAULT_CONTROL;
  return cfg;
}

/** How long a stop may take before the process exits anyway. */
const STOP_DEADLINE_MS = 900;

async function run(opts: Record<string, unknown>): Promise<void> {
  const level = (opts.logLevel ?? 'info') as Level;
  delete opts.logLevel; // not a configuration setting: it may stand beside --config
  const log = makeLog(level);
  const cfg = configFrom(opts);
  // The default directory is ours to make; any other must exist (the server says so if not).
  if (cfg.control === DEFAULT_CONTROL) mkdirSync(dirname(DEFAULT_CONTROL), { recursive: true });
  let fatal: ((err: Error) => void) | undefined;
  const vtep = await startVtep(cfg, log, {
    source: () => configFrom(opts),
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
    try {
      vtep.reloadFromSource();
    } catch (err) {
      log(
        'warn',
        'reload_refused',
        `vtep: reload refused, still running the previous configuration: ${(err as Error).message}`,
        { error: (err as Error).message },
      );
    }
  });
  notify('READY=1');
}

/** Write to stdout and wait until it has been handed on (a pipe may be slower than us). */
function print(text: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(text, () => resolve()));
}

/** Request fields, and the flag or argument each one came from on the command line. */
const FLAG_OF_FIELD: Record<string, string> = {
  vni: '--vni',
  remote: '--remote',
  remotes: '--remote',
  port: '--port',
  mac: 'MAC',
  tap: '--tap',
  mtu: '--mtu',
  learnedOnly: '--learned-only',
};

/**
 * Ask the running vtep. An answer that blames one of the request's fields is the user's input:
 * it becomes a ConfigError naming the flag, so it exits 2 like every other bad input.
 */
async function ask(
  control: string,
  req: Record<string, unknown>,
  flags: Record<string, string> = {},
): Promise<unknown> {
  try {
    return await request(control, req);
  } catch (err) {
    const flag =
      err instanceof ControlError && err.field
        ? (flags[err.field] ?? FLAG_OF_FIELD[err.field])
        : undefined;
    if (err instanceof ControlError && flag) {
      const m = /^invalid \S+ (.*?): (.*)$/s.exec(err.message);
      throw new ConfigError(flag, m ? JSON.parse(m[1]) : req[err.field!], m ? m[2] : err.message);
    }
    throw err;
  }
}

/**
 * An integer option, parsed strictly by commander as it reads the command line (the running
 * vtep checks again): a bad value is commander's usage error, naming the flag and value.
 */
function intOption(flags: string, description: string, min: number, max: number): Option {
  return new Option(flags, description).argParser((v: string) => {
    try {
      return integer(flags.split(' ')[0], v, min, max);
    } catch (err) {
      throw new InvalidArgumentError((err as ConfigError).reason);
    }
  });
}
const vniOption = (description = 'VNI') => intOption('--vni <n>', description, 0, MAX_VNI);
const portOption = (description: string) => intOption('--port <port>', description, 1, 65535);

function macArg(v: string): string {
  if (parseMac(v) === undefined)
    throw new ConfigError('MAC', v, 'must be a MAC address like 02:00:00:00:00:01');
  return v;
}

const collect = (v: string, acc: string[] = []) => [...acc, v];

export function program(): Command {
  const p = new Command('vtep')
    .description(
      'userspace VXLAN tunnel endpoint (RFC 7348): TAP <-> UDP 4789 with a MAC-learning FDB per VNI',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride()
    // commander's own usage errors, in vtep's form: one `vtep: …` line naming flag and value
    .configureOutput({
      outputError: (str, write) => write(`vtep: ${str.replace(/^error: /, '')}`),
    })
    .showHelpAfterError();

  const runCmd = p.command('run');
  runCmd
    .description('run the VTEP (needs root: TAP devices and a raw socket)')
    .option('--config <file>', 'YAML configuration (several VNIs); replaces the flags below')
    .option('--local <addr>', 'local underlay address to bind (default 0.0.0.0)')
    .option('--port <port>', 'UDP port (RFC 7348: 4789)')
    .option('--vni <n>', 'VXLAN network identifier')
    .option(
      '--tap <name>',
      'TAP device name (default vtep<VNI>); with --ovsdb, a port to create (repeat for several)',
      collect,
    )
    .option('--remote <addr[:port]>', 'remote VTEP; repeat for several (flood list)', collect)
    .option(
      '--ovsdb <target>',
      'be a hardware_vtep gateway (OVN, vtep-ctl): the VTEP database at unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT',
    )
    .option('--physical-switch <name>', 'with --ovsdb: our Physical_Switch (created if absent)')
    .option('--ovsdb-private-key <file>', 'with an ssl: --ovsdb: our private key (PEM)')
    .option('--ovsdb-certificate <file>', 'with an ssl: --ovsdb: our certificate (PEM)')
    .option('--ovsdb-ca-cert <file>', "with an ssl: --ovsdb: the CA of the server's certificate")
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
      'data-plane threads, each with its own TAP queue and underlay socket (default 1)',
    )
    .option('--udp6-zero-checksum-tx', 'IPv6 underlay: send a zero UDP checksum (RFC 6935)')
    .option('--udp6-zero-checksum-rx', 'IPv6 underlay: accept a zero UDP checksum (RFC 6935)')
    .option(
      '--metrics <addr:port>',
      'serve Prometheus metrics on http://ADDR:PORT/metrics (off by default)',
    )
    .option('--mac <mac>', 'TAP MAC address (default: derived from the TAP name and VNI, stable)')
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
    )
    .option('--control <path>', `control socket (default ${DEFAULT_CONTROL})`)
    .addOption(
      new Option('--log-level <level>', 'least important events logged')
        .choices(LEVELS)
        .default('info'),
    )
    .action(run);
  // The file is the whole configuration: a flag beside it would be silently ignored, so
  // commander refuses the pair (--control and --log-level are not configuration settings).
  for (const opt of runCmd.options)
    if (!['config', 'control', 'logLevel'].includes(opt.attributeName())) opt.conflicts('config');

  const control = (cmd: Command) =>
    cmd.option('--control <path>', 'control socket of the running vtep', DEFAULT_CONTROL);

  const fdb = p
    .command('fdb')
    .description('show and change the forwarding table of a running vtep');
  control(fdb.command('show').description('list entries (like bridge fdb show)'))
    .addOption(vniOption('only this VNI'))
    .option('--json', 'JSON output')
    .action(async (o) => {
      const rows = (await ask(o.control, { cmd: 'fdb.show', vni: o.vni })) as (FdbRow & {
        dev: string;
      })[];
      const devs = new Map(rows.map((r) => [r.vni, r.dev]));
      await print(
        o.json
          ? JSON.stringify(rows, null, 2) + '\n'
          : rows.length
            ? formatFdb(rows, (v) => devs.get(v) ?? '-') + '\n'
            : '',
      );
    });
  control(
    fdb
      .command('add')
      .description('add a static entry (like bridge fdb add: an existing one needs --replace)')
      .argument('<mac>'),
  )
    .addOption(vniOption().makeOptionMandatory())
    .requiredOption('--remote <addr>', 'remote VTEP address')
    .addOption(portOption('remote UDP port (default: ours)'))
    .option('--replace', 'replace an existing entry (static or learned)')
    .action(async (mac, o) => {
      await ask(o.control, {
        cmd: 'fdb.add',
        mac: macArg(mac),
        vni: o.vni,
        remote: o.remote,
        port: o.port,
        replace: o.replace === true,
      });
    });
  control(fdb.command('del').description('delete an entry').argument('<mac>'))
    .addOption(vniOption().makeOptionMandatory())
    .action(async (mac, o) => {
      await ask(o.control, { cmd: 'fdb.del', mac: macArg(mac), vni: o.vni });
    });
  control(fdb.command('flush').description('remove entries (all, or those matching every option)'))
    .addOption(vniOption('only this VNI'))
    .option('--remote <addr>', 'only entries behind this remote')
    .addOption(portOption('with --remote: its UDP port (default: ours)'))
    .option('--learned-only', 'keep static entries')
    .action(async (o) => {
      const r = (await ask(o.control, {
        cmd: 'fdb.flush',
        vni: o.vni,
        remote: o.remote,
        port: o.port,
        learnedOnly: o.learnedOnly === true,
      })) as { removed: number };
      await print(`removed ${r.removed}\n`);
    });
  const printChanges = async (r: unknown) =>
    print((r as { changes: string[] }).changes.join('\n') + '\n');
  const remote = p
    .command('remote')
    .description(
      "add or remove a VNI's remote VTEP live (its flood list and accepted senders); until the next reload from the file",
    );
  for (const [verb, what] of [
    ['add', 'add a remote (like bridge fdb append 00:00:00:00:00:00 … dst ADDR)'],
    ['del', 'remove a remote; entries learned behind it are flushed'],
  ] as const)
    control(remote.command(verb).description(what).argument('<addr[:port]>'))
      .addOption(vniOption().makeOptionMandatory())
      .addOption(portOption('its UDP port (default: ours)'))
      .action(async (addr, o) =>
        printChanges(
          await ask(
            o.control,
            { cmd: `remote.${verb}`, vni: o.vni, remote: addr, port: o.port },
            { remote: 'ADDR' },
          ),
        ),
      );
  const vniCmd = p
    .command('vni')
    .description('add or remove a VNI live (its TAP is created or closed); until the next reload');
  control(vniCmd.command('add').description('add a VNI with its own TAP'))
    .addOption(vniOption().makeOptionMandatory())
    .option('--tap <name>', 'TAP device name (default vtep<VNI>)')
    .addOption(intOption('--mtu <bytes>', 'TAP MTU (default: from the underlay)', 68, 65535))
    .option('--remote <addr[:port]>', 'remote VTEP; repeat for several', collect)
    .option('--learn-remotes', 'accept and learn VXLAN from any sender')
    .action(async (o) =>
      printChanges(
        await ask(o.control, {
          cmd: 'vni.add',
          vni: o.vni,
          tap: o.tap,
          mtu: o.mtu,
          remotes: o.remote,
          learnRemotes: o.learnRemotes === true,
        }),
      ),
    );
  control(vniCmd.command('del').description('remove a VNI; its TAP and table go with it'))
    .addOption(vniOption().makeOptionMandatory())
    .action(async (o) => printChanges(await ask(o.control, { cmd: 'vni.del', vni: o.vni })));
  control(
    p
      .command('showconf')
      .description(
        'the running configuration as YAML that vtep run --config accepts (like wg showconf)',
      ),
  ).action(async (o) => print(String(await ask(o.control, { cmd: 'showconf' }))));
  control(
    p
      .command('monitor')
      .description(
        'stream FDB events (learn, move, age, evict) and misses as they happen, like bridge monitor fdb',
      )
      .addArgument(
        new Argument('[what]', 'which events').choices(Object.keys(MONITOR_KINDS)).default('all'),
      ),
  )
    .option('--json', 'one JSON object per line')
    .action(async (what: string, o) => {
      await subscribe(o.control, { cmd: 'monitor', what }, (e) => {
        process.stdout.write((o.json ? JSON.stringify(e) : formatEvent(e)) + '\n');
      });
      // The vtep went away (stopped or restarted): say so, as a failure.
      throw new ControlError('ECONNRESET', `control socket ${String(o.control)}: closed by vtep`);
    });
  control(p.command('stats').description('packet, byte and drop counters; TAP state'))
    .option('--json', 'JSON output')
    .action(async (o) => {
      const s = (await ask(o.control, { cmd: 'stats' })) as RunningStats;
      await print((o.json ? JSON.stringify(s, null, 2) : formatStats(s)) + '\n');
    });
  control(
    p
      .command('status')
      .description('health check: exit 0 when every TAP is up, 1 when degraded or not running'),
  )
    .option('--json', 'JSON output')
    .action(async (o) => {
      const s = (await ask(o.control, { cmd: 'status' })) as Status;
      await print((o.json ? JSON.stringify(s, null, 2) : formatStatus(s)) + '\n');
      if (!s.healthy) process.exitCode = 1;
    });
  control(
    p
      .command('reload')
      .description('re-read the configuration (as SIGHUP does); a bad file keeps the running one'),
  ).action(async (o) => {
    const r = (await ask(o.control, { cmd: 'reload' })) as { changes: string[] };
    await print(r.changes.join('\n') + '\n');
  });
  const lab = p
    .command('lab')
    .description("the OVS VXLAN guide's two hosts in network namespaces: OVS + vtep, one VM each");
  const labOpts = (cmd: Command) =>
    cmd
      .option('--prefix <name>', 'namespace name prefix', LAB_PREFIX)
      .option('--dir <path>', 'working directory', LAB_DIR);
  labOpts(
    lab
      .command('up')
      .description(
        'build it, ping across, print both FDBs and decoded tunnel packets; leave it running',
      ),
  )
    .option('--vni <n>', 'VNI (OVS options:key)', '5000')
    .action(async (o) => {
      const vni = integer('--vni', o.vni, 0, MAX_VNI);
      await labUp({ prefix: o.prefix, dir: o.dir, vni }, (l) => process.stdout.write(l + '\n'));
    });
  labOpts(
    lab.command('down').description('stop the vtep and Open vSwitch, delete the namespaces'),
  ).action((o) => {
    labDown({ prefix: o.prefix, dir: o.dir }, (l) => process.stdout.write(l + '\n'));
  });
  p.command('bench')
    .description(
      'end-to-end benchmark: vtep vs Open vSwitch (userspace) vs kernel VXLAN, side by side (root)',
    )
    .option('--rounds <n>', 'alternating rounds (medians are reported)', '3')
    .option('--seconds <n>', 'seconds per TCP run (UDP runs take two thirds)', '3')
    .option('--out <dir>', 'where e2e.json and e2e.svg go', 'bench/results')
    .action(async (o) => {
      const rounds = integer('--rounds', o.rounds, 1, 20);
      const seconds = integer('--seconds', o.seconds, 1, 60);
      const r = await runE2e({
        rounds,
        seconds,
        progress: (done, total, what) =>
          process.stderr.write(
            `\r[${done}/${total}] ${what.padEnd(20)}${done === total ? '\n' : ''}`,
          ),
      });
      process.stdout.write(formatE2e(r) + '\n');
      const files = writeE2e(r, o.out);
      process.stdout.write(`written: ${files.json}, ${files.svg}\n`);
    });
  setupCommands(p);
  return p;
}

/** An optional integer flag, parsed strictly. */
function int(field: string, v: unknown, min: number, max: number): number | undefined {
  return v === undefined ? undefined : integer(field, v, min, max);
}

function setupCommands(p: Command): void {
  const out = (l: string) => process.stdout.write(l + '\n');
  const setup = p
    .command('setup')
    .description(
      'provision Open vSwitch, libvirt, the host bridge and systemd as the OVS VXLAN guide does',
    );
  setup
    .command('ovs')
    .description('add the bridge and the VXLAN port (idempotent: --may-exist)')
    .option('--bridge <name>', 'OVS bridge', 'br0')
    .option('--remote <addr>', 'remote_ip of the other host')
    .option('--key <vni>', 'options:key (the VNI; OVS default 0)')
    .option('--port-name <name>', 'port and interface name', 'vx_node1')
    .option('--dst-port <port>', 'options:dst_port (OVS default 4789)')
    .option('--db <unix:PATH>', 'ovsdb-server to talk to (default: the system one)')
    .option('--no-wait', 'do not wait for ovs-vswitchd (needed when it is not running)')
    .option('--datapath-type <type>', 'bridge datapath_type: netdev for the userspace datapath')
    .option('--dry-run', 'print the commands instead of running them')
    .option('--show', 'print the resulting configuration')
    .action((o) => {
      if (o.remote !== undefined || !o.show) {
        if (o.remote === undefined)
          throw new ConfigError('--remote', undefined, "is required (the other host's address)");
        const opts = {
          bridge: o.bridge,
          remote: o.remote,
          key: int('--key', o.key, 0, MAX_VNI),
          portName: o.portName,
          dstPort: int('--dst-port', o.dstPort, 1, 65535),
          db: o.db,
          noWait: o.wait === false,
          datapathType: o.datapathType,
        };
        applyOvs(opts, o.dryRun ? printer(out) : loud(executor(), out));
      }
      if (o.show) {
        // With --dry-run the show commands are printed like the others, not silently skipped.
        const shown = showOvs(
          { db: o.db, portName: o.portName },
          o.dryRun ? printer(out) : executor(),
        );
        if (shown) out(shown);
      }
    });
  setup
    .command('libvirt')
    .description("print or apply the <interface> that puts a domain's NIC on the bridge")
    .requiredOption('--domain <name>', 'libvirt domain')
    .option('--bridge <name>', 'bridge', 'br0')
    .option('--openvswitch', "add <virtualport type='openvswitch'/> (an OVS bridge)")
    .option('--mac <mac>', 'MAC address of the NIC')
    .option('--connect <uri>', 'libvirt URI (virsh -c / virt-install --connect)')
    .option('--print-install', "print the guide's virt-install line with both NICs")
    .option(
      '--domain-xml <file>',
      'print this domain XML with the interface added (for virsh define)',
    )
    .option('--apply', 'attach it persistently: virsh attach-device DOMAIN FILE --config')
    .option('--dry-run', 'with --apply: print the command instead')
    .action((o) => {
      const opts = {
        domain: o.domain,
        bridge: o.bridge,
        openvswitch: o.openvswitch === true,
        mac: o.mac,
        connect: o.connect,
      };
      if (o.printInstall) return void out(printInstall(opts));
      if (o.domainXml) return void out(withInterface(readText('--domain-xml', o.domainXml), opts));
      const xml = interfaceXml(opts);
      if (!o.apply) return void out(xml);
      const tmp = mkdtempSync(join(tmpdir(), 'vtep-iface-'));
      try {
        const file = join(tmp, 'interface.xml');
        writeFileSync(file, xml + '\n');
        applyLibvirt(opts, file, o.dryRun ? printer(out) : loud(executor(), out));
      } finally {
        // virsh has read it (or the dry run printed its path): nothing to leave behind.
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  setup
    .command('host')
    .description('a Linux bridge holding our TAP, for libvirt VMs on that bridge')
    .option('--bridge <name>', 'Linux bridge', 'br0')
    .requiredOption('--tap <name>', "vtep's TAP device (created persistent if missing)")
    .option('--dry-run', 'print the commands instead of running them')
    .action((o) =>
      applyHost({ bridge: o.bridge, tap: o.tap }, o.dryRun ? printer(out) : loud(executor(), out)),
    );
  setup
    .command('systemd')
    .description('a unit that starts "vtep run --config FILE" at boot')
    .requiredOption('--config <file>', 'vtep configuration (validated first)')
    .option('--unit-dir <dir>', 'where to write the unit', '/etc/systemd/system')
    .option('--name <name>', 'unit name', 'vtep')
    .option('--force', 'replace an existing unit file')
    .option('--dry-run', 'print the unit instead of writing it')
    .action((o) => {
      const opts = {
        config: o.config,
        unitDir: o.unitDir,
        name: checkUnitName(o.name),
        force: o.force === true,
      };
      if (o.dryRun) return void out(unitText(opts).trimEnd());
      const path = writeUnit(opts);
      out(
        `wrote ${path}\nenable it with: systemctl daemon-reload && systemctl enable --now ${o.name}.service`,
      );
    });
}

/** An executor that says each command it runs, so nothing is applied silently. */
function loud(r: Runner, out: (l: string) => void): Runner {
  return {
    dryRun: false,
    run(commands) {
      const res = r.run(commands);
      for (const c of commands) out(`applied: ${render(c)}`);
      return res;
    },
  };
}

function readText(field: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(field, path, `cannot be read: ${(err as Error).message}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are not errors; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`vtep: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (
      err instanceof ControlError &&
      (err.code === 'ERR_ARG' || err.code === 'ERR_CONFIG' || err.code === 'ERR_CONTROL_PATH')
    ) {
      // The running vtep refused what we sent (a reload of a bad file, …): still bad input.
      process.stderr.write(`vtep: ${err.message}\n`);
      return EXIT_USAGE;
    }
    const e = err as { code?: string; message?: string };
    process.stderr.write(`vtep: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}\n`);
    return 1;
  }
}

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string })
        .version;
    } catch {
      const up = dirname(dir);
      if (up === dir) return 'unknown';
      dir = up;
    }
  }
}

/**
 * Whether this file is the program being run rather than a module imported by tests. npm's bin
 * is a symlink (node_modules/.bin/vtep, or a global one), so compare real paths, not URLs.
 */
function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv).then((code) => {
    // `run` keeps the event loop alive until a signal. The other commands end here: with their
    // output drained first (a pipe takes 64 KiB at a time), then explicitly, since `lab up`
    // leaves its vtep running detached.
    if (code === 0 && process.argv[2] === 'run') return;
    const status = code || Number(process.exitCode ?? 0);
    process.stdout.write('', () => process.exit(status));
  });
}
