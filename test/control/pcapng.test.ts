// The pcapng `vtep capture` writes, read back by tshark: frames on interface 0, underlay
// datagrams behind their IP/UDP headers on interface 1, each with its comment and direction.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { pcapngHeader, pcapngPacket, type CaptureEvent } from '../../src/control/pcapng.js';
import { needs } from '../helpers/prereq.js';

const frame = Buffer.from('525400000002525400000001' + '88b5' + '42'.repeat(46), 'hex');
const vxlan = (vni: number, f: Buffer) => {
  const h = Buffer.alloc(8);
  h[0] = 0x08;
  h.writeUIntBE(vni, 4, 3);
  return Buffer.concat([h, f]);
};

t.test('tshark reads what we write: frames, drops with their reason, directions', async (t) => {
  if (!needs(t, { commands: ['tshark'] })) return;
  const local = { address: '192.0.2.2', port: 4789 };
  const events: CaptureEvent[] = [
    {
      vni: 5000,
      kind: 'from-tap',
      dev: 'vtep0',
      timeUs: 1_780_000_000_000_001,
      data: frame.toString('base64'),
    },
    {
      vni: 5000,
      kind: 'to-tap',
      dev: 'vtep0',
      remote: '192.0.2.3',
      port: 40000,
      timeUs: 1_780_000_000_000_002,
      data: frame.toString('base64'),
    },
    {
      vni: 5000,
      kind: 'underlay',
      reason: 'own_source_mac',
      remote: '192.0.2.3',
      port: 40001,
      timeUs: 1_780_000_000_000_003,
      data: vxlan(5000, frame).toString('base64'),
    },
    {
      vni: -1,
      kind: 'underlay',
      reason: 'vxlan_no_i_flag',
      remote: '2001:db8::3',
      port: 40002,
      timeUs: 1_780_000_000_000_004,
      data: Buffer.alloc(20).toString('base64'),
    },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'vtep-pcapng-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.pcapng');
  writeFileSync(
    file,
    Buffer.concat([pcapngHeader('vtep test'), ...events.map((e) => pcapngPacket(e, local))]),
  );
  const r = spawnSync(
    'tshark',
    [
      '-r',
      file,
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'frame.interface_id',
      '-e',
      'frame.comment',
      '-e',
      'frame.p2p_dir',
      '-e',
      'eth.src',
      '-e',
      'vxlan.vni',
      '-e',
      'ip.src',
      '-e',
      'udp.srcport',
    ],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n');
  t.equal(rows.length, 4);
  t.match(rows[0], /^0\|vni 5000, from tap vtep0\|.*\|52:54:00:00:00:01\|\|\|$/);
  t.match(rows[1], /^0\|vni 5000, to tap vtep0, remote 192\.0\.2\.3\|/);
  t.match(
    rows[2],
    /^1\|drop own_source_mac, vni 5000, from the underlay, remote 192\.0\.2\.3\|.*\|52:54:00:00:00:01\|5000\|192\.0\.2\.3\|40001$/,
    'a dropped datagram: decoded down to the inner frame, the reason as its comment',
  );
  t.match(rows[3], /^1\|drop vxlan_no_i_flag, no vni, from the underlay, remote 2001:db8::3\|/);
  const dirs = spawnSync(
    'tshark',
    ['-r', file, '-T', 'fields', '-e', 'frame.packet_flags_direction'],
    { encoding: 'utf8' },
  );
  t.same(
    dirs.stdout
      .trim()
      .split('\n')
      .map((x) => x.trim()),
    ['0x00000001', '0x00000002', '0x00000001', '0x00000001'].map((x) => x),
    'directions: in, out, in, in',
  );
});
