import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { emitEthernet } from '../../src/wire/ethernet.js';
import { IpProtocol, emitIpv4 } from '../../src/wire/ipv4.js';
import { emitUdp, udpIpv4PseudoSum } from '../../src/wire/udp.js';
import { MAX_VNI, encapsulate } from '../../src/wire/vxlan.js';
import { goldenPacket } from './golden.js';
import { writePcap } from '../helpers/pcap.js';
import { needs } from '../helpers/prereq.js';
import { VXLAN_FIELDS, tsharkFields } from '../helpers/tshark.js';

/** Build a full outer packet around `inner` with our own encoders, checksum on. */
function build(inner: Uint8Array, vni: number): Buffer {
  const at = 14 + 20 + 8 + 8;
  const buf = Buffer.alloc(at + inner.length);
  buf.set(inner, at);
  const vx = encapsulate(buf, at, inner.length, vni);
  const src = 0xc0000201;
  const dst = 0xc0000202;
  emitUdp(
    { srcPort: 49152 + (vni % 16384), dstPort: 4789, payloadLen: vx.length },
    buf,
    34,
    udpIpv4PseudoSum(src, dst, 8 + vx.length),
  );
  emitIpv4({ src, dst, protocol: IpProtocol.UDP, payloadLen: 8 + vx.length }, buf, 14);
  emitEthernet({ dst: 0x020000000002, src: 0x020000000001, ethertype: 0x0800 }, buf, 0);
  return buf;
}

t.test(
  'tshark decodes our packets as VXLAN with the I flag, the VNI and zero reserved bits',
  async (t) => {
    if (!needs(t, { commands: ['tshark'] })) return;
    const dir = mkdtempSync(join(tmpdir(), 'vtep-tshark-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));

    const samples = fc.sample(
      fc.record({
        vni: fc.integer({ min: 0, max: MAX_VNI }),
        inner: fc.uint8Array({ minLength: 14, maxLength: 1400 }),
      }),
      { numRuns: 50, seed: 4789 },
    );
    const frames = [goldenPacket, ...samples.map((s) => build(s.inner, s.vni))];
    const vnis = [42, ...samples.map((s) => s.vni)];
    const pcap = join(dir, 'vxlan.pcap');
    writePcap(pcap, frames);

    const r = tsharkFields(
      pcap,
      [...VXLAN_FIELDS, 'ip.checksum.status', 'udp.checksum.status'],
      ['-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'],
    );
    const rows = r.rows;
    t.equal(rows.length, frames.length, 'one decoded row per packet');
    rows.forEach(([flags, iFlag, vni, flagsReserved, bytes2to3, reserved8, ipOk, udpOk], i) => {
      t.equal(Number(flags), 0x0800, `packet ${i}: flags word 0x0800`);
      t.equal(iFlag, '1', `packet ${i}: I flag`);
      t.equal(Number(vni), vnis[i], `packet ${i}: VNI`);
      t.equal(Number(flagsReserved), 0, `packet ${i}: reserved flag bits`);
      t.equal(Number(bytes2to3), 0, `packet ${i}: reserved bytes 2..3`);
      t.equal(Number(reserved8), 0, `packet ${i}: reserved byte 7`);
      t.equal(ipOk, '1', `packet ${i}: outer IPv4 checksum good`);
      // the golden packet carries no UDP checksum (3 = not present); ours all carry a good one
      t.equal(udpOk, i === 0 ? '3' : '1', `packet ${i}: UDP checksum`);
    });
  },
);
