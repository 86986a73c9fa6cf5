import { performance } from 'node:perf_hooks';
import {
  ConfigError,
  checkRemote,
  formatRemote,
  integer,
  toYaml,
  type Config,
} from '../config/config.js';
import { MONITOR_KINDS, type RunningStats, type Status } from '../control/api.js';
import { ControlError, Rows, Subscription, argError, type Command } from '../control/server.js';
import { FdbError, type Fdb, type FdbRow } from '../fdb/fdb.js';
import { remoteKey, type Remote, type Remotes } from '../fdb/remote.js';
import { summarizeRemotes } from './remotes.js';
import type { BfdStatus } from './bfd.js';
import type { CaptureFilter, Trace, TraceInput } from '../engine/engine.js';
import { encapsulate } from '../wire/vxlan.js';
import { parseMac } from '../wire/mac.js';
import { MAX_VNI } from '../wire/vxlan.js';

/**
 * The control verbs over a running endpoint (what `vtep fdb`, `vtep remote`, `vtep stats`, …
 * ask on the control socket), each with its request fields, checked strictly by the server.
 * Like wireguard-go's uapi: the verbs are here, the socket is control/server.ts, the endpoint is
 * whatever satisfies `CommandContext` (the `Vtep`, or a test's fake).
 */

export interface CommandContext {
  fdb: Fdb;
  remotes: Remotes;
  config: () => Config;
  tapOf: (vni: number) => string;
  stats: () => RunningStats;
  /** Fetch the worker threads' counters before `stats` (with `workers` > 1). */
  refresh?: () => Promise<void>;
  status: () => Status;
  reload: () => string[] | Promise<string[]>;
  /** Apply an edit of the running settings (see `Vtep.change`). */
  change: (edit: (settings: Record<string, unknown>) => void) => string[];
  /**
   * `vtep capture`: a capture of what matches `filter`, started by the subscription (packets to
   * `send` until the function it returns is called). Throws when one runs already.
   */
  capture?: (filter: CaptureFilter) => (send: (event: object) => void) => () => void;
  /** A remote's BFD session (with `bfd` configured). */
  bfdOf?: (key: string) => BfdStatus | undefined;
  /** `vtep trace`: what the data path would do with one frame now. */
  trace?: (input: TraceInput) => Trace;
  /** Get every FDB and miss event until the returned function is called. */
  watch?: (send: (event: object) => void) => () => void;
}

type VniSettings = { vni: number; remotes: string[] } & Record<string, unknown>;

/** The control socket's commands: each with its request fields, checked strictly by the server. */
export function controlCommands(c: CommandContext): Record<string, Command> {
  const a = new Args(c);
  return {
    ...fdbVerbs(c, a),
    ...liveVerbs(c, a),
    ...infoVerbs(c),
    ...remoteShow(c, a),
    ...traceVerb(c, a),
    ...captureVerb(c, a),
  };
}

/** Request fields parsed against the running endpoint; a bad one is blamed by name. */
class Args {
  constructor(private readonly c: CommandContext) {}

  vni(v: unknown): number {
    const vni = integer('vni', v, 0, MAX_VNI);
    if (!this.c.fdb.hasVni(vni))
      throw argError('vni', v, `is not configured (configured: ${this.c.fdb.vnis().join(', ')})`);
    return vni;
  }

  /** A VNI of the configuration (not one an OVSDB binding brought): what remote/vni commands edit. */
  staticVni(v: unknown): number {
    const vni = this.vni(v);
    if (!this.c.config().vnis.some((x) => x.vni === vni))
      throw argError(
        'vni',
        v,
        'is carried by an OVSDB port: its remotes and binding come from the database',
      );
    return vni;
  }

  mac(v: unknown): number {
    const m = parseMac(String(v));
    if (m === undefined) throw argError('mac', v, 'is not a MAC address like 02:00:00:00:00:01');
    return m;
  }

  remote(a: Record<string, unknown>): Remote {
    const r = this.remoteSpec(a);
    return this.c.remotes.get(r.address, r.port);
  }

  /** The `remote` (and `port`) fields as an address and port, not interned. */
  remoteSpec(a: Record<string, unknown>): { address: string; port: number } {
    const cfg = this.c.config();
    const port = a.port === undefined ? cfg.port : integer('port', a.port, 1, 65535);
    try {
      return checkRemote('remote', a.remote, cfg.local, port);
    } catch (err) {
      throw argError('remote', a.remote, (err as ConfigError).reason);
    }
  }

  /**
   * A live change whose validation blames a setting: the request field it came from. `fields`
   * names the request field of a setting (`tap` → `tap`) where the blame belongs to that one;
   * anything else is blamed on `field`.
   */
  live(
    field: string,
    value: unknown,
    edit: (s: Record<string, unknown>) => void,
    fields: Record<string, string> = {},
  ) {
    try {
      return { changes: this.c.change(edit) };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const last = err.path?.at(-1);
      const setting = typeof last === 'string' ? last : /(\w+)$/.exec(err.field)?.[1];
      const own = setting !== undefined ? fields[setting] : undefined;
      if (own) throw argError(own, err.value, err.reason);
      throw argError(field, value, err.reason);
    }
  }
}

/** A VNI's entry in the running settings. */
const vniIn = (s: Record<string, unknown>, vni: number) =>
  (s.vnis as VniSettings[]).find((v) => v.vni === vni)!;

/** `vtep fdb show|add|del|flush`. */
function fdbVerbs(c: CommandContext, args: Args): Record<string, Command> {
  const withDev = (r: FdbRow) => ({ ...r, dev: c.tapOf(r.vni) });
  return {
    'fdb.show': {
      fields: { 'vni?': 'integer' },
      run: (a) => {
        const vni = a.vni === undefined ? undefined : args.vni(a.vni);
        const chunks = c.fdb.listChunks(performance.now(), vni, 512, { flood: true });
        return new Rows(
          (function* () {
            for (const rows of chunks) yield rows.map(withDev);
          })(),
        );
      },
    },
    'fdb.add': {
      changes: true,
      fields: {
        vni: 'integer',
        mac: 'string',
        remote: 'string',
        'port?': 'integer',
        'replace?': 'boolean',
      },
      run: (a) => {
        const vni = args.vni(a.vni);
        const mac = args.mac(a.mac);
        const remote = args.remote(a);
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
      changes: true,
      fields: { vni: 'integer', mac: 'string' },
      run: (a) => {
        if (!c.fdb.delete(args.vni(a.vni), args.mac(a.mac)))
          throw argError('mac', a.mac, `has no entry in vni ${a.vni}`);
        return null;
      },
    },
    'fdb.flush': {
      changes: true,
      fields: {
        'vni?': 'integer',
        'remote?': 'string',
        'port?': 'integer',
        'learnedOnly?': 'boolean',
      },
      run: (a) => {
        // `--port` qualifies `--remote`; alone it would widen the flush to the whole table.
        if (a.port !== undefined && a.remote === undefined)
          throw argError('port', a.port, 'goes with --remote (the UDP port of that remote)');
        return {
          removed: c.fdb.flush({
            vni: a.vni === undefined ? undefined : args.vni(a.vni),
            remote: a.remote === undefined ? undefined : args.remote(a),
            learnedOnly: a.learnedOnly === true,
          }),
        };
      },
    },
  };
}

/** `vtep remote add|del` and `vtep vni add|del`: live changes of the running settings. */
function liveVerbs(c: CommandContext, args: Args): Record<string, Command> {
  return {
    'remote.add': {
      changes: true,
      fields: { vni: 'integer', remote: 'string', 'port?': 'integer' },
      run: (a) => {
        const vni = args.staticVni(a.vni);
        const r = args.remote(a);
        const cfg = c.config();
        const spec = { address: r.address, port: r.port };
        const vs = cfg.vnis.find((v) => v.vni === vni)!;
        // `bridge fdb append` refuses a duplicate: it would double every flooded frame.
        if (vs.remotes.some((x) => x.address === spec.address && x.port === spec.port))
          throw argError('remote', a.remote, `is already a remote of vni ${vni}`);
        return args.live('remote', a.remote, (s) =>
          vniIn(s, vni).remotes.push(formatRemote(spec, cfg.port)),
        );
      },
    },
    'remote.del': {
      changes: true,
      fields: { vni: 'integer', remote: 'string', 'port?': 'integer' },
      run: (a) => {
        const vni = args.staticVni(a.vni);
        const r = args.remote(a);
        const cfg = c.config();
        const vs = cfg.vnis.find((v) => v.vni === vni)!;
        const at = vs.remotes.findIndex((x) => x.address === r.address && x.port === r.port);
        if (at < 0) throw argError('remote', a.remote, `is not a remote of vni ${vni}`);
        return args.live('remote', a.remote, (s) => vniIn(s, vni).remotes.splice(at, 1));
      },
    },
    'vni.add': {
      changes: true,
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
        return args.live(
          'vni',
          a.vni,
          (s) =>
            (s.vnis as Record<string, unknown>[]).push({
              vni,
              ...(a.tap !== undefined ? { tap: a.tap } : {}),
              ...(a.mtu !== undefined ? { mtu: a.mtu } : {}),
              remotes: a.remotes ?? [],
              learnRemotes: a.learnRemotes === true,
            }),
          { tap: 'tap', mtu: 'mtu' },
        );
      },
    },
    'vni.del': {
      changes: true,
      fields: { vni: 'integer' },
      run: (a) => {
        const vni = args.staticVni(a.vni);
        if (c.config().vnis.length === 1 && !c.config().ovsdb)
          throw argError('vni', a.vni, 'is the only VNI; stop vtep instead');
        return args.live('vni', a.vni, (s) => {
          s.vnis = (s.vnis as VniSettings[]).filter((v) => v.vni !== vni);
        });
      },
    },
  };
}

/** `vtep remote show [ADDR] [--vni N]`: per remote, summed over its VNIs (or one VNI's share). */
function remoteShow(c: CommandContext, args: Args): Record<string, Command> {
  return {
    'remote.show': {
      fields: { 'vni?': 'integer', 'remote?': 'string', 'port?': 'integer' },
      run: async (a) => {
        const vni = a.vni === undefined ? undefined : args.vni(a.vni);
        const spec = a.remote === undefined ? undefined : args.remoteSpec(a);
        await c.refresh?.();
        const vnis = c.stats().vnis.filter((v) => vni === undefined || v.vni === vni);
        const all = summarizeRemotes(vnis, c.fdb.macsByRemote(), c.bfdOf);
        if (spec === undefined) return all;
        const key = remoteKey(spec.address, spec.port);
        const one = all.filter((r) => r.remote === key);
        if (one.length === 0)
          throw argError(
            'remote',
            a.remote,
            `is not a remote of ${vni === undefined ? 'any VNI' : `vni ${vni}`} (port ${spec.port})`,
          );
        return one;
      },
    },
  };
}

/**
 * `vtep trace --in tap:NAME|remote:ADDR[:PORT]`: `hex` is the inner frame; from a remote it is
 * put behind a VXLAN header of `vni` (the only VNI when there is one).
 */
function traceVerb(c: CommandContext, args: Args): Record<string, Command> {
  return {
    trace: {
      fields: { in: 'string', 'vni?': 'integer', hex: 'string', 'outerTos?': 'integer' },
      run: (a) => {
        const run = c.trace;
        if (!run) throw new ControlError('ENOTSUP', 'this endpoint cannot trace');
        const where = String(a.in);
        const hex = String(a.hex);
        if (!/^([0-9a-f]{2})*$/i.test(hex)) throw argError('hex', a.hex, 'must be hex bytes');
        const frame = Buffer.from(hex, 'hex');
        const vnis = c.stats().vnis;
        const asked = a.vni === undefined ? undefined : args.vni(a.vni);
        const outerTos =
          a.outerTos === undefined ? undefined : integer('outerTos', a.outerTos, 0, 255);
        if (where.startsWith('tap:')) {
          const name = where.slice(4);
          const v = vnis.find((x) => x.tap === name);
          if (!v)
            throw argError(
              'in',
              a.in,
              `names no TAP of this vtep (${vnis.map((x) => x.tap).join(', ')})`,
            );
          if (asked !== undefined && asked !== v.vni)
            throw argError('vni', a.vni, `is not the VNI of ${name} (${v.vni})`);
          return {
            in: where,
            vni: v.vni,
            length: frame.length,
            ...run({ from: 'tap', vni: v.vni, frame }),
          };
        }
        if (!where.startsWith('remote:'))
          throw argError('in', a.in, 'must be tap:NAME or remote:ADDR[:PORT]');
        const r = args.remoteSpec({ remote: where.slice(7) });
        if (asked === undefined && vnis.length !== 1)
          throw argError('vni', a.vni, 'is needed for a frame from a remote (several VNIs)');
        const vni = asked ?? vnis[0].vni;
        const buf = Buffer.alloc(8 + frame.length);
        frame.copy(buf, 8);
        const datagram = Buffer.from(encapsulate(buf, 8, frame.length, vni));
        const input = {
          from: 'remote' as const,
          address: r.address,
          port: r.port,
          datagram,
          outerTos,
        };
        return { in: where, vni, length: frame.length, ...run(input) };
      },
    },
  };
}

/** `vtep capture [--vni N] [--mac M] [--remote ADDR] [--drops]`: a stream of packets. */
function captureVerb(c: CommandContext, args: Args): Record<string, Command> {
  return {
    capture: {
      fields: { 'vni?': 'integer', 'mac?': 'string', 'remote?': 'string', 'drops?': 'boolean' },
      run: (a) => {
        const start = c.capture;
        if (!start) throw new ControlError('ENOTSUP', 'this endpoint cannot capture');
        const filter: CaptureFilter = { drops: a.drops === true };
        if (a.vni !== undefined) filter.vni = args.vni(a.vni);
        if (a.mac !== undefined) {
          const m = parseMac(String(a.mac));
          if (m === undefined) throw argError('mac', a.mac, 'must be a MAC like 02:00:00:00:00:01');
          filter.mac = m;
        }
        if (a.remote !== undefined) filter.remote = args.remoteSpec({ remote: a.remote }).address;
        return new Subscription(start(filter));
      },
    },
  };
}

/** `vtep showconf|monitor|stats|status|reload`. */
function infoVerbs(c: CommandContext): Record<string, Command> {
  return {
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
    reload: { fields: {}, changes: true, run: async () => ({ changes: await c.reload() }) },
  };
}
