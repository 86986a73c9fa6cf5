import t from 'tap';
import { FakeNetwork, FakeTap } from '../../src/io/testdevices.js';
import { TxBatch } from '../../src/io/types.js';
import { exchange } from './udp-shared.js';

t.test('fake UDP: the batch exchange test passes over the fakes too', async (t) => {
  const net = new FakeNetwork();
  const a = net.bind('192.0.2.1', 4789);
  const b = net.bind('192.0.2.2', 4789, { batchSize: 32 });
  const r = await exchange(a, b, '192.0.2.2', 2000);
  t.same(r, { received: 2000, inOrder: true, intact: true, sourcesRight: true });
  t.equal(net.log.length, 2000);
  t.throws(() => net.bind('192.0.2.1', 4789), { code: 'EADDRINUSE' });
  a.close();
  b.close();
  t.equal(net.sockets.size, 0);
});

t.test('fake UDP over IPv6, truncation flag, closed sockets', async (t) => {
  const net = new FakeNetwork();
  const a = net.bind('2001:db8::1', 4789);
  const b = net.bind('2001:db8::2', 4789, { slotSize: 256, headroom: 64 });
  t.equal(a.family, 6);
  const got: { len: number; truncated: number }[] = [];
  await new Promise<void>((resolve) => {
    b.start(
      (n) => {
        for (let i = 0; i < n; i++)
          got.push({ len: b.rx.lengths[i], truncated: b.rx.addrs![i * 20 + 1] });
        resolve();
      },
      () => {},
    );
    b.receive(Buffer.alloc(1000), { address: '2001:db8::9', port: 1 });
  });
  t.same(got, [{ len: 192, truncated: 1 }], 'cut to the slot like recvmmsg, flagged');
  b.close();
  t.throws(
    () =>
      b.start(
        () => {},
        () => {},
      ),
    { code: 'ERR_CLOSED' },
  );
  const batch = new TxBatch(1);
  batch.push(0, 1);
  t.equal(b.send(Buffer.alloc(1), batch), 0);
  t.equal(b.lastError, 'EBADF');
});

t.test('fake TAP: injected frames come out in batches, writes are kept', async (t) => {
  const tap = new FakeTap('fake0', { batchSize: 4 });
  const batches: number[] = [];
  const seen: number[] = [];
  await new Promise<void>((resolve) => {
    tap.start(
      (n) => {
        batches.push(n);
        for (let i = 0; i < n; i++) seen.push(tap.rx.frame(i)[0]);
        if (seen.length === 10) resolve();
      },
      () => {},
    );
    for (let i = 0; i < 10; i++) tap.inject(Buffer.alloc(60, i));
  });
  t.same(batches, [4, 4, 2]);
  t.same(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const batch = new TxBatch(2);
  const slab = Buffer.from('..hello..world');
  batch.push(2, 5);
  batch.push(9, 5);
  t.equal(tap.write(slab, batch), 2);
  t.same(tap.written.map(String), ['hello', 'world']);
  tap.stop();
  tap.close();
  t.equal(tap.write(slab, batch), 0);
  t.equal(tap.lastError, 'EBADF');
});
