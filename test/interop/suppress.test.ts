// ARP/ND suppression against a real kernel VXLAN peer: with it on, a request for an address vtep
// has seen is answered on the TAP and never reaches the underlay; with it off, nothing changes.
import t from 'tap';
import { Topology, VM } from '../../src/lab/topology.js';
import { underlayCapture } from '../helpers/capture.js';
import { needs } from '../helpers/prereq.js';
import { tsharkFields } from '../helpers/tshark.js';

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ping', 'bridge', 'ethtool', 'tcpdump', 'tshark'],
});

type Suppress = { answered: number; flooded: number; entries: number } | undefined;

t.test(
  '--suppress-arp: known addresses answered locally, no request on the underlay',
  async (t) => {
    if (!ready) return;
    const topo = await Topology.build({
      prefix: `a${process.pid % 10000}`,
      peers: ['kernel'],
      reap: true,
    });
    t.teardown(() => topo.teardown());
    const vmB = topo.get('vmB');
    const suppress = async () =>
      ((await topo.ask('stats')) as { vnis: { suppress: Suppress }[] }).vnis[0].suppress;
    /** Requests (ARP, or ND solicitations) inside VXLAN on the underlay while `during` runs. */
    const requestsOnTheWire = async (filter: string, during: () => void) => {
      const file = await underlayCapture(topo, 'udp port 4789', during);
      return tsharkFields(file, ['frame.number'], ['-Y', filter]).rows.length;
    };
    const ARP = 'arp.opcode == 1';
    const NS = 'icmpv6.type == 135';

    for (const on of [true, false]) {
      await topo.startVtep(on ? ['--suppress-arp'] : []);
      // Inner IPv6 too, for ND (no DAD: the test does not wait for it).
      vmB.exec(`ip -6 addr replace fd00::2/64 dev ${topo.tap} nodad`);
      const vmC = topo.get('vmC');
      vmC.exec('ip -6 addr replace fd00::3/64 dev eth0 nodad');
      // The kernel VM knows vmB for good, so it never asks for it: its entry would otherwise go
      // from DELAY to PROBE 5 s after first contact and send vmB a unicast request, which teaches
      // vmB the kernel VM's address; when that lands between the flush and the ping below, vmB
      // has nothing to ask and the "off" round sees no request (seen once in CI).
      for (const ip of [VM.vtep.ip, 'fd00::2'])
        vmC.exec(`ip neigh replace ${ip} lladdr ${VM.vtep.mac} nud permanent dev eth0`);
      // First contact: the requests are flooded (nothing known yet), the answers teach vtep.
      t.match(
        vmB.exec(`ping -c 2 -i 0.2 -W 1 ${VM.kernel.ip}`, { allowFail: true }),
        / 0% packet loss/,
      );
      t.match(vmB.exec('ping -6 -c 2 -i 0.2 -W 1 fd00::3', { allowFail: true }), / 0% packet loss/);
      // The VM forgets its neighbours and asks again.
      vmB.exec(`ip neigh flush dev ${topo.tap}`);
      const arps = await requestsOnTheWire(ARP, () => {
        t.match(
          vmB.exec(`ping -c 2 -i 0.2 -W 1 ${VM.kernel.ip}`, { allowFail: true }),
          / 0% packet loss/,
        );
      });
      vmB.exec(`ip -6 neigh flush dev ${topo.tap}`);
      const nss = await requestsOnTheWire(NS, () => {
        t.match(
          vmB.exec('ping -6 -c 2 -i 0.2 -W 1 fd00::3', { allowFail: true }),
          / 0% packet loss/,
        );
      });
      const s = await suppress();
      if (on) {
        t.equal(arps, 0, 'on: no ARP request reached the underlay');
        t.equal(nss, 0, 'on: no neighbour solicitation reached the underlay');
        t.ok(s!.answered >= 2, `answered on the TAP: ${JSON.stringify(s)}`);
        t.ok(s!.flooded >= 1, 'the first requests, for unknown addresses, were flooded');
        t.match(
          vmB.exec(`ip neigh show ${VM.kernel.ip}`),
          VM.kernel.mac,
          "the VM's ARP entry has the kernel VM's MAC, from our answer",
        );
        t.match(vmB.exec('ip -6 neigh show fd00::3'), VM.kernel.mac, 'and its ND entry');
      } else {
        t.ok(arps >= 1, `off: the ARP request crossed the underlay as before (${arps})`);
        t.ok(nss >= 1, `off: so did the solicitation (${nss})`);
        t.equal(s, undefined, 'no suppression counters');
      }
      t.equal(await topo.stopVtep(), 0);
    }
  },
);
