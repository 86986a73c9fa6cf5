// Loopback packet rate: Node's dgram (one send call and one 'message' event per datagram)
// against our batched path (sendmmsg / recvmmsg through the addon). Both run in this one
// process, sender and receiver sharing the event loop as they do in the VTEP. Runs alternate
// (dgram, batched, dgram, …) so machine noise hits both; the medians and their ratio are
// printed and written to bench/results/udp.json.
import dgram from 'node:dgram';
import { writeAddr } from '../src/io/addr.js';
import { TxBatch } from '../src/io/types.js';
import { UdpSocket } from '../src/io/udp.js';
import { writeResult } from './results.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BURST = 64;
const sizes = [64, 1400];

const tick = () => new Promise<void>((r) => setImmediate(r));

async function runDgram(size: number): Promise<number> {
  const rx = dgram.createSocket('udp4');
  const tx = dgram.createSocket('udp4');
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
  const port = rx.address().port;
  let received = 0;
  rx.on('message', () => received++);
  const payload = Buffer.alloc(size, 1);
  const end = Date.now() + SECONDS * 1000;
  const start = process.hrtime.bigint();
  let inFlight = 0;
  while (Date.now() < end) {
    // Keep a bounded number of sends outstanding so the sender cannot starve the receiver.
    if (inFlight < BURST * 4) {
      for (let i = 0; i < BURST; i++) {
        inFlight++;
        tx.send(payload, port, '127.0.0.1', () => inFlight--);
      }
    }
    await tick();
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  await new Promise((r) => setTimeout(r, 50));
  rx.close();
  tx.close();
  return received / elapsed;
}

async function runBatched(size: number): Promise<number> {
  const rx = UdpSocket.open({ address: '127.0.0.1', port: 0, batchSize: BURST });
  const tx = UdpSocket.open({ address: '127.0.0.1', port: 0 });
  let received = 0;
  rx.start(
    (n) => (received += n),
    (e) => {
      throw e;
    },
  );
  const slab = Buffer.alloc(BURST * 2048, 1);
  const batch = new TxBatch(BURST);
  for (let i = 0; i < BURST; i++)
    writeAddr(batch.addrs, batch.push(i * 2048, size), '127.0.0.1', rx.port);
  const end = Date.now() + SECONDS * 1000;
  const start = process.hrtime.bigint();
  while (Date.now() < end) {
    tx.send(slab, batch);
    await tick();
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  await new Promise((r) => setTimeout(r, 50));
  rx.close();
  tx.close();
  return received / elapsed;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results: Record<
  string,
  {
    dgramPps: number;
    batchedPps: number;
    ratio: number;
    runs: { dgram: number[]; batched: number[] };
  }
> = {};
for (const size of sizes) {
  const runs = { dgram: [] as number[], batched: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    runs.dgram.push(await runDgram(size));
    runs.batched.push(await runBatched(size));
    process.stdout.write(
      `  ${size}B round ${r + 1}/${ROUNDS}: dgram ${(runs.dgram[r] / 1e3).toFixed(0)} kpps, batched ${(runs.batched[r] / 1e3).toFixed(0)} kpps\n`,
    );
  }
  const d = median(runs.dgram);
  const b = median(runs.batched);
  results[`${size}B`] = {
    dgramPps: Math.round(d),
    batchedPps: Math.round(b),
    ratio: Number((b / d).toFixed(2)),
    runs,
  };
}
console.log('\nloopback packet rate (received datagrams per second, medians):');
for (const [k, v] of Object.entries(results)) {
  console.log(
    `  ${k.padEnd(6)} dgram ${(v.dgramPps / 1e3).toFixed(0).padStart(6)} kpps   batched ${(v.batchedPps / 1e3).toFixed(0).padStart(6)} kpps   ${v.ratio}x`,
  );
}
console.log(
  `written: ${writeResult('udp', { seconds: SECONDS, rounds: ROUNDS, burst: BURST, results })}`,
);
