import type { Log } from '../util/log.js';
import { RateLimiter } from '../util/ratelimit.js';
import { OvsdbClient, type ClientLimits, type TlsFiles } from './client.js';
import {
  DB,
  MONITORED,
  Replica,
  gatewayView,
  reconcileOps,
  schemaGaps,
  type GatewayView,
  type Me,
  type PortView,
} from './hwvtep.js';

/**
 * vtep as a hardware_vtep gateway: one session with the VTEP database, kept up. It monitors the
 * tables a gateway reads, hands every new state of them to the host (which rebinds TAPs, installs
 * remote MACs and flood lists) and writes back what we are (our switch, ports and the MACs behind
 * them). Lost sessions are retried with backoff (100 ms doubling to 5 s); each new session starts
 * from the server's full contents (a resync), so nothing stale survives a restart of the server
 * and nothing is written twice. Timers live here, in the composition root's world; what the
 * database means is computed by the pure functions of hwvtep.ts.
 */

export interface GatewayHost {
  /** The database says this now (called after every change; must be idempotent). */
  apply(view: GatewayView): void;
  /** The MACs behind the TAP of a VNI right now. */
  localMacs(vni: number): number[];
}

export interface GatewayOptions {
  target: string;
  me: Me;
  host: GatewayHost;
  log: Log;
  tls?: TlsFiles;
  /** What the server may send (the client's defaults otherwise). */
  limits?: Partial<ClientLimits>;
  /** First retry delay and the cap (default 100 ms, 5 s). */
  backoffMs?: [number, number];
  /** Echo the server after this much time and give up on it after as much again (default 5 s). */
  probeMs?: number;
  /** Gather TAP-side MAC changes this long before writing them (default 50 ms). */
  batchMs?: number;
  /**
   * Apply database changes once it has been quiet this long (default 20 ms): controllers write in
   * bursts (ovn-controller-vtep sets a tunnel key, resets it and sets it again within a
   * millisecond at start), and a binding applied mid-burst would flap the TAP's VNI.
   */
  settleMs?: number;
}

export type SessionState = 'connecting' | 'connected' | 'backoff' | 'stopped';

export interface GatewayStatus {
  target: string;
  physicalSwitch: string;
  state: SessionState;
  /** Seconds in this state. */
  forSeconds: number;
  /** Sessions established (1 after a clean start; more after reconnects). */
  connects: number;
  lastError?: string;
  transactions: { ok: number; failed: number };
  /** Malformed or unexpected messages and rows seen. */
  protocolErrors: number;
  ports: { name: string; vni: number | null; logicalSwitch?: string; problem?: string }[];
  remoteMacs: number;
  localMacs: number;
}

export class Gateway {
  private client: OvsdbClient | undefined;
  private state: SessionState = 'connecting';
  private since = Date.now();
  private connects = 0;
  private lastError: string | undefined;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private writeTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private probeOut = false;
  private readonly replica = new Replica();
  private view: GatewayView | undefined;
  private writing = false;
  private again = false;
  /** After our transaction, wait for its update before computing the next one. */
  private awaitingUpdate = false;
  private readonly tx = { ok: 0, failed: 0 };
  private protocolErrors = 0;
  private readonly errLog = new RateLimiter(5, 10_000);
  private stopped = false;
  private readonly opts: Required<Omit<GatewayOptions, 'tls' | 'limits'>> &
    Pick<GatewayOptions, 'tls' | 'limits'>;

  constructor(opts: GatewayOptions) {
    this.opts = { backoffMs: [100, 5000], probeMs: 5000, batchMs: 50, settleMs: 20, ...opts };
  }

  start(): void {
    void this.connect();
  }

  /** A TAP-side MAC came or went: write the new set soon (changes within `batchMs` go together). */
  localMacsChanged(): void {
    if (this.writeTimer || this.stopped) return;
    this.writeTimer = setTimeout(() => {
      this.writeTimer = undefined;
      this.write();
    }, this.opts.batchMs);
  }

  status(): GatewayStatus {
    const v = this.view;
    let remoteMacs = 0;
    let localMacs = 0;
    for (const ls of v?.switches.values() ?? []) remoteMacs += ls.remoteMacs.size;
    for (const key of v?.localRows.keys() ?? [])
      if (v?.switches.has(key.split(' ')[0])) localMacs++;
    return {
      target: this.opts.target,
      physicalSwitch: this.opts.me.name,
      state: this.state,
      forSeconds: Math.floor((Date.now() - this.since) / 1000),
      connects: this.connects,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      transactions: { ...this.tx },
      protocolErrors: this.protocolErrors,
      ports: (v?.ports ?? this.opts.me.ports.map((name): PortView => ({ name, vni: null }))).map(
        (p) => ({
          name: p.name,
          vni: p.vni,
          ...(p.logicalSwitch ? { logicalSwitch: p.logicalSwitch.name } : {}),
          ...(p.problem ? { problem: p.problem } : {}),
        }),
      ),
      remoteMacs,
      localMacs,
    };
  }

  close(): void {
    this.stopped = true;
    this.enter('stopped');
    clearTimeout(this.retryTimer);
    clearTimeout(this.writeTimer);
    clearTimeout(this.settleTimer);
    clearInterval(this.probeTimer);
    this.client?.close();
  }

  private enter(state: SessionState): void {
    if (this.state !== state) this.since = Date.now();
    this.state = state;
  }

  private say(level: 'info' | 'warn' | 'error', event: string, msg: string, fields: object = {}) {
    this.opts.log(level, event, `ovsdb ${this.opts.target}: ${msg}`, {
      target: this.opts.target,
      ...fields,
    });
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.enter('connecting');
    let client: OvsdbClient;
    try {
      client = await OvsdbClient.connect(this.opts.target, 5000, this.opts.tls, this.opts.limits);
    } catch (err) {
      return this.lost((err as Error).message);
    }
    if (this.stopped) return client.close();
    this.client = client;
    client.on('protocolError', (err: Error) => this.protocolError(err.message));
    client.on('update', (_id: unknown, updates: unknown) => {
      const bad = this.replica.apply(updates);
      if (bad) this.protocolError(`${bad} malformed row update(s) ignored`);
      this.awaitingUpdate = false;
      clearTimeout(this.settleTimer);
      this.settleTimer = setTimeout(() => this.changed(), this.opts.settleMs);
    });
    client.on('close', (err?: Error & { code?: string }) => {
      if (this.client !== client) return;
      if (err?.code === 'ERR_OVSDB_PROTOCOL') this.protocolErrors++; // said by lost(), once
      this.lost(err?.message ?? 'connection closed');
    });
    try {
      const dbs = await client.listDbs();
      if (!Array.isArray(dbs) || !dbs.includes(DB))
        throw new Error(
          `the server has no ${DB} database (it has ${JSON.stringify(dbs).slice(0, 200)})`,
        );
      const gaps = schemaGaps(await client.getSchema(DB));
      if (gaps.length)
        throw new Error(`its ${DB} schema lacks ${gaps.join(', ')} (not vtep.ovsschema?)`);
      const requests: Record<string, { columns: string[] }> = {};
      for (const [table, columns] of Object.entries(MONITORED)) requests[table] = { columns };
      const initial = await client.monitor(DB, 'vtep', requests);
      this.replica.reset(initial);
    } catch (err) {
      if (this.client !== client) return; // the session already ended (and said why)
      this.client = undefined;
      client.close();
      this.lost((err as Error).message);
      return;
    }
    this.connects++;
    this.attempt = 0;
    this.lastError = undefined;
    this.awaitingUpdate = false;
    this.enter('connected');
    this.say('info', 'ovsdb_connected', `connected${this.connects > 1 ? ' again, resynced' : ''}`, {
      connects: this.connects,
    });
    this.probeOut = false;
    this.probeTimer = setInterval(() => this.probe(client), this.opts.probeMs);
    this.changed();
  }

  private probe(client: OvsdbClient): void {
    if (this.probeOut) {
      this.say('warn', 'ovsdb_probe', `no answer to an echo in ${this.opts.probeMs} ms`);
      client.close();
      return;
    }
    this.probeOut = true;
    client.echo('vtep').then(
      () => (this.probeOut = false),
      () => {},
    );
  }

  private lost(why: string): void {
    clearInterval(this.probeTimer);
    clearTimeout(this.settleTimer);
    this.client = undefined;
    this.writing = false;
    if (this.stopped) return;
    const [first, max] = this.opts.backoffMs;
    const delay = Math.min(first * 2 ** this.attempt++, max);
    // Once per distinct reason, not once per retry.
    if (why !== this.lastError)
      this.say(
        'warn',
        'ovsdb_lost',
        `${this.state === 'connected' ? 'session lost' : 'cannot connect'}: ${why}; retrying (forwarding goes on with what it knows)`,
        { error: why },
      );
    this.lastError = why;
    this.enter('backoff');
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private protocolError(msg: string): void {
    this.protocolErrors++;
    if (this.errLog.allow(Date.now()))
      this.say('warn', 'ovsdb_protocol', `${msg} (ignored)`, { error: msg });
  }

  /** The database changed (or we connected): tell the host, then write what differs. */
  private changed(): void {
    const view = gatewayView(this.replica, this.opts.me);
    if (view.malformed > 0 && view.malformed !== this.view?.malformed)
      this.protocolError(`${view.malformed} row(s) that cannot be read (a bad MAC or locator)`);
    const before = this.view;
    this.view = view;
    for (const p of view.ports) {
      const old = before?.ports.find((o) => o.name === p.name);
      if (old?.vni === p.vni && old?.problem === p.problem && before) continue;
      if (p.problem)
        this.say('warn', 'ovsdb_port', `port ${p.name}: ${p.problem}`, { port: p.name });
    }
    try {
      this.opts.host.apply(view);
    } catch (err) {
      this.say('error', 'ovsdb_apply', `could not apply the database: ${(err as Error).message}`);
    }
    this.write();
  }

  /** One transaction at a time; a change meanwhile runs another after it. */
  private write(): void {
    const client = this.client;
    if (!client || this.state !== 'connected' || !this.view) return;
    if (this.writing || this.awaitingUpdate) {
      this.again = true;
      return;
    }
    const local = new Map<string, number[]>();
    for (const ls of this.view.switches.values())
      local.set(ls.uuid, this.opts.host.localMacs(ls.vni));
    const ops = reconcileOps(this.view, this.opts.me, local);
    if (ops.length === 0) return;
    this.writing = true;
    this.again = false;
    client
      .transact(DB, ...ops)
      .then(
        () => {
          this.tx.ok++;
          // Its update normally follows at once; should none come (nothing visible changed), go on.
          this.awaitingUpdate = true;
          setTimeout(() => {
            if (!this.awaitingUpdate) return;
            this.awaitingUpdate = false;
            this.write();
          }, 1000).unref();
        },
        (err: Error) => {
          this.tx.failed++;
          // A `wait` that failed means the database moved under us: its update is on the way.
          if (!/timed out/.test(err.message))
            this.say('warn', 'ovsdb_transaction', `transaction failed: ${err.message}`, {
              error: err.message,
            });
          // Try again shortly whatever happened; an update may also trigger it first.
          setTimeout(() => this.write(), 200).unref();
        },
      )
      .finally(() => {
        if (this.client !== client) return;
        this.writing = false;
        if (this.again && !this.awaitingUpdate) this.write();
      });
  }
}
