// UDP packet generator and counter for the end-to-end benchmark, run inside the VM
// namespaces. It uses our batched sendmmsg/recvmmsg path because Node's dgram (~110 kpps here)
// and iperf3 -u (one send per packet) would be the bottleneck before the tunnel is.
//   node udpflood.js send <ip> <port> <payload bytes> <seconds> [flows] [plain]  → {"sent": n}
//     flows: that many sockets (source ports), batches sent from each in turn (default 1)
//     plain: every datagram its own message (sendmmsg); by default a batch of one flow goes as
//     one UDP_SEGMENT message, as our sockets send runs (and as QUIC stacks send)
//   node udpflood.js recv <ip> <port> <seconds>                   → {"received": n, "pps": x}
import { writeAddr } from '../src/io/addr.js';
import { TxBatch } from '../src/io/types.js';
import { UdpSocket } from '../src/io/udp.js';

const [mode, ip, portText, a, b] = process.argv.slice(2);
const port = Number(portText);

if (mode === 'send') {
  const size = Number(a);
  const seconds = Number(b);
  const flows = Number(process.argv[7] ?? 1);
  const socks = Array.from({ length: flows }, () =>
    UdpSocket.open({ address: ip.includes(':') ? '::' : '0.0.0.0', port: 0 }),
  );
  if (process.argv[8] === 'plain') for (const s of socks) s.gsoRuns = false;
  const batch = new TxBatch(64);
  const slab = Buffer.alloc(64 * 2048, 0x61);
  for (let i = 0; i < 64; i++) writeAddr(batch.addrs, batch.push(i * 2048, size), ip, port);
  const end = Date.now() + seconds * 1000;
  let sent = 0;
  while (Date.now() < end) {
    for (let k = 0; k < 16; k++) sent += socks[k % flows].send(slab, batch);
    await new Promise((r) => setImmediate(r));
  }
  for (const s of socks) s.close();
  console.log(JSON.stringify({ sent }));
} else if (mode === 'recv') {
  const seconds = Number(a);
  const sock = UdpSocket.open({ address: ip, port, batchSize: 256, rcvbuf: 16 << 20 });
  let received = 0;
  let first = 0;
  let last = 0;
  sock.start(
    (n) => {
      const now = performance.now();
      if (received === 0) first = now;
      last = now;
      received += n;
    },
    (e) => {
      throw e;
    },
  );
  console.log('ready');
  await new Promise((r) => setTimeout(r, seconds * 1000));
  sock.close();
  const span = (last - first) / 1000;
  console.log(JSON.stringify({ received, pps: span > 0 ? received / span : 0 }));
} else {
  console.error('usage: udpflood send <ip> <port> <size> <seconds> | recv <ip> <port> <seconds>');
  process.exit(2);
}
