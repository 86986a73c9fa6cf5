// Watching a running vtep as an operator of OVS or kernel VXLAN would: `vtep monitor` (like
// `bridge monitor fdb` and l2miss) and Prometheus metrics, against real peers.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import t from 'tap';
import { until } from '../../src/lab/sh.js';
import { Topology, UNDERLAY, VM, vtepBin } from '../../src/lab/topology.js';
import { sendFrames } from '../helpers/afpacket.js';
import { needs } from '../helpers/prereq.js';
import type { RemoteSummary, RunningStats } from '../../src/control/api.js';

const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (
  text: string,
) => {
  name: string;
  type: string;
  metrics: {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
  }[];
}[];

const ready = needs(t, {
  root: true,
  commands: [
    'ip',
    'ovs-vsctl',
    'ovs-vswitchd',
    'ping',
    'bridge',
    'ethtool',
    'python3',
    'promtool',
    'tshark',
  ],
});

const METRICS = `${UNDERLAY.vtep}:9110`;

t.test('vtep monitor --json: learn, move, age-out and miss; /metrics counters move', async (t) => {
  if (!ready) return;
  const topo = await Topology.build({ prefix: `w${process.pid % 10000}`, reap: true });
  t.teardown(() => topo.teardown());
  await topo.startVtep(['--ageing', '4', '--metrics', METRICS]);

  /** A scrape from the vtep's own host, parsed by a Prometheus text-format parser. */
  const scrape = () => {
    const text = topo
      .get('hostB')
      .exec(
        `${process.execPath} -e "fetch('http://${METRICS}/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"`,
      );
    return new Map(parsePrometheus(text).map((f) => [f.name, f]));
  };
  const value = (m: ReturnType<typeof scrape>, name: string, labels: Record<string, string> = {}) =>
    Number(
      m
        .get(name)
        ?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v))
        ?.value ?? NaN,
    );

  const events: Record<string, string>[] = [];
  const monitor = spawn(process.execPath, [
    vtepBin(),
    'monitor',
    '--json',
    '--control',
    topo.control,
  ]);
  t.teardown(() => monitor.kill());
  let buf = '';
  monitor.stdout.on('data', (d) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) events.push(JSON.parse(l));
  });
  // The monitor is live once it reports a probe: a unicast frame to an unknown MAC (a miss).
  const probe = () =>
    sendFrames(topo.get('vmB'), topo.tap, [
      `0200000eeeee${VM.vtep.mac.replace(/:/g, '')}88b5${'00'.repeat(46)}`,
    ]);
  t.ok(
    await until(() => (probe(), events.some((e) => e.event === 'miss')), 10_000, 300),
    'the monitor is subscribed',
  );
  // What the VMs said while starting up is learned already: start from an empty table.
  await topo.ask('fdb.flush', {});
  const before = scrape();

  const ping = (from: string, to: string) =>
    topo.get(from).exec(`ping -c 3 -i 0.2 -W 1 ${to}`, { allowFail: true });
  t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/);
  t.match(ping('vmB', VM.ovs.ip), / 0% packet loss/);
  const seen = (pred: (e: Record<string, string>) => boolean, ms = 3000) =>
    until(() => events.find(pred), ms);

  // Per remote: what vtep counts for the kernel peer is what the peer's own VXLAN device counts
  // (it talks to vtep only), N frames each way on top of whatever the VMs say meanwhile.
  const KERNEL = `${UNDERLAY.kernel}:4789`;
  const kernelDev = () => {
    const [l] = JSON.parse(topo.get('hostC').exec('ip -s -j link show vx0')) as {
      stats64: { rx: { packets: number }; tx: { packets: number } };
    }[];
    return { rx: l.stats64.rx.packets, tx: l.stats64.tx.packets };
  };
  const ours = async () => {
    const rows = (await topo.ask('remote.show', {})) as RemoteSummary[];
    const k = rows.find((r) => r.remote === KERNEL)!;
    const dropped = Object.values(k.drops).reduce((n, x) => n + x, 0);
    return { rx: k.rx.packets + dropped, tx: k.tx.packets, rows };
  };
  const N = 300;
  const [dev0, ours0] = [kernelDev(), await ours()];
  const hex = (dst: string, src: string) =>
    `${dst.replace(/:/g, '')}${src.replace(/:/g, '')}88b5${'00'.repeat(46)}`;
  // in bursts of 25: a frame the kernel drops on a loaded machine would break the equality
  sendFrames(topo.get('vmB'), topo.tap, Array(N).fill(hex(VM.kernel.mac, VM.vtep.mac)), 25);
  sendFrames(topo.get('vmC'), 'eth0', Array(N / 2).fill(hex(VM.vtep.mac, VM.kernel.mac)), 25);
  let last = '';
  const agree = await until(async () => {
    const [dev, o] = [kernelDev(), await ours()];
    const d = { devRx: dev.rx - dev0.rx, devTx: dev.tx - dev0.tx };
    const v = { tx: o.tx - ours0.tx, rx: o.rx - ours0.rx };
    last = `vtep tx ${v.tx} rx ${v.rx}, kernel vx0 rx ${d.devRx} tx ${d.devTx}`;
    return v.tx === d.devRx && v.rx === d.devTx && v.tx >= N && v.rx >= N / 2 ? o : undefined;
  }, 5000);
  t.ok(agree, `per-remote counters equal the kernel peer's device counters: ${last}`);
  const ovs = agree?.rows.find((r) => r.remote === `${UNDERLAY.ovs}:4789`);
  t.ok(ovs && ovs.rx.packets >= 3 && ovs.tx.packets >= 3, 'the OVS peer counted apart');
  t.ok((ovs?.heardMsAgo ?? Infinity) < 5000, 'and heard lately');
  t.same(ovs?.vnis, [topo.vni]);
  /** `vtep ARGS --control …`, run to its end. */
  const vtepRun = (...args: string[]) =>
    spawnSync(process.execPath, [vtepBin(), ...args, '--control', topo.control], {
      encoding: 'utf8',
    });
  /** `vtep capture ARGS` in the background: its stderr so far, and its exit. */
  const capture = (...args: string[]) => {
    const p = spawn(process.execPath, [vtepBin(), 'capture', ...args, '--control', topo.control]);
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    const done = new Promise<number | null>((r) => p.on('exit', r));
    t.teardown(() => p.kill());
    return { p, done, stderr: () => err };
  };
  const show = vtepRun('remote', 'show', UNDERLAY.kernel);
  t.equal(show.status, 0, show.stderr);
  t.match(
    show.stdout,
    new RegExp(
      `^remote ${KERNEL.replace(/\./g, '\\.')}\n  vni: ${topo.vni}\n  last heard: [\\d.]+ s ago\n  rx: packets \\d+`,
    ),
    'vtep remote show ADDR: its block',
  );
  const bad = vtepRun('remote', 'show', '192.0.2.200');
  const stats = vtepRun('stats');
  t.match(stats.stdout, `remote ${KERNEL} vni ${topo.vni}: rx `, 'vtep stats: a line per remote');
  // vtep trace against the live state: a known unicast, a stranger, and a bad --in
  const trace = (...args: string[]) => vtepRun('trace', ...args);
  const known = trace(
    '--in',
    `tap:${topo.tap}`,
    '--src',
    VM.vtep.mac,
    '--dst',
    VM.kernel.mac,
    '--ip4',
    `${VM.vtep.ip}>${VM.kernel.ip}`,
  );
  t.equal(known.status, 0, known.stderr);
  t.match(known.stdout, `fdb: ${VM.kernel.mac} at ${KERNEL} (learned`, 'trace: the FDB entry');
  t.match(known.stdout, /outer: to 192\.0\.2\.3:4789, source port \d+, ttl default \(64\)/);
  t.match(known.stdout, `verdict: unicast to ${KERNEL}`, 'trace: the verdict');
  const stranger = trace('--in', 'remote:192.0.2.99', '--dst', VM.vtep.mac, '--json');
  t.equal(stranger.status, 0, stranger.stderr);
  t.same(JSON.parse(stranger.stdout).verdict, { action: 'drop', reason: 'sender_not_remote' });
  // vtep capture --drops: hostile datagrams from the kernel peer's host; tshark reads the
  // pcapng, and each dropped packet's comment names the reason the counters counted
  const dir = mkdtempSync(join(tmpdir(), 'vtep-capture-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pcap = join(dir, 'drops.pcapng');
  const HOSTILE = { vxlan_no_i_flag: 3, vni_unknown: 2, vxlan_reserved_flags: 1 };
  const total = Object.values(HOSTILE).reduce((a, b) => a + b, 0);
  const dropsBefore = ((await topo.ask('stats', {})) as RunningStats).drops;
  const cap = capture('--drops', '-w', pcap, '-c', String(total));
  t.ok(
    await until(() => cap.stderr().includes('capturing dropped packets'), 5000),
    'the capture is on',
  );
  const inner = `${VM.vtep.mac.replace(/:/g, '')}${VM.kernel.mac.replace(/:/g, '')}88b5${'00'.repeat(46)}`;
  const vx = (flags: string, vni: number) =>
    `${flags}000000${vni.toString(16).padStart(6, '0')}00${inner}`;
  const hostile = [
    ...Array(HOSTILE.vxlan_no_i_flag).fill(vx('00', topo.vni)),
    ...Array(HOSTILE.vni_unknown).fill(vx('08', 4242)),
    ...Array(HOSTILE.vxlan_reserved_flags).fill(vx('88', topo.vni)),
    vx('08', topo.vni), // a valid one among them: delivered, not captured
  ];
  spawnSync(
    'ip',
    [
      'netns',
      'exec',
      topo.get('hostC').name,
      'python3',
      '-c',
      `import socket,sys,json\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor h in json.load(sys.stdin): s.sendto(bytes.fromhex(h),('${UNDERLAY.vtep}',4789))`,
    ],
    { input: JSON.stringify(hostile) },
  );
  t.equal(
    await Promise.race([cap.done, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]),
    0,
    `the capture stopped after ${total} packets: ${cap.stderr().trim()}`,
  );
  const comments = spawnSync('tshark', ['-r', pcap, '-T', 'fields', '-e', 'frame.comment'], {
    encoding: 'utf8',
  })
    .stdout.trim()
    .split('\n');
  const dropsAfter = ((await topo.ask('stats', {})) as RunningStats).drops;
  for (const [reason, n] of Object.entries(HOSTILE)) {
    const inFile = comments.filter((c) => c.startsWith(`drop ${reason}, `)).length;
    t.equal(inFile, n, `${reason}: ${n} in the pcapng`);
    t.equal((dropsAfter[reason] ?? 0) - (dropsBefore[reason] ?? 0), n, `${reason}: ${n} counted`);
  }
  t.ok(
    comments.every((c) => c.includes(`remote ${UNDERLAY.kernel}`)),
    'each names the remote',
  );
  // SIGINT ends a capture with no count cleanly: exit 0, a file tshark reads
  const open = join(dir, 'open.pcapng');
  const sig = capture('-w', open);
  await until(() => sig.stderr().includes('capturing frames'), 5000);
  ping('vmB', VM.kernel.ip);
  await new Promise((r) => setTimeout(r, 500)); // the last reply's copy on its way to the reader
  sig.p.kill('SIGINT');
  t.equal(
    await sig.done,
    0,
    `SIGINT: the capture ends cleanly (${sig.stderr().trim().split('\n').at(-1)})`,
  );
  const read = spawnSync('tshark', ['-r', open, '-T', 'fields', '-e', 'frame.comment'], {
    encoding: 'utf8',
  });
  t.equal(read.status, 0, `tshark reads the file: ${read.stderr}`);
  const inFile = read.stdout.trim().split('\n').length;
  t.ok(inFile >= 6, `with the ping in it (${inFile} packets)`);
  t.match(
    sig.stderr(),
    new RegExp(`^${inFile} packets captured`, 'm'),
    'and says how many it wrote',
  );
  // frames, piped into tshark as users do: a ping's echo requests and replies, decoded
  const frames = spawn('sh', [
    '-c',
    `${process.execPath} ${vtepBin()} capture --vni ${topo.vni} --mac ${VM.kernel.mac} -c 4 --control ${topo.control} | tshark -r - -T fields -e icmp.type -e frame.comment`,
  ]);
  let decoded = '';
  frames.stdout.on('data', (d) => (decoded += d));
  let framesErr = '';
  frames.stderr.on('data', (d) => (framesErr += d));
  t.teardown(() => frames.kill());
  await until(() => framesErr.includes('capturing frames'), 5000);
  ping('vmB', VM.kernel.ip);
  await new Promise((r) => frames.on('exit', r));
  const lines = decoded.trim().split('\n');
  t.ok(
    lines.some((l) => /^8\tvni \d+, from tap /.test(l)),
    `an echo request from the tap: ${decoded}`,
  );
  t.ok(
    lines.some((l) => new RegExp(`^0\tvni \\d+, to tap .*remote ${UNDERLAY.kernel}`).test(l)),
    'an echo reply into it',
  );
  const noTap = trace('--in', 'tap:nope', '--dst', VM.vtep.mac);
  t.equal(noTap.status, 2, 'a TAP that is none: exit 2');
  t.match(noTap.stderr, /--in.*tap:nope.*names no TAP/);
  t.equal(bad.status, 2, 'a remote that is none: exit 2');
  t.match(bad.stderr, /ADDR.*192\.0\.2\.200.*is not a remote of any VNI/);
  t.match(
    await seen((e) => e.event === 'learn' && e.mac === VM.kernel.mac),
    { vni: topo.vni, dev: topo.tap, remote: `${UNDERLAY.kernel}:4789` },
    'learn: the kernel VM spoke',
  );
  t.match(
    await seen((e) => e.event === 'learn' && e.mac === VM.ovs.mac),
    { remote: `${UNDERLAY.ovs}:4789` },
    'learn: the OVS VM spoke',
  );

  // The OVS VM's MAC now speaks from behind the kernel peer: a move. (It spoke just now: the
  // checks above take longer than --ageing 4, after which its entry would be gone, no move.)
  t.match(ping('vmB', VM.ovs.ip), / 0% packet loss/);
  const sinceMove = events.length;
  sendFrames(topo.get('vmC'), 'eth0', [
    `ffffffffffff${VM.ovs.mac.replace(/:/g, '')}88b5${'00'.repeat(46)}`,
  ]);
  t.match(
    await seen((e) => e.event === 'move' && e.mac === VM.ovs.mac && events.indexOf(e) >= sinceMove),
    { mac: VM.ovs.mac, from: `${UNDERLAY.ovs}:4789`, remote: `${UNDERLAY.kernel}:4789` },
    'move: from the OVS peer to the kernel peer',
  );

  // A unicast frame to a MAC nobody knows: a miss (flooded).
  sendFrames(topo.get('vmB'), topo.tap, [
    `0200000ee0ee${VM.vtep.mac.replace(/:/g, '')}88b5${'00'.repeat(46)}`,
  ]);
  t.match(
    await seen((e) => e.event === 'miss' && e.mac === '02:00:00:0e:e0:ee'),
    { vni: topo.vni, dev: topo.tap },
    'miss',
  );

  // A MAC that speaks once ages out after --ageing 4 (the VMs themselves keep talking: neighbour
  // probes refresh their entries).
  const once = '02:0a:9e:00:00:01';
  sendFrames(topo.get('vmC'), 'eth0', [
    `ffffffffffff${once.replace(/:/g, '')}88b5${'00'.repeat(46)}`,
  ]);
  t.match(await seen((e) => e.event === 'learn' && e.mac === once), {
    remote: `${UNDERLAY.kernel}:4789`,
  });
  const learnedAt = Date.now();
  t.match(
    await seen((e) => e.event === 'age' && e.mac === once, 8000),
    { remote: `${UNDERLAY.kernel}:4789`, vni: topo.vni },
    'age: a MAC silent for --ageing 4 s',
  );
  t.ok(Date.now() - learnedAt >= 3500, `not before its time (${Date.now() - learnedAt} ms)`);

  const after = scrape();
  const v = { vni: String(topo.vni) };
  for (const name of ['vtep_rx_packets_total', 'vtep_tx_packets_total', 'vtep_rx_bytes_total'])
    t.ok(
      value(after, name, v) > value(before, name, v),
      `${name}{vni="${topo.vni}"} moved: ${value(before, name, v)} -> ${value(after, name, v)}`,
    );
  t.ok(
    value(after, 'vtep_remote_tx_packets_total', { remote: KERNEL }) >= N,
    'per remote in the metrics too',
  );
  t.ok(value(after, 'vtep_remote_last_heard_seconds', { remote: KERNEL }) < 10);
  t.ok(value(after, 'vtep_fdb_learned_total') >= 2, 'learns counted');
  t.ok(value(after, 'vtep_fdb_moved_total') >= 1, 'the move counted');
  t.ok(value(after, 'vtep_fdb_aged_total') >= 1, 'the age-out counted');
  t.equal(after.get('vtep_fdb_entries')?.type, 'GAUGE');
  t.equal(after.get('vtep_drops_total')?.type, 'COUNTER');
  t.equal(value(after, 'vtep_tap_up', v), 1, 'the TAP is up');
  const batches = after.get('vtep_batch_size');
  t.equal(batches?.type, 'HISTOGRAM');
  // (this parser keeps a histogram's buckets only: the +Inf bucket is its count)
  t.ok(
    batches!.metrics.some((m) => Number(m.buckets?.['+Inf']) > 0),
    'batch sizes observed',
  );
  t.ok(after.has('nodejs_eventloop_lag_seconds'), 'event-loop lag');
  // Prometheus's own linter on a real scrape, taken after traffic
  const text = topo
    .get('hostB')
    .exec(
      `${process.execPath} -e "fetch('http://${METRICS}/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"`,
    );
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`.trim());
  t.match(text, /^vtep_build_info\{version="[^"]+",node="v[\d.]+"\} 1$/m, 'build info');
  t.notMatch(text, /^vtep_ovsdb_/m, 'no OVSDB series without OVSDB');

  // The audit trail: each change an operator makes is a `change` event and a log line naming
  // the client process (its pid and uid, from the control socket's peer credentials).
  const ctl = (...args: string[]) => {
    const r = spawnSync(process.execPath, [vtepBin(), ...args, '--control', topo.control], {
      encoding: 'utf8',
    });
    t.equal(r.status, 0, `vtep ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.pid!;
  };
  const GHOST = '02:00:00:00:00:99';
  const vni = String(topo.vni);
  const changes: [string, number][] = [
    ['fdb.add', ctl('fdb', 'add', GHOST, '--vni', vni, '--remote', UNDERLAY.kernel)],
    ['fdb.add', ctl('fdb', 'add', GHOST, '--vni', vni, '--remote', UNDERLAY.ovs, '--replace')],
    ['fdb.del', ctl('fdb', 'del', GHOST, '--vni', vni)],
    ['fdb.flush', ctl('fdb', 'flush', '--vni', vni, '--learned-only')],
    ['remote.add', ctl('remote', 'add', '192.0.2.77', '--vni', vni)],
    ['remote.del', ctl('remote', 'del', '192.0.2.77', '--vni', vni)],
    ['fdb.add', ctl('fdb', 'replace', GHOST, '--vni', vni, '--remote', UNDERLAY.kernel)],
    ['vni.add', ctl('vni', 'add', '--vni', '6001', '--tap', `${topo.prefix}x`)],
    ['vni.del', ctl('vni', 'del', '--vni', '6001')],
    ['reload', ctl('reload')],
  ];
  for (const [cmd, pid] of changes) {
    const e = await seen(
      (e) => e.event === 'change' && (e.by as unknown as { pid: number }).pid === pid,
    );
    t.match(e, { cmd, by: { uid: 0, pid, command: /^vtep / } }, `monitor: ${cmd} by pid ${pid}`);
  }
  const log = readFileSync(topo.vtepLog, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"event":"change"'));
  for (const [cmd, pid] of changes)
    t.ok(
      log.some((l) => l.includes(`change ${cmd} `) && l.includes(`uid 0 pid ${pid} (vtep `)),
      `log: ${cmd} by uid 0 pid ${pid}`,
    );
  t.ok(
    log.some((l) => /change remote\.add vni=\d+ remote=192\.0\.2\.77 by .*: /.test(l)),
    'the line says what changed',
  );
  monitor.kill();
});

t.test(
  '20 000 half-open connections to /metrics and to the control socket: status answers, forwarding goes on',
  async (t) => {
    if (!ready) return;
    const topo = await Topology.build({
      prefix: `h${process.pid % 10000}`,
      peers: ['kernel'],
      reap: true,
    });
    t.teardown(() => topo.teardown());
    await topo.startVtep(['--metrics', METRICS]);
    const N = 10_000; // to each server: 20 000 in all
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'halfopen.mjs');
    const attacker = (target: string) =>
      spawn(
        'ip',
        ['netns', 'exec', topo.get('hostB').name, process.execPath, script, target, String(N), '8'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, NODE_OPTIONS: '' },
        },
      );
    const a = attacker(METRICS);
    const b = attacker(topo.control);
    let seen = '';
    a.stdout.on('data', (d) => (seen += d));
    t.teardown(() => {
      a.kill();
      b.kill();
    });
    const flow = new Promise<string>((resolve) => {
      let out = '';
      const p = spawn('ip', [
        'netns',
        'exec',
        topo.get('vmB').name,
        'ping',
        '-i',
        '0.1',
        '-c',
        '50',
        '-W',
        '1',
        VM.kernel.ip,
      ]);
      p.stdout.on('data', (d) => (out += d));
      p.once('exit', () => resolve(out));
    });
    t.ok(await until(() => seen.includes('open'), 5000), 'the half-open clients are at it');
    for (let i = 0; i < 6; i++) {
      const t0 = Date.now();
      const s = (await topo.ask('status')) as { healthy: boolean };
      t.ok(
        s.healthy && Date.now() - t0 < 1000,
        `vtep status answers within a second (${Date.now() - t0} ms)`,
      );
      await new Promise((r) => setTimeout(r, 500));
    }
    t.match(await flow, / 0% packet loss/, 'forwarding went on');
    const fds = Number(
      spawnSync('sh', ['-c', `ls /proc/${topo.vtep!.pid}/fd | wc -l`], { encoding: 'utf8' }).stdout,
    );
    t.ok(fds < 1000, `vtep holds ${fds} descriptors`);
    const log = readFileSync(topo.vtepLog, 'utf8');
    for (const what of ['metrics', 'control socket'])
      t.equal(
        log.split('\n').filter((l) => l.includes('"connection_cap"') && l.includes(`${what} `))
          .length,
        1,
        `${what}: the cap is logged once`,
      );
    t.equal(await topo.stopVtep(), 0);
  },
);
