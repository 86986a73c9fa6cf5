import { existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, loadConfigFile } from '../config/config.js';

/**
 * `vtep setup systemd`: the guide notes its setup "will not persist across a reboot"; this
 * writes a unit that starts `vtep run --config FILE` at boot, after the network and Open
 * vSwitch. The configuration is validated first, so a unit is never written for a file that
 * would not start.
 *
 * The service runs as its own (dynamic) user with only CAP_NET_ADMIN (TAP devices, interface
 * settings) and CAP_NET_RAW (the raw socket for per-flow source ports), not as root. It tells
 * systemd when it is ready (Type=notify), reloads on `systemctl reload` (SIGHUP), and is not
 * restarted in a loop for a configuration error (exit status 2).
 */
export interface SystemdOptions {
  config: string;
  /** Where units go (default /etc/systemd/system). */
  unitDir?: string;
  name?: string;
  /** The vtep entry point to start (default: this installation's). */
  bin?: string;
  /** Replace an existing unit file. */
  force?: boolean;
}

/** The directory systemd creates for the service (RuntimeDirectory=vtep), owned by its user. */
export const RUNTIME_DIR = '/run/vtep';

/** A unit name systemd accepts, with nothing that could leave the unit directory. */
function checkName(name: string): string {
  if (!/^[A-Za-z0-9:_.@-]{1,200}$/.test(name) || /^[.-]/.test(name) || name.includes('..'))
    throw new ConfigError(
      '--name',
      name,
      'must be a unit name: letters, digits and ":_.@-", not starting with "." or "-"',
    );
  return name;
}

/** Nothing of the host the service does not need, to an exposure of 2.0 in `systemd-analyze security`. */
const HARDENING = [
  '# Nothing else of the host: read-only system, no homes, its own /tmp, the TUN device only,',
  '# the address families it uses, the system calls of an ordinary service.',
  'ProtectSystem=strict',
  'ProtectHome=yes',
  'PrivateTmp=yes',
  'DevicePolicy=closed',
  'DeviceAllow=/dev/net/tun rw',
  'ProtectKernelTunables=yes',
  'ProtectKernelModules=yes',
  'ProtectKernelLogs=yes',
  'ProtectControlGroups=yes',
  'ProtectClock=yes',
  'ProtectHostname=yes',
  'ProtectProc=invisible',
  'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
  'RestrictNamespaces=yes',
  'RestrictRealtime=yes',
  'RestrictSUIDSGID=yes',
  'LockPersonality=yes',
  'SystemCallArchitectures=native',
  'SystemCallFilter=@system-service',
  'SystemCallFilter=~@privileged @resources',
  'SystemCallErrorNumber=EPERM',
  'UMask=0077',
  '# (No MemoryDenyWriteExecute: V8 compiles JavaScript into executable memory.)',
];

/**
 * Each unit's own runtime directory, `/run/NAME` (RuntimeDirectory=NAME): two instances never
 * share one, and stopping one (systemd removes its directory) leaves the other's socket alone.
 */
export function runtimeDir(name: string): string {
  return `/run/${name}`;
}

/**
 * The file the service will read: valid, with its control socket where the service can make it
 * (returned), and readable by the service user.
 */
function checkServiceConfig(
  config: string,
  dir: string,
): { control: string; nice: number | undefined } {
  const cfg = loadConfigFile(config);
  if (cfg.control !== undefined && dirname(resolve(cfg.control)) !== dir)
    throw new ConfigError(
      `${config}: control`,
      cfg.control,
      `the service runs as its own user and can create its socket only in ${dir}/ (leave "control" out for ${dir}/vtep.sock)`,
    );
  if ((statSync(config).mode & 0o004) === 0)
    throw new ConfigError(
      '--config',
      config,
      'is not readable by the service user (it is not world-readable): chmod o+r it',
    );
  // The service user must also be able to reach it: every directory on the way searchable.
  for (let dir = dirname(config); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0)
      throw new ConfigError(
        '--config',
        config,
        `is in ${dir}, which the service user cannot enter (not world-searchable): chmod o+x it, or keep the file in /etc`,
      );
    if (dirname(dir) === dir) break;
  }
  return {
    control: cfg.control === undefined ? `${dir}/vtep.sock` : resolve(cfg.control),
    nice: cfg.nice,
  };
}

export function unitText(o: SystemdOptions): string {
  const config = resolve(o.config);
  const name = checkName(o.name ?? 'vtep');
  const dir = runtimeDir(name);
  const { control, nice } = checkServiceConfig(config, dir);
  // the default socket needs no flag; another instance's is named on both lines
  const own = control === `${RUNTIME_DIR}/vtep.sock` ? '' : ` --control ${execArg(control)}`;
  const bin = resolve(o.bin ?? process.argv[1]);
  const vtep = `${execArg(process.execPath)} ${execArg(bin)}`;
  return [
    '[Unit]',
    `Description=vtep VXLAN tunnel endpoint (${config.replace(/%/g, '%%')})`,
    'Documentation=https://datatracker.ietf.org/doc/html/rfc7348',
    "# Ordering only: with evpn, Debian's gobgpd.service is up first.",
    'After=network-online.target openvswitch-switch.service gobgpd.service',
    'Wants=network-online.target',
    '',
    '[Service]',
    '# vtep says READY=1 on its own once the TAPs, the UDP socket and the control socket are up.',
    'Type=notify',
    `ExecStart=${vtep} run --config ${execArg(config)}${own}`,
    '# Re-read the file live: VNIs and remotes change without dropping established flows. A',
    '# file vtep refuses makes `systemctl reload` fail (vtep reload exits 2) and changes nothing.',
    `ExecReload=${vtep} reload --control ${execArg(control)}`,
    '# vtep says WATCHDOG=1 while every data-plane thread answers: a wedged one is restarted.',
    'WatchdogSec=10',
    'Restart=on-failure',
    'RestartSec=2',
    '# Exit status 2 is a configuration error: restarting would fail the same way.',
    'RestartPreventExitStatus=2',
    '# Logs: vtep writes a syslog priority on each line under journald (journalctl -p warning);',
    '# the tag is the unit name, not node.',
    `SyslogIdentifier=${name}`,
    '# Its own user, with the two capabilities it needs and no others: TAP devices and',
    '# interface settings (CAP_NET_ADMIN), the raw socket for per-flow source ports (CAP_NET_RAW).',
    'DynamicUser=yes',
    'User=vtep',
    'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW',
    'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW',
    'NoNewPrivileges=yes',
    ...(nice !== undefined
      ? [
          '# The niceness of the file (`nice`): systemd sets it, the service has no CAP_SYS_NICE.',
          `Nice=${nice}`,
        ]
      : []),
    ...HARDENING,
    `# The control socket: ${control}, mode 0600 (root can still use vtep fdb/stats).`,
    `RuntimeDirectory=${name}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * One argument of an Exec line, as systemd reads it: `%` is a specifier and `$` a variable
 * unless doubled; an argument with spaces, quotes or backslashes is double-quoted and escaped.
 */
export function execArg(arg: string): string {
  const plain = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (plain !== '' && !/[\s"'\\;]/.test(plain)) return plain;
  return `"${plain.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Write the unit; returns its path. An existing unit is replaced only with `force`. */
export function writeUnit(o: SystemdOptions): string {
  const path = join(o.unitDir ?? '/etc/systemd/system', `${checkName(o.name ?? 'vtep')}.service`);
  const text = unitText(o);
  if (existsSync(path) && !o.force)
    throw new ConfigError('--name', o.name ?? 'vtep', `${path} exists; give --force to replace it`);
  writeFileSync(path, text);
  return path;
}

export { checkName as checkUnitName };
