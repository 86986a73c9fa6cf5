// Codec micro-benchmarks: encapsulate, decapsulate and the round trip at three frame sizes.
// Run with `npm run bench` (compiled JS, as in production).
import b from 'benny';
import { Drop } from '../src/wire/drop.js';
import {
  HEADER_LEN,
  decapsulate,
  decapsulateInto,
  emitVxlan,
  encapsulate,
  type DecapResult,
} from '../src/wire/vxlan.js';
import { resultsDir, writeResult } from './results.js';

const sizes = [64, 512, 1450];
const HEADROOM = 64;
const summary: Record<string, number> = {};
let sink = 0;

for (const size of sizes) {
  const buf = Buffer.alloc(HEADROOM + size);
  for (let i = 0; i < size; i++) buf[HEADROOM + i] = i;
  const datagram = encapsulate(buf, HEADROOM, size, 42);
  const out: DecapResult = { vni: 0, offset: 0, length: 0 };
  let vni = 0;

  await b.suite(
    `vxlan ${size}B`,
    b.add(`encapsulate (view) ${size}B`, () => {
      vni = (vni + 1) & 0xffffff;
      sink ^= encapsulate(buf, HEADROOM, size, vni).length;
    }),
    b.add(`decapsulate (view) ${size}B`, () => {
      const d = decapsulate(datagram);
      sink ^= typeof d === 'number' ? d : d.vni;
    }),
    b.add(`encap+decap (view) ${size}B`, () => {
      vni = (vni + 1) & 0xffffff;
      const d = decapsulate(encapsulate(buf, HEADROOM, size, vni));
      sink ^= typeof d === 'number' ? d : d.frame.length;
    }),
    // The engine's path: header written in place, offsets instead of views, no allocation.
    b.add(`encap+decap (in place) ${size}B`, () => {
      vni = (vni + 1) & 0xffffff;
      emitVxlan(vni, buf, HEADROOM - HEADER_LEN);
      const drop = decapsulateInto(buf, HEADROOM - HEADER_LEN, size + HEADER_LEN, 'drop', out);
      sink ^= drop === Drop.NONE ? out.vni : drop;
    }),
    b.cycle(),
    b.complete((s) => {
      for (const r of s.results) summary[r.name] = Math.round(r.ops);
    }),
    b.save({ file: `wire-${size}`, folder: resultsDir, format: 'json' }),
  );
}

console.log('\nops/s:');
for (const [name, ops] of Object.entries(summary)) {
  console.log(`  ${name.padEnd(32)} ${(ops / 1e6).toFixed(2).padStart(8)} M/s`);
}
const file = writeResult('wire', { unit: 'ops/s', results: summary, sink });
console.log(`written: ${file}`);
