import { performance } from 'node:perf_hooks';
import type { Config } from '../config/config.js';
import { ControlServer, ControlError } from '../control/server.js';
import { Fdb } from '../fdb/fdb.js';
import { Remotes } from '../fdb/remote.js';
import { TapDevice } from '../io/tap.js';
import type { DatagramSender } from '../io/types.js';
import { RawUdpSender, UdpSocket } from '../io/udp.js';
import { Engine } from '../vtep/engine.js';
import { formatMac, parseMac, readMac, writeMac } from '../wire/mac.js';

/**
 * Composition root of `vtep run`: opens the devices, builds the engine, owns the clock and the
 * timers, serves the control socket. Everything below it is testable without these.
 */

export interface Running {
  engine: Engine;
  fdb: Fdb;
  underlay: UdpSocket;
  taps: Map<number, TapDevice>;
  control?: ControlServer;
  sourcePorts: string;
  stop(): Promise<void>;
}

export type Log = (line: string) => void;

const clock = () => performance.now();

export async function startVtep(cfg: Config, log: Log): Promise<Running> {
  const remotes = new Remotes();
  const fdb = new Fdb({
    ageingMs: cfg.ageingMs,
    maxEntries: cfg.maxEntries,
    onMove: (m) => log(Engine.formatMove(m)),
  });
  const opened: { close(): void }[] = [];
  const closeAll = () => opened.reverse().forEach((d) => d.close());
  try {
    const underlay = UdpSocket.open({ address: cfg.local, port: cfg.port, batchSize: 64 });
    opened.push(underlay);
    let raw: DatagramSender | undefined;
    let sourcePorts = `fixed ${underlay.port}`;
    if (cfg.sourcePortMode === 'hash') {
      try {
        raw = RawUdpSender.open(cfg.local);
        opened.push(raw);
        sourcePorts = `hash ${cfg.sourcePortMin}-${cfg.sourcePortMax}`;
      } catch (err) {
        log(
          `source ports: raw socket unavailable (${(err as Error).message}); sending from port ${underlay.port}`,
        );
      }
    }
    const engine = new Engine({
      underlay,
      raw,
      fdb,
      reservedBits: cfg.reservedBits,
      invalidSourceMac: cfg.invalidSourceMac,
      sourcePortMin: cfg.sourcePortMin,
      sourcePortMax: cfg.sourcePortMax,
      dstPort: cfg.port,
      log,
    });
    const taps = new Map<number, TapDevice>();
    for (const v of cfg.vnis) {
      const mac = v.mac === undefined ? undefined : macBytes(parseMac(v.mac)!);
      const tap = TapDevice.open({ name: v.tap, mtu: v.mtu, mac, batchSize: 64 });
      opened.push(tap);
      taps.set(v.vni, tap);
      engine.addVni({
        vni: v.vni,
        tap,
        remotes: v.remotes.map((r) => remotes.get(r.address, r.port)),
        learnRemotes: v.learnRemotes,
        learning: v.learning,
        maxEntries: v.maxEntries,
        ownMacs: [readMac(tap.getMac(), 0)],
        mtu: v.mtu,
      });
    }
    const onError = (what: string) => (err: Error) => log(`${what}: ${err.message}`);
    underlay.start((n) => engine.underlayReceived(n, clock()), onError('underlay'));
    for (const [vni, tap] of taps)
      tap.start((n) => engine.tapReceived(vni, n, clock()), onError(`tap ${tap.name}`));
    // Ageing: the sweep only pops expired heads, so a 1 s tick costs next to nothing.
    const ageing = setInterval(() => engine.sweep(clock()), Math.min(1000, cfg.ageingMs));

    const tapOf = (vni: number) => taps.get(vni)?.name ?? '-';
    const control = cfg.control
      ? await ControlServer.listen(
          cfg.control,
          controlHandlers(engine, fdb, remotes, tapOf, () => sourcePorts, underlay),
        )
      : undefined;
    log(
      `vtep: listening on ${underlay.address}:${underlay.port}, source ports ${sourcePorts}, ` +
        cfg.vnis
          .map(
            (v) =>
              `vni ${v.vni} on ${taps.get(v.vni)!.name} (${formatMac(readMac(taps.get(v.vni)!.getMac(), 0))})`,
          )
          .join(', ') +
        (control ? `, control ${control.path}` : ''),
    );
    let stopped = false;
    return {
      engine,
      fdb,
      underlay,
      taps,
      control,
      sourcePorts,
      async stop() {
        if (stopped) return;
        stopped = true;
        clearInterval(ageing);
        // Stop reading first; sends are flushed at the end of every batch, so none is pending.
        underlay.stop();
        for (const tap of taps.values()) tap.stop();
        await control?.close();
        closeAll();
      },
    };
  } catch (err) {
    closeAll();
    throw err;
  }
}

function macBytes(mac: number): Uint8Array {
  const b = new Uint8Array(6);
  writeMac(b, 0, mac);
  return b;
}

function controlHandlers(
  engine: Engine,
  fdb: Fdb,
  remotes: Remotes,
  tapOf: (vni: number) => string,
  sourcePorts: () => string,
  underlay: UdpSocket,
) {
  const vniArg = (args: Record<string, unknown>, required: boolean): number | undefined => {
    if (args.vni === undefined && !required) return undefined;
    const v = Number(args.vni);
    if (!fdb.hasVni(v))
      throw new ControlError(
        'ERR_VNI',
        `vni ${JSON.stringify(args.vni)} is not configured (configured: ${fdb.vnis().join(', ')})`,
      );
    return v;
  };
  const macArg = (args: Record<string, unknown>): number => {
    const m = typeof args.mac === 'string' ? parseMac(args.mac) : undefined;
    if (m === undefined)
      throw new ControlError('ERR_MAC', `mac ${JSON.stringify(args.mac)} is not a MAC address`);
    return m;
  };
  const remoteArg = (args: Record<string, unknown>) => {
    try {
      return remotes.get(
        String(args.remote),
        args.port === undefined ? underlay.port : Number(args.port),
      );
    } catch (err) {
      throw new ControlError('ERR_REMOTE', (err as Error).message);
    }
  };
  return {
    'fdb.show': (args: Record<string, unknown>) =>
      fdb.list(clock(), vniArg(args, false)).map((r) => ({ ...r, dev: tapOf(r.vni) })),
    'fdb.add': (args: Record<string, unknown>) => {
      fdb.addStatic(vniArg(args, true)!, macArg(args), remoteArg(args), clock());
      return null;
    },
    'fdb.del': (args: Record<string, unknown>) => {
      if (!fdb.delete(vniArg(args, true)!, macArg(args)))
        throw new ControlError(
          'ENOENT',
          `no entry for ${String(args.mac)} in vni ${String(args.vni)}`,
        );
      return null;
    },
    'fdb.flush': (args: Record<string, unknown>) => ({
      removed: fdb.flush({
        vni: vniArg(args, false),
        remote: args.remote === undefined ? undefined : remoteArg(args),
        learnedOnly: args.learnedOnly === true,
      }),
    }),
    stats: () => ({
      ...engine.stats(),
      underlay: `${underlay.address}:${underlay.port}`,
      sourcePorts: sourcePorts(),
    }),
  };
}
