// One UDP batch test body, run over real sockets (udp.test.ts) and over the fakes (fake.test.ts).
import { addrPort, addrToString, writeAddr } from '../../src/io/addr.js';
import { TxBatch, type DatagramSocket } from '../../src/io/types.js';

export interface Outcome {
  received: number;
  inOrder: boolean;
  intact: boolean;
  sourcesRight: boolean;
  firstProblem?: string;
}

/** Mixed sizes, 4..1472 bytes: small, MTU-sized and everything between, deterministic per seq. */
export function sizeOf(seq: number): number {
  const pattern = [4, 64, 1472, 512, 1200, 9, 1400, 100];
  return pattern[seq % pattern.length] + ((seq * 7) % 64);
}

export function fill(buf: Buffer, offset: number, seq: number, len: number): void {
  buf.writeUInt32BE(seq, offset);
  for (let i = 4; i < len; i++) buf[offset + i] = (seq + i) & 0xff;
}

/**
 * Send `count` datagrams from `a` to `b` in batches of up to 64, yielding between batches so
 * the receiver drains, and check what arrives.
 */
export async function exchange(
  a: DatagramSocket,
  b: DatagramSocket,
  toAddress: string,
  count: number,
): Promise<Outcome> {
  const out: Outcome = { received: 0, inOrder: true, intact: true, sourcesRight: true };
  const problem = (p: string) => {
    out.firstProblem ??= p;
  };
  let next = 0;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timeout: ${out.received}/${count} received`)),
      30_000,
    );
    b.start(
      (n) => {
        for (let i = 0; i < n; i++) {
          const off = b.rx.offset(i);
          const len = b.rx.lengths[i];
          const seq = b.rx.slab.readUInt32BE(off);
          if (seq !== next) {
            out.inOrder = false;
            problem(`expected seq ${next}, got ${seq}`);
          }
          next = seq + 1;
          if (len !== sizeOf(seq)) {
            out.intact = false;
            problem(`seq ${seq}: length ${len} != ${sizeOf(seq)}`);
          }
          for (let k = 4; k < len; k++) {
            if (b.rx.slab[off + k] !== ((seq + k) & 0xff)) {
              out.intact = false;
              problem(`seq ${seq}: byte ${k} differs`);
              break;
            }
          }
          if (addrToString(b.rx.addrs!, i) !== a.address || addrPort(b.rx.addrs!, i) !== a.port) {
            out.sourcesRight = false;
            problem(`seq ${seq}: from ${addrToString(b.rx.addrs!, i)}:${addrPort(b.rx.addrs!, i)}`);
          }
          out.received++;
        }
        if (out.received >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });

  const batch = new TxBatch(64);
  const slab = Buffer.alloc(64 * 1536);
  for (let seq = 0; seq < count;) {
    batch.clear();
    while (!batch.full && seq < count) {
      const len = sizeOf(seq);
      const i = batch.push(batch.count * 1536, len);
      fill(slab, batch.offsets[i], seq, len);
      writeAddr(batch.addrs, i, toAddress, b.port);
      seq++;
    }
    const sent = a.send(slab, batch);
    if (sent !== batch.count) throw new Error(`sent ${sent}/${batch.count}: ${a.lastError}`);
    await new Promise((r) => setImmediate(r));
  }
  await done;
  b.stop();
  return out;
}
