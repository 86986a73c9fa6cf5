// FDB benchmarks: unicast lookup hits and learn-refresh at 1k, 64k and 1M entries, plus the
// memory an entry costs. Run with `npm run bench` (uses --expose-gc for the memory figure).
import b from 'benny';
import { Fdb } from '../src/fdb/fdb.js';
import { Remotes } from '../src/fdb/remote.js';
import { resultsDir, writeResult } from './results.js';

const remotes = new Remotes();
const peers = [remotes.get('192.0.2.1'), remotes.get('192.0.2.2'), remotes.get('192.0.2.3')];
const sizes = [1_000, 64_000, 1_000_000];
const results: Record<string, number> = {};
let sink = 0;

function macs(n: number): number[] {
  const out: number[] = [];
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.push(0x0200_0000_0000 + (i % 0xffff) * 2 ** 32 + (x >>> 0));
  }
  return [...new Set(out)];
}

function filled(keys: number[]): Fdb {
  const fdb = new Fdb({ maxEntries: keys.length });
  fdb.addVni(5000, { flood: peers });
  keys.forEach((m, i) => fdb.learn(5000, m, peers[i % 3], 0));
  return fdb;
}

const gc = (globalThis as { gc?: () => void }).gc;
let bytesPerEntry: number | undefined;
if (gc) {
  const keys = macs(1_000_000);
  gc();
  const before = process.memoryUsage().heapUsed;
  const fdb = filled(keys);
  gc();
  bytesPerEntry = (process.memoryUsage().heapUsed - before) / fdb.size;
  sink ^= fdb.size;
  console.log(`memory: ${bytesPerEntry.toFixed(0)} bytes per entry (1M learned entries)`);
}

for (const size of sizes) {
  const keys = macs(size);
  const fdb = filled(keys);
  // Probe in a shuffled order so the hit pattern is not the insertion order; both cases walk
  // the same order, so they pay the same cache misses.
  const probe = keys.map((_, k) => k).sort((x, y) => (keys[x] % 977) - (keys[y] % 977));
  let i = 0;
  let now = 0;
  await b.suite(
    `fdb ${size}`,
    b.add(`lookup hit ${size}`, () => {
      const r = fdb.lookup(5000, keys[probe[i]], now);
      i = i + 1 === probe.length ? 0 : i + 1;
      sink ^= r === null ? 0 : r.port;
    }),
    b.add(`learn refresh ${size}`, () => {
      const k = probe[i];
      i = i + 1 === probe.length ? 0 : i + 1;
      now++;
      sink ^= fdb.learn(5000, keys[k], peers[k % 3], now);
    }),
    b.cycle(),
    b.complete((s) => {
      for (const r of s.results) results[r.name] = Math.round(r.ops);
    }),
    b.save({ file: `fdb-${size}`, folder: resultsDir, format: 'json' }),
  );
}

console.log('\nops/s:');
for (const [name, ops] of Object.entries(results)) {
  console.log(`  ${name.padEnd(24)} ${(ops / 1e6).toFixed(2).padStart(8)} M/s`);
}
console.log(`written: ${writeResult('fdb', { unit: 'ops/s', results, bytesPerEntry, sink })}`);
