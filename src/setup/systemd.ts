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

export function unitText(o: SystemdOptions): string {
  const config = resolve(o.config);
  const cfg = loadConfigFile(config);
  if (cfg.control !== undefined && dirname(resolve(cfg.control)) !== RUNTIME_DIR)
    throw new ConfigError(
      `${config}: control`,
      cfg.control,
      `the service runs as its own user and can create its socket only in ${RUNTIME_DIR}/ (leave "control" out for ${RUNTIME_DIR}/vtep.sock)`,
    );
  if ((statSync(config).mode & 0o004) === 0)
    throw new ConfigError(
      '--config',
      config,
      'is not readable by the service user (it is not world-readable): chmod o+r it',
    );
  const bin = resolve(o.bin ?? process.argv[1]);
  return [
    '[Unit]',
    `Description=vtep VXLAN tunnel endpoint (${config})`,
    'Documentation=https://datatracker.ietf.org/doc/html/rfc7348',
    'After=network-online.target openvswitch-switch.service',
    'Wants=network-online.target',
    '',
    '[Service]',
    '# vtep says READY=1 on its own once the TAPs, the UDP socket and the control socket are up.',
    'Type=notify',
    `ExecStart=${process.execPath} ${bin} run --config ${config}`,
    '# Re-read the file live: VNIs and remotes change without dropping established flows.',
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'RestartSec=2',
    '# Exit status 2 is a configuration error: restarting would fail the same way.',
    'RestartPreventExitStatus=2',
    '# Its own user, with the two capabilities it needs and no others: TAP devices and',
    '# interface settings (CAP_NET_ADMIN), the raw socket for per-flow source ports (CAP_NET_RAW).',
    'DynamicUser=yes',
    'User=vtep',
    'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW',
    'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW',
    'NoNewPrivileges=yes',
    `# The control socket: ${RUNTIME_DIR}/vtep.sock, mode 0600 (root can still use vtep fdb/stats).`,
    'RuntimeDirectory=vtep',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
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
