// 1 000 VNIs on one vtep, with traffic on every one of them: it starts, forwards, and a scrape
// of /metrics passes Prometheus's own `promtool check metrics`; the series count is bounded.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { RunningStats } from '../../src/control/api.js';
import { request } from '../../src/control/client.js';
import { Netns, veth } from '../../src/lab/netns.js';
import { kernelSide, underlayAddr, vtepBin } from '../../src/lab/peers.js';
import { until } from '../../src/lab/sh.js';
import { needs } from '../helpers/prereq.js';

const VNIS = 1000;

t.test(`${VNIS} VNIs under traffic: promtool check metrics passes on a scrape`, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'ping', 'promtool'] })) return;
  const p = `m${process.pid % 10000}`;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-scale-'));
  const ns: Netns[] = [];
  const make = (role: string) => {
    const n = Netns.create(`${p}${role}`, { reap: true });
    ns.push(n);
    return n;
  };
  let vtep: ChildProcess | undefined;
  t.teardown(() => {
    if (vtep && vtep.exitCode === null) vtep.kill('SIGKILL');
    for (const n of ns.reverse()) n.delete();
    rmSync(dir, { recursive: true, force: true });
  });
  const ul = make('ul');
  ul.exec('ip link add ulbr type bridge && ip link set ulbr up');
  const hostB = make('hb');
  const hostC = make('hc');
  for (const [h, r] of [
    [hostB, 'b'],
    [hostC, 'c'],
  ] as const) {
    veth(h, 'eth0', ul, `p${r}`);
    ul.exec(`ip link set p${r} master ulbr`);
  }
  const vmC = make('vc');
  kernelSide({
    host: hostC,
    vm: vmC,
    local: '192.0.2.3',
    remotes: ['192.0.2.2'],
    vni: 1000,
    mtu: 1450,
    vmIp: '10.0.0.3',
    vmMac: '52:54:00:00:00:0c',
  });
  hostB.exec(`ip addr add ${underlayAddr('192.0.2.2', 'eth0')}`);
  const control = join(dir, 'vtep.sock');
  const cfg = join(dir, 'vtep.yaml');
  writeFileSync(
    cfg,
    `local: 192.0.2.2\ntapOffload: false\nworkers: 1\nmetrics: 192.0.2.2:9110\ncontrol: ${control}\nvnis:\n` +
      Array.from(
        { length: VNIS },
        (_, i) => `  - {vni: ${1000 + i}, tap: ${p}t${i}, remotes: [192.0.2.3]}\n`,
      ).join(''),
  );
  const log = openSync(join(dir, 'vtep.log'), 'w');
  const t0 = Date.now();
  vtep = spawn(
    'ip',
    ['netns', 'exec', hostB.name, process.execPath, vtepBin(), 'run', '--config', cfg],
    { stdio: ['ignore', log, log] },
  );
  t.ok(await until(() => existsSync(control), 60_000), 'started');
  t.comment(`${VNIS} VNIs up in ${Date.now() - t0} ms`);
  // Traffic: a VM on the first VNI pings through the kernel peer, and the peer's host sends a
  // broadcast frame into every VNI.
  hostB.exec(`ip addr add 10.0.0.2/24 dev ${p}t0 && ip link set ${p}t0 up`);
  t.match(
    hostB.exec('ping -c 3 -i 0.2 -W 1 10.0.0.3', { allowFail: true }),
    / 0% packet loss/,
    'forwarding on the first VNI',
  );
  const flood = `const s = require('dgram').createSocket('udp4');
    let left = ${VNIS};
    for (let i = 0; i < ${VNIS}; i++) {
      const b = Buffer.alloc(8 + 60);
      b[0] = 8; b.writeUIntBE(1000 + i, 4, 3);
      b.fill(0xff, 8, 14); b.writeUIntBE(0x020000000001, 14, 6); b.writeUInt16BE(0x88b5, 20);
      s.send(b, 4789, '192.0.2.2', () => { if (--left === 0) s.close(); });
    }`;
  hostC.exec(`${process.execPath} -e "${flood.replace(/\n/g, ' ')}"`);
  t.ok(
    await until(async () => {
      const st = (await request(control, { cmd: 'stats' })) as RunningStats;
      return st.vnis.filter((v) => v.rx.packets + (v.drops.tap_down ?? 0) > 0).length >= VNIS - 10;
    }, 10_000),
    'frames reached (nearly) every VNI',
  );
  const text = hostB.exec(
    `${process.execPath} -e "fetch('http://192.0.2.2:9110/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"`,
  );
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`.trim());
  const series = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const ours = series.filter((l) => l.startsWith('vtep_'));
  t.comment(`${series.length} series, ${ours.length} of them vtep_*, for ${VNIS} VNIs`);
  t.ok(ours.length < 14 * VNIS, `bounded: ${ours.length} vtep_* series`);
  const exited = new Promise((r) => vtep!.once('exit', r));
  const stopAt = Date.now();
  vtep.kill('SIGTERM');
  t.equal(await exited, 0, 'stops cleanly');
  t.comment(`stopped in ${Date.now() - stopAt} ms`);
  // Each TAP's own close would wait for an RCU grace period (1 000 of them took 22 s): the
  // stop deletes them as one batch first.
  const deleted = readFileSync(join(dir, 'vtep.log'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"taps_deleted"'))
    .map((l) => JSON.parse(l) as { count: number });
  t.same(
    deleted.map((e) => e.count),
    [VNIS],
    'every TAP deleted in one batch',
  );
  t.same(
    hostB
      .exec('ip -o link show')
      .split('\n')
      .filter((l) => l.includes(`${p}t`)),
    [],
    'none left',
  );
});
