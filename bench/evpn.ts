// EVPN at scale, two ways. Through the real pipeline: a route injector (a second gobgpd, fed
// through its gRPC API's AddPathStream rather than a process per route) announces VNIS × MACS
// type-2 routes and a type-3 per VNI over iBGP to vtep's gobgpd; measured: when gobgpd's table
// and when vtep's FDB hold them all, vtep's RSS, and when the withdrawals have emptied both.
// GoBGP's own ingestion grows faster than linearly, so this part defaults to 100 × 100. And vtep
// alone (the session, the table, a real engine and FDB) against a stand-in gobgpd that streams
// ALONE_MACS per VNI at once: the time to apply and to withdraw them. Writes
// bench/results/evpn.json.
//   npm run bench:evpn     (BENCH_VNIS=100 BENCH_MACS=100 BENCH_ALONE_MACS=1000)
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { request } from '../src/control/client.js';
import { AnyCodec, GobgpClient } from '../src/evpn/gobgp.js';
import { imetPath, macPath } from '../src/evpn/routes.js';
import { Gobgpd } from '../src/lab/evpn.js';
import { Netns, veth } from '../src/lab/netns.js';
import { vtepBin } from '../src/lab/peers.js';
import { sleep, until } from '../src/lab/sh.js';
import { Evpn } from '../src/daemon/evpn.js';
import { Planes } from '../src/daemon/threads/planes.js';
import { Engine } from '../src/engine/engine.js';
import { FakeGobgp } from '../src/evpn/testgobgp.js';
import { Fdb } from '../src/fdb/fdb.js';
import { Remotes } from '../src/fdb/remote.js';
import { FakeNetwork, FakeTap } from '../src/io/testdevices.js';
import { writeResult } from './results.js';

const VNIS = Number(process.env.BENCH_VNIS ?? 100);
const MACS = Number(process.env.BENCH_MACS ?? 100);
const ALONE_MACS = Number(process.env.BENCH_ALONE_MACS ?? 1000);
const AS = 65000;
const B = '192.0.2.2';
const I = '192.0.2.9';

interface Stats {
  vnis: { fdbEntries: number }[];
  evpn: { vnis: { routesIn: { mac: number } }[]; peers: { state: string }[] };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vtep-bench-evpn-'));
  const tag = `ev${process.pid % 10000}`;
  const ul = Netns.create(`${tag}ul`, { reap: true });
  const hb = Netns.create(`${tag}b`, { reap: true });
  const hi = Netns.create(`${tag}i`, { reap: true });
  const cleanup: (() => void)[] = [() => [hi, hb, ul].forEach((n) => n.delete())];
  try {
    ul.exec('ip link add ulbr type bridge && ip link set ulbr up');
    for (const [h, ip, p] of [
      [hb, B, 'pb'],
      [hi, I, 'pi'],
    ] as const) {
      veth(h, 'eth0', ul, p);
      ul.exec(`ip link set ${p} master ulbr`);
      h.exec(`ip addr add ${ip}/24 dev eth0`);
    }
    const gb = await Gobgpd.start(hb, dir, {
      asn: AS,
      routerId: B,
      neighbours: [{ address: I, asn: AS }],
    });
    const gi = await Gobgpd.start(
      hi,
      dir,
      { asn: AS, routerId: I, neighbours: [{ address: B, asn: AS }] },
      50052,
    );
    cleanup.unshift(
      () => void gb.stop(),
      () => void gi.stop(),
    );
    const vnis = Array.from({ length: VNIS }, (_, k) => 1000 + k);
    const config = join(dir, 'vtep.yaml');
    writeFileSync(
      config,
      [
        `local: ${B}`,
        'workers: 1',
        `maxEntries: ${VNIS * MACS + 1024}`,
        'evpn:',
        `  gobgp: ${gb.api}`,
        'vnis:',
        ...vnis.flatMap((v) => [`  - vni: ${v}`, `    tap: s${v}`, `    maxEntries: ${MACS + 64}`]),
        '',
      ].join('\n'),
    );
    const control = join(dir, 'vtep.sock');
    const log = openSync(join(dir, 'vtep.log'), 'a');
    const vtep = spawn(
      'ip',
      [
        'netns',
        'exec',
        hb.name,
        process.execPath,
        vtepBin(),
        'run',
        '--config',
        config,
        '--control',
        control,
      ],
      { stdio: ['ignore', log, log] },
    );
    cleanup.unshift(() => vtep.kill('SIGKILL'));
    const stats = async () => (await request(control, { cmd: 'stats' })) as Stats;
    const up = await until(
      async () => {
        try {
          return (await stats()).evpn.peers.some((p) => p.state === 'established');
        } catch {
          return false;
        }
      },
      60_000,
      250,
    );
    if (!up)
      throw new Error(
        `vtep or the BGP session did not come up: ${readFileSync(join(dir, 'vtep.log'), 'utf8')}`,
      );
    const rss0 = rssMiB(vtep.pid!);

    // The injector's API listens on its namespace's loopback: a child in that namespace feeds it.
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        hi.name,
        process.execPath,
        fileURLToPath(import.meta.url),
        'inject',
        gi.api,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    cleanup.unshift(() => child.kill('SIGKILL'));
    const lines = createInterface({ input: child.stdout! });
    const said = (): Promise<string> => new Promise((r) => lines.once('line', r));
    const total = VNIS * MACS;
    const entries = async () => (await stats()).vnis.reduce((n, v) => n + v.fdbEntries, 0);
    // gobgpd's own table beside vtep's FDB: what the BGP side takes, and what vtep adds to it.
    const rib = () =>
      Number(/Destination: (\d+)/.exec(gb.cli('global rib -a evpn summary', true))?.[1] ?? 0);
    const want = VNIS * (MACS + 2); // theirs, and our type-3 and TAP MAC per VNI
    let ribMs = 0;
    const t0 = performance.now();
    child.stdin!.write('add\n');
    const injected = Number(await said());
    const all = await until(
      async () => {
        if (!ribMs && rib() >= want) ribMs = performance.now() - t0;
        return (await entries()) >= total;
      },
      600_000,
      200,
    );
    const learnMs = performance.now() - t0;
    if (!all) throw new Error(`only ${await entries()} of ${total} entries arrived`);
    await sleep(1000);
    const rss1 = rssMiB(vtep.pid!);
    const t1 = performance.now();
    child.stdin!.write('delete\n');
    await said();
    let ribGoneMs = 0;
    const empty = await until(
      async () => {
        if (!ribGoneMs && rib() <= VNIS * 2) ribGoneMs = performance.now() - t1;
        return (await entries()) === 0;
      },
      600_000,
      200,
    );
    const withdrawMs = performance.now() - t1;
    if (!empty) throw new Error(`${await entries()} entries left after the withdrawals`);
    child.stdin!.end();
    const out = {
      pipeline: {
        vnis: VNIS,
        macsPerVni: MACS,
        routes: VNIS * (MACS + 1),
        injectMs: Math.round(injected),
        gobgpdRibFullMs: Math.round(ribMs),
        fdbFullMs: Math.round(learnMs),
        gobgpdRibEmptiedMs: Math.round(ribGoneMs),
        withdrawnMs: Math.round(withdrawMs),
        rssMiB: { before: rss0, full: rss1 },
      },
      alone: await alone(),
    };
    console.log(JSON.stringify(out, null, 2));
    console.log(`written to ${writeResult('evpn', out)}`);
  } finally {
    for (const c of cleanup) c();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** vtep's part alone: VNIS × ALONE_MACS routes from a stand-in gobgpd, applied and withdrawn. */
async function alone(): Promise<Record<string, number>> {
  const codec = AnyCodec.load();
  const fake = await FakeGobgp.start();
  const fdb = new Fdb({ maxEntries: VNIS * ALONE_MACS + 100 });
  const engine = new Engine({ underlay: new FakeNetwork().bind(B, 4789), fdb });
  const vnis = Array.from({ length: VNIS }, (_, k) => 1000 + k);
  for (const vni of vnis)
    engine.addVni({
      vni,
      tap: new FakeTap(`t${vni}`),
      remotes: [],
      localMacs: true,
      maxEntries: ALONE_MACS + 8,
    });
  const evpn = new Evpn({
    spec: { gobgp: fake.target, holdTimeS: 90 },
    planes: Planes.single(engine, fdb),
    fdb,
    remotes: new Remotes(),
    vnis: () => vnis.map((vni) => ({ vni, statics: [] })),
    local: B,
    dstPort: () => 4789,
    log: () => {},
    clock: () => performance.now(),
  });
  try {
    evpn.start();
    await until(() => fake.watching === 1, 10_000);
    const paths = vnis.flatMap((vni) => {
      const o = { rd: `${I}:${vni}`, rt: [`${AS}:${vni}`], vni, vtep: I };
      return [
        imetPath(codec, o),
        ...Array.from({ length: ALONE_MACS }, (_, m) =>
          macPath(codec, {
            ...o,
            mac: 0x0200_0000_0000 + vni * 0x10000 + m,
            seq: 0,
            sticky: false,
          }),
        ),
      ].map((p) => ({ ...p, neighbor_ip: I }));
    });
    const t0 = performance.now();
    for (let i = 0; i < paths.length; i += 1000) fake.push(paths.slice(i, i + 1000));
    await until(() => fdb.size >= VNIS * ALONE_MACS, 600_000, 20);
    const t1 = performance.now();
    for (let i = 0; i < paths.length; i += 1000)
      fake.push(paths.slice(i, i + 1000).map((p) => ({ ...p, is_withdraw: true })));
    await until(() => fdb.size === 0, 600_000, 20);
    const t2 = performance.now();
    return {
      vnis: VNIS,
      macsPerVni: ALONE_MACS,
      routes: paths.length,
      applyMs: Math.round(t1 - t0),
      withdrawMs: Math.round(t2 - t1),
    };
  } finally {
    await evpn.close();
    await fake.stop();
  }
}

/** The injector (run in its namespace): `add` announces every route, `delete` withdraws them. */
async function inject(target: string): Promise<void> {
  const api = GobgpClient.open(target);
  const codec = AnyCodec.load();
  const vnis = Array.from({ length: VNIS }, (_, k) => 1000 + k);
  const paths = vnis.flatMap((vni) => {
    const o = { rd: `${I}:${vni - 999}`, rt: [`${AS}:${vni}`], vni, vtep: I };
    return [
      imetPath(codec, o),
      ...Array.from({ length: MACS }, (_, m) =>
        macPath(codec, { ...o, mac: 0x0200_0000_0000 + vni * 0x10000 + m, seq: 0, sticky: false }),
      ),
    ];
  });
  for await (const line of createInterface({ input: process.stdin })) {
    const t0 = performance.now();
    if (line === 'add') await api.addPathStream(paths);
    else if (line === 'delete')
      await api.addPathStream(paths.map((p) => ({ ...p, is_withdraw: true })));
    console.log(Math.round(performance.now() - t0));
  }
  api.close();
}

if (process.argv[2] === 'inject') await inject(process.argv[3]!);
else await main();
