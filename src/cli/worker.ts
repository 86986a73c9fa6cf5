import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Fdb } from '../fdb/fdb.js';
import { Remotes } from '../fdb/remote.js';
import { TapDevice } from '../io/tap.js';
import type { Log } from '../util/log.js';
import { openPlane } from './dataplane.js';
import type { FdbOp, FromWorker, QueueSpec, Seen, ToWorker, WorkerInit } from './workers.js';

/**
 * A data-plane worker thread (see workers.ts): its own underlay socket on the shared port, its
 * own queue of each VNI's TAP, its own engine, and a copy of the main thread's FDB.
 */

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const clock = () => performance.now();
const log: Log = (level, event, msg, fields) => post({ t: 'log', level, event, msg, fields });

const fdb = new Fdb({ ageingMs: init.ageingMs, maxEntries: init.maxEntries });
const remotes = new Remotes();
const plane = openPlane(init.plane, fdb, log);
const { engine } = plane;
engine.onNeigh = (vni, ip, mac) => post({ t: 'neigh', vni, ip, mac });
const queues = new Map<number, { spec: QueueSpec; tap: TapDevice | null }>();

// What this thread learns goes to the main table; what the main table says is applied here
// without being sent back.
let applying = false;
let report: Seen[] = [];
const flushReport = () => {
  if (report.length) post({ t: 'learned', seen: report });
  report = [];
};
fdb.onChange = (c) => {
  if (applying || c.op !== 'set' || c.isStatic) return;
  if (report.length === 0) setImmediate(flushReport);
  report.push([c.vni, c.mac, c.remote.address, c.remote.port]);
};
// The MACs seen again since the last report keep the main table's entries from ageing.
let lastScan = clock();
const refreshEvery = Math.min(1000, init.ageingMs / 3);
const refresher = setInterval(() => {
  const now = clock();
  for (const e of fdb.updatedSince(lastScan))
    report.push([e.vni, e.mac, e.remote.address, e.remote.port]);
  lastScan = now;
  flushReport();
}, refreshEvery);

function apply(ops: FdbOp[]): void {
  const now = clock();
  applying = true;
  try {
    for (const [vni, mac, address, p, isStatic, source] of ops) {
      if (!fdb.hasVni(vni)) continue;
      if (address === null) fdb.delete(vni, mac);
      else if (isStatic) {
        try {
          fdb.addStatic(vni, mac, remotes.get(address, p), now, source);
        } catch {
          // full of static entries here as there: the main table refused it first
        }
      } else fdb.learn(vni, mac, remotes.get(address, p), now);
    }
  } finally {
    applying = false;
  }
}

function attach(vni: number): void {
  const q = queues.get(vni);
  if (!q || q.tap) return;
  try {
    const tap = TapDevice.open({
      name: q.spec.name,
      multiQueue: true,
      up: false,
      batchSize: 64,
      slotSize: q.spec.slotSize,
      vnetHdr: q.spec.offloads !== 0,
      offloads: q.spec.offloads,
    });
    q.tap = tap;
    engine.setTap(vni, tap);
    tap.start(
      (n) => engine.tapReceived(vni, n, clock()),
      () => detach(vni), // the device is gone; the main thread re-creates it and says attach
    );
  } catch (err) {
    log('warn', 'tap_queue', `tap ${q.spec.name}: cannot open a queue: ${(err as Error).message}`, {
      dev: q.spec.name,
      vni,
      error: (err as Error).message,
    });
  }
}

function detach(vni: number): void {
  const q = queues.get(vni);
  if (!q?.tap) return;
  q.tap.close();
  q.tap = null;
  if (engine.hasVni(vni)) engine.setTap(vni, null);
}

function stop(): void {
  clearInterval(refresher);
  plane.underlay.stop();
  for (const vni of queues.keys()) detach(vni);
  plane.close();
  post({ t: 'stopped' });
  port.close();
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'configure':
      engine.configure(m.s);
      break;
    case 'limits':
      fdb.setLimits({ ageingMs: m.ageingMs, maxEntries: m.maxEntries });
      break;
    case 'addVni': {
      const { cfg } = m;
      engine.addVni({
        ...cfg,
        tap: null,
        remotes: cfg.remotes.map((r) => remotes.get(r.address, r.port)),
      });
      queues.set(cfg.vni, { spec: m.queue, tap: null });
      attach(cfg.vni);
      break;
    }
    case 'updateVni': {
      const { remotes: list, ...rest } = m.u;
      engine.updateVni(m.vni, {
        ...rest,
        ...(list ? { remotes: list.map((r) => remotes.get(r.address, r.port)) } : {}),
      });
      break;
    }
    case 'removeVni':
      detach(m.vni);
      queues.delete(m.vni);
      engine.removeVni(m.vni);
      break;
    case 'attach':
      attach(m.vni);
      break;
    case 'detach':
      detach(m.vni);
      break;
    case 'fdb':
      apply(m.ops);
      break;
    case 'stats':
      post({ t: 'stats', id: m.id, stats: engine.stats() });
      break;
    case 'neigh':
      engine.learnNeigh(m.vni, m.ip, m.mac, clock());
      break;
    case 'watch':
      engine.onMiss = m.on ? (vni, mac) => post({ t: 'miss', vni, mac }) : undefined;
      break;
    case 'stop':
      stop();
      break;
  }
});

plane.underlay.start(
  (n) => engine.underlayReceived(n, clock()),
  (err) => log('error', 'underlay_error', `underlay: ${err.message}`, { error: err.code }),
);
post({ t: 'ready', sourcePorts: plane.sourcePorts });
