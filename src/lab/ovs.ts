import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Netns } from './netns.js';

/**
 * A private Open vSwitch (userspace datapath) inside a namespace, off /var/run/openvswitch:
 * its own database, ovsdb-server and ovs-vswitchd under `dir`, as in shared/RECIPES.md.
 */
export class PrivateOvs {
  private constructor(
    readonly ns: Netns,
    readonly dir: string,
  ) {}

  get env(): Record<string, string> {
    return {
      OVS_RUNDIR: join(this.dir, 'run'),
      OVS_DBDIR: join(this.dir, 'db'),
      OVS_LOGDIR: join(this.dir, 'log'),
    };
  }

  get db(): string {
    return `unix:${join(this.dir, 'run', 'db.sock')}`;
  }

  /** The database server alone: `ovs-vsctl` then needs `--no-wait`. */
  static startDb(ns: Netns, dir: string): PrivateOvs {
    const ovs = new PrivateOvs(ns, dir);
    for (const d of ['run', 'db', 'log']) mkdirSync(join(dir, d), { recursive: true });
    const run = join(dir, 'run');
    const env = ovs.env;
    ns.exec(`ovsdb-tool create ${dir}/db/conf.db /usr/share/openvswitch/vswitch.ovsschema`, {
      env,
    });
    ns.exec(
      `ovsdb-server --remote=punix:${run}/db.sock --pidfile=${run}/ovsdb-server.pid --unixctl=${run}/ovsdb-server.ctl ` +
        `--detach --log-file=${dir}/log/ovsdb.log ${dir}/db/conf.db`,
      { env },
    );
    ovs.vsctl('--no-wait init');
    return ovs;
  }

  /** The database and ovs-vswitchd (bridges then want datapath_type=netdev: no kernel module). */
  static start(ns: Netns, dir: string): PrivateOvs {
    const ovs = PrivateOvs.startDb(ns, dir);
    const run = join(dir, 'run');
    ns.exec(
      `ovs-vswitchd ${ovs.db} --pidfile=${run}/ovs-vswitchd.pid --unixctl=${run}/ovs-vswitchd.ctl --detach ` +
        `--log-file=${dir}/log/vswitchd.log`,
      { env: ovs.env },
    );
    return ovs;
  }

  /** ovs-vsctl against this instance (bounded: it never waits forever). */
  vsctl(args: string): string {
    return this.ns.exec(`ovs-vsctl --timeout=20 --db=${this.db} ${args}`, { env: this.env });
  }

  /** ovs-ofctl against a bridge of this instance (its management socket is in the run dir). */
  ofctl(args: string): string {
    return this.ns.exec(`ovs-ofctl ${args}`, { env: this.env });
  }

  /** ovs-appctl to ovs-vswitchd. */
  appctl(args: string): string {
    return this.ns.exec(`ovs-appctl -t ${join(this.dir, 'run', 'ovs-vswitchd.ctl')} ${args}`, {
      env: this.env,
    });
  }

  /** Learned MACs of a bridge: `ovs-appctl fdb/show` rows as { port, vlan, mac, age }. */
  fdb(bridge: string): { port: string; vlan: number; mac: string; age: number }[] {
    return this.appctl(`fdb/show ${bridge}`)
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 4)
      .map(([port, vlan, mac, age]) => ({ port, vlan: Number(vlan), mac, age: Number(age) }));
  }

  stop(): void {
    for (const name of ['ovs-vswitchd', 'ovsdb-server']) {
      try {
        const pid = Number(readFileSync(join(this.dir, 'run', `${name}.pid`), 'utf8').trim());
        if (pid > 0) process.kill(pid, 'SIGTERM');
      } catch {
        /* not running */
      }
    }
  }
}
