import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import type { RemoteSpec } from '../../config/config.js';
import { Fdb } from '../../fdb/fdb.js';
import { Remotes } from '../../fdb/remote.js';
import { FdbReplica } from '../../fdb/replica.js';
import { TapDevice } from '../../io/tap.js';
import { threadIo } from '../../io/threadio.js';
import type { Log } from '../../util/log.js';
import { CaptureTap, type CaptureFilter, type Captured } from '../../engine/engine.js';
import { openPlane } from './plane.js';
import type { FromWorker, QueueSpec, ToWorker, WorkerInit } from './protocol.js';

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
const remotesOf = (list: RemoteSpec[]) => list.map((r) => remotes.get(r.address, r.port));
const plane = openPlane(init.plane, fdb, log);
const { engine } = plane;
engine.onNeigh = (vni, ip, mac) => post({ t: 'neigh', vni, ip, mac });
// A TAP-side MAC new to this thread goes to the main thread at once (a controller publishes
// it); the periodic report below only keeps the known ones alive there.
engine.onLocalMac = (vni, mac, present) => {
  if (present) post({ t: 'localMacs', seen: [[vni, mac]] });
};
/**
 * This thread's queue of each TAP, by device name, and the VNI it carries (-1: none, an OVSDB
 * port not bound). A port's queue (`openPort`) stays open whatever its binding: it must be
 * opened while the device is still in our namespace (the operator may move it into a VM's).
 */
interface Queue {
  spec: QueueSpec;
  tap: TapDevice | null;
  vni: number;
  /** Opened for a port (kept when its VNI goes), not for a VNI alone. */
  port: boolean;
}
const queues = new Map<string, Queue>();

// What this thread learns goes to the main table; what the main table says is applied here.
const flushReport = () => {
  const seen = replica.take();
  if (seen.length) post({ t: 'learned', seen });
};
const replica = new FdbReplica(fdb, remotes, clock(), () => setImmediate(flushReport));
// Every so often: the MACs seen again (so the main table's entries do not age out), and the
// TAP-side MACs seen (the main thread publishes them to a controller).
let lastScan = clock();
const refresher = setInterval(
  () => {
    const now = clock();
    replica.refresh(now);
    flushReport();
    const local = engine.localMacsSeenSince(lastScan);
    if (local.length) post({ t: 'localMacs', seen: local });
    engine.sweepLocalMacs(now);
    lastScan = now;
  },
  Math.min(1000, init.ageingMs / 3),
);

/**
 * `vtep capture` on this thread: what matches goes to the main thread in batches, one message
 * per turn of the loop, at most CAPTURE_QUEUE_MAX packets waiting (the rest are counted lost).
 */
const CAPTURE_QUEUE_MAX = 4096;
let captured: Captured[] = [];
let captureLost = 0;
function capture(filter: CaptureFilter | null): void {
  captured = [];
  captureLost = 0;
  engine.capture =
    filter === null
      ? undefined
      : new CaptureTap(filter, (c) => {
          if (captured.length >= CAPTURE_QUEUE_MAX) return void captureLost++;
          if (captured.push(c) === 1) setImmediate(sendCaptured);
        });
}
function sendCaptured(): void {
  if (captured.length === 0 && captureLost === 0) return;
  post({ t: 'captured', recs: captured, lost: captureLost });
  captured = [];
  captureLost = 0;
}

function attach(name: string): void {
  const q = queues.get(name);
  if (!q || q.tap) return;
  try {
    const tap = TapDevice.open({
      name,
      multiQueue: true,
      up: false,
      batchSize: 64,
      slotSize: q.spec.slotSize,
      vnetHdr: q.spec.offloads !== 0,
      offloads: q.spec.offloads,
    });
    q.tap = tap;
    if (q.vni >= 0) engine.setTap(q.vni, tap);
    tap.start(
      (n) =>
        q.vni >= 0 ? engine.tapReceived(q.vni, n, clock()) : engine.unboundReceived(n, clock()),
      () => detach(name), // the device is gone; the main thread re-creates it and says attach
    );
  } catch (err) {
    log('warn', 'tap_queue', `tap ${name}: cannot open a queue: ${(err as Error).message}`, {
      dev: name,
      vni: q.vni,
      error: (err as Error).message,
    });
  }
}

function detach(name: string): void {
  const q = queues.get(name);
  if (!q?.tap) return;
  q.tap.close();
  q.tap = null;
  if (q.vni >= 0 && engine.hasVni(q.vni)) engine.setTap(q.vni, null);
}

/** Send the groups' datagrams out of `ifindex`; a refusal is logged (the main thread's throws). */
function multicastIf(ifindex: number): void {
  try {
    plane.multicastIf(ifindex);
  } catch (err) {
    const error = (err as Error).message;
    log(
      'error',
      'group_interface',
      `worker: cannot send multicast from interface ${ifindex}: ${error}`,
      {
        ifindex,
        error,
      },
    );
  }
}

function queueOf(vni: number): Queue | undefined {
  for (const q of queues.values()) if (q.vni === vni) return q;
  return undefined;
}

function stop(): void {
  clearInterval(refresher);
  plane.underlay.stop();
  for (const name of queues.keys()) detach(name);
  plane.close();
  post({ t: 'stopped' });
  port.close();
}

function addVni(m: Extract<ToWorker, { t: 'addVni' }>): void {
  const { remotes: list, senders, ...cfg } = m.cfg;
  engine.addVni({
    ...cfg,
    tap: null,
    tapName: m.queue.name,
    remotes: remotesOf(list),
    ...(senders ? { senders: remotesOf(senders) } : {}),
  });
  const q = queues.get(m.queue.name);
  if (q) {
    q.vni = cfg.vni;
    if (q.tap) engine.setTap(cfg.vni, q.tap);
  } else queues.set(m.queue.name, { spec: m.queue, tap: null, vni: cfg.vni, port: false });
  attach(m.queue.name);
}

/** BFD control packets this thread finds go to the main thread, which runs the sessions. */
function watchBfd(on: boolean): void {
  engine.onBfd = on
    ? (vni, r, slab, off, len) =>
        post({ t: 'bfd', vni, address: r.address, port: r.port, bytes: slab.slice(off, off + len) })
    : undefined;
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'configure':
      engine.configure(m.s);
      break;
    case 'multicastIf':
      multicastIf(m.ifindex);
      break;
    case 'limits':
      fdb.setLimits({ ageingMs: m.ageingMs, maxEntries: m.maxEntries });
      break;
    case 'addVni':
      addVni(m);
      break;
    case 'openPort':
      queues.set(m.queue.name, { spec: m.queue, tap: null, vni: -1, port: true });
      attach(m.queue.name);
      break;
    case 'updateVni': {
      const { remotes: list, senders, ...rest } = m.u;
      engine.updateVni(m.vni, {
        ...rest,
        ...(list ? { remotes: remotesOf(list) } : {}),
        ...(senders ? { senders: remotesOf(senders) } : {}),
      });
      break;
    }
    case 'removeVni': {
      const q = queueOf(m.vni);
      engine.removeVni(m.vni);
      if (q?.port) q.vni = -1;
      else if (q) {
        detach(q.spec.name);
        queues.delete(q.spec.name);
      }
      break;
    }
    case 'attach':
      attach(m.name);
      break;
    case 'detach':
      detach(m.name);
      break;
    case 'fdb':
      replica.apply(m.ops, clock());
      break;
    case 'stats':
      post({ t: 'stats', id: m.id, stats: engine.stats(clock()), io: threadIo() });
      break;
    case 'neigh':
      engine.learnNeighbour(m.vni, m.ip, m.mac, clock());
      break;
    case 'pin':
      engine.pinNeighbour(m.vni, m.ip, m.mac ?? undefined);
      break;
    case 'watch':
      engine.onMiss = m.on ? (vni, mac) => post({ t: 'miss', vni, mac }) : undefined;
      break;
    case 'capture':
      capture(m.filter);
      break;
    case 'bfd':
      watchBfd(m.on);
      break;
    case 'stall':
      if (init.testHooks) for (const end = Date.now() + m.ms; Date.now() < end;);
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
