import { writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { loadConfigFile } from '../config/config.js';

/**
 * `vtep setup systemd`: the guide notes its setup "will not persist across a reboot"; this
 * writes a unit that starts `vtep run --config FILE` at boot, after the network and Open
 * vSwitch. The configuration is validated first, so a unit is never written for a file that
 * would not start.
 */
export interface SystemdOptions {
  config: string;
  /** Where units go (default /etc/systemd/system). */
  unitDir?: string;
  name?: string;
  /** The vtep entry point to start (default: this installation's). */
  bin?: string;
}

export function unitText(o: SystemdOptions): string {
  const config = resolve(o.config);
  loadConfigFile(config);
  const bin = o.bin ?? resolve(process.argv[1]);
  return [
    '[Unit]',
    `Description=vtep VXLAN tunnel endpoint (${config})`,
    'Documentation=https://datatracker.ietf.org/doc/html/rfc7348',
    'After=network-online.target openvswitch-switch.service',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${process.execPath} ${isAbsolute(bin) ? bin : resolve(bin)} run --config ${config}`,
    'Restart=on-failure',
    'RestartSec=2',
    '# TAP devices, the raw socket for source ports, the control socket under /run',
    'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Write the unit; returns its path. */
export function writeUnit(o: SystemdOptions): string {
  const path = join(o.unitDir ?? '/etc/systemd/system', `${o.name ?? 'vtep'}.service`);
  writeFileSync(path, unitText(o));
  return path;
}
