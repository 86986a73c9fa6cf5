// TAP I/O through io_uring and through readv/writev (`ioUring: false`, or a kernel without it):
// the same frames arrive, in the order they were queued, either way. Reads go through the ring
// only after a drain that found a deep queue (half that depth at once); writes when a batch has
// 8 frames or more. tapIoStats counts what the ring did, so each case checks that the path it
// means to test is the one taken.
import { spawn } from 'node:child_process';
import t from 'tap';
import { native } from '../../src/io/native.js';
import { TapDevice } from '../../src/io/tap.js';
import { TxBatch } from '../../src/io/types.js';
import { emitEthernet, EtherType } from '../../src/wire/ethernet.js';
import { emitIpv4, parseIpv4Address } from '../../src/wire/ipv4.js';
import { emitUdp } from '../../src/wire/udp.js';
import { parseMac } from '../../src/wire/mac.js';
import { namespaces, uniqueName, type Netns } from '../../src/lab/netns.js';
import { inCI, needs } from '../helpers/prereq.js';
import { sh, until } from '../../src/lab/sh.js';

const OUR_MAC = parseMac('02:78:00:00:00:02')!;
const NS_IP = '10.78.0.1';
const OUR_IP = '10.78.0.2';
const PORT = 5078;
const FRAMES = 200;

/** [frames read, frames written] through the ring on this thread so far. */
function ring(): [number, number] {
  const s = native().tapIoStats();
  return [s[2], s[3]];
}

/** Runs `script` with node inside `ns`: its output so far, and the whole once it exits. */
function nodeIn(ns: Netns, script: string): { out: () => string; exited: Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], {
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return { out: () => out, exited: new Promise((resolve) => child.on('exit', () => resolve(out))) };
}

/** Sequence numbers of the UDP datagrams to PORT among `n` frames read into the TAP's ring. */
function sequences(tap: TapDevice, n: number, into: number[]): void {
  for (let i = 0; i < n; i++) {
    const f = tap.rx.frame(i);
    // Ethernet IPv4, UDP to PORT: the payload's first 4 bytes are the sequence number
    if (f.length < 46 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 17) continue;
    if (f.readUInt16BE(36) !== PORT) continue;
    into.push(f.readUInt32BE(42));
  }
}

/** A UDP datagram to NS_IP:PORT carrying `seq`, built at `offset`; returns its length. */
function datagram(slab: Buffer, offset: number, dstMac: number, seq: number): number {
  let o =
    offset + emitEthernet({ dst: dstMac, src: OUR_MAC, ethertype: EtherType.IPV4 }, slab, offset);
  const src = parseIpv4Address(OUR_IP)!;
  const dst = parseIpv4Address(NS_IP)!;
  o += emitIpv4({ src, dst, protocol: 17, payloadLen: 8 + 4 }, slab, o);
  slab.writeUInt32BE(seq, o + 8);
  emitUdp({ srcPort: PORT, dstPort: PORT, payloadLen: 4 }, slab, o); // checksum 0: allowed
  return o + 12 - offset;
}

t.test('TAP reads and writes: io_uring and readv/writev', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const io = native();
  const [mode, err] = io.tapIoStats();
  // VTEP_IO_URING=0 (the suite run with the fallback forced): the readv/writev half only.
  const forcedOff = process.env.VTEP_IO_URING === '0';
  if (!mode && !forcedOff) {
    const why = `io_uring unavailable here (${io.errnoName(err)}): liburing-dev at build time, a 5.19+ kernel`;
    if (inCI) t.fail(why);
    else t.plan(0, why);
    return;
  }
  t.teardown(() => io.setTapIo(true));
  const [ns] = namespaces(t, 'tio');
  const name = uniqueName('ti');
  // With the vnet header, as the daemon opens its TAPs: every read and write carries 12 bytes more.
  const tap = TapDevice.open({ name, batchSize: 64, vnetHdr: true });
  t.teardown(() => tap.close());
  sh(`ip link set ${name} netns ${ns.name}`);
  ns.exec(
    `ip addr add ${NS_IP}/24 dev ${name} && ip link set ${name} up txqueuelen 1000 && ` +
      `ip neigh replace ${OUR_IP} lladdr 02:78:00:00:00:02 dev ${name} nud permanent`,
  );
  const nsMac = parseMac(JSON.parse(ns.exec(`ip -j link show ${name}`))[0].address)!;

  // The poller keeps the callback of its first start: each round points it at its own list.
  let sink: number[] = [];
  for (const useRing of forcedOff ? [false] : [true, false]) {
    const what = useRing ? 'io_uring' : 'readv/writev';
    io.setTapIo(useRing);

    // Reads: the namespace queues FRAMES datagrams while we are not reading; the first drain
    // reads 64 with readv, the next ones half the depth they saw through the ring.
    const got: number[] = [];
    sink = got;
    tap.stop();
    const { exited: sent } = nodeIn(
      ns,
      `const s = require('node:dgram').createSocket('udp4');
       const b = Buffer.alloc(4); let i = 0;
       const next = () => { if (i === ${FRAMES}) return s.close(() => console.log('sent')); b.writeUInt32BE(i++); s.send(b, ${PORT}, '${OUR_IP}', next); };
       next();`,
    );
    t.match(await sent, /sent/, `${what}: the namespace sent ${FRAMES} datagrams`);
    const before = ring();
    tap.start(
      (n) => sequences(tap, n, sink),
      (e) => t.fail(e.message),
    );
    await until(() => got.length >= FRAMES, 5000).catch(() => {});
    tap.stop();
    t.same(
      got,
      Array.from({ length: FRAMES }, (_, i) => i),
      `${what}: all ${FRAMES} read, in order`,
    );
    const afterReads = ring();
    if (useRing)
      t.ok(afterReads[0] - before[0] >= 32, `through the ring: ${afterReads[0] - before[0]}`);
    else t.equal(afterReads[0], before[0], 'none through the ring');

    // Writes: one batch of 32 frames into the TAP, received in order by a socket in the namespace.
    const receiver = nodeIn(
      ns,
      `const s = require('node:dgram').createSocket('udp4'); const seen = [];
       s.on('message', (m) => { seen.push(m.readUInt32BE(0)); if (seen.length === 32) { console.log(seen.join(',')); s.close(); } });
       s.bind(${PORT}, '${NS_IP}', () => console.log('ready'));
       setTimeout(() => { console.log(seen.join(',')); process.exit(0); }, 4000).unref();`,
    );
    await until(() => receiver.out().includes('ready'), 5000);
    const slab = Buffer.alloc(32 * 128);
    const batch = new TxBatch(32);
    for (let i = 0; i < 32; i++) batch.push(i * 128, datagram(slab, i * 128, nsMac, 1000 + i));
    t.equal(tap.write(slab, batch), 32, `${what}: the batch written`);
    const lines = (await receiver.exited).trim().split('\n');
    t.equal(
      lines.at(-1),
      Array.from({ length: 32 }, (_, i) => 1000 + i).join(','),
      `${what}: all 32 received, in order`,
    );
    const afterWrites = ring();
    if (useRing) t.equal(afterWrites[1] - afterReads[1], 32, 'the 32 through the ring');
    else t.equal(afterWrites[1], afterReads[1], 'none through the ring');
  }
});
