// BFD on the tunnels against Open vSwitch (RFC 5880 over VXLAN as RFC 8971 frames it, as OVS
// does on a VXLAN port): sessions come up, cutting the underlay to OVS brings both sides down
// within the detection time, vtep flushes what it learned behind OVS while a ping to the kernel
// peer goes on, and restoring the link brings them up again. Three hosts.
import { spawn } from 'node:child_process';
import t from 'tap';
import type { RemoteSummary, Status } from '../../src/control/api.js';
import { until } from '../../src/lab/sh.js';
import { Topology, UNDERLAY, VM } from '../../src/lab/topology.js';
import { needs } from '../helpers/prereq.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ovs-vsctl', 'ovs-vswitchd', 'ovs-appctl', 'ping', 'ethtool'],
});

const INTERVAL = 100;
const MULT = 3;
const OVS = `${UNDERLAY.ovs}:4789`;

t.test(
  'vtep ↔ Open vSwitch: BFD up, both detect a cut, MACs flushed, the other path untouched',
  async (t) => {
    if (!ready) return;
    const topo = await Topology.build({ prefix: `f${process.pid % 10000}`, reap: true });
    t.teardown(() => topo.teardown());
    await topo.startVtep(['--bfd-interval', String(INTERVAL), '--bfd-multiplier', String(MULT)]);
    const ovs = topo.ovs!;
    ovs.vsctl(
      `set interface vx_node1 bfd:enable=true bfd:min_tx=${INTERVAL} bfd:min_rx=${INTERVAL} bfd:bfd_local_dst_mac=00:52:02:00:00:00 bfd:bfd_remote_dst_mac=00:52:02:00:00:00 bfd:bfd_src_ip=127.0.0.1 bfd:bfd_dst_ip=127.0.0.1`,
    );
    const ours = async () =>
      ((await topo.ask('remote.show', {})) as RemoteSummary[]).find((r) => r.remote === OVS)?.bfd;
    const theirs = () => /Local Session State: (\w+)/.exec(ovs.appctl('bfd/show vx_node1'))?.[1];
    const t0 = Date.now();
    const up = await until(
      async () => (await ours())?.state === 'up' && theirs() === 'up',
      10_000,
      20,
    );
    t.ok(
      up,
      `both sessions up after ${Date.now() - t0} ms (ours ${JSON.stringify(await ours())}, OVS ${theirs()})`,
    );
    t.match(await ours(), {
      state: 'up',
      remoteState: 'up',
      detectMs: INTERVAL * MULT,
      vni: topo.vni,
    });
    const status = (await topo.ask('status', {})) as Status;
    t.ok(
      status.problems.some((p) => p === `remote ${UNDERLAY.kernel}:4789: BFD session down`),
      'the kernel peer runs no BFD: its session is down, and status says so',
    );
    t.notOk(
      status.problems.some((p) => p.includes(OVS)),
      'the OVS one is not a problem',
    );

    // MACs behind OVS, and a ping towards the kernel peer that must not stop
    const ping = (from: string, to: string, extra = '') =>
      topo.get(from).exec(`ping -c 3 -i 0.2 -W 1 ${extra} ${to}`, { allowFail: true });
    t.match(ping('vmB', VM.ovs.ip), / 0% packet loss/);
    t.match(ping('vmB', VM.kernel.ip), / 0% packet loss/);
    const behindOvs = async () =>
      ((await topo.ask('fdb.show', {})) as { remote: string; static: boolean }[]).filter(
        (r) => r.remote === OVS && !r.static,
      ).length;
    t.ok((await behindOvs()) >= 1, 'learned behind OVS');
    let pingOut = '';
    const steady = spawn('ip', [
      'netns',
      'exec',
      topo.get('vmB').name,
      'ping',
      '-i',
      '0.05',
      '-c',
      '60',
      '-W',
      '1',
      VM.kernel.ip,
    ]);
    steady.stdout.on('data', (d) => (pingOut += d));
    const steadyDone = new Promise((r) => steady.on('exit', r));
    t.teardown(() => steady.kill());
    await new Promise((r) => setTimeout(r, 500));

    // cut the underlay to OVS, both ways
    const cutAt = Date.now();
    topo.get('hostA').exec('ip link set eth0 down');
    const oursDown = await until(async () => (await ours())?.state === 'down', 5000, 10);
    const oursMs = Date.now() - cutAt;
    const theirsDown = await until(() => theirs() === 'down', 5000, 10);
    const theirsMs = Date.now() - cutAt;
    t.ok(oursDown, `vtep saw OVS down after ${oursMs} ms`);
    t.ok(
      oursMs <= INTERVAL * MULT + 400,
      `within the detection time (${INTERVAL * MULT} ms) and a margin`,
    );
    t.ok(theirsDown, `OVS saw vtep down after ${theirsMs} ms`);
    t.ok(theirsMs <= INTERVAL * MULT + 600, 'OVS within its detection time and a margin');
    t.match(await ours(), { diag: 1 }, 'diagnostic: control detection time expired');
    t.equal(
      await behindOvs(),
      0,
      'what was learned behind OVS is flushed: it floods to the live remotes',
    );
    t.ok(
      ((await topo.ask('status', {})) as Status).problems.includes(
        `remote ${OVS}: BFD session down`,
      ),
      'status: degraded, naming the remote',
    );
    await steadyDone;
    t.match(pingOut, / 0% packet loss/, 'the ping through the surviving remote never stopped');

    // restore: both up again
    topo.get('hostA').exec('ip link set eth0 up');
    const back = await until(
      async () => (await ours())?.state === 'up' && theirs() === 'up',
      10_000,
      20,
    );
    t.ok(back, 'up again once the link is back');
    // Both BFD sessions up says control packets pass; the first data packet can still meet a
    // peer that is re-resolving its underlay neighbour after the link flap (OVS userspace drops
    // a tunnel packet while it does; one CI run lost the first of three pings here). Forwarding
    // must resume within a second or two, and then lose nothing.
    const t1 = Date.now();
    t.ok(
      await until(
        () =>
          topo
            .get('vmB')
            .exec(`ping -c 1 -W 1 ${VM.ovs.ip}`, { allowFail: true })
            .includes(' 0% packet loss'),
        3000,
        100,
      ),
      `forwarding to OVS resumes (${Date.now() - t1} ms after both sessions were up)`,
    );
    t.match(ping('vmB', VM.ovs.ip), / 0% packet loss/, 'and loses nothing then');
  },
);
