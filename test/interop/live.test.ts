// Changing a running vtep without restarting it, as `bridge fdb append` or `ovs-vsctl set
// interface … remote_ip` change a kernel or OVS endpoint: remotes and VNIs added and removed
// over the control socket, and the running configuration printed back as a file.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { bg, sleep, until } from '../../src/lab/sh.js';
import { Topology, UNDERLAY, VM, vtepBin } from '../../src/lab/topology.js';
import { needs } from '../helpers/prereq.js';
import { CAPTURE_BUFFER_KIB } from '../helpers/capture.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ovs-vsctl', 'ovs-vswitchd', 'ping', 'bridge', 'ethtool', 'tcpdump'],
});

t.test('remote add/del and vni add/del on a running vtep; showconf round-trips', async (t) => {
  if (!ready) return;
  const topo = await Topology.build({ prefix: `v${process.pid % 10000}`, reap: true });
  t.teardown(() => topo.teardown());
  // Started knowing only the OVS peer: the kernel peer is not a remote yet.
  const config = join(topo.dir, 'vtep.yaml');
  writeFileSync(
    config,
    `local: ${UNDERLAY.vtep}\nvnis:\n  - vni: ${topo.vni}\n    tap: ${topo.tap}\n    mtu: 1450\n    remotes: [${UNDERLAY.ovs}]\n`,
  );
  await topo.startVtep([], { config });
  const vtep = (...args: string[]) =>
    spawnSync(process.execPath, [vtepBin(), ...args, '--control', topo.control], {
      encoding: 'utf8',
      timeout: 30_000,
    });
  const ping = (from: string, to: string, n = 3) =>
    topo.get(from).exec(`ping -c ${n} -i 0.2 -W 1 ${to}`, { allowFail: true });
  t.match(ping('vmB', VM.ovs.ip), / 0% packet loss/, 'the OVS peer is reachable');
  t.match(ping('vmB', VM.kernel.ip, 2), / 100% packet loss/, 'the kernel peer is not, yet');

  // Add the kernel peer while a ping to the OVS peer runs every 50 ms.
  const flow = bg(`${topo.get('vmB').prefix} ping -i 0.05 -c 60 -W 1 ${VM.ovs.ip}`);
  let flowOut = '';
  flow.stdout!.on('data', (d) => (flowOut += d));
  const flowDone = new Promise((r) => flow.once('exit', r));
  await sleep(1000);
  const add = vtep('remote', 'add', UNDERLAY.kernel, '--vni', String(topo.vni));
  t.equal(add.status, 0, add.stderr);
  t.equal(add.stdout, `vni ${topo.vni} remotes 192.0.2.1:4789 -> 192.0.2.1:4789,192.0.2.3:4789\n`);
  // (vmB's ARP entry for it failed a moment ago: it resolves again within a few seconds)
  t.ok(
    await until(() => ping('vmB', VM.kernel.ip, 1).includes(' 0% packet loss'), 8000, 200),
    'the kernel peer is reachable now, without a restart',
  );
  t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/, 'and stays so');
  await flowDone;
  t.match(flowOut, / 0% packet loss/, 'the flow to the OVS peer lost nothing meanwhile');
  t.match(
    vtep('fdb', 'show').stdout,
    new RegExp(
      `^00:00:00:00:00:00 dev ${topo.tap} dst 192\\.0\\.2\\.3 port 4789 vni ${topo.vni} self permanent$`,
      'm',
    ),
    'the new remote is in the flood list',
  );

  // showconf is the file: written back and reloaded, nothing changes.
  const shown = vtep('showconf');
  t.equal(shown.status, 0, shown.stderr);
  writeFileSync(config, shown.stdout);
  const again = vtep('reload');
  t.equal(again.status, 0, again.stderr);
  t.equal(again.stdout, 'no changes\n', 'showconf round-trips through the file');

  // Remove it: no more flooding to it (watched on the kernel host's wire).
  const del = vtep('remote', 'del', UNDERLAY.kernel, '--vni', String(topo.vni));
  t.equal(del.status, 0, del.stderr);
  const file = join(topo.dir, 'hostC.pcap');
  const dump = bg(
    `${topo.get('hostC').prefix} tcpdump -i eth0 --immediate-mode -B ${CAPTURE_BUFFER_KIB} -U -n -w ${file} src ${UNDERLAY.vtep} and udp port 4789`,
  );
  let err = '';
  dump.stderr!.on('data', (d) => (err += d));
  await until(() => err.includes('listening'), 5000);
  ping('vmB', '10.0.0.77', 2); // ARP broadcasts for an unused address: flooded
  await sleep(300);
  dump.kill('SIGINT');
  await until(() => dump.exitCode !== null, 5000);
  t.equal(readFileSync(file).length, 24, 'not one VXLAN packet to the removed remote');
  t.match(ping('vmB', VM.ovs.ip), / 0% packet loss/, 'the OVS peer still is');

  // A VNI added and removed live: its TAP comes and goes.
  const tap6 = `${topo.prefix}t6`;
  const vadd = vtep('vni', 'add', '--vni', '6000', '--tap', tap6, '--remote', UNDERLAY.ovs);
  t.equal(vadd.status, 0, vadd.stderr);
  t.match(topo.get('hostB').exec(`ip -o link show ${tap6}`), tap6, 'its TAP exists');
  t.match(vtep('showconf').stdout, /- vni: 6000\n\s+tap: \S+t6\n/);
  const vdel = vtep('vni', 'del', '--vni', '6000');
  t.equal(vdel.status, 0, vdel.stderr);
  t.notMatch(topo.get('hostB').exec(`ip -o link show ${tap6}`, { allowFail: true }), tap6, 'gone');
});

t.test('old control clients: the request lines they send are answered as before', async (t) => {
  if (!ready) return;
  const topo = await Topology.build({
    prefix: `w${process.pid % 10000}`,
    peers: ['kernel'],
    reap: true,
  });
  t.teardown(() => topo.teardown());
  await topo.startVtep();
  // Literal lines as the client before src/daemon wrote them: one JSON object and a newline.
  const exchange = (line: string) =>
    new Promise<string>((resolve) => {
      const c = createConnection(topo.control);
      let out = '';
      c.on('data', (d) => {
        out += d;
        if (out.includes('\n')) (c.end(), resolve(out));
      });
      c.on('close', () => resolve(out));
      c.write(line);
    });
  const answer = async (line: string) => JSON.parse((await exchange(line)).split('\n')[0]);
  t.match(await answer('{"cmd":"status"}\n'), {
    ok: true,
    data: { healthy: true, taps: [{ state: 'up' }] },
  });
  t.match(await answer('{"cmd":"stats"}\n'), {
    ok: true,
    data: { underlay: `${UNDERLAY.vtep}:4789`, vnis: [{ vni: topo.vni }], fdb: {}, kernel: {} },
  });
  t.match(
    await answer(
      `{"cmd":"fdb.add","vni":${topo.vni},"mac":"02:00:00:00:99:02","remote":"${UNDERLAY.kernel}"}\n`,
    ),
    { ok: true },
  );
  const shown = JSON.parse(
    (await exchange(`{"cmd":"fdb.show","vni":${topo.vni}}\n`)).split('\n')[0],
  ) as { ok: boolean; data: { mac: string; static: boolean; dev: string }[] };
  t.equal(shown.ok, true);
  t.match(
    shown.data.find((r) => r.mac === '02:00:00:00:99:02'),
    { static: true, dev: topo.tap },
    'the entry, with its device',
  );
  t.match(await answer(`{"cmd":"fdb.del","vni":${topo.vni},"mac":"02:00:00:00:99:02"}\n`), {
    ok: true,
  });
  t.match(await answer(`{"cmd":"fdb.del","vni":${topo.vni},"mac":"02:00:00:00:99:02"}\n`), {
    ok: false,
    code: 'ERR_ARG',
    field: 'mac',
  });
  t.match(await answer('{"cmd":"showconf"}\n'), { ok: true, data: new RegExp(`vni: ${topo.vni}`) });
  t.match(await answer('{"cmd":"reload"}\n'), { ok: true, data: { changes: ['no changes'] } });
  t.match(await answer('{"cmd":"nope"}\n'), { ok: false });
  t.equal(await topo.stopVtep(), 0);
});
