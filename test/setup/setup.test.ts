// `vtep setup …` as a user runs it (the compiled CLI), against a real private ovsdb-server
// (with and without ovs-vswitchd), libvirt's test:///default driver, a namespace for the host
// bridge, and systemd-analyze for the unit.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { namespaces } from '../../src/lab/netns.js';
import { PrivateOvs } from '../../src/lab/ovs.js';
import { vtepBin } from '../../src/lab/topology.js';
import { quote, render } from '../../src/setup/runner.js';
import { hostCommands } from '../../src/setup/host.js';
import { needs } from '../helpers/prereq.js';

const dir = mkdtempSync(join(tmpdir(), 'vtep-setup-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function vtep(args: string[], env?: Record<string, string>) {
  return spawnSync(process.execPath, [vtepBin(), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: env ?? process.env,
  });
}

t.test('--dry-run for the guide two hosts prints the guide commands', async (t) => {
  // The OVS VXLAN guide: host 1 (192.168.1.10) and host 2 (192.168.1.11), bridge br0, port vx_node1.
  const guide = {
    '192.168.1.11': [
      'ovs-vsctl add-br br0',
      'ovs-vsctl add-port br0 vx_node1 -- set interface vx_node1 type=vxlan options:remote_ip=192.168.1.11',
    ],
    '192.168.1.10': [
      'ovs-vsctl add-br br0',
      'ovs-vsctl add-port br0 vx_node1 -- set interface vx_node1 type=vxlan options:remote_ip=192.168.1.10',
    ],
  };
  for (const [remote, lines] of Object.entries(guide)) {
    const r = vtep(['setup', 'ovs', '--bridge', 'br0', '--remote', remote, '--dry-run']);
    t.equal(r.status, 0, r.stderr);
    const printed = r.stdout.trim().split('\n');
    t.same(
      printed.map((l) => l.replace(' --may-exist', '')),
      lines,
      `remote ${remote}: the guide's commands`,
    );
    t.ok(
      printed.every((l) => l.includes('--may-exist')),
      'made idempotent with --may-exist',
    );
  }
  const keyed = vtep([
    'setup',
    'ovs',
    '--remote',
    '192.0.2.1',
    '--key',
    '5000',
    '--dst-port',
    '4789',
    '--port-name',
    'vx_b',
    '--db',
    'unix:/x.sock',
    '--no-wait',
    '--datapath-type',
    'netdev',
    '--dry-run',
  ]);
  t.same(keyed.stdout.trim().split('\n'), [
    'ovs-vsctl --db=unix:/x.sock --no-wait --may-exist add-br br0 -- set bridge br0 datapath_type=netdev',
    'ovs-vsctl --db=unix:/x.sock --no-wait --may-exist add-port br0 vx_b -- set interface vx_b type=vxlan options:remote_ip=192.0.2.1 options:key=5000 options:dst_port=4789',
  ]);
  for (const [args, re] of [
    [['--remote', 'nope'], /invalid --remote "nope"/],
    [
      ['--remote', '192.0.2.1', '--key', '16777216'],
      /invalid --key "16777216": must be an integer in 0\.\.16777215/,
    ],
    [['--remote', '192.0.2.1', '--key', 'x'], /invalid --key "x": must be an integer/],
    [['--remote', '192.0.2.1', '--db', '/no/scheme'], /invalid --db "\/no\/scheme"/],
    [['--remote', '192.0.2.1', '--bridge', 'a b'], /invalid --bridge "a b"/],
    [['--remote', '192.0.2.1', '--datapath-type', 'dpdk'], /invalid --datapath-type "dpdk"/],
    [['--remote', '192.0.2.1', '--port-name', 'x'.repeat(16)], /invalid --port-name/],
    [
      ['--remote', '192.0.2.1', '--dst-port', '0'],
      /invalid --dst-port "0": must be an integer in 1\.\.65535/,
    ],
    [[], /missing --remote: is required/],
    [['--remote', '192.0.2.1', '--key', '1e3'], /invalid --key "1e3": must be an integer/],
  ] as [string[], RegExp][]) {
    const r = vtep(['setup', 'ovs', ...args, '--dry-run']);
    t.equal(r.status, 2, `exit 2 for ${args.join(' ')}`);
    t.match(r.stderr, re);
  }
});

t.test(
  'against a bare ovsdb-server (--no-wait): options set, second run changes nothing',
  async (t) => {
    if (!needs(t, { root: true, commands: ['ovsdb-server', 'ovs-vsctl', 'ip'] })) return;
    const [ns] = namespaces(t, 'db');
    const ovs = PrivateOvs.startDb(ns, join(dir, 'db'));
    t.teardown(() => ovs.stop());
    const args = [
      'setup',
      'ovs',
      '--bridge',
      'br0',
      '--remote',
      '192.0.2.1',
      '--key',
      '5000',
      '--db',
      ovs.db,
      '--no-wait',
    ];
    const first = vtep(args);
    t.equal(first.status, 0, first.stderr);
    t.match(first.stdout, /applied: ovs-vsctl .*add-port br0 vx_node1/);
    t.equal(
      ovs.vsctl('get interface vx_node1 options').trim(),
      '{key="5000", remote_ip="192.0.2.1"}',
    );
    t.equal(ovs.vsctl('get interface vx_node1 type').trim(), 'vxlan');
    const dump = () =>
      ['bridge', 'port', 'interface'].map((tb) => ovs.vsctl(`--format=json list ${tb}`)).join('\n');
    const before = dump();
    t.equal(vtep(args).status, 0);
    t.equal(dump(), before, 'the second run changed nothing (same rows, same UUIDs, same values)');
    t.equal(
      vtep([...args.filter((a) => a !== '5000' && a !== '--key'), '--key', '5001']).status,
      0,
    );
    t.equal(
      ovs.vsctl('get interface vx_node1 options:key').trim(),
      '"5001"',
      'a changed option updates the port in place',
    );
    const show = vtep(['setup', 'ovs', '--show', '--db', ovs.db]);
    t.equal(show.status, 0, show.stderr);
    t.match(show.stdout, /Bridge br0[\s\S]*Port vx_node1[\s\S]*type: vxlan/);
    t.match(show.stdout, /vx_node1 options: \{key="5001", remote_ip="192\.0\.2\.1"\}/);
    const dryShow = vtep(['setup', 'ovs', '--show', '--dry-run', '--db', ovs.db]);
    t.equal(dryShow.status, 0, dryShow.stderr);
    t.equal(
      dryShow.stdout,
      `ovs-vsctl --db=${ovs.db} show\novs-vsctl --db=${ovs.db} get interface vx_node1 options\n`,
      '--show --dry-run prints the commands it would run',
    );
  },
);

t.test(
  'with ovs-vswitchd running (userspace datapath) it waits for it and the port comes up',
  async (t) => {
    if (!needs(t, { root: true, commands: ['ovs-vswitchd', 'ovs-vsctl', 'ip'] })) return;
    const [ns] = namespaces(t, 'sw');
    const ovs = PrivateOvs.start(ns, join(dir, 'sw'));
    t.teardown(() => ovs.stop());
    const r = vtep([
      'setup',
      'ovs',
      '--bridge',
      'br0',
      '--datapath-type',
      'netdev',
      '--remote',
      '192.0.2.7',
      '--key',
      '42',
      '--db',
      ovs.db,
    ]);
    t.equal(r.status, 0, `no --no-wait, and it returns: ${r.stderr}`);
    t.ok(
      Number(ovs.vsctl('get interface vx_node1 ofport').trim()) > 0,
      'ovs-vswitchd gave the port an OpenFlow number',
    );
    t.match(
      ovs.appctl('dpif/show'),
      /vx_node1 \d+\/\d+: \(vxlan: .*key=42.*remote_ip=192\.0\.2\.7/,
    );
  },
);

t.test(
  'errors: missing tools name their Debian package; a failing command says what was applied',
  async (t) => {
    const noPath = { PATH: '/nonexistent' };
    const r = vtep(
      ['setup', 'ovs', '--remote', '192.0.2.1', '--db', 'unix:/x.sock', '--no-wait'],
      noPath,
    );
    t.equal(r.status, 1);
    t.match(
      r.stderr,
      /ovs-vsctl not found: install the Debian package openvswitch-switch \(apt-get install openvswitch-switch\) \[ERR_MISSING_COMMAND\]/,
    );
    const v = vtep(['setup', 'libvirt', '--domain', 'vm1', '--apply'], noPath);
    t.match(v.stderr, /virsh not found: install the Debian package libvirt-clients/);
    const h = vtep(['setup', 'host', '--tap', 'vtepx', '--bridge', 'brx'], noPath);
    t.match(h.stderr, /ip not found: install the Debian package iproute2/);
    if (!needs(t, { commands: ['ovs-vsctl'] })) return;
    const f = vtep([
      'setup',
      'ovs',
      '--remote',
      '192.0.2.1',
      '--db',
      `unix:${join(dir, 'absent.sock')}`,
      '--no-wait',
    ]);
    t.equal(f.status, 1);
    t.match(f.stderr, /ovs-vsctl .*add-br br0 failed with status 1: .*database connection failed/);
    t.match(f.stderr, /applied before it: nothing/);
    t.match(f.stderr, /not applied: ovs-vsctl .*add-port br0 vx_node1/);
  },
);

t.test('libvirt test:///default: the domain ends up with the interface asked for', async (t) => {
  if (!needs(t, { commands: ['virsh', 'virt-install'] })) return;
  const install = vtep([
    'setup',
    'libvirt',
    '--domain',
    'vm1',
    '--bridge',
    'br0',
    '--openvswitch',
    '--mac',
    '52:54:00:aa:00:01',
    '--print-install',
  ]);
  t.equal(
    install.stdout.trim(),
    'virt-install --name vm1 --memory 1024 --vcpus 1 --disk none --import --network network=default ' +
      '--network bridge=br0,virtualport.type=openvswitch,mac=52:54:00:aa:00:01 --osinfo generic --noautoconsole',
  );
  // The printed line, pointed at the test driver, with --print-xml: then define + dumpxml in one
  // virsh invocation (the test driver forgets everything between connections).
  const argv = install.stdout.trim().split(' ');
  const xml = spawnSync(
    argv[0],
    [
      ...argv.slice(1).filter((a) => a !== '--noautoconsole'),
      '--connect',
      'test:///default',
      '--print-xml',
    ],
    { encoding: 'utf8' },
  );
  t.equal(xml.status, 0, xml.stderr);
  const file = join(dir, 'vm1.xml');
  writeFileSync(file, xml.stdout);
  const dumped = spawnSync('virsh', ['-c', 'test:///default', `define ${file}; dumpxml vm1`], {
    encoding: 'utf8',
  });
  t.equal(dumped.status, 0, dumped.stderr);
  t.match(
    dumped.stdout,
    /<interface type=['"]network['"]>[\s\S]*<source network=['"]default['"]/,
    'management NIC on the default network',
  );
  t.match(
    dumped.stdout,
    /<interface type=['"]bridge['"]>\s*<mac address=['"]52:54:00:aa:00:01['"]\/>\s*<source bridge=['"]br0['"]\/>\s*<virtualport type=['"]openvswitch['"]/,
    'overlay NIC on the OVS bridge',
  );

  // The <interface> element on its own, merged into an existing domain definition.
  const iface = vtep(['setup', 'libvirt', '--domain', 'vm2', '--bridge', 'br1', '--openvswitch']);
  t.equal(
    iface.stdout.trim(),
    "<interface type='bridge'>\n  <source bridge='br1'/>\n  <virtualport type='openvswitch'/>\n  <model type='virtio'/>\n</interface>",
  );
  const bare = join(dir, 'vm2-bare.xml');
  writeFileSync(
    bare,
    "<domain type='test'>\n  <name>vm2</name>\n  <memory>131072</memory>\n  <os><type>hvm</type></os>\n  <devices>\n  </devices>\n</domain>\n",
  );
  const merged = vtep([
    'setup',
    'libvirt',
    '--domain',
    'vm2',
    '--bridge',
    'br1',
    '--openvswitch',
    '--domain-xml',
    bare,
  ]);
  const mergedFile = join(dir, 'vm2.xml');
  writeFileSync(mergedFile, merged.stdout);
  const d2 = spawnSync('virsh', ['-c', 'test:///default', `define ${mergedFile}; dumpxml vm2`], {
    encoding: 'utf8',
  });
  t.equal(d2.status, 0, d2.stderr);
  t.match(
    d2.stdout,
    /<interface type=['"]bridge['"]>[\s\S]*<source bridge=['"]br1['"]\/>\s*<virtualport type=['"]openvswitch['"]/,
  );
  t.match(d2.stdout, /<model type=['"]virtio['"]\/>/);
  const plain = vtep(['setup', 'libvirt', '--domain', 'vm3', '--bridge', 'br0']);
  t.notMatch(plain.stdout, /virtualport/, 'a Linux bridge needs no virtualport');
  const tmp = mkdtempSync(join(dir, 'tmp-'));
  const apply = vtep(
    ['setup', 'libvirt', '--domain', 'vm3', '--connect', 'qemu:///system', '--apply', '--dry-run'],
    { ...process.env, TMPDIR: tmp },
  );
  t.same(readdirSync(tmp), [], '--apply leaves no temp directory behind');
  t.match(
    apply.stdout,
    /^virsh -c qemu:\/\/\/system attach-device vm3 \S+interface\.xml --config$/m,
  );
  const bad = vtep(['setup', 'libvirt', '--domain', 'vm 1']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /invalid --domain "vm 1"/);
  const noDevices = join(dir, 'nodev.xml');
  writeFileSync(noDevices, '<domain/>');
  t.match(
    vtep(['setup', 'libvirt', '--domain', 'x', '--domain-xml', noDevices]).stderr,
    /has no <devices> element/,
  );
});

t.test('host: a Linux bridge holding the TAP, idempotent', async (t) => {
  t.same(hostCommands({ bridge: 'br0', tap: 'vtep0' }, () => true).map(render), [
    'ip link set vtep0 master br0',
    'ip link set br0 up',
    'ip link set vtep0 up',
  ]);
  t.same(hostCommands({ bridge: 'br0', tap: 'vtep0' }, () => false).map(render), [
    'ip link add br0 type bridge',
    'ip tuntap add dev vtep0 mode tap multi_queue',
    'ip link set vtep0 master br0',
    'ip link set br0 up',
    'ip link set vtep0 up',
  ]);
  t.throws(() => hostCommands({ bridge: 'br0', tap: 'bad name' }), { name: 'ConfigError' });
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const [ns] = namespaces(t, 'hb');
  for (let i = 0; i < 2; i++) {
    const r = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        process.execPath,
        vtepBin(),
        'setup',
        'host',
        '--bridge',
        'brv',
        '--tap',
        'vtp0',
      ],
      { encoding: 'utf8' },
    );
    t.equal(r.status, 0, `run ${i + 1}: ${r.stderr}`);
  }
  const link = JSON.parse(ns.exec('ip -j -d link show vtp0'))[0];
  t.equal(link.master, 'brv', 'the TAP is a port of the bridge');
  t.equal(link.linkinfo.info_kind, 'tun');
  t.equal(
    Number.parseInt(ns.exec('cat /sys/class/net/vtp0/tun_flags'), 16) & 0x100,
    0x100,
    "with queues for vtep's workers (IFF_MULTI_QUEUE)",
  );
  t.ok(JSON.parse(ns.exec('ip -j link show brv'))[0].flags.includes('UP'));
});

t.test('systemd: a unit for vtep run --config, validated first, as its own user', async (t) => {
  chmodSync(dir, 0o711); // mkdtemp makes it 0700: the service user could not reach a file in it
  const cfg = join(dir, 'vtep.yaml');
  writeFileSync(cfg, 'local: 192.0.2.2\nvnis:\n  - vni: 5000\n    remotes: [192.0.2.1]\n');
  chmodSync(cfg, 0o644);
  const dry = vtep(['setup', 'systemd', '--config', cfg, '--dry-run']);
  t.equal(dry.status, 0, dry.stderr);
  t.match(
    dry.stdout,
    new RegExp(
      `^ExecStart=${process.execPath} \\S+/dist/src/cli/main\\.js run --config ${cfg}$`,
      'm',
    ),
  );
  for (const line of [
    "# Ordering only: with evpn, Debian's gobgpd.service is up first.",
    'After=network-online.target openvswitch-switch.service gobgpd.service',
    'WantedBy=multi-user.target',
    'Type=notify',
    'RestartPreventExitStatus=2',
    'DynamicUser=yes',
    'User=vtep',
    'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW',
    'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW',
    'RuntimeDirectory=vtep',
  ])
    t.match(dry.stdout, new RegExp(`^${line.replace(/[$.]/g, '\\$&')}$`, 'm'), line);
  t.match(
    dry.stdout,
    new RegExp(
      `^ExecReload=${process.execPath} \\S+/dist/src/cli/main\\.js reload --control /run/vtep/vtep\\.sock$`,
      'm',
    ),
    'reload through vtep reload: a refused file makes systemctl reload fail',
  );
  t.notMatch(dry.stdout, /^Nice=/m, 'no nice: in the file, no Nice=');
  // systemd lowers it: the service has no CAP_SYS_NICE (and its filter refuses setpriority)
  const eager = join(dir, 'eager.yaml');
  writeFileSync(eager, `nice: -10\n${readFileSync(cfg, 'utf8')}`);
  chmodSync(eager, 0o644);
  const e10 = vtep(['setup', 'systemd', '--config', eager, '--dry-run']);
  t.match(e10.stdout, /^Nice=-10$/m, "the file's nice: is the unit's");
  const unitDir = mkdtempSync(join(dir, 'units-'));
  const write = (...extra: string[]) =>
    vtep([
      'setup',
      'systemd',
      '--config',
      cfg,
      '--unit-dir',
      unitDir,
      '--name',
      'vtep-test',
      ...extra,
    ]);
  const w = write();
  t.equal(w.status, 0, w.stderr);
  t.match(w.stdout, /systemctl daemon-reload && systemctl enable --now vtep-test\.service/);
  const named = vtep(['setup', 'systemd', '--config', cfg, '--name', 'vtep-test', '--dry-run']);
  t.equal(readFileSync(join(unitDir, 'vtep-test.service'), 'utf8'), named.stdout);
  // A second instance has a runtime directory and control socket of its own.
  t.match(named.stdout, /^RuntimeDirectory=vtep-test$/m);
  t.match(named.stdout, /^SyslogIdentifier=vtep-test$/m);
  t.match(
    named.stdout,
    new RegExp(`^ExecStart=.* run --config ${cfg} --control /run/vtep-test/vtep\\.sock$`, 'm'),
  );
  t.match(named.stdout, /^ExecReload=.* reload --control \/run\/vtep-test\/vtep\.sock$/m);
  t.notMatch(named.stdout, /^RuntimeDirectory=vtep$/m, 'not the first one’s');
  writeFileSync(join(unitDir, 'vtep-test.service'), '# hand-edited\n');
  const again = write();
  t.equal(again.status, 2, 'an existing unit is not overwritten silently');
  t.match(again.stderr, /vtep-test\.service exists; give --force to replace it/);
  t.equal(readFileSync(join(unitDir, 'vtep-test.service'), 'utf8'), '# hand-edited\n');
  t.equal(write('--force').status, 0, '--force replaces it');
  t.equal(readFileSync(join(unitDir, 'vtep-test.service'), 'utf8'), named.stdout);
  for (const name of ['../evil', 'a/b', '.hidden', '-x', '']) {
    const r = vtep(['setup', 'systemd', '--config', cfg, '--unit-dir', unitDir, '--name', name]);
    t.equal(r.status, 2, `--name ${JSON.stringify(name)} refused`);
    t.match(r.stderr, /invalid --name .*must be a unit name/);
  }
  t.same(readdirSync(unitDir), ['vtep-test.service'], 'nothing written outside or beside it');
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'vnis:\n  - vni: -1\n');
  const b = vtep(['setup', 'systemd', '--config', bad, '--dry-run']);
  t.equal(b.status, 2, 'an invalid configuration gets no unit');
  t.match(b.stderr, /vnis\[0\]\.vni -1/);
  const elsewhere = join(dir, 'elsewhere.yaml');
  writeFileSync(elsewhere, 'control: /run/vtep.sock\nvnis:\n  - vni: 1\n');
  chmodSync(elsewhere, 0o644);
  const e = vtep(['setup', 'systemd', '--config', elsewhere, '--dry-run']);
  t.equal(e.status, 2);
  t.match(e.stderr, /control "\/run\/vtep\.sock": the service runs as its own user/);
  const secret = join(dir, 'secret.yaml');
  writeFileSync(secret, 'vnis:\n  - vni: 1\n');
  chmodSync(secret, 0o600);
  const sec = vtep(['setup', 'systemd', '--config', secret, '--dry-run']);
  t.equal(sec.status, 2);
  t.match(sec.stderr, /is not readable by the service user/);
  const closed = mkdtempSync(join(dir, 'closed-'));
  const inside = join(closed, 'vtep.yaml');
  writeFileSync(inside, 'vnis:\n  - vni: 1\n');
  chmodSync(inside, 0o644);
  const cl = vtep(['setup', 'systemd', '--config', inside, '--dry-run']);
  t.equal(cl.status, 2, 'a readable file in a directory the service user cannot enter');
  t.match(cl.stderr, /which the service user cannot enter \(not world-searchable\)/);
  // A path with a space and a %: quoted and escaped as systemd reads Exec lines.
  const odd = mkdtempSync(join(dir, 'odd '));
  chmodSync(odd, 0o711);
  const oddCfg = join(odd, 'vtep 100%.yaml');
  writeFileSync(oddCfg, 'vnis:\n  - vni: 1\n');
  chmodSync(oddCfg, 0o644);
  const o = vtep([
    'setup',
    'systemd',
    '--config',
    oddCfg,
    '--unit-dir',
    unitDir,
    '--name',
    'vtep-odd',
  ]);
  t.equal(o.status, 0, o.stderr);
  const oddUnit = readFileSync(join(unitDir, 'vtep-odd.service'), 'utf8');
  t.ok(
    oddUnit.includes(`run --config "${oddCfg.replace(/%/g, '%%')}"`),
    'the path quoted, % doubled',
  );
  if (!needs(t, { commands: ['systemd-analyze'] })) return;
  for (const unit of ['vtep-test.service', 'vtep-odd.service']) {
    const v = spawnSync('systemd-analyze', ['verify', join(unitDir, unit)], { encoding: 'utf8' });
    t.equal(v.status, 0, `systemd-analyze verify accepts ${unit} ${v.stderr}`);
    t.equal(v.stderr.trim(), '', `${unit}: nothing to complain about`);
  }
  const sec2 = spawnSync(
    'systemd-analyze',
    ['security', '--offline=yes', join(unitDir, 'vtep-test.service')],
    { encoding: 'utf8' },
  );
  const score = Number(/Overall exposure level for \S+: ([0-9.]+)/.exec(sec2.stdout)?.[1]);
  t.ok(score <= 3.5, `systemd-analyze security: exposure ${score} (at most 3.5)`);
  t.equal(quote("it's"), `'it'\\''s'`);
});
