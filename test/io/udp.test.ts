import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import t from 'tap';
import { writeAddr } from '../../src/io/addr.js';
import { OuterFlag, TxBatch, TxStatus } from '../../src/io/types.js';
import { GsoSender, RawUdpSender, UdpSocket } from '../../src/io/udp.js';
import { emitUdp } from '../../src/wire/udp.js';
import { needs } from '../helpers/prereq.js';
import { exchange } from './udp-shared.js';

for (const [family, address] of [
  ['IPv4', '127.0.0.1'],
  ['IPv6', '::1'],
] as const) {
  t.test(
    `${family} loopback: 10 000 datagrams of mixed sizes arrive intact and in order`,
    async (t) => {
      const a = UdpSocket.open({ address, port: 0 });
      const b = UdpSocket.open({ address, port: 0, batchSize: 64 });
      t.teardown(() => (a.close(), b.close()));
      t.not(b.port, 0, 'the kernel chose a port');
      const r = await exchange(a, b, address, 10_000);
      t.same(r, { received: 10_000, inOrder: true, intact: true, sourcesRight: true });
    },
  );
}

t.test('binding errors carry the errno name', async (t) => {
  const a = UdpSocket.open({ address: '127.0.0.1', port: 0 });
  t.teardown(() => a.close());
  t.throws(() => UdpSocket.open({ address: '127.0.0.1', port: a.port }), {
    code: 'EADDRINUSE',
    message: /bind failed: EADDRINUSE/,
  });
  t.throws(() => UdpSocket.open({ address: '192.0.2.200', port: 0 }), { code: 'EADDRNOTAVAIL' });
  t.throws(() => UdpSocket.open({ address: 'localhost' }), { code: 'ERR_ADDRESS' });
  t.throws(() => UdpSocket.open({ address: '127.0.0.1', port: 70000 }), { code: 'ERR_IO_CONFIG' });
  t.throws(() => UdpSocket.open({ address: '127.0.0.1', batchSize: 0 }), { code: 'ERR_IO_CONFIG' });
});

t.test('a refused datagram does not stop the rest of the batch', async (t) => {
  const a = UdpSocket.open({ address: '127.0.0.1', port: 0 });
  const b = UdpSocket.open({ address: '127.0.0.1', port: 0 });
  t.teardown(() => (a.close(), b.close()));
  const slab = Buffer.alloc(70_000);
  const batch = new TxBatch(3);
  writeAddr(batch.addrs, batch.push(0, 10), '127.0.0.1', b.port);
  writeAddr(batch.addrs, batch.push(0, 66_000), '127.0.0.1', b.port); // too big for UDP
  writeAddr(batch.addrs, batch.push(0, 20), '127.0.0.1', b.port);
  t.equal(a.send(slab, batch), 2);
  t.equal(a.lastError, 'EMSGSIZE');
  t.same(
    [...batch.status.subarray(0, 3)],
    [TxStatus.SENT, TxStatus.REFUSED, TxStatus.SENT],
    'each datagram says what became of it: the middle one was refused',
  );
  const single = new TxBatch(1);
  writeAddr(single.addrs, single.push(0, 66_000), '127.0.0.1', b.port);
  t.equal(a.send(slab, single), 0);
  t.equal(a.lastError, 'EMSGSIZE');
  const lengths: number[] = [];
  await new Promise<void>((resolve) =>
    b.start(
      (n) => {
        for (let i = 0; i < n; i++) lengths.push(b.rx.lengths[i]);
        if (lengths.length === 2) resolve();
      },
      () => {},
    ),
  );
  t.same(lengths, [10, 20]);
  a.close();
  t.equal(a.send(slab, batch), 0);
  t.equal(a.lastError, 'EBADF');
  t.throws(
    () =>
      a.start(
        () => {},
        () => {},
      ),
    { code: 'ERR_CLOSED' },
  );
});

for (const [family, address] of [
  ['IPv4', '127.0.0.1'],
  ['IPv6', '::1'],
] as const) {
  t.test(`${family} raw sender: our UDP header, our source port per datagram`, async (t) => {
    if (!needs(t, { root: true })) return;
    const raw = RawUdpSender.open(address);
    const b = UdpSocket.open({ address, port: 0 });
    t.teardown(() => (raw.close(), b.close()));
    const slab = Buffer.alloc(64 * 128);
    const batch = new TxBatch(64);
    for (let i = 0; i < 64; i++) {
      const off = i * 128;
      const payloadLen = 10 + i;
      slab.fill(i, off + 8, off + 8 + payloadLen);
      // For IPv4 the checksum stays 0 (allowed); for IPv6 the kernel fills it (IPV6_CHECKSUM).
      emitUdp({ srcPort: 49152 + i * 7, dstPort: b.port, payloadLen }, slab, off);
      writeAddr(batch.addrs, batch.push(off, 8 + payloadLen), address, b.port);
    }
    t.equal(raw.send(slab, batch), 64, `sent (${raw.lastError ?? 'no error'})`);
    const seen: string[] = [];
    await new Promise<void>((resolve) =>
      b.start(
        (n) => {
          for (let i = 0; i < n; i++) {
            const f = b.rx.frame(i);
            const port = (b.rx.addrs![i * 20 + 2] << 8) | b.rx.addrs![i * 20 + 3];
            seen.push(`${f.length}:${f[0]}:${port}`);
          }
          if (seen.length === 64) resolve();
        },
        () => {},
      ),
    );
    t.same(
      seen,
      Array.from({ length: 64 }, (_, i) => `${10 + i}:${i}:${49152 + i * 7}`),
    );
  });
}

/** Receive `count` datagrams on `b`: `length:first byte:source port` each, in arrival order. */
function collect(b: UdpSocket, count: number): Promise<string[]> {
  const seen: string[] = [];
  return new Promise((resolve) =>
    b.start(
      (n) => {
        for (let i = 0; i < n; i++) {
          const f = b.rx.frame(i);
          const port = (b.rx.addrs![i * 20 + 2] << 8) | b.rx.addrs![i * 20 + 3];
          seen.push(`${f.length}:${f[0]}:${port}`);
        }
        if (seen.length >= count) resolve(seen);
      },
      () => {},
    ),
  );
}

/** /proc/net/raw states (include/net/tcp_states.h). */
const ESTABLISHED = '01';
const CLOSE = '07';
/** The addresses as /proc/net/raw{,6} writes them (the words of the address in host order). */
const ANY = { IPv4: '00000000', IPv6: '0'.repeat(32) };
const ourAddress = { IPv4: '0100007F', IPv6: '0'.repeat(24) + '01000000' };

/** This process's raw sockets (by inode) as the kernel lists them: remote address and state. */
function ourRawSockets(family: 'IPv4' | 'IPv6'): { remote: string; state: string }[] {
  const inodes = new Set(
    readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        return [/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1]];
      } catch {
        return []; // the directory's own fd, closed by now
      }
    }),
  );
  return readFileSync(family === 'IPv4' ? '/proc/net/raw' : '/proc/net/raw6', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && inodes.has(f[9]))
    .map((f) => ({ remote: f[2]!.split(':')[0]!, state: f[3]! }));
}

/** Per source port, the order its datagrams came in (flows keep theirs; flows may interleave). */
const byPort = (seen: string[]) => {
  const m = new Map<string, string[]>();
  for (const x of seen) {
    const port = x.split(':')[2];
    m.set(port, [...(m.get(port) ?? []), x]);
  }
  return Object.fromEntries([...m].sort());
};

for (const [family, address] of [
  ['IPv4', '127.0.0.1'],
  ['IPv6', '::1'],
] as const) {
  t.test(
    `${family} bound socket: runs of one flow leave as GSO sends, whole and in order`,
    async (t) => {
      const a = UdpSocket.open({ address, port: 0 });
      const b = UdpSocket.open({ address, port: 0 });
      const c = UdpSocket.open({ address, port: 0 });
      t.teardown(() => (a.close(), b.close(), c.close()));
      t.equal(a.gsoRuns, true, 'on by default');
      t.equal(
        UdpSocket.open({ address, port: 0, zeroChecksum6Tx: true }).gsoRuns,
        false,
        'not with zero checksums',
      );
      const slab = Buffer.alloc(64 * 2048);
      const batch = new TxBatch(64);
      // 40 to b in runs (20 of 100 bytes, 1 of 50, 19 of 100), 24 to c interleaved in pairs
      const want: Record<string, string[]> = { b: [], c: [] };
      for (let i = 0; i < 64; i++) {
        const toC = i >= 40;
        const len = toC ? 30 + (i % 2) : i === 20 ? 50 : 100;
        slab.fill(i, i * 2048, i * 2048 + len);
        writeAddr(batch.addrs, batch.push(i * 2048, len), address, toC ? c.port : b.port);
        (toC ? want.c : want.b).push(`${len}:${i}:${a.port}`);
      }
      t.equal(a.send(slab, batch), 64, `all sent (${a.lastError ?? 'no error'})`);
      t.same(batch.status.subarray(0, 64), new Uint8Array(64).fill(TxStatus.SENT));
      const [gotB, gotC] = await Promise.all([collect(b, 40), collect(c, 24)]);
      t.same(gotB, want.b, 'the runs arrive cut back into their datagrams, in order');
      t.same(gotC, want.c);
    },
  );

  t.test(`${family} raw sender with GSO senders: a flow's runs leave from its port`, async (t) => {
    if (!needs(t, { root: true })) return;
    const raw = RawUdpSender.open(address);
    const pool = GsoSender.open(address, { count: 2, portMin: 61000, portMax: 61999 });
    raw.pool = pool;
    t.same(ourRawSockets(family), [{ remote: ANY[family], state: CLOSE }], 'raw: unconnected');
    // As a plane does beside a pool: connected to itself, it gets no clone of received UDP.
    t.equal(raw.ignoreReceived(), true);
    t.same(
      ourRawSockets(family),
      [{ remote: ourAddress[family], state: ESTABLISHED }],
      'connected to its own address (its sends below still name theirs)',
    );
    const b = UdpSocket.open({ address, port: 0 });
    t.teardown(() => (raw.close(), pool.close(), b.close()));
    const [p0, p1] = pool.ports;
    const other = 60999; // a port no pool socket has: through the raw socket, run or not
    const plan: [number, number][] = [
      ...Array.from({ length: 10 }, () => [p0, 80] as [number, number]),
      [other, 40],
      [other, 41],
      [p1, 60],
      ...Array.from({ length: 5 }, () => [p1, 70] as [number, number]),
      ...Array.from({ length: 4 }, () => [other, 90] as [number, number]),
      [p0, 80],
    ];
    const slab = Buffer.alloc(64 * 256);
    const batch = new TxBatch(64);
    plan.forEach(([port, payloadLen], i) => {
      const off = i * 256;
      slab.fill(i, off + 8, off + 8 + payloadLen);
      emitUdp({ srcPort: port, dstPort: b.port, payloadLen }, slab, off);
      writeAddr(batch.addrs, batch.push(off, 8 + payloadLen), address, b.port);
    });
    t.equal(raw.send(slab, batch), plan.length, `sent (${raw.lastError ?? 'no error'})`);
    t.ok(raw.pool, 'the kernel took the GSO sends');
    const got = await collect(b, plan.length);
    t.same(
      byPort(got),
      byPort(plan.map(([port, len], i) => `${len}:${i}:${port}`)),
      'every datagram, from the port we wrote, each flow in its order',
    );
  });
}

t.test(
  'IPv4 zero checksums: a run of one flow goes datagram by datagram, not refused',
  async (t) => {
    // the kernel does no UDP GSO from a socket in SO_NO_CHECK mode (EINVAL): runs that ask for a
    // zero checksum were refused whole
    const a = UdpSocket.open({ address: '127.0.0.1', port: 0 });
    const b = UdpSocket.open({ address: '127.0.0.1', port: 0 });
    t.teardown(() => (a.close(), b.close()));
    const slab = Buffer.alloc(32 * 256);
    const batch = new TxBatch(32);
    batch.outer = new Uint32Array(64);
    const want: string[] = [];
    for (let i = 0; i < 32; i++) {
      slab.fill(i, i * 256, i * 256 + 100);
      writeAddr(batch.addrs, batch.push(i * 256, 100), '127.0.0.1', b.port);
      // the first 20 with a zero checksum, the rest with one: a run of each
      batch.outer[2 * i] = i < 20 ? OuterFlag.NO_CSUM : 0;
      want.push(`100:${i}:${a.port}`);
    }
    t.equal(a.send(slab, batch), 32, `all sent (${a.lastError ?? 'no error'})`);
    t.same(batch.status.subarray(0, 32), new Uint8Array(32).fill(TxStatus.SENT));
    t.same(await collect(b, 32), want, 'every datagram, in order');
  },
);

t.test(
  '256 slots: coalesced receives come 64 to a call, small datagrams up to 256, every slot right',
  async (t) => {
    if (!needs(t, { root: true })) return; // a receive buffer past rmem_max (SO_RCVBUFFORCE)
    const a = UdpSocket.open({ address: '127.0.0.1', port: 0 });
    const b = UdpSocket.open({
      address: '127.0.0.1',
      port: 0,
      batchSize: 256,
      slotSize: 65536,
      gro: true,
      rcvbuf: 64 << 20,
    });
    t.teardown(() => (a.close(), b.close()));
    // Queued before b reads: 150 runs of 64 datagrams of 1000 bytes (one UDP_SEGMENT send
    // each, one 64 000-byte receive each on a UDP_GRO socket), then 300 datagrams of 100 to
    // 131 bytes sent one by one.
    const slab = Buffer.alloc(64 * 1024);
    const batch = new TxBatch(64);
    const want: string[] = [];
    for (let r = 0; r < 150; r++) {
      batch.clear();
      slab.fill(r & 0xff);
      for (let i = 0; i < 64; i++)
        writeAddr(batch.addrs, batch.push(i * 1024, 1000), '127.0.0.1', b.port);
      t.equal(a.send(slab, batch), 64);
      want.push(`64000:${r & 0xff}:${a.port}`);
    }
    a.gsoRuns = false;
    for (let k = 0; k < 300; k += 60) {
      batch.clear();
      for (let i = 0; i < 60; i++) {
        slab.fill((k + i) & 0xff, i * 1024, i * 1024 + 200);
        const len = 100 + ((k + i) % 32);
        writeAddr(batch.addrs, batch.push(i * 1024, len), '127.0.0.1', b.port);
        want.push(`${len}:${(k + i) & 0xff}:${a.port}`);
      }
      t.equal(a.send(slab, batch), 60);
    }
    const calls: number[] = [];
    const seen: string[] = [];
    await new Promise<void>((resolve) =>
      b.start(
        (n) => {
          calls.push(n);
          for (let i = 0; i < n; i++) {
            const f = b.rx.frame(i);
            const port = (b.rx.addrs![i * 20 + 2] << 8) | b.rx.addrs![i * 20 + 3];
            seen.push(`${f.length}:${f[0]}:${port}`);
          }
          if (seen.length >= want.length) resolve();
        },
        () => {},
      ),
    );
    t.same(seen, want, 'every receive, its length, bytes and source right, in order');
    const large = seen.filter((x) => x.startsWith('64000:')).length;
    t.equal(large, 150);
    // 64 to begin with, then as many 64 000-byte receives as fit 4 MiB (65)
    t.same(calls.slice(0, 2), [64, Math.floor((4 << 20) / 64000)], 'coalesced: 4 MiB a call');
    t.ok(
      calls.some((n) => n > 64),
      `small datagrams more than 64 to a call (calls: ${calls.join(' ')})`,
    );
    t.ok(calls.every((n) => n <= 256));
  },
);

t.test('datagrams the kernel dropped for a socket nobody reads are counted', async (t) => {
  const a = UdpSocket.open({ address: '127.0.0.1', port: 0 });
  const b = UdpSocket.open({ address: '127.0.0.1', port: 0, rcvbuf: 4096 });
  t.teardown(() => (a.close(), b.close()));
  t.equal(b.kernelDrops(), 0, 'none yet');
  const slab = Buffer.alloc(1000);
  const batch = new TxBatch(64);
  let sent = 0;
  for (let round = 0; round < 8; round++) {
    batch.clear();
    for (let i = 0; i < 64; i++) writeAddr(batch.addrs, batch.push(0, 1000), '127.0.0.1', b.port);
    sent += a.send(slab, batch);
  }
  t.equal(sent, 512, 'all sent (loopback)');
  t.ok(b.kernelDrops()! > 400, `the receive buffer overflowed: ${b.kernelDrops()} dropped`);
  b.close();
  t.equal(b.kernelDrops(), undefined, 'unknown once closed');
});

t.test('a raw sender on a wildcard address stays unconnected', async (t) => {
  if (!needs(t, { root: true })) return;
  const raw = RawUdpSender.open('0.0.0.0');
  t.teardown(() => raw.close());
  // connected, every send would leave from the address the route to itself chose (127.0.0.1)
  t.equal(raw.ignoreReceived(), false);
  t.same(ourRawSockets('IPv4'), [{ remote: ANY.IPv4, state: CLOSE }]);
});
