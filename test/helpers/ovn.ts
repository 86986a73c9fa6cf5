// OVN, started by a test: the northbound, southbound and hardware_vtep databases with ovn-northd
// and ovn-controller-vtep (the "central" side, in the test's own namespace: they talk over unix
// sockets only), and an OVN hypervisor: a private Open vSwitch (userspace datapath, encap vxlan)
// with ovn-controller, in a namespace. As in shared/RECIPES.md.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PrivateOvs } from '../../src/lab/ovs.js';
import type { Netns } from '../../src/lab/netns.js';
import { until } from '../../src/lab/sh.js';
import { VtepDb } from './vtepdb.js';

export const OVN_COMMANDS = [
  'ovsdb-server',
  'ovsdb-tool',
  'ovs-vswitchd',
  'ovs-vsctl',
  'ovn-northd',
  'ovn-controller',
  'ovn-controller-vtep',
  'ovn-nbctl',
  'ovn-sbctl',
  'vtep-ctl',
];

function run(cmd: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(cmd[0], cmd.slice(1), {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function kill(pidFile: string): void {
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
  } catch {
    /* not running */
  }
}

export class OvnCentral {
  readonly vtep: VtepDb;
  private constructor(readonly dir: string) {
    this.vtep = new VtepDb(dir, 'vtep');
  }

  sock(name: 'nb' | 'sb'): string {
    return `unix:${join(this.dir, `${name}.sock`)}`;
  }

  static start(dir: string): OvnCentral {
    const c = new OvnCentral(dir);
    const env = { OVS_RUNDIR: dir, OVN_RUNDIR: dir };
    for (const [name, schema] of [
      ['nb', '/usr/share/ovn/ovn-nb.ovsschema'],
      ['sb', '/usr/share/ovn/ovn-sb.ovsschema'],
    ]) {
      run(['ovsdb-tool', 'create', join(dir, `${name}.db`), schema]);
      run(
        [
          'ovsdb-server',
          `--remote=punix:${join(dir, `${name}.sock`)}`,
          `--pidfile=${join(dir, `${name}.pid`)}`,
          `--unixctl=${join(dir, `${name}.ctl`)}`,
          `--log-file=${join(dir, `${name}.log`)}`,
          '--detach',
          join(dir, `${name}.db`),
        ],
        env,
      );
    }
    c.vtep.start();
    run(
      [
        'ovn-northd',
        `--ovnnb-db=${c.sock('nb')}`,
        `--ovnsb-db=${c.sock('sb')}`,
        `--unixctl=${join(dir, 'northd.ctl')}`,
        `--pidfile=${join(dir, 'northd.pid')}`,
        `--log-file=${join(dir, 'northd.log')}`,
        '--detach',
      ],
      env,
    );
    run(
      [
        'ovn-controller-vtep',
        `--vtep-db=${c.vtep.target}`,
        `--ovnsb-db=${c.sock('sb')}`,
        `--pidfile=${join(dir, 'ocv.pid')}`,
        `--log-file=${join(dir, 'ocv.log')}`,
        '--detach',
      ],
      env,
    );
    return c;
  }

  nbctl(...args: string[]): string {
    return run(['ovn-nbctl', '--timeout=20', `--db=${this.sock('nb')}`, ...args]);
  }

  sbctl(...args: string[]): string {
    return run(['ovn-sbctl', '--timeout=20', `--db=${this.sock('sb')}`, ...args]);
  }

  async stop(): Promise<void> {
    for (const p of ['ocv', 'northd', 'nb', 'sb']) kill(join(this.dir, `${p}.pid`));
    await this.vtep.stop();
  }
}

/**
 * An OVN hypervisor in `host`: Open vSwitch with br-phy holding `eth0` and the underlay address
 * (userspace tunnelling), ovn-controller with encap vxlan, br-int made by it.
 */
export class OvnHypervisor {
  private constructor(
    readonly ovs: PrivateOvs,
    readonly dir: string,
  ) {}

  static async start(
    host: Netns,
    dir: string,
    o: { systemId: string; ip: string; sb: string },
  ): Promise<OvnHypervisor> {
    const ovs = PrivateOvs.start(host, dir);
    ovs.vsctl('add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy eth0');
    await until(
      () => host.exec('ip -o link show br-phy', { allowFail: true }).includes('br-phy'),
      10_000,
    );
    host.exec(`ip addr add ${o.ip}/24 dev br-phy && ip link set br-phy up`);
    ovs.vsctl(
      `set open_vswitch . external_ids:system-id=${o.systemId} external_ids:ovn-remote=${o.sb} ` +
        `external_ids:ovn-encap-type=vxlan external_ids:ovn-encap-ip=${o.ip} external_ids:ovn-bridge-datapath-type=netdev`,
    );
    ovs.vsctl('add-br br-int -- set bridge br-int datapath_type=netdev fail-mode=secure');
    const run = join(dir, 'run');
    host.exec(
      `ovn-controller ${ovs.db} --pidfile=${run}/ovn-controller.pid --log-file=${dir}/log/ovn-controller.log --detach`,
      { env: { ...ovs.env, OVN_RUNDIR: run } },
    );
    return new OvnHypervisor(ovs, dir);
  }

  /** Plug a VM port (an interface of `host`) as logical port `iface`. */
  plug(port: string, iface: string): void {
    this.ovs.vsctl(
      `add-port br-int ${port} -- set interface ${port} external_ids:iface-id=${iface}`,
    );
  }

  stop(): void {
    kill(join(this.dir, 'run', 'ovn-controller.pid'));
    this.ovs.stop();
  }
}
