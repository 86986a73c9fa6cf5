// The process around the data path, as an operator meets it: a real `vtep run` (from a YAML
// file) in a namespace, with a kernel VXLAN peer, reloaded, signalled, its TAP deleted under it,
// its control socket flooded, its output piped. Each subtest is one item of the robustness
// issue and fails on the code before it.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { bg, sleep, until } from '../../src/lab/sh.js';
import { Topology, UNDERLAY, VM, vtepBin } from '../../src/lab/topology.js';
import { sendFrames } from '../helpers/afpacket.js';
import { hostileConfigs } from '../helpers/configs.js';
import { logEvents, logMessages } from '../helpers/log.js';
import { notifyListener } from '../helpers/notify.js';
import { needs } from '../helpers/prereq.js';
import { CAPTURE_BUFFER_KIB } from '../helpers/capture.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ping', 'bridge', 'ethtool', 'tcpdump', 'python3'],
});
const topo = ready
  ? await Topology.build({
      prefix: `l${process.pid % 10000}`,
      peers: ['kernel'],
      injector: true,
      reap: true,
    })
  : (undefined as unknown as Topology);
if (ready) t.teardown(() => topo.teardown());

const config = ready ? join(topo.dir, 'vtep.yaml') : '';
const tap2 = ready ? `${topo.prefix}t2` : '';
const notifySock = ready ? join(topo.dir, 'notify.sock') : '';

function writeConfig(remotes: string[], withSecond: boolean): void {
  const vnis = [
    `  - vni: ${topo.vni}\n    tap: ${topo.tap}\n    remotes: [${remotes.join(', ')}]`,
    ...(withSecond ? [`  - vni: 6000\n    tap: ${tap2}`] : []),
  ];
  writeFileSync(config, `local: ${UNDERLAY.vtep}\nmaxEntries: 10000\nvnis:\n${vnis.join('\n')}\n`);
}

/** sd_notify datagrams the vtep sent, as systemd would receive them. */
let notified: string[] = [];
if (ready) {
  const listener = await notifyListener(notifySock);
  notified = listener.heard;
  t.teardown(() => listener.close());
  writeConfig([UNDERLAY.kernel], true);
  await topo.startVtep([], { config, env: { NOTIFY_SOCKET: notifySock } });
}

const test = (name: string, fn: (t: Test) => Promise<void>) =>
  ready ? t.test(name, fn) : undefined;

const vtep = (...args: string[]) =>
  spawnSync(process.execPath, [vtepBin(), ...args, '--control', topo.control], {
    encoding: 'utf8',
    timeout: 30_000,
  });
type Stats = {
  vnis: { vni: number; remotes: string[]; tapUp: boolean }[];
  drops: Record<string, number>;
  fdb: { learned: number; entries: number };
  taps: { vni: number; state: string; recreated: number }[];
};
const stats = async () => (await topo.ask('stats')) as Stats;
const vtepLog = () => logMessages(topo.vtepLog);

/** A ping running in the background; resolves with its summary line. */
function pinging(from: string, to: string, count: number, interval = 0.05) {
  const p = bg(`${topo.get(from).prefix} ping -i ${interval} -c ${count} -W 1 ${to}`);
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  return new Promise<string>((resolve) => p.once('exit', () => resolve(out)));
}

function vtepPid(): number {
  return topo.vtep!.pid!;
}

test('readiness is reported to systemd (sd_notify READY=1)', async (t) => {
  t.ok(await until(() => notified.includes('READY=1'), 3000), `notified: ${notified.join(' | ')}`);
  t.equal(vtep('status').status, 0, 'vtep status: healthy');
});

test('SIGHUP: a remote added and a VNI removed while a ping runs; no loss, learned MAC kept', async (t) => {
  t.ok((await pinging('vmB', VM.kernel.ip, 3, 0.2)).includes(' 0% packet loss'), 'warm up');
  // One broadcast from a MAC that never speaks again: its entry survives the reload only if the
  // reload keeps learned entries (a flush and re-learn would lose it).
  const once = '02:ab:cd:ef:00:01';
  sendFrames(topo.get('vmC'), 'eth0', [
    `ffffffffffff${once.replace(/:/g, '')}88b5${'00'.repeat(46)}`,
  ]);
  const learnedOnce = async () => {
    for (let i = 0; i < 30; i++) {
      const rows = (await topo.ask('fdb.show')) as { mac: string; remote: string }[];
      const row = rows.find((r) => r.mac === once);
      if (row) return row;
      await sleep(100);
    }
    return undefined;
  };
  t.match(
    await learnedOnce(),
    { remote: `${UNDERLAY.kernel}:4789` },
    'the one-frame MAC is learned',
  );
  const rows = (await topo.ask('fdb.show')) as { mac: string; remote: string }[];
  t.match(
    rows.find((r) => r.mac === VM.kernel.mac),
    { remote: `${UNDERLAY.kernel}:4789` },
  );
  t.ok(topo.get('hostB').exec(`ip -o link show ${tap2}`).includes(tap2), 'the second TAP is there');

  // The injector host becomes a remote; capture what reaches it.
  const pcap = join(topo.dir, 'inj.pcap');
  const dump = bg(
    `${topo.get('inj').prefix} tcpdump -i eth0 -B ${CAPTURE_BUFFER_KIB} -U -n -w ${pcap} udp port 4789`,
  );
  let dumpErr = '';
  dump.stderr!.on('data', (d) => (dumpErr += d));
  await until(() => dumpErr.includes('listening'), 5000);

  const ping = pinging('vmB', VM.kernel.ip, 80); // 4 s at 50 ms
  await sleep(1500);
  writeConfig([UNDERLAY.kernel, UNDERLAY.injector], false);
  notified.length = 0;
  process.kill(vtepPid(), 'SIGHUP');
  const summary = await ping;
  t.match(
    summary,
    / 0% packet loss/,
    `no ping lost across the reload: ${summary.trim().split('\n').pop()}`,
  );

  const after = await stats();
  t.same(
    after.vnis.map((v) => [v.vni, v.remotes]),
    [[topo.vni, [`${UNDERLAY.kernel}:4789`, `${UNDERLAY.injector}:4789`]]],
    'remote added, VNI 6000 gone',
  );
  t.match(
    await learnedOnce(),
    { remote: `${UNDERLAY.kernel}:4789` },
    'the learned entry of the unchanged VNI was kept, not flushed',
  );
  const rows2 = (await topo.ask('fdb.show')) as { mac: string; remote: string }[];
  t.match(
    rows2.find((r) => r.mac === VM.kernel.mac),
    { remote: `${UNDERLAY.kernel}:4789` },
    'kept',
  );
  t.notOk(
    topo.get('hostB').exec(`ip -o link show ${tap2}`, { allowFail: true }).includes(tap2),
    "VNI 6000's TAP is closed",
  );
  t.match(vtepLog(), /reload: vni 6000 removed/);
  t.match(
    vtepLog(),
    /reload: vni 5000 remotes 192\.0\.2\.3:4789 -> 192\.0\.2\.3:4789,192\.0\.2\.9:4789/,
  );
  t.ok(
    await until(
      () => notified.includes('READY=1') && notified.some((n) => n.startsWith('RELOADING=1')),
      2000,
    ),
    `systemd told RELOADING then READY: ${notified.join(' | ')}`,
  );

  // A broadcast from the VM (ARP for an unused address) now reaches the new remote too.
  topo.get('vmB').exec('ping -c 1 -W 1 10.0.0.77', { allowFail: true });
  await sleep(300);
  dump.kill('SIGINT');
  await sleep(200);
  t.ok(existsSync(pcap) && readFileSync(pcap).length > 24, 'the added remote receives the flood');
});

test('a broken file on reload keeps the running configuration and says why', async (t) => {
  writeFileSync(config, 'vnis: [1\n');
  process.kill(vtepPid(), 'SIGHUP');
  t.ok(
    await until(
      () =>
        /reload refused, still running the previous configuration: .*not valid YAML/.test(
          vtepLog(),
        ),
      3000,
    ),
    'logged',
  );
  const r = vtep('reload');
  t.equal(r.status, 2, '`vtep reload` exits 2 for a bad file');
  t.match(r.stderr, /^vtep: invalid --config ".*vtep\.yaml": is not valid YAML/);
  writeConfig([UNDERLAY.kernel, UNDERLAY.injector], false);
  const local = readFileSync(config, 'utf8').replace(
    `local: ${UNDERLAY.vtep}`,
    'local: 192.0.2.50',
  );
  writeFileSync(config, local);
  const moved = vtep('reload');
  t.equal(moved.status, 2);
  t.match(
    moved.stderr,
    /invalid local "192\.0\.2\.50": cannot change while vtep runs .*restart to change it/,
  );
  t.same((await stats()).vnis[0].remotes.length, 2, 'still the two remotes');
  t.match(await pinging('vmB', VM.kernel.ip, 5, 0.1), / 0% packet loss/, 'and still forwarding');
  writeConfig([UNDERLAY.kernel, UNDERLAY.injector], false);
  const ok = vtep('reload');
  t.equal(ok.status, 0, ok.stderr);
  t.equal(ok.stdout, 'no changes\n');
});

test('SIGHUP with a FIFO, /dev/zero, 100 MB or billion laughs as the file: refused, forwarding and control go on', async (t) => {
  const scratch = join(topo.dir, 'hostile');
  mkdirSync(scratch, { recursive: true });
  const flow = pinging('vmB', VM.kernel.ip, 120, 0.05); // 6 s of pings, one every 50 ms
  for (const [name, path, reason] of hostileConfigs(scratch)) {
    rmSync(config, { force: true });
    if (path === '/dev/zero' || name === 'a directory') symlinkSync(path, config);
    else renameSync(path, config);
    const before = vtepLog().length;
    process.kill(vtepPid(), 'SIGHUP');
    const t0 = Date.now();
    const st = (await topo.ask('status')) as { healthy: boolean };
    const took = Date.now() - t0;
    t.ok(st.healthy && took < 1000, `${name}: the control socket answers, healthy (${took} ms)`);
    t.equal(vtep('status').status, 0, `${name}: vtep status exits 0`);
    t.ok(
      await until(() => {
        const said = vtepLog().slice(before);
        return (
          /reload refused, still running the previous configuration/.test(said) && reason.test(said)
        );
      }, 3000),
      `${name}: refused, and said why`,
    );
  }
  t.match(await flow, / 0% packet loss/, 'the ping under way lost nothing');
  t.equal(topo.vtep!.exitCode, null, 'still running');
  rmSync(config, { force: true });
  writeConfig([UNDERLAY.kernel, UNDERLAY.injector], false);
  t.equal(vtep('reload').stdout, 'no changes\n', 'the real file again: nothing changed meanwhile');
});

test('the underlay link down, sends failing, the address gone: status degraded and says which', async (t) => {
  const host = topo.get('hostB');
  type St = { healthy: boolean; problems: string[] };
  const status = async () => (await topo.ask('status')) as St;
  const degradedWith = (re: RegExp) =>
    until(
      async () => {
        const s = await status();
        return !s.healthy && s.problems.some((p) => re.test(p));
      },
      4000,
      100,
    );
  t.ok((await status()).healthy, 'healthy to begin with');
  host.exec('ip link set eth0 down');
  try {
    t.ok(await degradedWith(/the underlay link eth0 is down/), 'link down: said');
    // Frames from the VM now meet a send that fails: every one, for every remote.
    const flow = pinging('vmB', VM.kernel.ip, 30, 0.05);
    t.ok(await degradedWith(/sends to every remote are failing/), 'and sends failing: said');
    await flow;
    const r = vtep('status');
    t.equal(r.status, 1, 'vtep status exits 1');
    t.match(r.stdout, /problem: the underlay link eth0 is down/);
  } finally {
    host.exec('ip link set eth0 up');
  }
  t.ok(await until(async () => (await status()).healthy, 5000, 100), 'up again: healthy');
  host.exec(`ip addr del ${UNDERLAY.vtep}/24 dev eth0`);
  try {
    t.ok(
      await degradedWith(new RegExp(`the underlay address ${UNDERLAY.vtep} is on no interface`)),
      'address removed: said',
    );
  } finally {
    host.exec(`ip addr add ${UNDERLAY.vtep}/24 dev eth0`);
  }
  t.ok(await until(async () => (await status()).healthy, 5000, 100), 'back: healthy');
  t.match(await pinging('vmB', VM.kernel.ip, 5, 0.1), / 0% packet loss/, 'and forwarding');
});

test('ip link del of the TAP: reported, visible in status and stats, re-created, forwarding again', async (t) => {
  const host = topo.get('hostB');
  const vm = topo.get('vmB');
  // Hold the name with a non-TAP device in vtep's namespace, so the outage lasts long enough to
  // look at; then free it and watch the TAP come back.
  host.exec(`ip link add ${topo.tap} type veth peer name ${topo.prefix}hold`);
  // The TAP lives in vmB's namespace; the name here is now another device's. The once-a-second
  // check must not take that device for the TAP (it used to follow its MTU).
  await sleep(1200);
  t.match(
    vtep('status').stdout,
    /vni 5000 dev \S+ mtu 1450 UP/,
    "another device holding the TAP's name in vtep's namespace: its mtu is not followed",
  );
  t.notMatch(vtepLog(), /mtu 1450 -> 1500/, 'nor said to be');
  vm.exec(`ip link del ${topo.tap}`);
  t.ok(await until(() => /tap \S+: the device is gone/.test(vtepLog()), 3000), 'said plainly');
  t.match(
    logEvents(topo.vtepLog).find((e) => e.event === 'tap_lost'),
    { level: 'warn', dev: topo.tap, vni: topo.vni },
    'as one structured event with stable fields',
  );
  const st = vtep('status');
  t.equal(st.status, 1, 'vtep status exits 1 while the TAP is down');
  t.match(
    st.stdout,
    /^degraded: .*\n\s+vni 5000 dev \S+ mtu 1450 DOWN for [\d.]+ s, re-creating: interface \S+ already exists and is .*not a TAP/m,
  );
  t.match(st.stdout, /problem: tap \S+ \(vni 5000\) is down for/);
  // Once the loss is known, frames for the VNI are dropped as tap_down, no longer as failed
  // writes (a frame or two may have met the dead fd before the kernel said so: those did fail).
  const known = await stats();
  topo.get('vmC').exec(`ping -c 3 -i 0.2 -W 1 ${VM.vtep.ip}`, { allowFail: true });
  const down = await stats();
  t.equal(down.vnis[0].tapUp, false);
  t.ok(
    down.drops.tap_down - known.drops.tap_down >= 3,
    `the pings counted as tap_down (${known.drops.tap_down} -> ${down.drops.tap_down})`,
  );
  t.equal(down.drops.tap_write_failed, known.drops.tap_write_failed, 'not as tap_write_failed');
  t.match(vtep('stats').stdout, /vni 5000 dev \S+ remotes .* tap DOWN for/);

  host.exec(`ip link del ${topo.tap}`);
  const t0 = Date.now();
  t.ok(
    await until(
      () =>
        host.exec(`ip -o link show ${topo.tap}`, { allowFail: true }).includes('tun') ||
        host.exec(`ip -d -o link show ${topo.tap}`, { allowFail: true }).includes('tun'),
      8000,
    ),
    'the TAP is back',
  );
  const startMac = /vni 5000 on \S+ \(([0-9a-f:]{17})\)/.exec(vtepLog())![1];
  // The device exists as soon as TUNSETIFF returns; vtep says so a moment later (after it has
  // handed the TAP to the threads), and the log is a file another process writes: wait for it.
  t.ok(
    await until(() => new RegExp(`re-created with MAC ${startMac}`).test(vtepLog()), 3000),
    'said, with the MAC it had at start',
  );
  t.equal(
    JSON.parse(host.exec(`ip -j link show ${topo.tap}`))[0].address,
    startMac,
    'with the MAC it had at start (derived from its name and VNI), not a random one',
  );
  // Bridge (here: namespace) membership is the operator's: put it back where it was.
  host.exec(`ip link set ${topo.tap} netns ${vm.name}`);
  vm.exec(
    `ip link set ${topo.tap} address ${VM.vtep.mac} && ip addr add ${VM.vtep.ip}/24 dev ${topo.tap} && ip link set ${topo.tap} up`,
  );
  t.ok(
    await until(
      () =>
        vm.exec(`ping -c 1 -W 1 ${VM.kernel.ip}`, { allowFail: true }).includes(' 0% packet loss'),
      5000,
      200,
    ),
    'the VNI forwards again',
  );
  t.ok(Date.now() - t0 < 5000 + 3000, `within 5 s of re-creation (${Date.now() - t0} ms in all)`);
  const st2 = vtep('status');
  t.equal(st2.status, 0, 'healthy again');
  t.match(st2.stdout, /vni 5000 dev \S+ mtu 1450 UP \(re-created 1x\)/);
});

test('8192 FDB rows through a pipe arrive whole, as text and as JSON', async (t) => {
  // 8192 static entries through one control connection.
  await new Promise<void>((resolve, reject) => {
    const c = createConnection(topo.control);
    let answers = 0;
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        if (!JSON.parse(l).ok) reject(new Error(l));
        if (++answers === 8192) (c.end(), resolve());
      }
    });
    for (let i = 0; i < 8192; i++) {
      const mac = `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
      c.write(
        JSON.stringify({ cmd: 'fdb.add', vni: topo.vni, mac, remote: UNDERLAY.kernel }) + '\n',
      );
    }
  });
  const st = await stats();
  t.ok(st.fdb.entries >= 8192, `${st.fdb.entries} entries`);
  // and one 00:00:00:00:00:00 row per remote (the flood list, as bridge fdb show lists it)
  const total = st.fdb.entries + st.vnis.reduce((n, v) => n + v.remotes.length, 0);
  const sh = (cmd: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 30_000 });
  const cli = `${process.execPath} ${vtepBin()}`;
  const text = sh(`${cli} fdb show --control ${topo.control} | wc -l`);
  t.equal(Number(text.stdout.trim()), total, 'every row through `| wc -l`');
  const json = sh(
    `${cli} fdb show --json --control ${topo.control} | ${process.execPath} -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).length))"`,
  );
  t.equal(Number(json.stdout.trim()), total, 'the JSON parses whole');
  const slow = sh(`${cli} fdb show --control ${topo.control} | (sleep 1; wc -c)`);
  t.ok(Number(slow.stdout.trim()) > 8192 * 60, 'a slow reader gets everything too');
});

test('a flood of pipelined requests never read: RSS bounded, pings keep flowing', async (t) => {
  const rss = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${vtepPid()}/status`, 'utf8'))![1]);
  const rssBefore = rss();
  const greedy = createConnection(topo.control);
  await new Promise((r) => greedy.once('connect', r));
  greedy.pause(); // never read
  greedy.write('{"cmd":"fdb.show"}\n'.repeat(2000)); // 38 KB, 2000 × 8192 rows if answered
  const summary = await pinging('vmB', VM.kernel.ip, 40);
  const rssAfter = rss();
  t.match(summary, / 0% packet loss/, `pings flow meanwhile: ${summary.trim().split('\n').pop()}`);
  t.ok(
    rssAfter - rssBefore < 64 * 1024,
    `RSS grew by ${Math.round((rssAfter - rssBefore) / 1024)} MiB (bound: 64 MiB)`,
  );
  const r = vtep('stats');
  t.equal(r.status, 0, 'other clients are served');
  greedy.destroy();
  await topo.ask('fdb.flush', { vni: topo.vni });
});

test('--control at a regular file is refused and the file is left alone', async (t) => {
  const precious = join(topo.dir, 'precious.yaml');
  writeFileSync(precious, 'do not delete\n');
  const r = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      topo.get('hostB').name,
      process.execPath,
      vtepBin(),
      'run',
      '--local',
      UNDERLAY.vtep,
      '--port',
      '4790',
      '--vni',
      '7',
      '--tap',
      `${topo.prefix}t7`,
      '--control',
      precious,
    ],
    { encoding: 'utf8', timeout: 15_000 },
  );
  t.equal(r.status, 2, 'exits 2');
  t.match(
    r.stderr,
    /control socket .*precious\.yaml: a regular file is there; refusing to replace it/,
  );
  t.equal(readFileSync(precious, 'utf8'), 'do not delete\n', 'the file is untouched');
  t.notOk(
    topo.get('hostB').exec(`ip -o link show ${topo.prefix}t7`, { allowFail: true }).includes('t7'),
    'and the TAP it opened is gone again',
  );
});

test('SIGTERM with an idle control client: exit 0 within 1 s, port free again', async (t) => {
  const idle = createConnection(topo.control);
  await new Promise((r) => idle.once('connect', r));
  const p = topo.vtep!;
  notified.length = 0;
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  const t0 = Date.now();
  p.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(5000).then(() => 'timeout' as const)]);
  const ms = Date.now() - t0;
  t.equal(code, 0, 'exit status 0');
  t.ok(ms < 1000, `exited in ${ms} ms`);
  t.ok(notified.includes('STOPPING=1'), 'told systemd it is stopping');
  idle.destroy();
  t.notOk(existsSync(topo.control), 'socket file removed');
  // A replacement starts at once: the UDP port and the TAP name are free.
  await topo.startVtep([], { config });
  t.equal(vtep('status').status, 0, 'the replacement runs');
});
