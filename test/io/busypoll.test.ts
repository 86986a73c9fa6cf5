// Busy polling in the addon: after a batch the thread keeps reading its pollers without going
// back to epoll, for the budget since the last frame; a datagram that arrives inside the window
// is read by the spin, not by a wakeup. An idle thread never spins.
import { spawn } from 'node:child_process';
import t from 'tap';
import { native } from '../../src/io/native.js';
import { UdpSocket } from '../../src/io/udp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a datagram inside the window is read by the spin; idle: no spin', async (t) => {
  const io = native();
  const rx = UdpSocket.open({ address: '127.0.0.1', port: 0 });
  t.teardown(() => {
    io.setBusyPoll(0);
    rx.close();
  });
  let got = 0;
  rx.start(
    (n) => (got += n),
    (err) => t.fail(err.message),
  );
  io.setBusyPoll(300_000); // 300 ms: far longer than the 40 ms between the two datagrams
  const [spins0, polled0] = io.busyPollStats();
  await sleep(200);
  t.same(io.busyPollStats(), [spins0, polled0], 'idle: no spin');
  // Another process sends two datagrams 40 ms apart (this thread is busy spinning between them).
  const child = spawn(process.execPath, [
    '-e',
    `const s = require('node:dgram').createSocket('udp4');
     s.send('one', ${rx.port}, '127.0.0.1', () =>
       setTimeout(() => s.send('two', ${rx.port}, '127.0.0.1', () => s.close()), 40));`,
  ]);
  await new Promise((r) => child.on('exit', r));
  await sleep(50);
  t.equal(got, 2, 'both received');
  const [spins, polled] = io.busyPollStats();
  t.equal(spins - spins0, 1, 'one spin period, after the first');
  t.equal(polled - polled0, 1, 'the second was read while spinning');
  io.setBusyPoll(0);
});
