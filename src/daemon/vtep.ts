import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { ConfigError, toSettings, validate, type Config } from '../config/config.js';
import type { ChangeEvent, RunningStats, Status } from '../control/api.js';
import { formatChange } from '../control/format.js';
import {
  ControlError,
  ControlServer,
  argError,
  type ChangeRequest,
  type Command,
} from '../control/server.js';
import { Fdb } from '../fdb/fdb.js';
import { Remotes, remoteKey, type Remote } from '../fdb/remote.js';
import { native } from '../io/native.js';
import { deleteTogether, underlayLink, underlayProblem, type UnderlayLink } from '../io/netif.js';
import {
  describeHolder,
  ownSocketInodes,
  processCommand,
  udpHolders,
  whose,
  type PortHolder,
} from '../io/portowners.js';
import { tapQueueMode } from '../io/tap.js';
import type { UdpSocket } from '../io/udp.js';
import { Gateway } from '../ovsdb/gateway.js';
import { Evpn, evpnProblems, evpnVnis } from './evpn.js';
import type { Log } from '../util/log.js';
import { RateLimiter } from '../util/ratelimit.js';
import { Engine, type CaptureFilter } from '../engine/engine.js';
import { formatMac, stableMac } from '../wire/mac.js';
import { controlCommands } from './commands.js';
import { startMetrics, type Metrics } from './metrics.js';
import {
  TAP_OFFLOADS,
  mtuWarnings,
  resolveMtus,
  slotFor,
  tapSlot,
  udpPayloadMax,
  type Resolved,
} from './mtu.js';
import { OvsdbPorts } from './ovsdbports.js';
import { Groups, type GroupInterfaces } from './groups.js';
import { applyPlan, floodSpecs, planReload, tapMac, type ResolvedVni } from './reload.js';
import { statusOf } from './status.js';
import { TapPort } from './tapport.js';
import { openPlane, type Plane, type PlaneOptions } from './threads/plane.js';
import { Planes } from './threads/planes.js';
import { currentNice, setNice } from './nice.js';
import { summarizeRemotes } from './remotes.js';
import { Bfd, type BfdSession, type BfdSettings } from './bfd.js';
import { BFD_STATE_NAMES, BfdState } from '../wire/bfd.js';

/**
 * One running endpoint (`vtep run`): it opens the devices and the data-plane threads, owns the
 * clock and the timers, serves the control socket and metrics, reloads its configuration and
 * stops. What it opened is kept on one stack and closed in reverse. Everything below it (the
 * engine, the FDB, the devices) is testable without it.
 */

export interface StartOptions {
  /** Reads the configuration again for SIGHUP and `vtep reload` (without blocking). */
  source?: () => Promise<Config>;
  /**
   * A worker thread died: forwarding for its flows has stopped, so the process should stop (and
   * its supervisor restart it). Default: log it.
   */
  onFatal?: (err: Error) => void;
}

const clock = () => performance.now();

/** VNIs the start line names; the others are counted. */
const START_LINE_VNIS = 8;

/** Health checks (1 s) between two looks at who else holds the underlay port. */
const PORT_CHECK_EVERY = 5;

/** sd_notify(3) when started by systemd with Type=notify; a no-op otherwise. */
export function notify(state: string): void {
  const socket = process.env.NOTIFY_SOCKET;
  if (socket) native().sdNotify(socket, state);
}

/** At most this many workers by default: each holds a TAP receive ring per VNI (4 MiB with offloads). */
export const MAX_DEFAULT_WORKERS = 8;

/**
 * How many data-plane threads to run: as configured; otherwise one per core (at most
 * MAX_DEFAULT_WORKERS), but one when a TAP exists without queues (`ip tuntap add` without
 * `multi_queue`, which cannot take a second queue).
 */
export function workerCount(
  cfg: Config,
  cores = availableParallelism(),
  queueMode: (tap: string) => 'multi' | 'single' | undefined = tapQueueMode,
): { count: number; why: string } {
  if (cfg.workers !== undefined) return { count: cfg.workers, why: 'configured' };
  const taps = [...cfg.vnis.map((v) => v.tap), ...(cfg.ovsdb?.ports ?? [])];
  const single = taps.find((tap) => queueMode(tap) === 'single');
  if (single)
    return {
      count: 1,
      why: `tap ${single} exists without queues (ip tuntap add … multi_queue makes them)`,
    };
  const count = Math.min(cores, MAX_DEFAULT_WORKERS);
  return { count, why: `${cores} cores` };
}

function planeOptions(cfg: Resolved, link: UnderlayLink, threads: number): PlaneOptions {
  return {
    local: cfg.local,
    port: cfg.port,
    // UDP GRO (with the offloads) hands over up to 64 KiB of one flow's datagrams at once
    slotSize: slotFor(cfg.tapOffload ? 65535 : udpPayloadMax(cfg, link)),
    gro: cfg.tapOffload,
    zeroChecksum6Tx: cfg.udp6ZeroChecksumTx,
    zeroChecksum6Rx: cfg.udp6ZeroChecksumRx,
    reusePort: threads > 1,
    sourcePortMode: cfg.sourcePortMode,
    sourcePortMin: cfg.sourcePortMin,
    sourcePortMax: cfg.sourcePortMax,
    tapOffload: cfg.tapOffload,
    reservedBits: cfg.reservedBits,
    invalidSourceMac: cfg.invalidSourceMac,
    underlayMtu: link.mtu,
    busyPollUs: cfg.busyPoll,
    ioUring: cfg.ioUring,
  };
}

export class Vtep {
  private readonly fdb: Fdb;
  private readonly remotes = new Remotes();
  /** The running VNIs' TAPs (static VNIs and bound OVSDB ports). */
  private readonly ports = new Map<number, TapPort>();
  /** What was opened, closed in reverse by `stop`. */
  private readonly opened: { close(): void }[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly started = clock();
  private current: Resolved;
  private link: UnderlayLink;
  /** Where the underlay address was at start: tells a link gone down from an address removed. */
  private readonly startLink: UnderlayLink;
  private plane!: Plane;
  private planes!: Planes;
  private groups!: Groups;
  private bfd: Bfd | undefined;
  private ovsdbPorts: OvsdbPorts | undefined;
  private gateway: Gateway | undefined;
  private evpn: Evpn | undefined;
  private control: ControlServer | undefined;
  private metrics: Metrics | undefined;
  private readonly watchers = new Set<(event: object) => void>();
  private stopping: Promise<void> | undefined;

  private constructor(
    given: Config,
    private readonly log: Log,
    private readonly opts: StartOptions,
  ) {
    this.link = underlayLink(given.local, given.underlayMtu);
    this.startLink = this.link;
    this.current = resolveMtus(given, this.link);
    mtuWarnings(this.current, this.link, log);
    this.fdb = new Fdb({
      ageingMs: given.ageingMs,
      maxEntries: given.maxEntries,
      onMove: (m) =>
        log('info', 'fdb_move', Engine.formatMove(m), {
          vni: m.vni,
          mac: formatMac(m.mac),
          from: m.from.key,
          to: m.to.key,
          ...(m.suppressed ? { suppressed: m.suppressed } : {}),
        }),
    });
  }

  /** Open everything and start forwarding; on any failure, close what was opened and throw. */
  static async start(cfg: Config, log: Log, opts: StartOptions = {}): Promise<Vtep> {
    const v = new Vtep(cfg, log, opts);
    try {
      await v.open();
    } catch (err) {
      v.closeAll();
      throw err;
    }
    return v;
  }

  private get engine(): Engine {
    return this.planes.engine;
  }

  private get underlay(): UdpSocket {
    return this.plane.underlay;
  }

  private get sourcePorts(): string {
    return this.planes.sourcePorts;
  }

  private async open(): Promise<void> {
    const threads = workerCount(this.current);
    this.runAtNice();
    await this.openPlanes(threads.count);
    for (const v of this.current.vnis) this.addVni(v, this.openPort(v));
    this.groups.apply(this.current.vnis);
    this.syncBfd();
    // TAP-side MACs: the OVSDB gateway publishes them, EVPN announces them.
    this.planes.onLocalMac = (vni, mac, present) => {
      this.gateway?.localMacsChanged();
      this.evpn?.localMac(vni, mac, present);
    };
    if (this.current.ovsdb) this.openOvsdb();
    if (this.current.evpn) this.openEvpn();
    this.underlay.start(
      (n) => {
        this.metrics?.observeBatch('underlay', n);
        this.engine.underlayReceived(n, clock());
      },
      (err) => this.log('error', 'underlay_error', `underlay: ${err.message}`, { error: err.code }),
    );
    // Ageing: the sweep only pops expired heads, so a 1 s tick costs next to nothing.
    this.timers.push(setInterval(() => this.engine.sweep(clock()), 1000));
    // Health: every thread asked for its counters each second (a stuck one stops answering),
    // and whether sends still leave.
    this.timers.push(setInterval(() => void this.planes.refresh().then(() => this.check()), 1000));
    this.startWatchdog();
    // Every thread has its queues before the control socket says we are up (and before an
    // operator moves a TAP into a VM's namespace, where no queue can be opened any more).
    await this.planes.settled();
    await this.serve();
    this.checkPortOwners();
    this.startLine(threads);
  }

  /** Every thread at the configured niceness, if any (the workers, started next, inherit it). */
  private runAtNice(): void {
    const nice = this.current.nice;
    if (nice === undefined) return;
    const refused = setNice(nice);
    if (refused === null) return;
    const now = currentNice();
    this.log(
      'warn',
      'nice',
      `cannot run at nice ${nice} (${refused.code}): staying at ${now}; lowering it needs CAP_SYS_NICE (the systemd unit sets Nice=), or leave nice out`,
      { nice, current: now, error: refused.code },
    );
  }

  private async openPlanes(count: number): Promise<void> {
    const options = planeOptions(this.current, this.link, count);
    this.claimPort();
    try {
      this.plane = openPlane(options, this.fdb, this.log);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EADDRINUSE') this.claimPort();
      if (code === 'EADDRNOTAVAIL')
        throw new ConfigError(
          'local',
          this.current.local,
          'is not an address of this host (no interface has it)',
        );
      throw err;
    }
    this.opened.push(this.plane);
    this.planes = await Planes.start({
      count,
      engine: this.plane.engine,
      sourcePorts: this.plane.sourcePorts,
      multicastIf: this.plane.multicastIf,
      plane: { ...options, port: this.plane.underlay.port },
      fdb: this.fdb,
      remotes: this.remotes,
      log: this.log,
      clock,
      onFatal:
        this.opts.onFatal ??
        ((err) => this.log('error', 'worker_died', `vtep: ${err.message}`, { error: err.message })),
    });
    const planes = this.planes;
    this.opened.push({ close: () => void planes.stop() });
    this.groups = new Groups({
      local: this.current.local,
      port: this.plane.underlay.port,
      underlay: this.plane.underlay,
      zeroChecksum6Rx: this.current.udp6ZeroChecksumRx,
      planes,
      log: this.log,
      received: (rx, n) => {
        this.metrics?.observeBatch('underlay', n);
        this.engine.underlayReceived(n, clock(), rx);
      },
    });
    this.opened.push(this.groups);
  }

  /**
   * Refuse (exit 2) an underlay port that another socket holds, naming its process, as kernel
   * VXLAN refuses it with EADDRINUSE. Our workers share the port through SO_REUSEPORT, so a
   * second vtep of the same user would otherwise join the group and take a share of the flows.
   */
  private claimPort(): void {
    const { local, port } = this.current;
    if (port === 0) return;
    const held = whose(udpHolders(local, port));
    if (held.length > 0)
      throw new ConfigError(
        'local',
        remoteKey(local, port),
        `the port is in use by ${held.map(describeHolder).join('; ')}`,
      );
  }

  /** Sockets on our port that are not ours (joined the reuseport group after we started). */
  private foreign: PortHolder[] = [];

  private checkPortOwners(): void {
    const { local, port } = this.current;
    const own = ownSocketInodes();
    const foreign = udpHolders(local, this.underlay.port).filter((h) => !own.has(h.inode));
    const key = (hs: PortHolder[]) => hs.map((h) => h.inode).join(',');
    if (key(foreign) === key(this.foreign)) return;
    if (foreign.length > 0) {
      whose(foreign);
      this.log(
        'error',
        'port_shared',
        `vtep: the underlay port ${remoteKey(local, port)} is shared with ${foreign.map(describeHolder).join('; ')}: the kernel gives it a share of the tunnel's datagrams`,
        { holders: foreign },
      );
    } else this.log('info', 'port_owned', 'vtep: the underlay port is ours alone again');
    this.foreign = foreign;
  }

  private openPort(v: ResolvedVni): TapPort {
    const offload = this.current.tapOffload;
    return TapPort.open(
      {
        vni: v.vni,
        name: v.tap,
        mtu: v.mtu,
        mac: tapMac(v),
        slotSize: tapSlot(v.mtu, offload),
        offloads: offload ? TAP_OFFLOADS : 0,
        multiQueue: this.planes.multiQueue,
        bridge: v.bridge,
      },
      this.planes,
      this.log,
      clock,
    );
  }

  /** A static VNI on its (open) TAP, on every thread. */
  private addVni(v: ResolvedVni, port: TapPort): void {
    this.planes.addVni(
      {
        vni: v.vni,
        tap: port.tap!,
        remotes: floodSpecs(v, this.current.port).map((r) => this.remotes.get(r.address, r.port)),
        learnRemotes: v.learnRemotes,
        learning: v.learning,
        maxEntries: v.maxEntries,
        ownMacs: [port.spec.mac],
        mtu: v.mtu,
        suppressArp: v.suppressArp,
        outer: v.outer,
        // EVPN announces the MACs seen on the TAP.
        ...(this.current.evpn ? { localMacs: true } : {}),
      },
      port.queue(),
    );
    this.ports.set(v.vni, port);
    port.onBatch = (n) => this.metrics?.observeBatch('tap', n);
    port.start();
    port.ensureBridge();
  }

  /** The OVSDB gateway: its ports are opened now and carry a VNI once bound. */
  private openOvsdb(): void {
    const o = this.current.ovsdb!;
    const ports = new OvsdbPorts({
      planes: this.planes,
      fdb: this.fdb,
      remotes: this.remotes,
      ports: this.ports,
      staticVnis: () => new Set(this.current.vnis.map((v) => v.vni)),
      dstPort: () => this.current.port,
      outer: () => this.current.outer,
      log: this.log,
      clock,
      changed: (e, logged) => (logged ? this.emit(e) : this.changed(e)),
    });
    this.ovsdbPorts = ports;
    const mtu = this.current.ovsdbMtu;
    const offload = this.current.tapOffload;
    for (const name of o.ports) {
      const port = TapPort.open(
        {
          vni: -1,
          name,
          mtu,
          mac: stableMac(`vtep:${name}:ovsdb`),
          slotSize: tapSlot(mtu, offload),
          offloads: offload ? TAP_OFFLOADS : 0,
          multiQueue: this.planes.multiQueue,
        },
        this.planes,
        this.log,
        clock,
      );
      this.opened.push(port);
      this.planes.openPort(port.queue());
      ports.add(port);
      port.onBatch = (n) => this.metrics?.observeBatch('tap', n);
      port.start();
    }
    const gateway = new Gateway({
      target: o.target,
      me: { name: o.physicalSwitch, tunnelIp: this.current.local, ports: o.ports },
      host: ports,
      log: this.log,
      ...(o.privateKey && o.certificate && o.caCert
        ? { tls: { privateKey: o.privateKey, certificate: o.certificate, caCert: o.caCert } }
        : {}),
      ...(o.maxMessageMiB ? { limits: { maxMessageBytes: o.maxMessageMiB << 20 } } : {}),
    });
    this.gateway = gateway;
    gateway.start();
  }

  /** BGP EVPN through gobgpd: the file's VNIs announced, the fabric's routes applied. */
  private openEvpn(): void {
    const evpn = new Evpn({
      spec: this.current.evpn!,
      planes: this.planes,
      fdb: this.fdb,
      remotes: this.remotes,
      vnis: () => evpnVnis(this.current, (r) => this.remotes.get(r.address, r.port)),
      local: this.current.local,
      dstPort: () => this.current.port,
      log: this.log,
      clock,
      changed: (e) => this.changed(e),
    });
    this.evpn = evpn;
    this.planes.onNeighbour = (vni, ip, mac) => evpn.neighbour(vni, ip, mac);
    evpn.start();
  }

  /** The control socket and the metrics endpoint, when configured. */
  private async serve(): Promise<void> {
    const cfg = this.current;
    if (cfg.control)
      this.control = await ControlServer.listen(
        cfg.control,
        {
          ...controlCommands({
            fdb: this.fdb,
            remotes: this.remotes,
            config: () => this.current,
            tapOf: (vni) => this.ports.get(vni)?.spec.name ?? '-',
            stats: () => this.stats(),
            refresh: () => this.planes.refresh(),
            status: () => this.status(),
            reload: () => this.reloadFromSource(),
            change: (edit) => this.change(edit),
            watch: (send) => this.watch(send),
            trace: (input) => this.planes.trace(input, clock()),
            capture: (filter) => this.capture(filter),
            bfdOf: (key) => this.bfd?.status(key),
          }),
          ...(process.env.VTEP_TEST_HOOKS === '1' ? this.testHooks() : {}),
        },
        {
          onLimit: () => this.atCap('control socket', cfg.control!),
          onChange: (c) => this.audit(c),
        },
      );
    if (cfg.metrics === undefined) return;
    const at = cfg.metrics.lastIndexOf(':');
    try {
      this.metrics = await startMetrics(
        cfg.metrics.slice(0, at).replace(/^\[|\]$/g, ''),
        Number(cfg.metrics.slice(at + 1)),
        () => this.stats(),
        () => this.planes.refresh(),
        () => this.atCap('metrics', cfg.metrics!),
        { ovsdb: cfg.ovsdb !== undefined, evpn: cfg.evpn !== undefined },
      );
    } catch (err) {
      await this.control?.close();
      throw new ConfigError('metrics', cfg.metrics, `cannot listen: ${(err as Error).message}`);
    }
  }

  /**
   * The audit trail: a change through the control socket is a log line naming the client (uid,
   * pid and its command line, from SO_PEERCRED) and a `change` event for `vtep monitor`.
   */
  private audit(c: ChangeRequest): void {
    const result = (c.data as { changes?: string[]; removed?: number } | null) ?? {};
    this.changed({
      event: 'change',
      cmd: c.cmd,
      args: c.args,
      by: c.peer
        ? { uid: c.peer.uid, pid: c.peer.pid, command: processCommand(c.peer.pid) }
        : 'unknown',
      ...(result.changes ? { result: result.changes } : {}),
      ...(result.removed !== undefined ? { result: result.removed } : {}),
      time: new Date().toISOString(),
    });
  }

  /** Say a change: one log line, and the same to every monitor. */
  private changed(e: ChangeEvent): void {
    this.log('info', 'change', `vtep: ${formatChange(e)}`, {
      cmd: e.cmd,
      args: e.args,
      by: e.by,
      ...(e.result !== undefined ? { result: e.result } : {}),
    });
    this.emit(e);
  }

  private emit(event: object): void {
    for (const w of this.watchers) w(event);
  }

  /** A server turned connections away at its cap: said once a minute, with how many since. */
  private atCap(what: string, where: string): void {
    const n = (this.turnedAway.get(what) ?? 0) + 1;
    this.turnedAway.set(what, n);
    let limit = this.capLog.get(what);
    if (!limit) this.capLog.set(what, (limit = new RateLimiter(1, 60_000)));
    if (!limit.allow(clock())) return;
    this.log(
      'warn',
      'connection_cap',
      `${what} ${where}: at its connection cap, turning clients away (${n} so far); forwarding and the other server go on`,
      { server: what, turnedAway: n },
    );
  }

  private readonly turnedAway = new Map<string, number>();
  private readonly capLog = new Map<string, RateLimiter>();

  /** Commands for tests only (VTEP_TEST_HOOKS=1): what no operator should be able to do. */
  private testHooks(): Record<string, Command> {
    return {
      'test.stall': {
        fields: { worker: 'integer', ms: 'integer' },
        run: (a) => {
          if (!this.planes.stall(Number(a.worker), Number(a.ms)))
            throw argError('worker', a.worker, 'is not a worker thread');
          return null;
        },
      },
    };
  }

  private startLine(threads: { count: number; why: string }): void {
    const cfg = this.current;
    const link = this.link;
    const underlay = remoteKey(this.underlay.address, this.underlay.port);
    const vnis = cfg.vnis.map((v) => ({
      vni: v.vni,
      dev: v.tap,
      mac: formatMac(this.ports.get(v.vni)!.spec.mac),
    }));
    // One line per event, even with 1 000 VNIs (journald splits lines past 48 KiB): the first
    // few by name, the rest counted; `vtep stats` lists them all.
    const shown = vnis.slice(0, START_LINE_VNIS);
    const o = cfg.ovsdb;
    this.log(
      'info',
      'start',
      `vtep: listening on ${underlay} (MTU ${link.mtu}${link.source === 'interface' ? ` of ${link.name}` : `, ${link.source}`}), ${threads.count} worker${threads.count > 1 ? 's' : ''} (${threads.why}) at nice ${currentNice()}, source ports ${this.sourcePorts}, ` +
        shown.map((v) => `vni ${v.vni} on ${v.dev} (${v.mac})`).join(', ') +
        (vnis.length > shown.length ? ` and ${vnis.length - shown.length} more VNIs` : '') +
        (o
          ? `${vnis.length ? ', ' : ''}ovsdb ${o.target} physical switch ${o.physicalSwitch} ports ${o.ports.join(',')}`
          : '') +
        (this.control ? `, control ${this.control.path}` : '') +
        (this.metrics ? `, metrics http://${this.metrics.address}/metrics` : ''),
      {
        underlay,
        underlayMtu: link.mtu,
        workers: threads.count,
        nice: currentNice(),
        sourcePorts: this.sourcePorts,
        vnis: shown,
        vniCount: vnis.length,
        ...(this.control ? { control: this.control.path } : {}),
        ...(this.metrics ? { metrics: this.metrics.address } : {}),
        ...(o ? { ovsdb: o.target, physicalSwitch: o.physicalSwitch, ports: o.ports } : {}),
      },
    );
  }

  /** Apply a new configuration live; returns what changed. Throws ConfigError, keeping the old. */
  private reload(given: Config): string[] {
    const nextLink = underlayLink(given.local, given.underlayMtu);
    const next = resolveMtus(given, nextLink);
    const plan = planReload(this.current, next, {
      portsBound: this.plane.portsBound,
      underlayCapacity: this.underlay.rx.capacity,
      tapCapacity: (vni) => this.ports.get(vni)?.tap?.rx.capacity,
      ovsdbVnis: this.ovsdbPorts?.vnis() ?? [],
      link: this.link,
      nextLink,
    });
    const groupIfs = this.groups.resolve(next.vnis); // an interface not there refuses the reload
    const changes = applyPlan(plan, {
      planes: this.planes,
      remotes: this.remotes,
      ports: this.ports,
      openPort: (v) => this.openPort(v),
      addVni: (v, port) => this.addVni(v, port),
      log: this.log,
    });
    changes.push(...this.applyGroups(next.vnis, groupIfs));
    mtuWarnings(next, nextLink, this.log);
    const bfdOf = (c: Config) => JSON.stringify([c.bfd ?? null, c.vnis.map((v) => v.bfd ?? null)]);
    const bfdChanged = bfdOf(this.current) !== bfdOf(next);
    this.current = next;
    this.link = nextLink;
    this.syncBfd();
    this.evpn?.sync();
    if (bfdChanged)
      changes.push(
        `bfd: ${this.bfd ? `sessions with ${this.bfd.size} remotes, to the new settings` : 'off'}`,
      );
    return changes;
  }

  /**
   * BFD with every configured remote (`bfd`), one session each, in the management VNI or the
   * first VNI the remote serves; started, kept to a reload, or stopped.
   */
  private syncBfd(): void {
    const top = this.current.bfd;
    const want = new Map<string, { remote: Remote; vni: number; settings: BfdSettings }>();
    for (const v of this.current.vnis) {
      const settings = v.bfd === false ? undefined : (v.bfd ?? top);
      if (!settings) continue;
      for (const r of v.remotes) {
        const remote = this.remotes.get(r.address, r.port);
        if (!want.has(remote.key))
          want.set(remote.key, {
            remote,
            vni: top?.vni ?? v.vni,
            settings: { intervalMs: settings.intervalMs, multiplier: settings.multiplier },
          });
      }
    }
    if (want.size === 0) {
      if (this.bfd) {
        this.bfd.close();
        this.bfd = undefined;
        this.planes.watchBfd(undefined);
      }
      return;
    }
    if (!this.bfd) {
      const bfd = new Bfd(
        {
          send: (vni, remote, frame) => void this.planes.sendControl(vni, remote, frame),
          changed: (remote, from, s, vni) => this.bfdChanged(remote, from, s, vni),
        },
        clock,
      );
      this.bfd = bfd;
      this.opened.push({ close: () => bfd.close() });
      this.planes.watchBfd((_vni, remote, bytes) => bfd.receive(remote, bytes, 0, bytes.length));
    }
    this.bfd.sync([...want.values()]);
  }

  /** A BFD session changed: said once; down flushes what was learned behind the remote. */
  private bfdChanged(remote: Remote, from: number, s: BfdSession, vni: number): void {
    const st = s.status(vni);
    const was = BFD_STATE_NAMES[from];
    let flushed = 0;
    if (s.state === BfdState.DOWN && from !== BfdState.DOWN)
      flushed = this.fdb.flush({ remote, learnedOnly: true });
    const down = s.state !== BfdState.UP;
    this.log(
      down ? 'warn' : 'info',
      'bfd',
      `bfd: remote ${remote.key} ${was} -> ${st.state}${s.diag ? ` (diagnostic ${s.diag})` : ''}${flushed ? `, ${flushed} MACs learned behind it flushed` : ''}`,
      { remote: remote.key, from: was, state: st.state, diag: s.diag, flushed },
    );
    this.emit({
      event: 'bfd',
      remote: remote.key,
      from: was,
      state: st.state,
      diag: s.diag,
      vni,
      ...(flushed ? { flushed } : {}),
      time: new Date().toISOString(),
    });
  }

  /** The groups of a reloaded configuration joined and left; a refusal is said, not thrown. */
  private applyGroups(vnis: readonly ResolvedVni[], ifs: GroupInterfaces): string[] {
    try {
      return this.groups.apply(vnis, ifs);
    } catch (err) {
      const msg = (err as Error).message;
      this.log('error', 'group_error', `reload: ${msg}`, { error: msg });
      return [`groups not all joined: ${msg}`];
    }
  }

  /**
   * Reload from where the configuration came from (the file, or the same flags). Reading it
   * never blocks forwarding or the control socket; reloads run one after another.
   */
  reloadFromSource(): Promise<string[]> {
    const run = async () => {
      if (!this.opts.source) return this.reload(this.current);
      const next = await this.opts.source();
      notify(`RELOADING=1\nMONOTONIC_USEC=${Math.round(clock() * 1000)}`);
      try {
        return this.reload(next);
      } finally {
        notify('READY=1');
      }
    };
    const done = this.reloading.then(run, run).then(
      (changes) => {
        this.reloads.ok++;
        this.reloads.lastOk = true;
        this.reloads.lastOkTime = Date.now() / 1000;
        return changes;
      },
      (err: unknown) => {
        this.reloads.failed++;
        this.reloads.lastOk = false;
        throw err;
      },
    );
    this.reloading = done.catch(() => []);
    return done;
  }

  private readonly reloads = { ok: 0, failed: 0, lastOk: true, lastOkTime: Date.now() / 1000 };

  private reloading: Promise<unknown> = Promise.resolve();

  /**
   * A live change (`vtep remote add`, `vni del`, …): the running settings, edited, validated
   * and applied exactly as a reload would apply a file with that content. Like `wg set`, it
   * lasts until the next reload from the file (`vtep showconf` prints what to keep).
   */
  private change(edit: (settings: Record<string, unknown>) => void): string[] {
    const settings = toSettings(this.current);
    edit(settings);
    return this.reload(validate(settings, 'the running configuration'));
  }

  private status(): Status {
    const s = statusOf(
      clock(),
      this.started,
      this.allPorts(),
      this.gateway?.status(),
      this.problems(),
    );
    const groups = this.groups.status();
    return groups.length > 0 ? { ...s, groups } : s;
  }

  /** Every TAP: the running VNIs' and the OVSDB ports bound to none. */
  private allPorts(): TapPort[] {
    const unbound = [...(this.ovsdbPorts?.taps.values() ?? [])].filter((p) => p.spec.vni < 0);
    return [...this.ports.values(), ...unbound];
  }

  /** What is wrong outside the TAPs and the OVSDB session: the underlay, sends, stuck threads. */
  private problems(): string[] {
    const out: string[] = [];
    const underlay = underlayProblem(this.current.local, this.startLink.name);
    if (underlay) out.push(underlay);
    if (this.foreign.length > 0)
      out.push(
        `the underlay port is shared with ${this.foreign.map(describeHolder).join('; ')}: it receives a share of the tunnel's datagrams`,
      );
    if (this.sends.failing)
      out.push(
        `sends to every remote are failing (${this.sends.failedLastSecond} in the last second, none sent)`,
      );
    for (const key of this.bfd?.down() ?? [])
      out.push(`remote ${key}: BFD session ${this.bfd!.status(key)!.state}`);
    if (this.evpn) out.push(...evpnProblems(this.evpn.status()));
    for (const s of this.planes.stalled())
      out.push(
        `worker ${s.worker} has not answered for ${(s.forMs / 1000).toFixed(1)} s (stuck?): the flows hashed to it are not forwarded`,
      );
    return out;
  }

  /** Sends in the last second: datagrams out and refused, over every thread. */
  private readonly sends = { tx: 0, failed: 0, failedLastSecond: 0, failing: false };
  private readonly stuck = new Set<number>();
  private checks = 0;

  /** Once a second, after every thread answered (or did not): sends, and stuck threads. */
  private check(): void {
    if (++this.checks % PORT_CHECK_EVERY === 0) this.checkPortOwners();
    for (const p of this.ports.values()) {
      p.ensureBridge();
      p.followMtu();
    }
    const s = this.planes.stats();
    const tx = s.vnis.reduce((a, v) => a + v.tx.packets, 0);
    const failed = s.drops.underlay_send_failed ?? 0;
    this.sends.failedLastSecond = failed - this.sends.failed;
    this.sends.failing = this.sends.failedLastSecond > 0 && tx === this.sends.tx;
    this.sends.tx = tx;
    this.sends.failed = failed;
    const now = new Set<number>();
    for (const st of this.planes.stalled()) {
      now.add(st.worker);
      if (this.stuck.has(st.worker)) continue;
      this.log(
        'error',
        'worker_stalled',
        `vtep: worker ${st.worker} has not answered for ${(st.forMs / 1000).toFixed(1)} s (stuck?); its flows are not forwarded`,
        { worker: st.worker, forMs: Math.round(st.forMs) },
      );
    }
    for (const w of this.stuck)
      if (!now.has(w))
        this.log('info', 'worker_recovered', `vtep: worker ${w} answers again`, { worker: w });
    this.stuck.clear();
    for (const w of now) this.stuck.add(w);
  }

  /**
   * systemd's watchdog (WatchdogSec= in the unit: WATCHDOG_USEC set): WATCHDOG=1 twice per
   * interval while every thread answers. A worker stuck for the whole interval stops the
   * process (status 1) for systemd to restart; a stuck main thread sends nothing, and systemd
   * restarts it all the same.
   */
  private startWatchdog(): void {
    const usec = Number(process.env.WATCHDOG_USEC);
    if (!process.env.NOTIFY_SOCKET || !Number.isFinite(usec) || usec <= 0) return;
    const ms = usec / 1000;
    this.timers.push(
      setInterval(() => {
        const stalled = this.planes.stalled();
        if (stalled.length === 0) return notify('WATCHDOG=1');
        const worst = stalled.reduce((a, b) => (a.forMs > b.forMs ? a : b));
        if (worst.forMs >= ms)
          (this.opts.onFatal ?? (() => {}))(
            new Error(
              `worker ${worst.worker} stuck for ${(worst.forMs / 1000).toFixed(1)} s (watchdog ${ms / 1000} s)`,
            ),
          );
      }, ms / 2),
    );
  }

  /** Every thread's TAP I/O and busy polling, for `vtep stats`. */
  private ioStats(): Pick<RunningStats, 'busyPoll' | 'tapIo'> {
    const io = this.planes.io();
    const { spins, polled, ...tapIo } = io;
    return {
      tapIo,
      ...(this.current.busyPoll ? { busyPoll: { us: this.current.busyPoll, spins, polled } } : {}),
    };
  }

  private stats(): RunningStats {
    const link = this.link;
    const workers = this.planes.threadStats();
    const engine = this.planes.stats(clock());
    return {
      ...engine,
      remotes: summarizeRemotes(engine.vnis, this.fdb.macsByRemote(), (k) => this.bfd?.status(k)),
      ...(workers ? { workers } : {}),
      underlay: remoteKey(this.underlay.address, this.underlay.port),
      underlayMtu: `${link.mtu} ${link.source === 'interface' ? link.name : link.source}`,
      sourcePorts: this.sourcePorts,
      nice: currentNice(),
      // The TAPs only: a scrape need not look at the underlay's interfaces as status does.
      taps: this.allPorts().map((p) => p.status(clock())),
      ...(this.gateway ? { ovsdb: this.gateway.status() } : {}),
      ...(this.evpn ? { evpn: this.evpn.status() } : {}),
      ...this.ioStats(),
      reloads: { ...this.reloads },
      fdbMaxEntries: this.fdb.maxEntries,
      kernel: {
        udpReceiveDrops: this.underlay.kernelDrops() ?? null,
        tapQueueDrops: [...this.ports.values()].map((p) => ({
          vni: p.spec.vni,
          drops: p.tap?.kernelDrops() ?? null,
        })),
      },
    };
  }

  /**
   * `vtep capture`: every packet that matches, on every thread, to `send` as it comes (base64),
   * until the returned function is called. One capture at a time.
   */
  private capture(filter: CaptureFilter): (send: (event: object) => void) => () => void {
    if (this.capturing) throw new ControlError('EBUSY', 'a capture is running already');
    this.capturing = true;
    return (send) => this.startCapture(filter, send);
  }

  private startCapture(filter: CaptureFilter, send: (event: object) => void): () => void {
    const devOf = (vni: number) => this.ports.get(vni)?.spec.name ?? '-';
    const stop = this.planes.capture(
      filter,
      (c) =>
        send({
          event: 'packet',
          vni: c.vni,
          kind: c.kind,
          ...(c.reason ? { reason: c.reason } : {}),
          ...(c.remote ? { remote: c.remote, port: c.port } : {}),
          dev: devOf(c.vni),
          timeUs: Math.round((performance.timeOrigin + performance.now()) * 1000),
          data: Buffer.from(c.bytes.buffer, c.bytes.byteOffset, c.bytes.byteLength).toString(
            'base64',
          ),
        }),
      (n) => send({ event: 'lost', count: n }),
    );
    this.log('info', 'capture', `capture started (${JSON.stringify(filter)})`, { filter });
    return () => {
      stop();
      this.capturing = false;
      this.log('info', 'capture', 'capture stopped');
    };
  }

  private capturing = false;

  /** `vtep monitor`: every FDB event and miss, until the returned function is called. */
  private watch(send: (event: object) => void): () => void {
    this.watchers.add(send);
    const emit = (event: object) => this.emit(event);
    const devOf = (vni: number) => this.ports.get(vni)?.spec.name ?? '-';
    // The FDB and the engines report events only while someone watches.
    this.fdb.onEvent = (e) =>
      emit({
        event: e.type,
        vni: e.vni,
        mac: formatMac(e.mac),
        dev: devOf(e.vni),
        remote: e.remote.key,
        ...(e.from ? { from: e.from.key } : {}),
        time: new Date().toISOString(),
      });
    this.planes.watchMisses((vni, mac) =>
      emit({
        event: 'miss',
        vni,
        mac: formatMac(mac),
        dev: devOf(vni),
        time: new Date().toISOString(),
      }),
    );
    return () => {
      this.watchers.delete(send);
      if (this.watchers.size > 0) return;
      this.fdb.onEvent = undefined;
      this.planes.watchMisses(undefined);
    };
  }

  /**
   * Stop forwarding and release everything. TAPs and sockets are released synchronously; only
   * the listeners' close callbacks are awaited, and they no longer wait for clients.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.gateway?.close();
      await this.evpn?.close();
      for (const t of this.timers) clearInterval(t);
      this.underlay.stop();
      this.deleteTaps();
      await this.planes.stop();
      this.closeAll();
      await Promise.all([this.control?.close(), this.metrics?.close()]);
    })();
    return this.stopping;
  }

  /**
   * Delete the TAPs that closing would delete anyway as one batch, while every thread still
   * holds its queue: each close of a TAP's queue (the last one unregistering the device) waits
   * for an RCU grace period of its own, ~16 ms, so 1 000 TAPs took 22 s to stop; one batch
   * waits for one. The threads' reads then end as for a deleted device, and the closes are cheap.
   */
  private deleteTaps(): void {
    const doomed: number[] = [];
    for (const p of this.allPorts()) {
      const i = p.release(this.planes.count);
      if (i !== undefined) doomed.push(i);
    }
    const t0 = performance.now();
    const n = deleteTogether(doomed);
    if (n > 0)
      this.log('info', 'taps_deleted', `stop: ${n} TAPs deleted as one batch`, {
        count: n,
        ms: Math.round(performance.now() - t0),
      });
    else if (n < 0) {
      const error = native().errnoName(-n);
      this.log(
        'warn',
        'taps_delete_failed',
        `stop: TAPs not deleted as a batch (${error}); closing them one by one`,
        { error },
      );
    }
  }

  private closeAll(): void {
    for (const p of this.ports.values()) p.close();
    this.opened.reverse().forEach((d) => d.close());
    this.opened.length = 0;
  }
}
