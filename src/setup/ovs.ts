import { isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from '../config/config.js';
import { MAX_VNI } from '../wire/vxlan.js';
import type { Runner } from './runner.js';

/**
 * `vtep setup ovs`: the OVS VXLAN guide's two commands, made idempotent with --may-exist:
 *   ovs-vsctl add-br br0
 *   ovs-vsctl add-port br0 vx_node1 -- set interface vx_node1 type=vxlan options:remote_ip=…
 * Running it again with the same options changes nothing; with other options it updates the
 * port's interface in place.
 */
export interface OvsOptions {
  bridge: string;
  remote: string;
  key?: number;
  portName?: string;
  dstPort?: number;
  /** `unix:PATH` or `tcp:…` of the ovsdb-server (default: the system one). */
  db?: string;
  /** Do not wait for ovs-vswitchd (needed when it is not running). */
  noWait?: boolean;
  /** `netdev` for the userspace datapath (no kernel module). */
  datapathType?: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function validateOvs(o: OvsOptions): OvsOptions {
  if (!NAME.test(o.bridge))
    throw new ConfigError(
      '--bridge',
      o.bridge,
      'must be an interface name of 1..15 letters, digits, "_", "." or "-"',
    );
  if (!(isIPv4(o.remote) || isIPv6(o.remote)))
    throw new ConfigError('--remote', o.remote, 'must be an IPv4 or IPv6 address');
  if (o.key !== undefined && (!Number.isInteger(o.key) || o.key < 0 || o.key > MAX_VNI)) {
    throw new ConfigError('--key', o.key, `must be an integer in 0..${MAX_VNI}`);
  }
  if (o.portName !== undefined && !NAME.test(o.portName))
    throw new ConfigError('--port-name', o.portName, 'must be an interface name');
  if (
    o.dstPort !== undefined &&
    (!Number.isInteger(o.dstPort) || o.dstPort < 1 || o.dstPort > 65535)
  ) {
    throw new ConfigError('--dst-port', o.dstPort, 'must be an integer in 1..65535');
  }
  if (o.db !== undefined && !/^(unix|tcp|ssl):\S+$/.test(o.db))
    throw new ConfigError('--db', o.db, 'must look like unix:PATH or tcp:IP:PORT');
  if (o.datapathType !== undefined && !/^(system|netdev)$/.test(o.datapathType)) {
    throw new ConfigError('--datapath-type', o.datapathType, 'must be system or netdev');
  }
  return o;
}

function vsctl(o: OvsOptions): string[] {
  return ['ovs-vsctl', ...(o.db ? [`--db=${o.db}`] : []), ...(o.noWait ? ['--no-wait'] : [])];
}

export function ovsCommands(opts: OvsOptions): string[][] {
  const o = validateOvs(opts);
  const port = o.portName ?? 'vx_node1';
  const addBr = [...vsctl(o), '--may-exist', 'add-br', o.bridge];
  if (o.datapathType)
    addBr.push('--', 'set', 'bridge', o.bridge, `datapath_type=${o.datapathType}`);
  const options = [`options:remote_ip=${o.remote}`];
  if (o.key !== undefined) options.push(`options:key=${o.key}`);
  if (o.dstPort !== undefined) options.push(`options:dst_port=${o.dstPort}`);
  return [
    addBr,
    [
      ...vsctl(o),
      '--may-exist',
      'add-port',
      o.bridge,
      port,
      '--',
      'set',
      'interface',
      port,
      'type=vxlan',
      ...options,
    ],
  ];
}

export function applyOvs(o: OvsOptions, runner: Runner): void {
  runner.run(ovsCommands(o));
}

/** `ovs-vsctl show` and the port's options: what `--show` prints. */
export function showOvs(o: Pick<OvsOptions, 'db' | 'portName'>, runner: Runner): string {
  const base = vsctl({ bridge: '', remote: '', ...o, noWait: false });
  const port = o.portName ?? 'vx_node1';
  const [show, options] = runner.run([
    [...base, 'show'],
    [...base, 'get', 'interface', port, 'options'],
  ]);
  return runner.dryRun ? '' : `${show.trimEnd()}\n${port} options: ${options.trim()}`;
}
