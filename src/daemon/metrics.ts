import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EvpnStatus } from '../evpn/status.js';
import type { RemoteSummary, RunningStats } from '../control/api.js';
import { OTHER_PEERS, addPeerStats } from '../engine/peers.js';
import { emptyRemote } from './remotes.js';
import { packageVersion } from '../util/package.js';

/**
 * `--metrics ADDR:PORT`: Prometheus text on GET /metrics, through prom-client. Counters are read
 * from the engine's own when Prometheus scrapes (nothing is done per packet for them); the batch
 * size histogram is observed once per receive batch; prom-client's default metrics add the
 * process's CPU, memory and event-loop lag. Off unless asked for.
 */
export interface Metrics {
  /** A receive batch of `n` from the underlay or a TAP. */
  observeBatch(source: 'underlay' | 'tap', n: number): void;
  readonly address: string;
  close(): Promise<void>;
}

type Snapshot = () => RunningStats;

/** Connections the metrics server holds at once; more are closed as they come. */
export const METRICS_MAX_CONNECTIONS = 64;
const HTTP_LIMITS = {
  headersTimeout: 5000,
  requestTimeout: 10_000,
  keepAliveTimeout: 5000,
  connectionsCheckingInterval: 1000,
};

export async function startMetrics(
  host: string,
  port: number,
  stats: () => RunningStats,
  /** Fetch the worker threads' counters first (with `workers` > 1). */
  refresh?: () => Promise<void>,
  /** Called when a connection is refused at the cap (the caller logs it, rate-limited). */
  onLimit?: () => void,
  /** `ovsdb` or `evpn` configured: only then are their series (vtep_ovsdb_…, vtep_evpn_…) exported. */
  o: { ovsdb?: boolean; evpn?: boolean } = {},
): Promise<Metrics> {
  const { register, scrape } = metricsRegistry(stats, o);
  const batch = register.getSingleMetric('vtep_batch_size') as Histogram;
  // Bounded: a scraper needs one connection; half-open or slow clients are cut off within
  // seconds (Node checks these timeouts every connectionsCheckingInterval, 30 s by default).
  const server: Server = createServer(HTTP_LIMITS, (req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found: GET /metrics\n');
      return;
    }
    (refresh ? refresh() : Promise.resolve()).then(scrape).then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  server.maxConnections = METRICS_MAX_CONNECTIONS;
  server.timeout = HTTP_LIMITS.requestTimeout;
  server.on('drop', () => onLimit?.());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    observeBatch: (source, n) => batch.observe({ source }, n),
    address: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * prom-client's gauges of active handles, requests and resources end in `_total`, which the
 * exposition format keeps for counters: `promtool check metrics` refuses them. The same counts
 * are exported by type without the suffix (nodejs_active_handles{type=…}, …).
 */
const NOT_LINT_CLEAN = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * Every metric, read from one stats() snapshot per scrape. Exported for tests, which lint and
 * count what a scrape of a large configuration holds.
 */
export function metricsRegistry(
  stats: () => RunningStats,
  o: { ovsdb?: boolean; evpn?: boolean } = {},
): { register: Registry; scrape: () => Promise<string> } {
  const register = new Registry();
  collectDefaultMetrics({ register });
  for (const name of NOT_LINT_CLEAN) register.removeSingleMetric(name);
  let snapshot: RunningStats | undefined;
  // One stats() per scrape, shared by every metric's collect(); `scrape` starts a new one.
  const s = () => (snapshot ??= stats());
  new Gauge({
    name: 'vtep_build_info',
    help: 'Always 1: the version of vtep and of Node.js running it',
    labelNames: ['version', 'node'],
    registers: [register],
    collect() {
      this.set({ version: packageVersion(), node: process.version }, 1);
    },
  });
  trafficMetrics(register, s);
  remoteMetrics(register, s);
  fdbMetrics(register, s);
  configMetrics(register, s);
  if (o.ovsdb) ovsdbMetrics(register, s);
  if (o.evpn) evpnMetrics(register, s);
  engineMetrics(register, s);
  new Histogram({
    name: 'vtep_batch_size',
    help: 'Frames or datagrams per receive batch',
    labelNames: ['source'],
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [register],
  });
  return {
    register,
    scrape: () => {
      snapshot = undefined;
      return register.metrics();
    },
  };
}

/** Reloads: whether the last one applied, and how many did, by result. */
function configMetrics(register: Registry, s: Snapshot): void {
  new Gauge({
    name: 'vtep_config_last_reload_successful',
    help: '1 if the last reload (SIGHUP, vtep reload) applied; 0 if it was refused',
    registers: [register],
    collect() {
      this.set(s().reloads?.lastOk === false ? 0 : 1);
    },
  });
  new Gauge({
    name: 'vtep_config_last_reload_success_timestamp_seconds',
    help: 'When the configuration last applied (the start, or a reload), Unix seconds',
    registers: [register],
    collect() {
      this.set(s().reloads?.lastOkTime ?? 0);
    },
  });
  new Counter({
    name: 'vtep_config_reloads_total',
    help: 'Reloads asked for, by result (applied or refused)',
    labelNames: ['result'],
    registers: [register],
    collect() {
      this.reset();
      this.inc({ result: 'applied' }, s().reloads?.ok ?? 0);
      this.inc({ result: 'refused' }, s().reloads?.failed ?? 0);
    },
  });
}

/** Per-VNI traffic and drops. */
function trafficMetrics(register: Registry, s: Snapshot): void {
  const perVni = counterBy(
    register,
    'vni',
    () => s().vnis,
    (v) => String(v.vni),
  );
  perVni(
    'vtep_rx_packets_total',
    'Frames decapsulated and written to the TAP',
    (v) => v.rx.packets,
  );
  perVni('vtep_rx_bytes_total', 'Bytes of those frames', (v) => v.rx.bytes);
  perVni(
    'vtep_tx_packets_total',
    'VXLAN datagrams sent (each flooded copy counts)',
    (v) => v.tx.packets,
  );
  perVni('vtep_tx_bytes_total', 'Bytes of inner frames sent', (v) => v.tx.bytes);
  new Counter({
    name: 'vtep_drops_total',
    help: 'Packets dropped, by reason and VNI (vni="" where no VNI could be told)',
    labelNames: ['reason', 'vni'],
    registers: [register],
    collect() {
      this.reset();
      const st = s();
      for (const [reason, total] of Object.entries(st.drops)) {
        let rest = total;
        // Series appear with their first drop: not reasons × VNIs of zeros.
        for (const v of st.vnis) {
          const n = v.drops[reason] ?? 0;
          rest -= n;
          if (n > 0) this.inc({ reason, vni: String(v.vni) }, n);
        }
        if (rest > 0) this.inc({ reason, vni: '' }, rest);
      }
    },
  });
}

/**
 * Remotes that get their own `remote` label; the rest are summed under `remote="other"`. The
 * first ones by address, so that a series keeps its remote from scrape to scrape; with the
 * engine's own cap per VNI (1024, beyond which it counts remotes together) it bounds the series
 * a sender-learning VNI under a spoofing flood can make.
 */
export const REMOTE_SERIES_MAX = 256;

/** Per remote (summed over its VNIs): traffic, drops, MACs behind it, when it was last heard. */
function remoteMetrics(register: Registry, s: Snapshot): void {
  // capped once per scrape (one snapshot), not once per metric
  let from: RunningStats | undefined;
  let rows: RemoteSummary[] = [];
  const capped = (): RemoteSummary[] => {
    const st = s();
    if (st !== from) [from, rows] = [st, cap(st.remotes)];
    return rows;
  };
  const counter = counterBy(register, 'remote', capped, (r) => r.remote);
  counter(
    'vtep_remote_rx_packets_total',
    'VXLAN datagrams from the remote decapsulated for a TAP',
    (r) => r.rx.packets,
  );
  counter('vtep_remote_rx_bytes_total', 'Inner bytes of those datagrams', (r) => r.rx.bytes);
  counter(
    'vtep_remote_tx_packets_total',
    'VXLAN datagrams sent to the remote (flood copies included)',
    (r) => r.tx.packets,
  );
  counter('vtep_remote_tx_bytes_total', 'Inner bytes of those datagrams', (r) => r.tx.bytes);
  remoteGauges(register, capped);
}

/** The first REMOTE_SERIES_MAX remotes by address, and the rest summed as `other`. */
function cap(all: RemoteSummary[]): RemoteSummary[] {
  if (all.length <= REMOTE_SERIES_MAX) return all;
  const rest = emptyRemote(OTHER_PEERS);
  const named = all.filter((r) => r.remote !== OTHER_PEERS).slice(0, REMOTE_SERIES_MAX);
  const keep = new Set(named);
  for (const r of all.filter((x) => !keep.has(x))) {
    addPeerStats(rest, r);
    rest.macs += r.macs;
  }
  return [...named, rest];
}

/**
 * Counters with one label, a series per row of `rows()` (`label` = `key(row)`): returns the
 * function that defines one by name, help and the row's value.
 */
function counterBy<T>(
  register: Registry,
  label: string,
  rows: () => readonly T[],
  key: (row: T) => string,
): (name: string, help: string, value: (row: T) => number) => void {
  return (name, help, value) =>
    void new Counter({
      name,
      help,
      labelNames: [label],
      registers: [register],
      collect() {
        this.reset();
        for (const r of rows()) this.inc({ [label]: key(r) }, value(r));
      },
    });
}

/** Per remote: drops by reason, and the gauges (MACs behind it, BFD, last heard). */
function remoteGauges(register: Registry, capped: () => RemoteSummary[]): void {
  new Counter({
    name: 'vtep_remote_drops_total',
    help: 'Packets from or to the remote dropped, by reason (once the remote was known)',
    labelNames: ['remote', 'reason'],
    registers: [register],
    collect() {
      this.reset();
      for (const r of capped())
        for (const [reason, n] of Object.entries(r.drops))
          if (n > 0) this.inc({ remote: r.remote, reason }, n);
    },
  });
  new Gauge({
    name: 'vtep_remote_fdb_entries',
    help: 'Forwarding table entries behind the remote, over its VNIs',
    labelNames: ['remote'],
    registers: [register],
    collect() {
      this.reset();
      for (const r of capped()) this.set({ remote: r.remote }, r.macs);
    },
  });
  new Gauge({
    name: 'vtep_remote_bfd_up',
    help: '1 while the BFD session with the remote is up, else 0 (only with bfd configured)',
    labelNames: ['remote'],
    registers: [register],
    collect() {
      this.reset();
      for (const r of capped())
        if (r.bfd) this.set({ remote: r.remote }, r.bfd.state === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'vtep_remote_last_heard_seconds',
    help: 'Seconds since the last datagram from the remote (absent: never heard)',
    labelNames: ['remote'],
    registers: [register],
    collect() {
      this.reset();
      for (const r of capped())
        if (r.heardMsAgo !== null) this.set({ remote: r.remote }, r.heardMsAgo / 1000);
    },
  });
}

/** The forwarding table and the TAPs. */
function fdbMetrics(register: Registry, s: Snapshot): void {
  new Gauge({
    name: 'vtep_fdb_entries',
    help: 'Forwarding table entries per VNI',
    labelNames: ['vni'],
    registers: [register],
    collect() {
      this.reset();
      for (const v of s().vnis) this.set({ vni: String(v.vni) }, v.fdbEntries);
    },
  });
  new Gauge({
    name: 'vtep_fdb_max_entries',
    help: 'Entry cap per VNI (vni="": the cap of the whole table)',
    labelNames: ['vni'],
    registers: [register],
    collect() {
      this.reset();
      const st = s();
      for (const v of st.vnis) this.set({ vni: String(v.vni) }, v.fdbMaxEntries);
      if (st.fdbMaxEntries !== undefined) this.set({ vni: '' }, st.fdbMaxEntries);
    },
  });
  for (const [key, help] of [
    ['learned', 'MACs learned'],
    ['moved', 'MACs seen behind another remote'],
    ['aged', 'Learned entries aged out'],
    ['evicted', 'Learned entries evicted by a full table'],
    ['capHit', 'MACs not learned: the table was full of static entries'],
  ] as const)
    new Counter({
      name: `vtep_fdb_${key === 'capHit' ? 'cap_hit' : key}_total`,
      help: `${help}, per VNI`,
      labelNames: ['vni'],
      registers: [register],
      collect() {
        this.reset();
        for (const v of s().vnis) this.inc({ vni: String(v.vni) }, v.fdbCounters[key]);
      },
    });
  new Gauge({
    name: 'vtep_tap_up',
    help: '1 while the VNI has its TAP, 0 while it is gone and being re-created',
    labelNames: ['vni', 'dev'],
    registers: [register],
    collect() {
      this.reset();
      for (const t of s().taps)
        this.set(
          { vni: t.vni === null ? '' : String(t.vni), dev: t.name },
          t.state === 'up' ? 1 : 0,
        );
    },
  });
}

/** The OVSDB gateway's session (series exist only with `ovsdb` configured). */
function ovsdbMetrics(register: Registry, s: Snapshot): void {
  new Gauge({
    name: 'vtep_ovsdb_connected',
    help: '1 while the session with the hardware_vtep database is up',
    labelNames: ['target'],
    registers: [register],
    collect() {
      this.reset();
      const o = s().ovsdb;
      if (o) this.set({ target: o.target }, o.state === 'connected' ? 1 : 0);
    },
  });
  new Counter({
    name: 'vtep_ovsdb_sessions_total',
    help: 'Sessions established with the hardware_vtep database (more than 1: reconnects)',
    registers: [register],
    collect() {
      this.reset();
      const o = s().ovsdb;
      if (o) this.inc(o.connects);
    },
  });
  new Counter({
    name: 'vtep_ovsdb_transactions_total',
    help: 'Transactions written to the hardware_vtep database, by result',
    labelNames: ['result'],
    registers: [register],
    collect() {
      this.reset();
      const o = s().ovsdb;
      if (!o) return;
      this.inc({ result: 'ok' }, o.transactions.ok);
      this.inc({ result: 'failed' }, o.transactions.failed);
    },
  });
  new Counter({
    name: 'vtep_ovsdb_protocol_errors_total',
    help: 'Malformed or unexpected messages and rows from the hardware_vtep database (ignored)',
    registers: [register],
    collect() {
      this.reset();
      const o = s().ovsdb;
      if (o) this.inc(o.protocolErrors);
    },
  });
}

type Rows = (e: EvpnStatus) => [Record<string, string>, number][];

/** A gauge or counter of the EVPN status, one sample per row (nothing while there is none). */
function evpnSeries(
  kind: 'gauge' | 'counter',
  r: Registry,
  s: Snapshot,
  [name, help]: [string, string],
  labelNames: string[],
  rows: Rows,
): void {
  const collect = function (this: Gauge | Counter) {
    this.reset();
    const e = s().evpn;
    if (!e) return;
    for (const [labels, v] of rows(e))
      if (kind === 'gauge') (this as Gauge).set(labels, v);
      else (this as Counter).inc(labels, v);
  };
  const config = { name, help, labelNames, registers: [r], collect };
  if (kind === 'gauge') new Gauge(config);
  else new Counter(config);
}

/** The gobgpd session, its BGP peers and the routes per VNI (only with `evpn` configured). */
function evpnMetrics(r: Registry, s: Snapshot): void {
  const gauge = (what: [string, string], labels: string[], rows: Rows) =>
    evpnSeries('gauge', r, s, what, labels, rows);
  const counter = (what: [string, string], labels: string[], rows: Rows) =>
    evpnSeries('counter', r, s, what, labels, rows);
  gauge(['vtep_evpn_connected', '1 while the gRPC session with gobgpd is up'], ['gobgp'], (e) => [
    [{ gobgp: e.gobgp }, e.state === 'connected' ? 1 : 0],
  ]);
  counter(
    ['vtep_evpn_sessions_total', 'Sessions established with gobgpd (more than 1: reconnects)'],
    [],
    (e) => [[{}, e.connects]],
  );
  gauge(
    ['vtep_evpn_bgp_peer_up', "1 while gobgpd's BGP session with the peer is established"],
    ['peer'],
    (e) => e.peers.map((p) => [{ peer: p.address }, p.state === 'established' ? 1 : 0]),
  );
  gauge(
    ['vtep_evpn_routes', 'EVPN routes held per VNI, received (in) and announced (out)'],
    ['vni', 'direction', 'type'],
    (e) =>
      e.vnis.flatMap((v) =>
        (
          [
            ['in', v.routesIn],
            ['out', v.routesOut],
          ] as const
        ).flatMap(([direction, n]) =>
          (['mac', 'multicast'] as const).map(
            (type) =>
              [{ vni: String(v.vni), direction, type }, n[type]] as [
                Record<string, string>,
                number,
              ],
          ),
        ),
      ),
  );
  counter(
    ['vtep_evpn_routes_skipped_total', 'Routes received and not taken, by reason'],
    ['reason'],
    (e) => Object.entries(e.skipped).map(([reason, n]) => [{ reason }, n]),
  );
  counter(
    ['vtep_evpn_write_errors_total', 'AddPath and DeletePath calls gobgpd refused'],
    [],
    (e) => [[{}, e.writeErrors]],
  );
}

/** What the data path answered or lost outside the per-VNI counters. */
function engineMetrics(register: Registry, s: Snapshot): void {
  new Counter({
    name: 'vtep_inner_checksum_bad_total',
    help: 'Received TCP segments not coalesced because their IPv4 or TCP checksum was wrong (delivered alone for the guest to drop)',
    registers: [register],
    collect() {
      this.reset();
      this.inc(s().offload.checksumBad);
    },
  });
  new Counter({
    name: 'vtep_ecn_ce_marked_total',
    help: 'Decapsulated inner packets marked CE because the underlay marked the outer header (RFC 6040)',
    registers: [register],
    collect() {
      this.reset();
      this.inc(s().ecn?.marked ?? 0);
    },
  });
  new Counter({
    name: 'vtep_ecn_unexpected_total',
    help: 'Decapsulated packets whose outer and inner ECN fields were a combination RFC 6040 flags as unexpected (forwarded)',
    registers: [register],
    collect() {
      this.reset();
      this.inc(s().ecn?.unexpected ?? 0);
    },
  });
  new Counter({
    name: 'vtep_icmp_too_big_total',
    help: 'ICMP fragmentation-needed / packet-too-big answers sent into TAPs',
    registers: [register],
    collect() {
      this.reset();
      this.inc(s().icmpTooBig);
    },
  });
  new Gauge({
    name: 'vtep_underlay_narrow_paths',
    help: 'Remotes whose underlay path the kernel knows to be narrower than the link (vtep stats lists them)',
    registers: [register],
    collect() {
      this.set(Object.keys(s().narrowPaths ?? {}).length);
    },
  });
  new Counter({
    name: 'vtep_kernel_udp_receive_drops_total',
    help: 'Datagrams the kernel dropped for the underlay socket (receive buffer full)',
    registers: [register],
    collect() {
      this.reset();
      this.inc(s().kernel.udpReceiveDrops ?? 0);
    },
  });
}
