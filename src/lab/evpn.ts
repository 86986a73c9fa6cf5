import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from './netns.js';
import { sh, until } from './sh.js';

/**
 * The BGP speakers of an EVPN fabric, privately in a namespace: FRR (zebra + bgpd, beside a
 * kernel VXLAN device in a bridge, `advertise-all-vni`) and gobgpd (vtep's speaker, gRPC on the
 * namespace's loopback). Both with short timers, so that tests do not wait for BGP's defaults.
 */

export interface Neighbour {
  address: string;
  asn: number;
}

export interface SpeakerOptions {
  asn: number;
  routerId: string;
  neighbours: Neighbour[];
}

/** uid/gid of user `frr` (FRR drops privileges to it: its directory must be its own). */
function frrIds(): [number, number] {
  const [uid, gid] = sh('id -u frr && id -g frr').trim().split('\n').map(Number);
  return [uid!, gid!];
}

export class Frr {
  private constructor(
    readonly ns: Netns,
    readonly dir: string,
  ) {}

  /** zebra and bgpd in `ns`, in a directory of their own (FRR runs as user frr). */
  static async start(ns: Netns, o: SpeakerOptions): Promise<Frr> {
    const dir = mkdtempSync(join(tmpdir(), 'vtep-frr-'));
    const [uid, gid] = frrIds();
    const bgpd = [
      'frr defaults traditional',
      `router bgp ${o.asn}`,
      ` bgp router-id ${o.routerId}`,
      ' no bgp default ipv4-unicast',
      ' no bgp ebgp-requires-policy',
      ' timers bgp 3 9',
      ...o.neighbours.flatMap((n) => [
        ` neighbor ${n.address} remote-as ${n.asn}`,
        ` neighbor ${n.address} timers connect 1`,
        ` neighbor ${n.address} advertisement-interval 0`,
      ]),
      ' address-family l2vpn evpn',
      ...o.neighbours.map((n) => `  neighbor ${n.address} activate`),
      '  advertise-all-vni',
      ' exit-address-family',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'bgpd.conf'), bgpd);
    writeFileSync(join(dir, 'zebra.conf'), 'hostname zebra\n');
    for (const f of ['', 'bgpd.conf', 'zebra.conf']) chownSync(join(dir, f), uid, gid);
    const frr = new Frr(ns, dir);
    const common = `-N ${ns.name} -z ${dir}/zserv.api --vty_socket ${dir}`;
    ns.exec(`/usr/lib/frr/zebra -d ${common} -f ${dir}/zebra.conf -i ${dir}/zebra.pid`);
    await until(
      () => sh(`test -S ${dir}/zserv.api && echo y`, { allowFail: true }).includes('y'),
      10_000,
    );
    ns.exec(`/usr/lib/frr/bgpd -d ${common} -f ${dir}/bgpd.conf -i ${dir}/bgpd.pid`);
    const up = await until(() => frr.vtysh('show bgp summary', true).includes('BGP'), 10_000, 100);
    if (!up) throw new Error(`FRR did not start in ${ns.name}`);
    return frr;
  }

  /** One vtysh command (no `-N`: the socket directory says which FRR). */
  vtysh(cmd: string, allowFail = false): string {
    return sh(`ip netns exec ${this.ns.name} vtysh --vty_socket ${this.dir} -c '${cmd}'`, {
      allowFail,
    });
  }

  /** `show … json`, parsed ({} when FRR is not there). */
  json(cmd: string): Record<string, unknown> {
    const out = this.vtysh(`${cmd} json`, true);
    try {
      return JSON.parse(out) as Record<string, unknown>;
    } catch {
      return {};
    }
  }

  private kill(name: string, signal: string): void {
    sh(`kill -${signal} $(cat ${this.dir}/${name}.pid) 2>/dev/null`, { allowFail: true });
  }

  /** bgpd alone, killed (a crash: no NOTIFICATION, the peer sees the TCP connection go). */
  stopBgpd(): void {
    this.kill('bgpd', 'KILL');
  }

  async startBgpd(): Promise<void> {
    this.ns.exec(
      `/usr/lib/frr/bgpd -d -N ${this.ns.name} -z ${this.dir}/zserv.api --vty_socket ${this.dir} -f ${this.dir}/bgpd.conf -i ${this.dir}/bgpd.pid`,
    );
    await until(() => this.vtysh('show bgp summary', true).includes('BGP'), 10_000, 100);
  }

  stop(): void {
    this.kill('bgpd', 'KILL');
    this.kill('zebra', 'KILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class Gobgpd {
  proc: ChildProcess | undefined;

  private constructor(
    readonly ns: Netns,
    readonly dir: string,
    readonly api: string,
  ) {}

  /** gobgpd in `ns` with its gRPC API on 127.0.0.1:`port` there; `dir` holds config and log. */
  static async start(ns: Netns, dir: string, o: SpeakerOptions, port = 50051): Promise<Gobgpd> {
    const toml = [
      '[global.config]',
      `  as = ${o.asn}`,
      `  router-id = "${o.routerId}"`,
      ...o.neighbours.flatMap((n) => [
        '[[neighbors]]',
        '  [neighbors.config]',
        `    neighbor-address = "${n.address}"`,
        `    peer-as = ${n.asn}`,
        '  [neighbors.timers.config]',
        '    connect-retry = 1',
        '    hold-time = 9',
        '    keepalive-interval = 3',
        '  [[neighbors.afi-safis]]',
        '    [neighbors.afi-safis.config]',
        '      afi-safi-name = "l2vpn-evpn"',
      ]),
      '',
    ].join('\n');
    writeFileSync(join(dir, `gobgpd-${port}.toml`), toml);
    const g = new Gobgpd(ns, dir, `127.0.0.1:${port}`);
    await g.run();
    return g;
  }

  /** (Re)start the daemon and wait for its API. */
  async run(): Promise<void> {
    const port = this.api.split(':')[1]!;
    const log = openSync(join(this.dir, `gobgpd-${port}.log`), 'a');
    this.proc = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns.name,
        'gobgpd',
        '-f',
        join(this.dir, `gobgpd-${port}.toml`),
        '--api-hosts',
        this.api,
        '-p',
        '--pprof-disable',
      ],
      { stdio: ['ignore', log, log] },
    );
    const up = await until(() => this.cli('global', true).includes('AS'), 10_000, 100);
    if (!up) throw new Error(`gobgpd did not start in ${this.ns.name}`);
  }

  /** One `gobgp` CLI command against this daemon. */
  cli(args: string, allowFail = false): string {
    return sh(
      `ip netns exec ${this.ns.name} gobgp -u 127.0.0.1 -p ${this.api.split(':')[1]} ${args}`,
      {
        allowFail,
      },
    );
  }

  /** Kill it (a crash, or `systemctl stop` without a goodbye) and wait for the exit. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }
}
