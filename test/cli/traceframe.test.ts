// The frame `vtep trace` is asked about: built from flags, or read from a capture file (pcap
// and pcapng, the latter as text2pcap writes it).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildFrame, pcapFrame } from '../../src/cli/traceframe.js';
import { checksum } from '../../src/wire/checksum.js';
import { needs } from '../helpers/prereq.js';

/** A ConfigError that blames `field`. */
const badFlag = (field: string, message?: RegExp) =>
  ({ name: 'ConfigError', field, ...(message ? { message } : {}) }) as unknown as Error;

t.test('flags: Ethernet, a tag, IPv4/IPv6 UDP or ARP, padded to --len', async (t) => {
  const plain = buildFrame({ dst: '02:00:00:00:00:02' });
  t.equal(plain.length, 60);
  t.equal(plain.subarray(0, 14).toString('hex'), '020000000002020000000001' + '88b5');
  const v4 = buildFrame({
    dst: '02:00:00:00:00:02',
    ip4: '10.0.0.1>10.0.0.2',
    vlan: 100,
    len: 100,
  });
  t.equal(v4.length, 100);
  t.equal(v4.readUInt16BE(12), 0x8100);
  t.equal(v4.readUInt16BE(14), 100);
  t.equal(v4.readUInt16BE(16), 0x0800);
  t.equal(v4.readUInt16BE(20), 100 - 18, 'IPv4 total length fills the frame');
  t.equal(checksum(v4, 18, 20), 0, 'a valid IPv4 header checksum');
  t.equal(v4.readUInt32BE(30), 0x0a000001);
  t.equal(v4[27], 17, 'UDP');
  const v6 = buildFrame({ dst: '02:00:00:00:00:02', ip6: '2001:db8::1>2001:db8::2' });
  t.equal(v6.readUInt16BE(12), 0x86dd);
  t.equal(v6.length, 62, '14 + 40 + 8');
  t.equal(v6.readUInt16BE(18), 8, 'payload length');
  const arp = buildFrame({ arp: '10.0.0.2>10.0.0.1', src: '52:54:00:00:00:02' });
  t.equal(arp.subarray(0, 6).toString('hex'), 'ffffffffffff', 'an ARP request is broadcast');
  t.equal(arp.readUInt16BE(12), 0x0806);
  t.equal(arp.readUInt16BE(20), 1, 'a request');
  t.equal(arp.readUInt32BE(38), 0x0a000001, 'asking for the target');
  t.same(buildFrame({ hex: '02:00:00:00:00:02 02:00:00:00:00:01 88b5' }).length, 14);
});

t.test('bad flags name the flag', async (t) => {
  t.throws(() => buildFrame({}), badFlag('--dst'));
  t.throws(() => buildFrame({ dst: 'nope' }), badFlag('--dst'));
  t.throws(() => buildFrame({ dst: '02:00:00:00:00:02', ip4: '10.0.0.1' }), badFlag('--ip4'));
  t.throws(
    () => buildFrame({ dst: '02:00:00:00:00:02', ip6: '10.0.0.1>10.0.0.2' }),
    badFlag('--ip6'),
  );
  t.throws(
    () => buildFrame({ dst: '02:00:00:00:00:02', ip4: '10.0.0.1>10.0.0.2', len: 30 }),
    badFlag('--len'),
  );
  t.throws(() => buildFrame({ hex: 'xyz' }), badFlag('--hex'));
});

t.test('captures: pcap (both byte orders) and pcapng', async (t) => {
  const f0 = Buffer.from('020000000002020000000001' + '88b5' + '00'.repeat(46), 'hex');
  const f1 = Buffer.from('ffffffffffff020000000001' + '0806' + '11'.repeat(28), 'hex');
  const pcap = (le: boolean) => {
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      if (le) b.writeUInt32LE(n);
      else b.writeUInt32BE(n);
      return b;
    };
    const head = Buffer.concat([
      u32(0xa1b2c3d4),
      Buffer.from(le ? '02000400' : '00020004', 'hex'),
      u32(0),
      u32(0),
      u32(65535),
      u32(1),
    ]);
    const rec = (f: Buffer) => Buffer.concat([u32(0), u32(0), u32(f.length), u32(f.length), f]);
    return Buffer.concat([head, rec(f0), rec(f1)]);
  };
  for (const le of [true, false]) {
    t.same(pcapFrame('x.pcap', pcap(le), 1), f1, `pcap ${le ? 'little' : 'big'}-endian, packet 1`);
    t.same(pcapFrame('x.pcap', pcap(le), 0), f0);
  }
  t.throws(() => pcapFrame('x.pcap', pcap(true), 2), badFlag('--index'));
  t.throws(() => pcapFrame('x.pcap', Buffer.alloc(40), 0), badFlag('--pcap'));
  const raw = pcap(true);
  raw.writeUInt32LE(113, 20); // Linux cooked capture
  t.throws(() => pcapFrame('x.pcap', raw, 0), badFlag('--pcap', /not Ethernet/));
  if (needs(t, { commands: ['text2pcap'] })) {
    const dir = mkdtempSync(join(tmpdir(), 'vtep-trace-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const dump = (f: Buffer) =>
      '000000 ' + [...f].map((b) => b.toString(16).padStart(2, '0')).join(' ') + '\n';
    writeFileSync(join(dir, 'in.txt'), dump(f0) + dump(f1));
    const r = spawnSync('text2pcap', ['-n', join(dir, 'in.txt'), join(dir, 'out.pcapng')], {
      encoding: 'utf8',
    });
    t.equal(r.status, 0, r.stderr);
    const ng = readFileSync(join(dir, 'out.pcapng'));
    t.equal(ng.readUInt32LE(0), 0x0a0d0d0a, 'text2pcap -n wrote pcapng');
    t.same(pcapFrame('out.pcapng', ng, 1), f1, 'pcapng, packet 1');
    t.same(pcapFrame('out.pcapng', ng, 0), f0);
  }
});
