// Differential encapsulation: generated Ethernet frames written into our TAP arrive at the Open
// vSwitch VM and the kernel VXLAN VM byte for byte, and frames from their VMs arrive at our TAP
// byte for byte (the interop topology: vtep in the middle, OVS and kernel VXLAN as peers).
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { bg, sleep, until } from '../../src/lab/sh.js';
import { Topology } from '../../src/lab/topology.js';
import { sendFrames } from '../helpers/afpacket.js';
import { readPcap } from '../helpers/pcapread.js';
import { tsharkFields } from '../helpers/tshark.js';
import { needs } from '../helpers/prereq.js';
import { checkDiff, runs } from './check.js';
import { CAPTURE_BUFFER_KIB } from '../helpers/capture.js';

const RUNS = runs(4);

/**
 * Broadcast frames (so every bridge on the way floods them to its VM), random everything else,
 * a third of them 802.1Q-tagged, up to the VMs' MTU (1450, the topology's default) and a fifth
 * at the edge: 1464 bytes untagged, 1468 tagged. The underlay (1500) carries inner frames of up
 * to 1464 bytes, so a tagged frame of 1465..1468 bytes is exactly the fragmentation edge.
 */
const frame = fc
  .record({
    src: fc.integer({ min: 0, max: 0xffffffff }),
    tag: fc.option(fc.integer({ min: 1, max: 4094 }), { nil: undefined, freq: 3 }),
    type: fc
      .integer({ min: 0x0600, max: 0xffff })
      .filter((x) => x !== 0x8100 && x !== 0x88a8 && x !== 0x9100),
    payload: fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ minLength: 46, maxLength: 1450 }) },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 1442, maxLength: 1450 }) },
    ),
  })
  .map(
    ({ src, tag, type, payload }) =>
      'ffffffffffff' +
      '06' +
      src.toString(16).padStart(8, '0') +
      'aa' +
      (tag === undefined ? '' : `8100${tag.toString(16).padStart(4, '0')}`) +
      type.toString(16).padStart(4, '0') +
      Buffer.from(payload).toString('hex'),
  );

/** The largest inner frame a 1500-byte IPv4 underlay carries whole. */
const PATH_MAX = 1500 - 20 - 8 - 8;
const fits = (hex: string) => hex.length / 2 <= PATH_MAX;

const ready = needs(t, { root: true, commands: ['ip', 'ovs-vswitchd', 'tcpdump', 'python3'] });
if (ready) {
  const topo = await Topology.build({ prefix: `n${process.pid % 10000}`, reap: true });
  t.teardown(() => topo.teardown());
  // One worker: the batches are ordered against a fence frame, and queues keep order only within
  // a flow (the bytes each worker's engine writes are the same; test/interop/workers.test.ts
  // covers the spreading).
  await topo.startVtep(['--workers', '1']);
  for (const vm of ['vmA', 'vmB', 'vmC'])
    topo.get(vm).exec('sysctl -qw net.ipv6.conf.all.disable_ipv6=1');

  const captures = new Map<string, { file: string; seen: number }>();
  for (const [vm, dev] of [
    ['vmA', 'eth0'],
    ['vmB', topo.tap],
    ['vmC', 'eth0'],
  ] as const) {
    const file = join(topo.dir, `${vm}.pcap`);
    const p = bg(
      `${topo.get(vm).prefix} tcpdump -i ${dev} -B ${CAPTURE_BUFFER_KIB} -Q in -U -n -s 0 -w ${file}`,
    );
    t.teardown(() => p.kill('SIGKILL'));
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    await until(() => err.includes('listening'), 5000);
    captures.set(vm, { file, seen: 0 });
  }
  let fenceNo = 0;
  /** Frames captured at `vm` since last time, up to a fence frame sent after the batch. */
  async function received(vm: string, fence: string): Promise<string[]> {
    const c = captures.get(vm)!;
    let out: string[] | undefined;
    await until(() => {
      const all = readPcap(c.file).map((f) => f.toString('hex'));
      const at = all.indexOf(fence, c.seen);
      if (at < 0) return false;
      // only the test's own frames (source 06:…): bridges and switch ports have chatter of their own
      out = all.slice(c.seen, at).filter((h) => h.startsWith('ffffffffffff06'));
      c.seen = at + 1;
      return true;
    }, 5000);
    if (!out) throw new Error(`fence not seen at ${vm}`);
    return out;
  }
  const fence = () =>
    'ffffffffffff' +
    '06fe0000ee02' +
    '88b5' +
    (++fenceNo).toString(16).padStart(8, '0') +
    '00'.repeat(42);
  let frames = 0;
  let edge = 0;
  const pathDrops = async () =>
    ((await topo.ask('stats')) as { drops: Record<string, number> }).drops.path_mtu_exceeded;

  t.test(
    'frames written into our TAP reach the OVS VM and the kernel VM byte for byte',
    async (t) => {
      const ok = await checkDiff(
        t,
        'encap-from-tap',
        fc.array(frame, { minLength: 1, maxLength: 12 }),
        async (batch) => {
          const f = fence();
          const before = await pathDrops();
          sendFrames(topo.get('vmB'), topo.tap, [...batch, f]);
          frames += batch.length;
          const [a, c] = [await received('vmA', f), await received('vmC', f)];
          // Frames that fit arrive unchanged; the others arrive nowhere, counted, never fragmented.
          const want = JSON.stringify(batch.filter(fits));
          const tooBig = batch.filter((x) => !fits(x)).length;
          edge += tooBig;
          const dropped = (await pathDrops()) - before;
          if (JSON.stringify(a) !== want || JSON.stringify(c) !== want || dropped !== tooBig)
            throw new Error(
              `OVS VM got ${a.length}, kernel VM ${c.length} of ${batch.length - tooBig} that fit; ${dropped} of ${tooBig} counted as path_mtu_exceeded`,
            );
        },
        RUNS,
      );
      if (ok)
        t.pass(
          `${frames} frames: each that fits the underlay seen unchanged at both peers' VMs, the ${edge} that do not counted and sent nowhere`,
        );
    },
  );

  t.test('frames from the OVS VM and the kernel VM reach our TAP byte for byte', async (t) => {
    let n = 0;
    const ok = await checkDiff(
      t,
      'encap-to-tap',
      fc.tuple(fc.array(frame, { minLength: 1, maxLength: 12 }), fc.constantFrom('vmA', 'vmC')),
      async ([all, from]) => {
        // Frames the peers can send whole (their edge is the next test's case).
        const batch = all.filter(fits);
        const f = fence();
        sendFrames(topo.get(from), 'eth0', [...batch, f]);
        n += batch.length;
        const b = await received('vmB', f);
        return JSON.stringify(b) === JSON.stringify(batch);
      },
      RUNS,
    );
    if (ok) t.pass(`${n} frames, each seen unchanged at our TAP`);
  });

  t.test(
    'a tagged 1468-byte frame from the peers: OVS drops it, the kernel fragments the outer packet',
    async (t) => {
      const big = 'ffffffffffff' + '06beef0000aa' + '81000064' + '88b5' + '5a'.repeat(1468 - 18);
      const file = join(topo.dir, 'edge.pcap');
      // --immediate-mode: packets reach tcpdump at once, not when a ring block retires (which
      // a stop can come before).
      const dump = bg(
        `${topo.get('hostB').prefix} tcpdump -i eth0 --immediate-mode -B ${CAPTURE_BUFFER_KIB} -U -n -w ${file} ip`,
      );
      let err = '';
      dump.stderr!.on('data', (d) => (err += d));
      await until(() => err.includes('listening'), 5000);
      /**
       * Send `big` then a fence from `vm`; what reached our TAP before the fence. On a loaded
       * 2-core machine the userspace switch can lose the fence of a burst: then a second fence
       * follows, and what arrived in both windows counts.
       */
      const through = async (vm: string): Promise<string[]> => {
        let f = fence();
        sendFrames(topo.get(vm), 'eth0', [big, f]);
        try {
          return await received('vmB', f);
        } catch {
          t.comment(`${vm}: fence lost, sending another`);
          f = fence();
          sendFrames(topo.get(vm), 'eth0', [f]);
          return received('vmB', f);
        }
      };
      t.same(await through('vmA'), [], 'OVS (userspace) sends nothing: it does not fragment');
      t.same(
        await through('vmC'),
        [big],
        'kernel VXLAN (df unset, its default) fragments the outer packet; our socket gets it reassembled',
      );
      await sleep(300);
      dump.kill('SIGINT');
      await until(() => dump.exitCode !== null, 5000);
      const frags = tsharkFields(
        file,
        ['ip.src'],
        ['-Y', 'ip.flags.mf == 1 || ip.frag_offset > 0'],
      );
      t.ok(
        frags.rows.length >= 2 && frags.rows.every(([src]) => src === '192.0.2.3'),
        `outer fragments on the underlay, all from the kernel peer (${frags.rows.length})`,
      );
    },
  );
}
