// Differential decapsulation: identical generated VXLAN packets go to Open vSwitch (userspace),
// Linux kernel VXLAN and our vtep; what each delivers behind its endpoint is compared.
// VTEP_DIFF_RUNS sets the number of generated batches (npm run fuzz:diff -- --runs N).
import fc from 'fast-check';
import t from 'tap';
import { inject } from '../helpers/inject.js';
import { needs } from '../helpers/prereq.js';
import { checkDiff, runs } from './check.js';
import { input, innerOf, packet, type Input } from './inputs.js';
import {
  ADDR,
  DiffTopology,
  RECEIVERS,
  REMOTES,
  STRANGER,
  VNIS,
  sleep,
  type Receiver,
} from './topology.js';

/** `Input.from` of the unconfigured sender. */
const STRANGER_INDEX = REMOTES.length;

const ready = needs(t, {
  root: true,
  commands: ['ip', 'ovs-vswitchd', 'ovs-ofctl', 'tcpdump', 'bridge'],
});
const topo = ready
  ? await DiffTopology.build(`d${process.pid % 10000}`)
  : (undefined as unknown as DiffTopology);
if (ready) t.teardown(() => topo.teardown());

let fenceNo = 0;
const fence = (vni: number): Input => ({
  vni,
  from: 0,
  inner:
    'ffffffffffff02fe0000ee0188b5' + (++fenceNo).toString(16).padStart(8, '0') + '00'.repeat(40),
  mutation: { kind: 'none' },
});

/** Send the inputs to all three receivers, then fences; what each delivered, per VNI, as hex. */
async function deliver(inputs: Input[]): Promise<Record<Receiver, string[]>> {
  const fences = VNIS.map(fence);
  const packets = [...inputs, ...fences].flatMap((i) => RECEIVERS.map((r) => packet(i, ADDR[r])));
  const sent = inject(topo.get('inj'), packets);
  if (sent.failed)
    throw new Error(`injector: ${sent.failed} of ${packets.length} packets not sent`);
  const got = await topo.collect(fences.map((f) => Buffer.from(f.inner, 'hex')));
  const out = {} as Record<Receiver, string[]>;
  for (const r of RECEIVERS)
    out[r] = VNIS.flatMap((v) => got.get(`${r}/${v}`)!.map((f) => `${v}:${f.toString('hex')}`));
  return out;
}

const isUdpLength = (i: Input) => i.mutation.kind === 'udpLength';
const invalidSource = (i: Input) => {
  const src = parseInt(i.inner.slice(12, 14), 16);
  return i.inner.slice(12, 24) === '000000000000' || (src & 1) === 1;
};
/** Inputs the kernel's vxlan drops where OVS and vtep deliver: invalid source MAC, short inner IP header. */
function kernelOnlyDrop(i: Input): boolean {
  if (invalidSource(i)) return true;
  const delta = i.mutation.kind === 'udpLength' ? Math.min(0, i.mutation.delta) : 0;
  const len = i.inner.length / 2 + delta;
  const type = i.inner.slice(24, 28);
  return (type === '0800' && len < 14 + 20) || (type === '86dd' && len < 14 + 40);
}

/**
 * A tagged frame too short for Linux's VLAN untagging (tag + 2 bytes after it): dropped by
 * whatever interface receives it, before any capture, behind every endpoint alike (README).
 */
const vlanRunt = (i: Input) =>
  (i.inner.slice(24, 28) === '8100' || i.inner.slice(24, 28) === '88a8') && i.inner.length / 2 < 20;

const counts = {
  compared: 0,
  udpLength: 0,
  kernelOnlyDrops: 0,
  checksums: 0,
  badChecksums: 0,
  batches: 0,
};

/**
 * The policy, as the README's behaviour table states it: with default flags our verdict (the
 * exact inner bytes, or nothing) equals Open vSwitch's for every input, except a wrong outer UDP
 * length, which the kernel's UDP layer under vtep (and under kernel VXLAN) drops and OVS's
 * userspace parser ignores: there vtep equals the kernel. The kernel's column is asserted too:
 * it delivers what OVS delivers except the inputs its vxlan drops on its own (an invalid inner
 * source MAC, an inner IP header cut short).
 */
async function agrees(inputs: Input[]): Promise<void> {
  counts.batches++;
  const main = inputs.filter((i) => !isUdpLength(i));
  // Where vtep is compared with the kernel (both behind the kernel's UDP layer), leave out what
  // the kernel's vxlan itself drops and OVS delivers (the README's other rows).
  const udp = inputs.filter((i) => isUdpLength(i) && !kernelOnlyDrop(i));
  const a = await deliver(main);
  const b = await deliver(udp);
  counts.compared += inputs.length;
  counts.udpLength += udp.length;
  const kernelOnly = new Set(
    main.filter(kernelOnlyDrop).map((i) => `${i.vni}:${innerOf(i) ?? ''}`),
  );
  const kernelWants = a.ovs.filter((f) => !kernelOnly.has(f));
  counts.kernelOnlyDrops += a.ovs.length - kernelWants.length;
  for (const i of main)
    if (i.mutation.kind === 'checksum') {
      counts.checksums++;
      if (!i.mutation.valid) counts.badChecksums++;
    }
  const differ = [
    difference('ovs', a.vtep, a.ovs),
    difference('kernel (wrong UDP lengths)', b.vtep, b.kernel),
    difference('kernel (expected: OVS less its own drops)', kernelWants, a.kernel),
  ].filter((d) => d !== undefined);
  if (differ.length) throw new Error(JSON.stringify(differ));
}

/** What `vtep` delivered and `other` did not, and the reverse ("vni:" + first bytes of each). */
function difference(other: string, vtep: string[], theirs: string[]) {
  if (JSON.stringify(vtep) === JSON.stringify(theirs)) return undefined;
  const brief = (f: string) => `${f.slice(0, 40)}… (${(f.length - f.indexOf(':') - 1) / 2} B)`;
  return {
    other,
    onlyVtep: vtep.filter((f) => !theirs.includes(f)).map(brief),
    onlyOther: theirs.filter((f) => !vtep.includes(f)).map(brief),
    sameFramesOtherOrder: vtep.length === theirs.length && vtep.every((f) => theirs.includes(f)),
  };
}

if (ready) {
  t.test(
    'decap: vtep delivers exactly what Open vSwitch delivers; the kernel less its own drops',
    async (t) => {
      const ok = await checkDiff(
        t,
        'decap',
        fc.array(input, { minLength: 1, maxLength: 16 }),
        agrees,
        runs(6),
      );
      if (ok)
        t.pass(
          `${counts.compared} inputs in ${counts.batches} batches agree with OVS (${counts.udpLength} with a wrong UDP length agree with the kernel; ${counts.checksums} with an outer UDP checksum, ${counts.badChecksums} of them wrong); the kernel dropped ${counts.kernelOnlyDrops} on its own, as documented`,
        );
    },
  );

  t.test(
    "the README's rows case by case: where the kernel differs, checksums, an unconfigured sender",
    async (t) => {
      const frame = (dst: string, src: string, type: string, payloadBytes: number) =>
        dst + src + type + '5a'.repeat(payloadBytes);
      const cases: [string, Input, Record<Receiver, number>][] = [
        [
          'multicast source MAC',
          {
            vni: 5000,
            from: 0,
            inner: frame('ffffffffffff', '01005e000001', '88b5', 46),
            mutation: { kind: 'none' },
          },
          { ovs: 1, vtep: 1, kernel: 0 },
        ],
        [
          'zero source MAC',
          {
            vni: 5000,
            from: 0,
            inner: frame('ffffffffffff', '000000000000', '88b5', 46),
            mutation: { kind: 'none' },
          },
          { ovs: 1, vtep: 1, kernel: 0 },
        ],
        [
          'IPv6 EtherType, 5 bytes of IP header',
          {
            vni: 5000,
            from: 0,
            inner: frame('ffffffffffff', '020000000abc', '86dd', 5),
            mutation: { kind: 'none' },
          },
          { ovs: 1, vtep: 1, kernel: 0 },
        ],
        [
          'IPv4 EtherType, 10 bytes of IP header',
          {
            vni: 5000,
            from: 0,
            inner: frame('ffffffffffff', '020000000abd', '0800', 10),
            mutation: { kind: 'none' },
          },
          { ovs: 1, vtep: 1, kernel: 0 },
        ],
        [
          'UDP length 4 too long',
          {
            vni: 5000,
            from: 1,
            inner: frame('ffffffffffff', '020000000abe', '88b5', 46),
            mutation: { kind: 'udpLength', delta: 4 },
          },
          { ovs: 1, vtep: 0, kernel: 0 },
        ],
        [
          'outer UDP checksum present and right',
          {
            vni: 5000,
            from: 2,
            inner: frame('ffffffffffff', '020000000ac1', '88b5', 46),
            mutation: { kind: 'checksum', valid: true },
          },
          { ovs: 1, vtep: 1, kernel: 1 },
        ],
        [
          'outer UDP checksum present and wrong',
          {
            vni: 5000,
            from: 2,
            inner: frame('ffffffffffff', '020000000ac2', '88b5', 46),
            mutation: { kind: 'checksum', valid: false },
          },
          { ovs: 0, vtep: 0, kernel: 0 },
        ],
        [
          'a sender that is not a configured remote',
          {
            vni: 5001,
            from: STRANGER_INDEX,
            inner: frame('ffffffffffff', '020000000ac3', '88b5', 46),
            mutation: { kind: 'none' },
          },
          { ovs: 0, vtep: 0, kernel: 1 },
        ],
        [
          'valid frame (control)',
          {
            vni: 5001,
            from: 1,
            inner: frame('ffffffffffff', '020000000abf', '88b5', 46),
            mutation: { kind: 'none' },
          },
          { ovs: 1, vtep: 1, kernel: 1 },
        ],
      ];
      for (const [name, i, want] of cases) {
        const got = await deliver([i]);
        const n = Object.fromEntries(RECEIVERS.map((r) => [r, got[r].length]));
        t.same(n, want, name);
        if (want.vtep)
          t.equal(
            got.vtep[0],
            `${i.vni}:${innerOf(i)}`,
            `${name}: vtep delivers the exact inner bytes`,
          );
      }
    },
  );

  t.test(
    'learnRemotes accepts and learns an unconfigured sender, as the kernel does',
    async (t) => {
      const strangers = fc.sample(
        input
          .filter(
            (i) =>
              i.mutation.kind === 'none' &&
              VNIS.includes(i.vni) &&
              !kernelOnlyDrop(i) &&
              !vlanRunt(i),
          )
          .map((i): Input => ({ ...i, from: STRANGER_INDEX })),
        { numRuns: 10, seed: 44 },
      );
      const before = (await topo.stats()).drops.sender_not_remote;
      const a = await deliver(strangers);
      t.same([a.vtep.length, a.ovs.length], [0, 0], 'by default: vtep and OVS drop them');
      t.equal(
        (await topo.stats()).drops.sender_not_remote - before,
        strangers.length,
        'vtep counts each as sender_not_remote',
      );
      t.same(
        a.kernel,
        VNIS.flatMap((v) => strangers.filter((i) => i.vni === v).map((i) => `${v}:${innerOf(i)}`)),
        'the kernel delivers them',
      );
      await topo.startVtep({}, { learnRemotes: 'true' });
      const b = await deliver(strangers);
      t.same(b.vtep, b.kernel, 'with learnRemotes: vtep delivers exactly what the kernel delivers');
      const learned = (await topo.vtepFdb()).filter((r) => r.remote.startsWith(`${STRANGER}:`));
      t.ok(learned.length > 0, `and learns MACs behind the stranger (${learned.length})`);
      await topo.startVtep();
    },
  );

  t.test(
    'a broadcast from one remote: OVS NORMAL floods it to the other tunnels, vtep and the kernel do not',
    async (t) => {
      topo.ovsNormal(true);
      await topo.captureUnderlay();
      const i: Input = {
        vni: 5000,
        from: 0,
        inner: 'ffffffffffff' + '020000000ad1' + '88b5' + '5a'.repeat(46),
        mutation: { kind: 'none' },
      };
      const got = await deliver([i]);
      t.same(
        RECEIVERS.map((r) => got[r].length),
        [1, 1, 1],
        'each delivers it behind itself',
      );
      await sleep(500);
      const back = topo.underlayPackets().filter((p) => p.inner.toString('hex') === i.inner);
      const from = (r: Receiver) =>
        back
          .filter((p) => p.from === ADDR[r])
          .map((p) => p.to)
          .sort();
      t.same(
        from('ovs'),
        [REMOTES[1], REMOTES[2]],
        'OVS: to the two other remotes (no split horizon)',
      );
      t.same(from('vtep'), [], 'vtep: never back onto the underlay');
      t.same(from('kernel'), [], 'kernel: never back onto the underlay');
      topo.ovsNormal(false);
    },
  );

  t.test(
    'flags switch our policy: --invalid-source-mac drop agrees with the kernel, --reserved-bits ignore delivers',
    async (t) => {
      await topo.startVtep({ invalidSourceMac: 'drop', reservedBits: 'ignore' });
      const invalid = fc.sample(
        input.filter((i) => i.mutation.kind === 'none' && invalidSource(i)),
        { numRuns: 12, seed: 42 },
      );
      const a = await deliver(invalid);
      t.same(
        a.vtep,
        a.kernel,
        `${invalid.length} frames with invalid source MACs: vtep drops them as the kernel does`,
      );
      t.equal(a.vtep.length, 0);
      // Well-formed frames (at least 60 bytes: a runt 802.1Q frame is dropped by Linux's VLAN
      // untagging on whatever interface receives it, behind every endpoint alike) with one
      // reserved flag bit or reserved field bit set.
      const reservedMutation = fc.oneof(
        fc.constantFrom(0, 1, 2, 4, 5, 6, 7).map((bit) => ({ kind: 'flag' as const, bit })),
        fc
          .record({
            byte: fc.constantFrom(1 as const, 2 as const, 3 as const, 7 as const),
            bit: fc.integer({ min: 0, max: 7 }),
          })
          .map((r) => ({ kind: 'reserved' as const, ...r })),
      );
      const reserved = fc.sample(
        fc
          .record({
            vni: fc.constantFrom(...VNIS),
            from: fc.constantFrom(0, 1),
            payload: fc.uint8Array({ minLength: 46, maxLength: 400 }),
            mutation: reservedMutation,
          })
          .map(({ vni, from, payload, mutation }): Input => ({
            vni,
            from,
            inner:
              'ffffffffffff' +
              '02c0ffee00' +
              (from + 1).toString(16).padStart(2, '0') +
              '88b5' +
              Buffer.from(payload).toString('hex'),
            mutation,
          })),
        { numRuns: 12, seed: 43 },
      );
      const b = await deliver(reserved);
      t.equal(
        b.vtep.length,
        reserved.length,
        `${reserved.length} frames with reserved bits set: vtep delivers them (RFC 7348 "ignored")`,
      );
      t.equal(b.ovs.length + b.kernel.length, 0, 'OVS and the kernel drop them');
      await topo.startVtep();
    },
  );
}
