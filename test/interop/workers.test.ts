// `workers: 2` against real peers (OVS userspace and Linux kernel VXLAN): flows spread over two
// data-plane threads, each with its own TAP queue and underlay socket, and the FDB stays one
// table: what the main thread is told reaches the worker, what the worker learns reaches the
// table `vtep fdb show` prints, a live VNI change reaches both, and the process stops cleanly.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { RunningStats } from '../../src/control/api.js';
import { bg, sleep, until } from '../../src/lab/sh.js';
import { Topology, UNDERLAY, VM, vtepBin } from '../../src/lab/topology.js';
import { request } from '../../src/control/client.js';
import type { Status } from '../../src/control/api.js';
import { notifyListener } from '../helpers/notify.js';
import { needs } from '../helpers/prereq.js';

const ready = needs(t, {
  root: true,
  commands: [
    'ip',
    'ping',
    'python3',
    'iperf3',
    'ovs-vsctl',
    'ovsdb-tool',
    'ovs-vswitchd',
    'ethtool',
  ],
});
const topo = ready
  ? await Topology.build({ prefix: `k${process.pid % 10000}`, reap: true })
  : (undefined as unknown as Topology);
if (ready) {
  t.teardown(() => topo.teardown());
  await topo.startVtep(['--workers', '2', '--ageing', '2']);
}
const test = (name: string, fn: (t: Test) => Promise<void>) =>
  ready ? t.test(name, fn) : undefined;

const stats = async () => (await topo.ask('stats')) as RunningStats;
const GHOST = { ip: '10.0.0.77', mac: '02:00:00:00:00:77' };
const FLOWS = 64;

/** One UDP datagram on each of FLOWS destination ports: FLOWS flows, spread by their hash. */
function flows(from: string, to: string): void {
  topo
    .get(from)
    .exec(`bash -c 'for p in $(seq 1 ${FLOWS}); do echo x > /dev/udp/${to}/$((20000 + p)); done'`, {
      allowFail: true,
    });
}

/** Frames that reached vmA, behind the OVS peer (where floods go, and unicast to C does not). */
const atA = () => Number(topo.get('vmA').exec('cat /sys/class/net/eth0/statistics/rx_packets'));

test('the kernel spreads flows over both threads, both ways', async (t) => {
  const vmB = topo.get('vmB');
  t.ok(
    await until(
      () =>
        vmB.exec(`ping -c 1 -W 1 ${VM.kernel.ip}`, { allowFail: true }).includes(' 0% packet loss'),
      10_000,
    ),
    'vmB reaches vmC',
  );
  const before = await stats();
  t.equal(before.workers?.length, 2, 'vtep stats lists two threads');
  flows('vmB', VM.kernel.ip);
  flows('vmC', VM.vtep.ip);
  await sleep(300);
  const after = await stats();
  for (const [i, w] of after.workers!.entries()) {
    const b = before.workers![i];
    t.ok(
      w.tx.packets > b.tx.packets,
      `thread ${i} encapsulated some (${w.tx.packets - b.tx.packets})`,
    );
    t.ok(
      w.rx.packets > b.rx.packets,
      `thread ${i} decapsulated some (${w.rx.packets - b.rx.packets})`,
    );
  }
  const sum = (s: RunningStats, k: 'rx' | 'tx') => s.workers!.reduce((a, w) => a + w[k].packets, 0);
  t.equal(after.vnis[0].tx.packets, sum(after, 'tx'), 'the VNI counters add the threads up');
  t.equal(after.vnis[0].rx.packets, sum(after, 'rx'));
  const fdb = (await topo.ask('fdb.show')) as { mac: string; remote: string; source: string }[];
  t.ok(
    fdb.some((r) => r.mac === VM.kernel.mac && r.remote === `${UNDERLAY.kernel}:4789`),
    'vmC’s MAC, learned by whichever thread decapsulated it, is in the table fdb show prints',
  );
});

test('an entry added or deleted on the main thread reaches the worker', async (t) => {
  topo.get('vmB').exec(`ip neigh replace ${GHOST.ip} lladdr ${GHOST.mac} dev ${topo.tap}`);
  let a0 = atA();
  flows('vmB', GHOST.ip);
  await sleep(300);
  t.ok(
    atA() - a0 >= FLOWS * 0.9,
    `unknown: every thread floods, OVS's VM sees them (${atA() - a0})`,
  );

  await topo.ask('fdb.add', { vni: topo.vni, mac: GHOST.mac, remote: UNDERLAY.kernel });
  await sleep(100);
  const s0 = await stats();
  a0 = atA();
  flows('vmB', GHOST.ip);
  await sleep(300);
  const s1 = await stats();
  t.ok(atA() - a0 < 5, `static entry: no thread floods it any more (${atA() - a0} at vmA)`);
  for (const [i, w] of s1.workers!.entries())
    t.ok(w.tx.packets > s0.workers![i].tx.packets, `thread ${i} sent its share to the kernel peer`);

  await topo.ask('fdb.del', { vni: topo.vni, mac: GHOST.mac });
  await sleep(100);
  a0 = atA();
  flows('vmB', GHOST.ip);
  await sleep(300);
  t.ok(atA() - a0 >= FLOWS * 0.9, `deleted: flooded again by every thread (${atA() - a0})`);
});

test('a MAC only a worker hears stays in the table past the ageing time', async (t) => {
  t.match(await topo.ask('showconf'), /workers: 2/, 'showconf keeps the setting');
  const vmB = topo.get('vmB');
  const vmC = topo.get('vmC');
  // No ARP nor IPv6 neighbour discovery on the way: the only frames from vmC are the ones sent here.
  vmC.exec('sysctl -qw net.ipv6.conf.all.disable_ipv6=1');
  vmB.exec(`ip neigh replace ${VM.kernel.ip} lladdr ${VM.kernel.mac} dev ${topo.tap}`);
  vmC.exec(`ip neigh replace ${VM.vtep.ip} lladdr ${VM.vtep.mac} dev eth0`);
  // One flow: the same source and destination ports every time.
  const send = (p: number, count = 1, gap = 0) =>
    vmC.exec(
      `python3 -c "import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('',${p})); [(s.sendto(b'x',('${VM.vtep.ip}',9999)),time.sleep(${gap})) for _ in range(${count})]"`,
    );
  // A flow the kernel hands to the worker's socket (thread 1), found by trying ports.
  let port = 0;
  for (let p = 30000; p < 30064 && !port; p++) {
    const before = (await stats()).workers!;
    send(p);
    await sleep(50);
    const after = (await stats()).workers!;
    if (after[1].rx.packets > before[1].rx.packets && after[0].rx.packets === before[0].rx.packets)
      port = p;
  }
  t.ok(port, `a flow on the worker: udp port ${port}`);
  const main0 = (await stats()).workers![0].rx.packets;
  send(port, 18, 0.25); // 4.5 s: more than twice the ageing time (2 s)
  const heard = (await stats()).workers![0].rx.packets - main0;
  // (thread 0 may decapsulate a frame or two from vmA behind OVS meanwhile; the flow's 18 are not)
  t.ok(heard < 9, `the flow stayed on the worker (the main thread decapsulated ${heard} frames)`);
  const fdb = (await topo.ask('fdb.show')) as { mac: string; ageSeconds: number }[];
  const c = fdb.find((r) => r.mac === VM.kernel.mac);
  t.ok(c, "vmC's MAC is still in the table: the worker's reports kept it alive");
  t.ok(c && c.ageSeconds <= 1, `refreshed about every second (age ${c?.ageSeconds} s)`);
  // Last seen at T, reported by T + 0.7 s (a third of the ageing time), aged at the first
  // sweep (every second) 2 s after that: by T + 3.7 s.
  const present = async () =>
    ((await topo.ask('fdb.show')) as { mac: string }[]).some((r) => r.mac === VM.kernel.mac);
  const t0 = Date.now();
  let gone = false;
  while (!gone && Date.now() - t0 < 6000) {
    await sleep(250);
    gone = !(await present());
  }
  t.ok(gone, `silent for longer than the ageing time: aged out (${Date.now() - t0} ms)`);
});

test('a VNI added and removed live reaches the worker too', async (t) => {
  const tap = `${topo.prefix}v2`;
  await topo.ask('vni.add', { vni: 6100, tap, remotes: [UNDERLAY.kernel] });
  const host = topo.get('hostB');
  const queues = () =>
    Number(
      host
        .exec(`ls /sys/class/net/${tap}/queues/ 2>/dev/null | grep -c rx- || true`, {
          allowFail: true,
        })
        .trim() || 0,
    );
  t.ok(await until(() => queues() === 2, 3000), `the new TAP has two queues (${queues()})`);
  const st = await stats();
  t.ok(st.vnis.some((v) => v.vni === 6100));
  await topo.ask('vni.del', { vni: 6100 });
  t.ok(
    await until(() => !host.exec('ip -o link', { allowFail: true }).includes(tap), 3000),
    'removed: every queue closed, so the TAP is gone',
  );
});

test('UDP GRO: with GRO on the underlay link (as on a NIC), TCP arrives coalesced and whole', async (t) => {
  topo.get('hostB').exec('ethtool -K eth0 gro on');
  const vmB = topo.get('vmB');
  const vmC = topo.get('vmC');
  const before = (await stats()).offload;
  const srv = bg(`${vmC.prefix} iperf3 -s -1 -B ${VM.kernel.ip}`);
  t.teardown(() => srv.kill('SIGKILL'));
  await sleep(300);
  const out = JSON.parse(
    vmB.exec(`iperf3 -c ${VM.kernel.ip} -t 2 -R -J`, { allowFail: true }) || '{}',
  );
  const got = out.end?.sum_received?.bytes ?? 0;
  // TCP's own checksums over the stream: a segment cut or joined wrong would stall it
  t.ok(got > 10e6, `iperf3 -R moved ${(got / 1e6).toFixed(0)} MB into vmB`);
  const after = await stats();
  const slots = after.offload.groDatagrams - before.groDatagrams;
  const segs = after.offload.groSegments - before.groSegments;
  t.ok(slots > 0, `the kernel coalesced datagrams: ${segs} in ${slots} receives`);
  t.ok(segs > slots, 'several per receive');
  t.equal(after.drops.datagram_truncated ?? 0, 0, 'none cut short: the slots hold 64 KiB');
  topo.get('hostB').exec('ethtool -K eth0 gro off');
});

/** A second `vtep run` in hostB with its own VNI, TAP and control socket. */
function second(tag: string, extra: string[]): { args: string[]; control: string } {
  const control = join(topo.dir, `${tag}.sock`);
  const args = [
    ...['netns', 'exec', topo.get('hostB').name, process.execPath, vtepBin(), 'run'],
    ...['--local', UNDERLAY.vtep, '--vni', '6000', '--tap', `${topo.prefix}${tag}`],
    ...['--remote', UNDERLAY.kernel, '--control', control, ...extra],
  ];
  return { args, control };
}

test('the port is ours: a second vtep on it exits 2 naming us, and loses us nothing', async (t) => {
  const pings = ['vmA', 'vmC'].map((vm) => {
    const p = bg(`${topo.get(vm).prefix} ping -c 40 -i 0.05 -W 1 ${VM.vtep.ip}`);
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    return { vm, done: new Promise<string>((r) => p.once('exit', () => r(out))) };
  });
  await sleep(300);
  const intruder = second('x2', ['--workers', '2']);
  const r = spawnSync('ip', intruder.args, { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 2, 'exit status 2');
  t.match(
    r.stderr,
    new RegExp(
      `invalid local "${UNDERLAY.vtep}:4789": the port is in use by pid ${topo.vtep!.pid} \\(vtep run`,
    ),
    `names the holder: ${r.stderr.trim()}`,
  );
  t.notOk(existsSync(intruder.control), 'it opened no control socket');
  for (const p of pings)
    t.match(await p.done, / 0% packet loss/, `${p.vm} lost no ping to vmB meanwhile`);
  t.ok(((await topo.ask('status')) as Status).healthy, 'the first one is still healthy');

  const other = second('x3', ['--port', '4790', '--workers', '2']);
  const p = bg(`ip ${other.args.join(' ')}`);
  t.teardown(() => p.kill('SIGKILL'));
  t.ok(await until(() => existsSync(other.control), 10_000), 'a vtep on another port starts');
  const st = (await request(other.control, { cmd: 'status' })) as Status;
  t.ok(st.taps.length === 1, 'and answers');
  const exited = new Promise((res) => p.once('exit', res));
  p.kill('SIGTERM');
  t.equal(await exited, 0, 'and stops');
});

test('a socket that joins our port later is named in status until it goes', async (t) => {
  const py = bg(
    `${topo.get('hostB').prefix} python3 -c "import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1); s.bind(('${UNDERLAY.vtep}',4789)); time.sleep(30)"`,
  );
  t.teardown(() => py.kill('SIGKILL'));
  const named = await until(async () => {
    const st = (await topo.ask('status')) as Status;
    return st.problems.find((l) => l.includes(`pid ${py.pid} (python3`));
  }, 10_000);
  t.ok(named, `status degraded: ${named}`);
  t.match(readFileSync(topo.vtepLog, 'utf8'), /"event":"port_shared"/, 'and logged');
  py.kill('SIGKILL');
  t.ok(
    await until(async () => ((await topo.ask('status')) as Status).healthy, 10_000),
    'healthy again once it is gone',
  );
});

test('stops cleanly, workers and all, within 1 s with a monitor attached and traffic', async (t) => {
  const monitor = spawn(process.execPath, [vtepBin(), 'monitor', '--control', topo.control]);
  t.teardown(() => monitor.kill('SIGKILL'));
  const flood = bg(`${topo.get('vmB').prefix} ping -f ${VM.kernel.ip}`);
  t.teardown(() => flood.kill('SIGKILL'));
  await sleep(500);
  const t0 = Date.now();
  t.equal(await topo.stopVtep(), 0, 'exit status 0');
  const ms = Date.now() - t0;
  t.ok(ms < 1000, `within 1 s, as the README says (${ms} ms)`);
  t.notMatch(readFileSync(topo.vtepLog, 'utf8'), /"event":"stop_slow"/, 'without the deadline');
});

test('a stuck worker: status degraded naming it, stats says so, and the watchdog stops the process', async (t) => {
  // A fake systemd: the notify socket, and a watchdog of 3 s.
  const sock = join(topo.dir, 'notify-wd.sock');
  const listener = await notifyListener(sock);
  const heard = listener.heard;
  t.teardown(() => listener.close());
  await topo.startVtep(['--workers', '2'], {
    env: { VTEP_TEST_HOOKS: '1', NOTIFY_SOCKET: sock, WATCHDOG_USEC: '3000000' },
  });
  t.ok(await until(() => heard.includes('WATCHDOG=1'), 3000), 'WATCHDOG=1 while all answer');
  const exited = new Promise<number | null>((r) => topo.vtep!.once('exit', (code) => r(code)));
  await topo.ask('test.stall', { worker: 1, ms: 20_000 });
  const t0 = Date.now();
  let problems: string[] = [];
  t.ok(
    await until(
      async () => {
        const s = (await topo.ask('status')) as { healthy: boolean; problems: string[] };
        problems = s.problems;
        return !s.healthy;
      },
      4000,
      200,
    ),
    `status degraded after ${Date.now() - t0} ms`,
  );
  heard.length = 0; // from here on the worker is known to be stuck
  t.match(
    problems.join('\n'),
    /worker 1 has not answered for \d+\.\d s \(stuck\?\)/,
    'naming the worker',
  );
  const st = (await topo.ask('stats')) as RunningStats;
  t.match(
    st.workers?.find((w) => w.worker === 1),
    { noAnswerSeconds: Number },
    'vtep stats lists the thread as not answering, not without it',
  );
  t.match(
    readFileSync(topo.vtepLog, 'utf8'),
    /worker 1 has not answered for .* \(stuck\?\)/,
    'logged',
  );
  const code = await exited;
  t.equal(code, 1, `the watchdog stopped it, status 1, ${Date.now() - t0} ms after the stall`);
  t.ok(Date.now() - t0 < 6000, 'within the watchdog time and a bit');
  t.notOk(heard.includes('WATCHDOG=1'), 'and no WATCHDOG=1 once the worker was stuck');
});
