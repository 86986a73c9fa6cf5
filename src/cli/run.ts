import { isIPv4 } from 'node:net';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  ConfigError,
  checkRemote,
  formatRemote,
  integer,
  toSettings,
  toYaml,
  validate,
  type Config,
  type VniSpec,
} from '../config/config.js';
import {
  ControlError,
  ControlServer,
  Rows,
  Subscription,
  argError,
  type Command,
} from '../control/server.js';
import { Fdb, FdbError, type FdbRow } from '../fdb/fdb.js';
import { Remotes, type Remote } from '../fdb/remote.js';
import { native } from '../io/native.js';
import { underlayLink, type UnderlayLink } from '../io/netif.js';
import { tapQueueMode } from '../io/tap.js';
import type { UdpSocket } from '../io/udp.js';
import {
  Engine,
  encapOverhead,
  type EngineStats,
  type VniConfig,
  type VniUpdate,
} from '../vtep/engine.js';
import { TunOffload } from '../wire/gso.js';
import { formatMac, parseMac, stableMac, writeMac } from '../wire/mac.js';
import { MAX_VNI } from '../wire/vxlan.js';
import { Gateway, type GatewayStatus } from '../ovsdb/gateway.js';
import { HEADROOM, openPlane, type PlaneOptions } from './dataplane.js';
import { startMetrics, type Metrics } from './metrics.js';
import { OvsdbPorts } from './ovsdbports.js';
import { TapPort, type TapStatus } from './tapport.js';
import { Workers, mergeStats, threadStats, type ThreadStats } from './workers.js';
import type { Log } from '../util/log.js';

/**
 * Composition root of `vtep run`: opens the devices, builds the engine, owns the clock and the
 * timers, serves the control socket, reloads the configuration and stops. Everything below it
 * is testable without these.
 */

export type { Log } from '../util/log.js';

export interface Status {
  healthy: boolean;
  /** One line per problem (a TAP that is down, …); empty when healthy. */
  problems: string[];
  uptimeSeconds: number;
  taps: TapStatus[];
}

export interface RunningStats extends EngineStats {
  underlay: string;
  /** The underlay MTU in use and where it came from (`1500 eth0`, `9000 configured`, …). */
  underlayMtu: string;
  sourcePorts: string;
  taps: TapStatus[];
  /** The OVSDB session and what it bound, when `ovsdb` is configured. */
  ovsdb?: GatewayStatus;
  /** With `workers` > 1: each thread's share (0 is the main thread); the counters above add them up. */
  workers?: ThreadStats[];
  /**
   * Losses in the kernel, before vtep sees a packet, where a flood's loss actually is: the
   * underlay socket's receive-buffer drops and each TAP's queue drops (null when unknown, e.g.
   * a TAP moved into another namespace).
   */
  kernel: {
    udpReceiveDrops: number | null;
    tapQueueDrops: { vni: number; drops: number | null }[];
  };
}

export interface Running {
  engine: Engine;
  fdb: Fdb;
  underlay: UdpSocket;
  ports: Map<number, TapPort>;
  control?: ControlServer;
  sourcePorts: string;
  /** Apply a new configuration live; returns what changed. Throws ConfigError, keeping the old. */
  reload(next: Config): string[];
  /** Reload from where the configuration came from (the file, or the same flags). */
  reloadFromSource(): string[];
  status(): Status;
  stats(): RunningStats;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Reads the configuration again for SIGHUP and `vtep reload`. */
  source?: () => Config;
  /**
   * A worker thread died: forwarding for its flows has stopped, so the process should stop (and
   * its supervisor restart it). Default: log it.
   */
  onFatal?: (err: Error) => void;
}

const clock = () => performance.now();

/** sd_notify(3) when started by systemd with Type=notify; a no-op otherwise. */
export function notify(state: string): void {
  const socket = process.env.NOTIFY_SOCKET;
  if (socket) native().sdNotify(socket, state);
}

/** Bytes of a frame beyond its MTU: Ethernet header and one 802.1Q tag. */
const L2_MAX = 18;

/** The largest frame a TAP with TCP segmentation offload hands us: 64 KiB of IP, and L2. */
const SUPER_FRAME = 65535 + L2_MAX;
/** What we offer the kernel on TAPs: partial checksums and TCP super-frames over IPv4 and IPv6. */
const TAP_OFFLOADS = TunOffload.CSUM | TunOffload.TSO4 | TunOffload.TSO6;

/** A receive slot for frames or datagrams of up to `bytes`: at least 2 KiB, cache-line aligned. */
export function slotFor(bytes: number): number {
  return Math.max(2048, Math.ceil((HEADROOM + bytes) / 64) * 64);
}

/** The TAP MTU when none is configured: what fits the underlay once encapsulated. */
export function defaultMtu(link: UnderlayLink, family: 4 | 6): number {
  return link.mtu - encapOverhead(family) - 14;
}

/** A configuration whose every VNI (and OVSDB port) has its MTU decided. */
type Resolved = Omit<Config, 'vnis'> & {
  vnis: (VniSpec & { mtu: number })[];
  /** The MTU of the OVSDB ports. */
  ovsdbMtu: number;
};

/** The configuration with every VNI's MTU decided (configured, or derived from the underlay). */
function resolveMtus(cfg: Config, link: UnderlayLink): Resolved {
  const family = isIPv4(cfg.local) ? 4 : 6;
  return {
    ...cfg,
    vnis: cfg.vnis.map((v) => ({ ...v, mtu: v.mtu ?? defaultMtu(link, family) })),
    ovsdbMtu: cfg.ovsdb?.mtu ?? defaultMtu(link, family),
  };
}

/** The largest frame MTU of the configuration: static VNIs and OVSDB ports. */
function largestMtu(cfg: Resolved): number {
  return Math.max(...cfg.vnis.map((v) => v.mtu), cfg.ovsdb ? cfg.ovsdbMtu : 0);
}

/** The largest datagram the underlay ring must hold: what the link carries, or our own frames. */
function udpPayloadMax(cfg: Resolved, link: UnderlayLink): number {
  const ip = isIPv4(cfg.local) ? 20 : 40;
  return Math.max(link.mtu - ip - 8, 16 + largestMtu(cfg) + L2_MAX);
}

/** Say when a VNI's MTU cannot fit the underlay: its larger packets will get ICMP "too big". */
function mtuWarnings(cfg: Resolved, link: UnderlayLink, log: Log): void {
  const family = isIPv4(cfg.local) ? 4 : 6;
  const fits = defaultMtu(link, family);
  for (const v of cfg.vnis)
    if (v.mtu > fits)
      log(
        'warn',
        'mtu_too_big',
        `vni ${v.vni}: mtu ${v.mtu} does not fit the underlay (MTU ${link.mtu}${link.name ? ` on ${link.name}` : ''}, ${encapOverhead(family) + 14} bytes of VXLAN over IPv${family}): packets over ${fits} bytes are dropped and answered with ICMP "${family === 4 ? 'fragmentation needed' : 'packet too big'}"`,
        {
          vni: v.vni,
          mtu: v.mtu,
          fits,
          underlayMtu: link.mtu,
          ...(link.name ? { dev: link.name } : {}),
        },
      );
}

/** The TAP's MAC: as configured, or derived from its name and VNI so it survives restarts. */
export function tapMac(v: VniSpec): number {
  return v.mac !== undefined ? parseMac(v.mac)! : stableMac(`vtep:${v.tap}:${v.vni}`);
}

/** At most this many workers by default: each holds a TAP receive ring per VNI (4 MiB with offloads). */
export const MAX_DEFAULT_WORKERS = 8;

/**
 * How many data-plane threads to run: as configured; otherwise one per core (at most
 * MAX_DEFAULT_WORKERS), but one when OVSDB drives the ports or a TAP exists without queues
 * (`ip tuntap add` without `multi_queue`, which cannot take a second queue).
 */
export function workerCount(
  cfg: Config,
  cores = availableParallelism(),
  queueMode: (tap: string) => 'multi' | 'single' | undefined = tapQueueMode,
): { count: number; why: string } {
  if (cfg.workers !== undefined) return { count: cfg.workers, why: 'configured' };
  if (cfg.ovsdb) return { count: 1, why: 'ovsdb ports are served by one thread' };
  const single = cfg.vnis.find((v) => queueMode(v.tap) === 'single');
  if (single)
    return {
      count: 1,
      why: `tap ${single.tap} exists without queues (ip tuntap add … multi_queue makes them)`,
    };
  const count = Math.min(cores, MAX_DEFAULT_WORKERS);
  return { count, why: `${cores} cores` };
}

export async function startVtep(
  given: Config,
  log: Log,
  opts: StartOptions = {},
): Promise<Running> {
  const started = clock();
  const link = underlayLink(given.local, given.underlayMtu);
  const cfg = resolveMtus(given, link);
  mtuWarnings(cfg, link, log);
  const threads = workerCount(cfg);
  const remotes = new Remotes();
  const fdb = new Fdb({
    ageingMs: cfg.ageingMs,
    maxEntries: cfg.maxEntries,
    onMove: (m) =>
      log('info', 'fdb_move', Engine.formatMove(m), {
        vni: m.vni,
        mac: formatMac(m.mac),
        from: m.from.key,
        to: m.to.key,
        ...(m.suppressed ? { suppressed: m.suppressed } : {}),
      }),
  });
  const ports = new Map<number, TapPort>();
  const opened: { close(): void }[] = [];
  const closeAll = () => {
    for (const p of ports.values()) p.close();
    opened.reverse().forEach((d) => d.close());
  };
  try {
    const planeOptions: PlaneOptions = {
      local: cfg.local,
      port: cfg.port,
      // UDP GRO (with the offloads) hands over up to 64 KiB of one flow's datagrams at once
      slotSize: slotFor(cfg.tapOffload ? 65535 : udpPayloadMax(cfg, link)),
      gro: cfg.tapOffload,
      zeroChecksum6Tx: cfg.udp6ZeroChecksumTx,
      zeroChecksum6Rx: cfg.udp6ZeroChecksumRx,
      reusePort: threads.count > 1,
      sourcePortMode: cfg.sourcePortMode,
      sourcePortMin: cfg.sourcePortMin,
      sourcePortMax: cfg.sourcePortMax,
      tapOffload: cfg.tapOffload,
      reservedBits: cfg.reservedBits,
      invalidSourceMac: cfg.invalidSourceMac,
      underlayMtu: link.mtu,
    };
    const plane = openPlane(planeOptions, fdb, log);
    opened.push(plane);
    const { underlay, engine } = plane;
    let sourcePorts = plane.sourcePorts;
    const workers =
      threads.count > 1
        ? await Workers.start({
            count: threads.count - 1,
            plane: { ...planeOptions, port: underlay.port },
            engine,
            fdb,
            remotes,
            log,
            clock,
            onFatal:
              opts.onFatal ??
              ((err) =>
                log('error', 'worker_died', `vtep: ${err.message}`, { error: err.message })),
          })
        : undefined;
    if (workers) {
      opened.push({ close: () => void workers.stop() });
      const theirs = workers.sourcePorts().filter((p) => p !== sourcePorts);
      if (theirs.length) sourcePorts += `; workers: ${theirs.join('; ')}`;
    }
    const remotesOf = (v: VniSpec): Remote[] =>
      v.remotes.map((r) => remotes.get(r.address, r.port));
    const openPort = (v: VniSpec & { mtu: number }) =>
      TapPort.open(
        {
          vni: v.vni,
          name: v.tap,
          mtu: v.mtu,
          mac: tapMac(v),
          slotSize: slotFor(cfg.tapOffload ? SUPER_FRAME : v.mtu + L2_MAX),
          offloads: cfg.tapOffload ? TAP_OFFLOADS : 0,
          multiQueue: threads.count > 1,
        },
        engine,
        log,
        clock,
      );
    const addVni = (v: VniSpec & { mtu: number }, port: TapPort) => {
      const vc: VniConfig = {
        vni: v.vni,
        tap: port.tap!,
        remotes: remotesOf(v),
        learnRemotes: v.learnRemotes,
        learning: v.learning,
        maxEntries: v.maxEntries,
        ownMacs: [port.spec.mac],
        mtu: v.mtu,
        suppressArp: v.suppressArp,
      };
      engine.addVni(vc);
      ports.set(v.vni, port);
      port.onBatch = (n) => metrics?.observeBatch('tap', n);
      port.start();
      if (workers) {
        const { name, slotSize, offloads } = port.spec;
        workers.addVni(vc, { name, slotSize, offloads: port.tap?.offloads ?? offloads ?? 0 });
        port.onDevice = (up) => (up ? workers.attach(v.vni) : workers.detach(v.vni));
      }
    };
    for (const v of cfg.vnis) addVni(v, openPort(v));
    let metrics: Metrics | undefined;

    // The OVSDB gateway: its ports are opened now and carry a VNI once bound.
    let current: Resolved = cfg;
    let gateway: Gateway | undefined;
    const gw = cfg.ovsdb
      ? new OvsdbPorts({
          engine,
          fdb,
          remotes,
          ports,
          staticVnis: () => new Set(current.vnis.map((v) => v.vni)),
          dstPort: () => current.port,
          log,
          clock,
        })
      : undefined;
    if (cfg.ovsdb && gw) {
      for (const name of cfg.ovsdb.ports) {
        const port = TapPort.open(
          {
            vni: -1,
            name,
            mtu: cfg.ovsdbMtu,
            mac: stableMac(`vtep:${name}:ovsdb`),
            slotSize: slotFor(cfg.tapOffload ? SUPER_FRAME : cfg.ovsdbMtu + L2_MAX),
            offloads: cfg.tapOffload ? TAP_OFFLOADS : 0,
          },
          engine,
          log,
          clock,
        );
        opened.push(port);
        gw.add(port);
        port.onBatch = (n) => metrics?.observeBatch('tap', n);
        port.start();
      }
      const o = cfg.ovsdb;
      gateway = new Gateway({
        target: o.target,
        me: { name: o.physicalSwitch, tunnelIp: cfg.local, ports: o.ports },
        host: gw,
        log,
        ...(o.privateKey && o.certificate && o.caCert
          ? { tls: { privateKey: o.privateKey, certificate: o.certificate, caCert: o.caCert } }
          : {}),
        ...(o.maxMessageMiB ? { limits: { maxMessageBytes: o.maxMessageMiB << 20 } } : {}),
      });
      const g = gateway;
      engine.onLocalMac = () => g.localMacsChanged();
      gateway.start();
    }
    underlay.start(
      (n) => {
        metrics?.observeBatch('underlay', n);
        engine.underlayReceived(n, clock());
      },
      (err) => log('error', 'underlay_error', `underlay: ${err.message}`, { error: err.code }),
    );
    // Ageing: the sweep only pops expired heads, so a 1 s tick costs next to nothing.
    const ageing = setInterval(() => engine.sweep(clock()), 1000);

    let currentLink = link;
    const reload = (given: Config): string[] => {
      const nextLink = underlayLink(given.local, given.underlayMtu);
      const next = resolveMtus(given, nextLink);
      const payload = udpPayloadMax(next, nextLink);
      if (payload > underlay.rx.capacity)
        throw new ConfigError(
          'mtu',
          largestMtu(next),
          `needs ${payload}-byte underlay receive slots, the running ones hold ${underlay.rx.capacity}; restart to raise it`,
        );
      for (const v of next.vnis)
        if (gw?.vnis().includes(v.vni) && !current.vnis.some((c) => c.vni === v.vni))
          throw new ConfigError(
            `vni ${v.vni}`,
            v.vni,
            'is carried by an OVSDB port now (its logical switch has this tunnel_key)',
          );
      const changes = applyReload(current, next, {
        engine,
        workers,
        portsBound: plane.portsBound,
        fdb,
        ports,
        openPort,
        addVni,
        remotesOf,
        log,
      });
      if (nextLink.mtu !== currentLink.mtu) {
        engine.configure({ underlayMtu: nextLink.mtu });
        workers?.configure({ underlayMtu: nextLink.mtu });
        changes.push(`underlay mtu ${currentLink.mtu} -> ${nextLink.mtu}`);
        log('info', 'reload', `reload: underlay mtu ${currentLink.mtu} -> ${nextLink.mtu}`, {
          change: `underlay mtu ${currentLink.mtu} -> ${nextLink.mtu}`,
        });
      }
      mtuWarnings(next, nextLink, log);
      current = next;
      currentLink = nextLink;
      return changes;
    };
    const status = (): Status => {
      const now = clock();
      const unbound = [...(gw?.taps.values() ?? [])].filter((p) => p.spec.vni < 0);
      const taps = [...ports.values(), ...unbound].map((p) => p.status(now));
      const problems = taps
        .filter((t) => t.state !== 'up')
        .map(
          (t) =>
            `tap ${t.name} (vni ${t.vni ?? 'unbound'}) is down for ${(t.downForMs / 1000).toFixed(1)} s${t.lastError ? `: ${t.lastError}` : ''}`,
        );
      const g = gateway?.status();
      if (g && g.state !== 'connected')
        problems.push(
          `ovsdb ${g.target} is not connected (${g.state} for ${g.forSeconds} s${g.lastError ? `: ${g.lastError}` : ''}); forwarding goes on with what it last knew`,
        );
      return {
        healthy: problems.length === 0,
        problems,
        uptimeSeconds: Math.floor((now - started) / 1000),
        taps,
      };
    };
    const stats = (): RunningStats => {
      const own = engine.stats();
      return {
        ...(workers ? mergeStats(own, workers.latest()) : own),
        ...(workers ? { workers: [threadStats(0, own), ...workers.threadStats()] } : {}),
        underlay: `${underlay.address}:${underlay.port}`,
        underlayMtu: `${currentLink.mtu} ${currentLink.source === 'interface' ? currentLink.name : currentLink.source}`,
        sourcePorts,
        taps: status().taps,
        ...(gateway ? { ovsdb: gateway.status() } : {}),
        kernel: {
          udpReceiveDrops: underlay.kernelDrops() ?? null,
          tapQueueDrops: [...ports.values()].map((p) => ({
            vni: p.spec.vni,
            drops: p.tap?.kernelDrops() ?? null,
          })),
        },
      };
    };
    const reloadFromSource = () => {
      if (!opts.source) return reload(current);
      notify(`RELOADING=1\nMONOTONIC_USEC=${Math.round(clock() * 1000)}`);
      try {
        return reload(opts.source());
      } finally {
        notify('READY=1');
      }
    };
    /**
     * A live change (`vtep remote add`, `vni del`, …): the running settings, edited, validated
     * and applied exactly as a reload would apply a file with that content. Like `wg set`, it
     * lasts until the next reload from the file (`vtep showconf` prints what to keep).
     */
    const change = (edit: (settings: Record<string, unknown>) => void): string[] => {
      const settings = toSettings(current);
      edit(settings);
      return reload(validate(settings, 'the running configuration'));
    };
    // `vtep monitor`: the FDB and the engine report events only while someone watches.
    const watchers = new Set<(event: object) => void>();
    const emit = (event: object) => {
      for (const w of watchers) w(event);
    };
    const devOf = (vni: number) => ports.get(vni)?.spec.name ?? '-';
    const watch = (send: (event: object) => void) => {
      watchers.add(send);
      fdb.onEvent = (e) =>
        emit({
          event: e.type,
          vni: e.vni,
          mac: formatMac(e.mac),
          dev: devOf(e.vni),
          remote: e.remote.key,
          ...(e.from ? { from: e.from.key } : {}),
          time: new Date().toISOString(),
        });
      const miss = (vni: number, mac: number) =>
        emit({
          event: 'miss',
          vni,
          mac: formatMac(mac),
          dev: devOf(vni),
          time: new Date().toISOString(),
        });
      engine.onMiss = miss;
      workers?.watchMisses(miss);
      return () => {
        watchers.delete(send);
        if (watchers.size === 0) {
          fdb.onEvent = undefined;
          engine.onMiss = undefined;
          workers?.watchMisses(undefined);
        }
      };
    };
    const control = cfg.control
      ? await ControlServer.listen(
          cfg.control,
          controlCommands({
            fdb,
            remotes,
            config: () => current,
            tapOf: (vni) => ports.get(vni)?.spec.name ?? '-',
            stats,
            refresh: workers ? () => workers.refresh() : undefined,
            status,
            reload: reloadFromSource,
            change,
            watch,
          }),
        )
      : undefined;
    if (cfg.metrics !== undefined) {
      const at = cfg.metrics.lastIndexOf(':');
      try {
        metrics = await startMetrics(
          cfg.metrics.slice(0, at).replace(/^\[|\]$/g, ''),
          Number(cfg.metrics.slice(at + 1)),
          stats,
          workers ? () => workers.refresh() : undefined,
        );
      } catch (err) {
        await control?.close();
        throw new ConfigError('metrics', cfg.metrics, `cannot listen: ${(err as Error).message}`);
      }
    }
    log(
      'info',
      'start',
      `vtep: listening on ${underlay.address}:${underlay.port} (MTU ${link.mtu}${link.source === 'interface' ? ` of ${link.name}` : `, ${link.source}`}), ${threads.count} worker${threads.count > 1 ? 's' : ''} (${threads.why}), source ports ${sourcePorts}, ` +
        cfg.vnis
          .map((v) => `vni ${v.vni} on ${v.tap} (${formatMac(ports.get(v.vni)!.spec.mac)})`)
          .join(', ') +
        (cfg.ovsdb
          ? `${cfg.vnis.length ? ', ' : ''}ovsdb ${cfg.ovsdb.target} physical switch ${cfg.ovsdb.physicalSwitch} ports ${cfg.ovsdb.ports.join(',')}`
          : '') +
        (control ? `, control ${control.path}` : '') +
        (metrics ? `, metrics http://${metrics.address}/metrics` : ''),
      {
        underlay: `${underlay.address}:${underlay.port}`,
        underlayMtu: link.mtu,
        workers: threads.count,
        sourcePorts,
        vnis: cfg.vnis.map((v) => ({
          vni: v.vni,
          dev: v.tap,
          mac: formatMac(ports.get(v.vni)!.spec.mac),
        })),
        ...(control ? { control: control.path } : {}),
        ...(metrics ? { metrics: metrics.address } : {}),
        ...(cfg.ovsdb
          ? {
              ovsdb: cfg.ovsdb.target,
              physicalSwitch: cfg.ovsdb.physicalSwitch,
              ports: cfg.ovsdb.ports,
            }
          : {}),
      },
    );
    let stopping: Promise<void> | undefined;
    return {
      engine,
      fdb,
      underlay,
      ports,
      control,
      sourcePorts,
      reload,
      reloadFromSource,
      status,
      stats,
      stop() {
        // Forwarding, TAPs and sockets are released synchronously; only the listener's close
        // callback is awaited, and it no longer waits for clients (they are ended).
        stopping ??= (async () => {
          gateway?.close();
          clearInterval(ageing);
          underlay.stop();
          await workers?.stop();
          closeAll();
          await Promise.all([control?.close(), metrics?.close()]);
        })();
        return stopping;
      },
    };
  } catch (err) {
    closeAll();
    throw err;
  }
}

interface ReloadContext {
  engine: Engine;
  workers: Workers | undefined;
  /** Flows hash over bound GSO sender ports (hash mode with offloads): the range is fixed. */
  portsBound: boolean;
  fdb: Fdb;
  ports: Map<number, TapPort>;
  openPort(v: VniSpec & { mtu: number }): TapPort;
  addVni(v: VniSpec & { mtu: number }, port: TapPort): void;
  remotesOf(v: VniSpec): Remote[];
  log: Log;
}

/** Settings bound to sockets opened at start: a reload that changes them is refused. */
const RESTART_ONLY = [
  'ovsdb',
  'tapOffload',
  'workers',
  'local',
  'port',
  'sourcePortMode',
  'control',
  'udp6ZeroChecksumTx',
  'udp6ZeroChecksumRx',
  'metrics',
] as const;

/**
 * Move the running endpoint from `cur` to `next`: VNIs added and removed, remotes and per-VNI
 * settings changed in place, learned entries of unchanged VNIs kept. Everything that can fail
 * (validation, opening new TAPs) happens before anything changes, so a refused reload leaves the
 * running configuration exactly as it was.
 */
function applyReload(cur: Resolved, next: Resolved, ctx: ReloadContext): string[] {
  for (const k of RESTART_ONLY) {
    if (JSON.stringify(cur[k]) !== JSON.stringify(next[k]))
      throw new ConfigError(
        k,
        next[k],
        `cannot change while vtep runs (running with ${JSON.stringify(cur[k])}); restart to change it`,
      );
  }
  if (
    ctx.portsBound &&
    (cur.sourcePortMin !== next.sourcePortMin || cur.sourcePortMax !== next.sourcePortMax)
  )
    throw new ConfigError(
      'sourcePorts',
      `${next.sourcePortMin}-${next.sourcePortMax}`,
      `cannot change while vtep runs with TAP offloads (running with ${cur.sourcePortMin}-${cur.sourcePortMax}): flows use the ports its UDP GSO senders are bound to; restart to change it`,
    );
  const before = new Map(cur.vnis.map((v) => [v.vni, v]));
  const after = new Map(next.vnis.map((v) => [v.vni, v]));
  // A VNI whose TAP name changes is removed and added again.
  const removed = cur.vnis.filter((v) => after.get(v.vni)?.tap !== v.tap);
  const added = next.vnis.filter((v) => before.get(v.vni)?.tap !== v.tap);
  const kept = next.vnis.filter((v) => before.get(v.vni)?.tap === v.tap);
  const freed = new Set(removed.map((v) => v.tap));
  for (const v of kept) {
    const cap = ctx.ports.get(v.vni)?.tap?.rx.capacity;
    if (cap !== undefined && v.mtu + L2_MAX > cap)
      throw new ConfigError(
        `vni ${v.vni} mtu`,
        v.mtu,
        `exceeds what tap ${v.tap}'s receive ring holds (${cap - L2_MAX}); restart to raise it`,
      );
  }

  // Phase 1: open the new TAPs whose names are free now; any failure refuses the reload.
  const fresh = new Map<number, TapPort>();
  try {
    for (const v of added) if (!freed.has(v.tap)) fresh.set(v.vni, ctx.openPort(v));
  } catch (err) {
    for (const p of fresh.values()) p.close();
    const v = added.find((a) => !fresh.has(a.vni))!;
    throw new ConfigError(`vni ${v.vni} tap`, v.tap, (err as Error).message);
  }

  const changes: string[] = [];
  const say = (line: string) => {
    changes.push(line);
    ctx.log('info', 'reload', `reload: ${line}`, { change: line });
  };
  const settings = {
    reservedBits: next.reservedBits,
    invalidSourceMac: next.invalidSourceMac,
    sourcePortMin: next.sourcePortMin,
    sourcePortMax: next.sourcePortMax,
  };
  ctx.engine.configure(settings);
  ctx.workers?.configure(settings);
  ctx.fdb.setLimits({ ageingMs: next.ageingMs, maxEntries: next.maxEntries });
  ctx.workers?.limits(next.ageingMs, next.maxEntries);
  /** A VNI change, in every thread's engine. */
  const update = (vni: number, u: VniUpdate) => {
    ctx.engine.updateVni(vni, u);
    ctx.workers?.updateVni(vni, u);
  };
  for (const k of [
    'reservedBits',
    'invalidSourceMac',
    'sourcePortMin',
    'sourcePortMax',
    'ageingMs',
    'maxEntries',
  ] as const)
    if (cur[k] !== next[k]) say(`${k} ${cur[k]} -> ${next[k]}`);

  for (const v of removed) {
    ctx.ports.get(v.vni)?.close();
    ctx.ports.delete(v.vni);
    ctx.engine.removeVni(v.vni);
    ctx.workers?.removeVni(v.vni);
    say(`vni ${v.vni} removed (tap ${v.tap} closed)`);
  }
  for (const v of added) {
    // Phase 3: a TAP name the removed VNIs just freed; should it fail now, the port's own
    // retry loop keeps trying, as after a lost device.
    const port = fresh.get(v.vni) ?? ctx.openPort(v);
    ctx.addVni(v, port);
    say(`vni ${v.vni} added on tap ${v.tap}`);
  }
  for (const v of kept) {
    const old = before.get(v.vni)!;
    const port = ctx.ports.get(v.vni)!;
    const keys = (list: VniSpec['remotes']) => list.map((r) => `${r.address}:${r.port}`).join(',');
    if (keys(old.remotes) !== keys(v.remotes)) {
      update(v.vni, { remotes: ctx.remotesOf(v) });
      say(`vni ${v.vni} remotes ${keys(old.remotes) || '-'} -> ${keys(v.remotes) || '-'}`);
    }
    if (old.suppressArp !== v.suppressArp) {
      update(v.vni, { suppressArp: v.suppressArp });
      say(`vni ${v.vni} suppressArp ${v.suppressArp}`);
    }
    if (old.learnRemotes !== v.learnRemotes) {
      update(v.vni, { learnRemotes: v.learnRemotes });
      say(`vni ${v.vni} learnRemotes ${v.learnRemotes}`);
    }
    if (old.learning !== v.learning || old.maxEntries !== v.maxEntries) {
      update(v.vni, {
        learning: v.learning,
        maxEntries: v.maxEntries ?? next.maxEntries,
      });
      say(`vni ${v.vni} learning ${v.learning} maxEntries ${v.maxEntries ?? 'default'}`);
    }
    if (old.mtu !== v.mtu) {
      update(v.vni, { mtu: v.mtu });
      port.spec.mtu = v.mtu;
      trySet(`vni ${v.vni} mtu ${old.mtu} -> ${v.mtu}`, () => port.tap?.setMtu(v.mtu), say);
    }
    const mac = tapMac(v);
    if (mac !== port.spec.mac) {
      port.spec.mac = mac;
      update(v.vni, { ownMacs: [mac] });
      const b = new Uint8Array(6);
      writeMac(b, 0, mac);
      trySet(`vni ${v.vni} mac ${formatMac(mac)}`, () => port.tap?.setMac(b), say);
    }
  }
  if (changes.length === 0) say('no changes');
  return changes;
}

/** Apply a device setting; a failure (the TAP was moved to another namespace) is reported, not fatal. */
function trySet(what: string, fn: () => void, say: (l: string) => void): void {
  try {
    fn();
    say(what);
  } catch (err) {
    say(`${what} (recorded, but the device refused it: ${(err as Error).message})`);
  }
}

export interface CommandContext {
  fdb: Fdb;
  remotes: Remotes;
  config: () => Config;
  tapOf: (vni: number) => string;
  stats: () => RunningStats;
  /** Fetch the worker threads' counters before `stats` (with `workers` > 1). */
  refresh?: () => Promise<void>;
  status: () => Status;
  reload: () => string[];
  /** Apply an edit of the running settings (see `startVtep`). */
  change: (edit: (settings: Record<string, unknown>) => void) => string[];
  /** Get every FDB and miss event until the returned function is called. */
  watch?: (send: (event: object) => void) => () => void;
}

/** Which events `monitor` streams: the table's changes (`fdb`, as `bridge monitor fdb`), misses, or all. */
export const MONITOR_KINDS: Record<string, readonly string[]> = {
  all: ['learn', 'move', 'age', 'evict', 'miss'],
  fdb: ['learn', 'move', 'age', 'evict'],
  miss: ['miss'],
};

type VniSettings = { vni: number; remotes: string[] } & Record<string, unknown>;

/** The control socket's commands: each with its request fields, checked strictly by the server. */
export function controlCommands(c: CommandContext): Record<string, Command> {
  const vniArg = (v: unknown): number => {
    const vni = integer('vni', v, 0, MAX_VNI);
    if (!c.fdb.hasVni(vni))
      throw argError('vni', v, `is not configured (configured: ${c.fdb.vnis().join(', ')})`);
    return vni;
  };
  /** A VNI of the configuration (not one an OVSDB binding brought): what remote/vni commands edit. */
  const staticVniArg = (v: unknown): number => {
    const vni = vniArg(v);
    if (!c.config().vnis.some((x) => x.vni === vni))
      throw argError(
        'vni',
        v,
        'is carried by an OVSDB port: its remotes and binding come from the database',
      );
    return vni;
  };
  const macArg = (v: unknown): number => {
    const m = parseMac(String(v));
    if (m === undefined) throw argError('mac', v, 'is not a MAC address like 02:00:00:00:00:01');
    return m;
  };
  const remoteArg = (a: Record<string, unknown>): Remote => {
    const cfg = c.config();
    const port = a.port === undefined ? cfg.port : integer('port', a.port, 1, 65535);
    try {
      const r = checkRemote('remote', a.remote, cfg.local, port);
      return c.remotes.get(r.address, r.port);
    } catch (err) {
      const e = err as ConfigError;
      throw argError('remote', a.remote, e.reason);
    }
  };
  const withDev = (r: FdbRow) => ({ ...r, dev: c.tapOf(r.vni) });
  /** A VNI's entry in the running settings. */
  const vniIn = (s: Record<string, unknown>, vni: number) =>
    (s.vnis as VniSettings[]).find((v) => v.vni === vni)!;
  /** A live change whose validation blames a setting: the request field it came from. */
  const live = (field: string, value: unknown, edit: (s: Record<string, unknown>) => void) => {
    try {
      return { changes: c.change(edit) };
    } catch (err) {
      if (err instanceof ConfigError) throw argError(field, value, err.reason);
      throw err;
    }
  };
  return {
    'fdb.show': {
      fields: { 'vni?': 'integer' },
      run: (a) => {
        const vni = a.vni === undefined ? undefined : vniArg(a.vni);
        const chunks = c.fdb.listChunks(performance.now(), vni, 512, { flood: true });
        return new Rows(
          (function* () {
            for (const rows of chunks) yield rows.map(withDev);
          })(),
        );
      },
    },
    'fdb.add': {
      fields: {
        vni: 'integer',
        mac: 'string',
        remote: 'string',
        'port?': 'integer',
        'replace?': 'boolean',
      },
      run: (a) => {
        const vni = vniArg(a.vni);
        const mac = macArg(a.mac);
        const remote = remoteArg(a);
        // Like `bridge fdb add`: an existing entry is replaced only when asked to.
        if (a.replace !== true && c.fdb.get(vni, mac))
          throw argError('mac', a.mac, `already has an entry in vni ${vni} (give --replace)`);
        try {
          c.fdb.addStatic(vni, mac, remote, performance.now());
        } catch (err) {
          const e = err as FdbError;
          if (e.code === 'ERR_FDB_MAC') throw argError('mac', a.mac, 'is not a unicast address');
          throw err;
        }
        return null;
      },
    },
    'fdb.del': {
      fields: { vni: 'integer', mac: 'string' },
      run: (a) => {
        if (!c.fdb.delete(vniArg(a.vni), macArg(a.mac)))
          throw argError('mac', a.mac, `has no entry in vni ${a.vni}`);
        return null;
      },
    },
    'fdb.flush': {
      fields: {
        'vni?': 'integer',
        'remote?': 'string',
        'port?': 'integer',
        'learnedOnly?': 'boolean',
      },
      run: (a) => ({
        removed: c.fdb.flush({
          vni: a.vni === undefined ? undefined : vniArg(a.vni),
          remote: a.remote === undefined ? undefined : remoteArg(a),
          learnedOnly: a.learnedOnly === true,
        }),
      }),
    },
    'remote.add': {
      fields: { vni: 'integer', remote: 'string', 'port?': 'integer' },
      run: (a) => {
        const vni = staticVniArg(a.vni);
        const r = remoteArg(a);
        const cfg = c.config();
        const spec = { address: r.address, port: r.port };
        const vs = cfg.vnis.find((v) => v.vni === vni)!;
        // `bridge fdb append` refuses a duplicate: it would double every flooded frame.
        if (vs.remotes.some((x) => x.address === spec.address && x.port === spec.port))
          throw argError('remote', a.remote, `is already a remote of vni ${vni}`);
        return live('remote', a.remote, (s) =>
          vniIn(s, vni).remotes.push(formatRemote(spec, cfg.port)),
        );
      },
    },
    'remote.del': {
      fields: { vni: 'integer', remote: 'string', 'port?': 'integer' },
      run: (a) => {
        const vni = staticVniArg(a.vni);
        const r = remoteArg(a);
        const cfg = c.config();
        const vs = cfg.vnis.find((v) => v.vni === vni)!;
        const at = vs.remotes.findIndex((x) => x.address === r.address && x.port === r.port);
        if (at < 0) throw argError('remote', a.remote, `is not a remote of vni ${vni}`);
        return live('remote', a.remote, (s) => vniIn(s, vni).remotes.splice(at, 1));
      },
    },
    'vni.add': {
      fields: {
        vni: 'integer',
        'tap?': 'string',
        'mtu?': 'integer',
        'remotes?': 'strings',
        'learnRemotes?': 'boolean',
      },
      run: (a) => {
        const vni = integer('vni', a.vni, 0, MAX_VNI);
        if (c.fdb.hasVni(vni)) throw argError('vni', a.vni, 'is already configured');
        return live('vni', a.vni, (s) =>
          (s.vnis as Record<string, unknown>[]).push({
            vni,
            ...(a.tap !== undefined ? { tap: a.tap } : {}),
            ...(a.mtu !== undefined ? { mtu: a.mtu } : {}),
            remotes: a.remotes ?? [],
            learnRemotes: a.learnRemotes === true,
          }),
        );
      },
    },
    'vni.del': {
      fields: { vni: 'integer' },
      run: (a) => {
        const vni = staticVniArg(a.vni);
        if (c.config().vnis.length === 1 && !c.config().ovsdb)
          throw argError('vni', a.vni, 'is the only VNI; stop vtep instead');
        return live('vni', a.vni, (s) => {
          s.vnis = (s.vnis as VniSettings[]).filter((v) => v.vni !== vni);
        });
      },
    },
    showconf: { fields: {}, run: () => toYaml(c.config()) },
    monitor: {
      fields: { 'what?': 'string' },
      run: (a) => {
        const what = (a.what as string | undefined) ?? 'all';
        const kinds = Object.hasOwn(MONITOR_KINDS, what) ? MONITOR_KINDS[what] : undefined;
        if (!kinds)
          throw argError('what', a.what, `must be one of ${Object.keys(MONITOR_KINDS).join(', ')}`);
        const watch = c.watch;
        if (!watch) throw new ControlError('ENOTSUP', 'this endpoint has no events to monitor');
        return new Subscription((send) =>
          watch((e) => {
            if (kinds.includes((e as { event: string }).event)) send(e);
          }),
        );
      },
    },
    stats: {
      fields: {},
      run: async () => {
        await c.refresh?.();
        return c.stats();
      },
    },
    status: { fields: {}, run: () => c.status() },
    reload: { fields: {}, run: () => ({ changes: c.reload() }) },
  };
}
