import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { hostileConfigs } from '../helpers/configs.js';
import {
  ConfigError,
  loadConfigFile,
  readConfigFile,
  parseRemote,
  toSettings,
  validate,
} from '../../src/config/config.js';

const base = {
  local: '192.0.2.2',
  vnis: [{ vni: 5000, remotes: ['192.0.2.1', '192.0.2.3:8472'] }],
};

t.test('defaults and parsed values', async (t) => {
  const c = validate(base);
  t.same(c, {
    local: '192.0.2.2',
    port: 4789,
    underlayMtu: undefined,
    tapOffload: true,
    udp6ZeroChecksumTx: false,
    udp6ZeroChecksumRx: false,
    control: undefined,
    ageingMs: 300_000,
    maxEntries: 8192,
    reservedBits: 'drop',
    invalidSourceMac: 'deliver',
    sourcePortMode: 'hash',
    sourcePortMin: 49152,
    sourcePortMax: 65535,
    busyPoll: 0,
    ioUring: true,
    outer: {},
    vnis: [
      {
        vni: 5000,
        tap: 'vtep5000',
        mtu: undefined,
        mac: undefined,
        remotes: [
          { address: '192.0.2.1', port: 4789 },
          { address: '192.0.2.3', port: 8472 },
        ],
        learnRemotes: false,
        learning: true,
        maxEntries: undefined,
        suppressArp: false,
        outer: {},
      },
    ],
  });
  t.same(parseRemote('r', '[2001:db8::1]:8472'), { address: '2001:db8::1', port: 8472 });
  t.same(parseRemote('r', '2001:db8::1'), { address: '2001:db8::1', port: 4789 });
  // One spelling everywhere: upper case and spelled-out zeros, and IPv4-mapped addresses.
  t.same(parseRemote('r', '[2001:DB8:0:0::1]:8472'), { address: '2001:db8::1', port: 8472 });
  t.same(parseRemote('r', '::ffff:192.0.2.7'), { address: '192.0.2.7', port: 4789 });
  t.same(parseRemote('r', '[::FFFF:c000:0207]:5'), { address: '192.0.2.7', port: 5 });
  t.equal(validate({ ...base, local: '2001:DB8::0002', vnis: [{ vni: 1 }] }).local, '2001:db8::2');
  // `port` is the destination port of configured remotes too, not only of learned ones.
  t.same(validate({ ...base, port: 8472 }).vnis[0].remotes, [
    { address: '192.0.2.1', port: 8472 },
    { address: '192.0.2.3', port: 8472 },
  ]);
  const c2 = validate({
    ...base,
    ageing: '1.5',
    sourcePorts: '50000-50010',
    sourcePortMode: 'fixed',
    reservedBits: 'ignore',
    mtu: 9000,
  });
  t.equal(c2.ageingMs, 1500);
  t.equal(c2.vnis[0].mtu, 9000);
  t.equal(validate({ ...base, underlayMtu: 9050 }).underlayMtu, 9050);
  const noOffload = validate({ ...base, tapOffload: false });
  t.equal(noOffload.tapOffload, false);
  t.equal(toSettings(noOffload).tapOffload, false, 'showconf says so');
  t.same(validate(toSettings(noOffload)), noOffload);
  t.same(
    [c2.sourcePortMin, c2.sourcePortMax, c2.sourcePortMode, c2.reservedBits],
    [50000, 50010, 'fixed', 'ignore'],
  );
});

t.test('ovsdb: a gateway with or without static VNIs', async (t) => {
  const ovsdb = { target: 'unix:/run/vtep/db.sock', physicalSwitch: 'ps0', ports: ['gw0', 'gw1'] };
  const c = validate({ local: '192.0.2.2', ovsdb });
  t.same(c.ovsdb, ovsdb);
  t.same(c.vnis, [], 'no static VNI needed');
  t.same(validate(toSettings(c)), c, 'showconf round trip');
  const tcp = validate({ ...base, ovsdb: { ...ovsdb, target: 'tcp:[::1]:6640', mtu: 1400 } });
  t.same([tcp.ovsdb?.target, tcp.ovsdb?.mtu, tcp.vnis.length], ['tcp:[::1]:6640', 1400, 1]);
  t.equal(validate({ ...base, ovsdb: { ...ovsdb, maxMessageMiB: 512 } }).ovsdb?.maxMessageMiB, 512);
  const ssl = { privateKey: '/k', certificate: '/c', caCert: '/ca' };
  t.same(validate({ ...base, ovsdb: { ...ovsdb, target: 'ssl:192.0.2.9:6640', ...ssl } }).ovsdb, {
    ...ovsdb,
    target: 'ssl:192.0.2.9:6640',
    ...ssl,
  });
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { ...base, ovsdb: { ...ovsdb, target: 'pssl:6640' } },
      /config\.ovsdb\.target "pssl:6640": must be unix:PATH/,
    ],
    [
      { ...base, ovsdb: { ...ovsdb, target: 'tcp:h:99999' } },
      /config\.ovsdb\.target "tcp:h:99999": has a port outside/,
    ],
    [
      { ...base, ovsdb: { ...ovsdb, target: 'ssl:h:1' } },
      /missing config\.ovsdb\.privateKey: is needed for an ssl: target/,
    ],
    [
      { ...base, ovsdb: { ...ovsdb, ports: [] } },
      /config\.ovsdb\.ports \[\]: must list at least one TAP name/,
    ],
    [
      { ...base, ovsdb: { ...ovsdb, ports: ['a', 'a'] } },
      /config\.ovsdb\.ports\[1\] "a": appears twice/,
    ],
    [
      { ...base, ovsdb: { ...ovsdb, physicalSwitch: '' } },
      /config\.ovsdb\.physicalSwitch "": must be a Physical_Switch name/,
    ],
    [{ ...base, ovsdb: { ...ovsdb, maxMessageMiB: 0 } }, /config\.ovsdb\.maxMessageMiB 0: must be/],
    [
      { ...base, ovsdb: { ...ovsdb, colour: 1 } },
      /config\.ovsdb\.colour 1: unknown setting \(known: target, physicalSwitch, ports, mtu/,
    ],
    [
      { ...base, local: '2001:db8::2', vnis: [], ovsdb },
      /config\.local "2001:db8::2": must be the IPv4 address announced as tunnel_ips/,
    ],
    [
      { ...base, ovsdb: { ...ovsdb, ports: ['vtep5000'] } },
      /config\.vnis\[0\]\.tap "vtep5000": is an ovsdb port/,
    ],
  ];
  for (const [raw, re] of cases) t.throws(() => validate(raw), re, re.source);
});

t.test('metrics :PORT is every address, as exporters take it', async (t) => {
  t.equal(validate({ ...base, metrics: ':9110' }).metrics, '0.0.0.0:9110');
  t.equal(validate({ ...base, metrics: '[::1]:9110' }).metrics, '[::1]:9110');
});

t.test('every bad value names its field and the value', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, local: 'here' }, /^invalid config\.local "here": must be an IPv4 or IPv6 address$/],
    [{ ...base, port: 0 }, /config\.port 0: must be an integer in 1\.\.65535/],
    [{ ...base, port: '47x' }, /config\.port "47x"/],
    [{ ...base, ageing: 0 }, /config\.ageing 0: must be a number of seconds/],
    [{ ...base, ageing: [] }, /config\.ageing \[\]: must be seconds/],
    [{ ...base, maxEntries: -1 }, /config\.maxEntries -1/],
    [{ ...base, reservedBits: 'keep' }, /config\.reservedBits "keep": must be "drop" or "ignore"/],
    [{ ...base, sourcePortMode: 'random' }, /config\.sourcePortMode "random"/],
    [
      { ...base, invalidSourceMac: 'keep' },
      /config\.invalidSourceMac "keep": must be "deliver" or "drop"/,
    ],
    [{ ...base, sourcePorts: '10' }, /config\.sourcePorts "10": must be a range/],
    [
      { ...base, sourcePorts: '600-500' },
      /config\.sourcePorts "600-500": must be MIN-MAX with MIN ≤ MAX/,
    ],
    [{ ...base, sourcePorts: '0-10' }, /config\.sourcePorts "0-10": must be an integer in 1/],
    [{ ...base, sourcePorts: 5 }, /config\.sourcePorts 5: must be a range/],
    [{ ...base, port: '1e3' }, /config\.port "1e3": must be an integer/],
    [{ ...base, port: ' 5' }, /config\.port " 5": must be an integer/],
    [{ ...base, port: '0x10' }, /config\.port "0x10": must be an integer/],
    [{ ...base, ageing: '1e3' }, /config\.ageing "1e3": must be a number of seconds/],
    [{ ...base, control: '' }, /config\.control "": must be a path/],
    [{ ...base, vnis: [] }, /config\.vnis \[\]: must list at least one VNI/],
    [{ ...base, colour: 'red' }, /config\.colour "red": unknown setting/],
    [
      { ...base, vnis: [{ vni: 16777216 }] },
      /config\.vnis\[0\]\.vni 16777216: must be an integer in 0\.\.16777215/,
    ],
    [
      { ...base, vnis: [{ vni: 1, bridge: 'br/0' }] },
      /config\.vnis\[0\]\.bridge "br\/0": must be an interface name/,
    ],
    [{ ...base, vnis: [{ vni: 1, tap: 'a/b' }] }, /config\.vnis\[0\]\.tap "a\/b"/],
    [
      { ...base, vnis: [{ vni: 1, remotes: '192.0.2.1' }] },
      /config\.vnis\[0\]\.remotes "192\.0\.2\.1": must be a list/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['192.0.2.1:99999'] }] },
      /config\.vnis\[0\]\.remotes\[0\] "192\.0\.2\.1:99999": must be an integer in 1\.\.65535/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['192.0.2.1:0'] }] },
      /remotes\[0\] "192\.0\.2\.1:0": must be an integer in 1\.\.65535/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['192.0.2.1:'] }] },
      /remotes\[0\] "192\.0\.2\.1:": must be an integer/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['0.0.0.0'] }] },
      /remotes\[0\] "0\.0\.0\.0": is the unspecified address/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['239.1.1.1'] }] },
      /remotes\[0\] "239\.1\.1\.1": is a multicast group/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['255.255.255.255'] }] },
      /remotes\[0\] "255\.255\.255\.255": is the broadcast address/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['192.0.2.2'] }] },
      /remotes\[0\] "192\.0\.2\.2": is our own local address/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['fe80::1%eth0'] }] },
      /remotes\[0\] "fe80::1%eth0": is a scoped address \(%zone\): a VTEP is reached over a routed underlay/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['192.0.2.1', '192.0.2.3', '192.0.2.1:4789'] }] },
      /remotes\[2\] "192\.0\.2\.1:4789": is the same remote as config\.vnis\[0\]\.remotes\[0\] "192\.0\.2\.1"/,
    ],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['192.0.2.1', '::ffff:192.0.2.1'] }] },
      /remotes\[1\] "::ffff:192\.0\.2\.1": is the same remote as/,
    ],
    [
      {
        ...base,
        local: '2001:db8::2',
        vnis: [{ vni: 1, remotes: ['2001:DB8::1', '[2001:db8:0::1]:4789'] }],
      },
      /remotes\[1\] "\[2001:db8:0::1\]:4789": is the same remote as/,
    ],
    [
      { ...base, local: '2001:db8::2', vnis: [{ vni: 1, remotes: ['ff02::1'] }] },
      /remotes\[0\] "ff02::1": is a multicast group/,
    ],
    [
      { ...base, local: '2001:db8::2', vnis: [{ vni: 1, remotes: ['fe80::1%eth0'] }] },
      /remotes\[0\] "fe80::1%eth0": is a scoped address \(%zone\)/,
    ],
    [
      { ...base, local: '2001:db8::2', vnis: [{ vni: 1, remotes: ['fe80::1'] }] },
      /remotes\[0\] "fe80::1": is link-local \(fe80::\/10\)/,
    ],
    [
      { ...base, vnis: [{ vni: 1, mac: '01:00:5e:00:00:01' }] },
      /vnis\[0\]\.mac "01:00:5e:00:00:01": must be a unicast address/,
    ],
    [
      { ...base, vnis: [{ vni: 1, mac: '00:00:00:00:00:00' }] },
      /vnis\[0\]\.mac "00:00:00:00:00:00": must be a unicast address/,
    ],
    [{ ...base, metrics: '9110' }, /metrics "9110": must be ADDR:PORT, or :PORT for every address/],
    [
      { ...base, local: '2001:db8::2', vnis: [{ vni: 1, remotes: ['::'] }] },
      /remotes\[0\] "::": is the unspecified address/,
    ],
    [{ ...base, vnis: [{ vni: 1, remotes: [42] }] }, /config\.vnis\[0\]\.remotes\[0\] 42/],
    [
      { ...base, vnis: [{ vni: 1, remotes: ['2001:db8::1'] }] },
      /remotes\[0\] "2001:db8::1": is not of the same IP family as local 192\.0\.2\.2/,
    ],
    [{ ...base, vnis: [{ vni: 1, mac: 'nope' }] }, /config\.vnis\[0\]\.mac "nope"/],
    [{ ...base, vnis: [{ vni: 1, mtu: 20 }] }, /config\.vnis\[0\]\.mtu 20/],
    [
      { ...base, vnis: [{ vni: 1, mtu: 65535 }] },
      /config\.vnis\[0\]\.mtu 65535: must be an integer in 68\.\.65461/,
    ],
    [
      { ...base, udp6ZeroChecksumTx: true },
      /config\.udp6ZeroChecksumTx true: applies to an IPv6 underlay; local 192\.0\.2\.2 is IPv4/,
    ],
    [
      { ...base, udp6ZeroChecksumRx: 'yes' },
      /config\.udp6ZeroChecksumRx "yes": must be true or false/,
    ],
    [{ ...base, underlayMtu: 100 }, /config\.underlayMtu 100: must be an integer in 576\.\.65535/],
    [
      { ...base, vnis: [{ vni: 1, learnRemotes: 'yes' }] },
      /config\.vnis\[0\]\.learnRemotes "yes": must be true or false/,
    ],
    [{ ...base, vnis: [{ vni: 1, maxEntries: 0 }] }, /config\.vnis\[0\]\.maxEntries 0/],
    [{ ...base, vnis: [{ vni: 1, bogus: 1 }] }, /config\.vnis\[0\]\.bogus 1: unknown setting/],
    [{ ...base, vnis: [5] }, /config\.vnis\[0\] 5: must be a mapping/],
    [
      { ...base, vnis: [{ vni: 1 }, { vni: 1, tap: 'x' }] },
      /config\.vnis\[1\]\.vni 1: appears twice/,
    ],
    [
      { ...base, vnis: [{ vni: 1 }, { vni: 2, tap: 'vtep1' }] },
      /config\.vnis\[1\]\.tap "vtep1": is used by two VNIs/,
    ],
  ];
  for (const [raw, re] of cases) {
    t.throws(
      () => validate(raw),
      { name: 'ConfigError', code: 'ERR_CONFIG', message: re },
      String(re),
    );
  }
  t.throws(() => validate([] as unknown as Record<string, unknown>), ConfigError);
});

t.test('YAML files: several VNIs; unreadable and invalid files are named', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vtep-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(
    good,
    [
      'local: 192.0.2.2',
      'ageing: 60',
      'vnis:',
      '  - vni: 100',
      '    tap: red0',
      '    remotes: [192.0.2.1]',
      '  - vni: 200',
      '    learnRemotes: true',
      '',
    ].join('\n'),
  );
  const c = loadConfigFile(good);
  t.same(
    c.vnis.map((v) => [v.vni, v.tap, v.learnRemotes]),
    [
      [100, 'red0', false],
      [200, 'vtep200', true],
    ],
  );
  t.equal(c.ageingMs, 60_000);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'vnis: [1\n');
  t.throws(() => loadConfigFile(bad), {
    message: /invalid --config ".*bad\.yaml": is not valid YAML/,
  });
  t.throws(() => loadConfigFile(join(dir, 'missing.yaml')), { message: /cannot be read/ });
  const wrong = join(dir, 'wrong.yaml');
  writeFileSync(wrong, 'vnis:\n  - vni: x\n');
  t.throws(() => loadConfigFile(wrong), {
    message: new RegExp(
      `^invalid ${wrong.replace(/[.]/g, '\\.')}:2:10 vnis\\[0\\]\\.vni "x": must be an integer`,
    ),
  });
  // Positions, as a compiler gives them: the value at fault, or where a missing one belongs.
  const cases: [string, RegExp][] = [
    [
      'local: 192.0.2.2\nvnis:\n  - vni: 5000\n    remotes:\n      - 192.0.2.1\n      - 192.0.2.1:4789\n',
      /:6:9 vnis\[0\]\.remotes\[1\] "192\.0\.2\.1:4789": is the same remote as vnis\[0\]\.remotes\[0\] "192\.0\.2\.1"$/,
    ],
    ['vnis:\n  - vni: 1\n    colour: red\n', /:3:13 vnis\[0\]\.colour "red": unknown setting/],
    ['vnis:\n  - tap: x\n', /^missing .*:2:5 vnis\[0\]\.vni: must be an integer/],
    [
      'local: 10.0.0.300\nvnis: [{vni: 1}]\n',
      /:1:8 local "10\.0\.0\.300": must be an IPv4 or IPv6 address$/,
    ],
    ['vnis: [1\n', /is not valid YAML at line 2, column 1: /],
  ];
  for (const [text, re] of cases) {
    const f = join(dir, 'case.yaml');
    writeFileSync(f, text);
    t.throws(() => loadConfigFile(f), { message: re }, String(re));
  }
});

t.test('a FIFO, /dev/zero, 100 MB, billion laughs: refused by name, sync and async', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vtep-hostile-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, path, reason] of hostileConfigs(dir)) {
    const t0 = Date.now();
    t.throws(
      () => loadConfigFile(path),
      { name: 'ConfigError', field: '--config', message: reason },
      name,
    );
    await t.rejects(
      readConfigFile(path),
      { name: 'ConfigError', message: reason },
      `${name}, async`,
    );
    t.ok(Date.now() - t0 < 2000, `${name}: at once (${Date.now() - t0} ms)`);
  }
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'local: 192.0.2.2\nvnis: [{vni: 7, remotes: [192.0.2.1]}]\n');
  t.same((await readConfigFile(good)).vnis[0].vni, 7, 'a real file reads the same both ways');
  t.same(loadConfigFile(good), await readConfigFile(good));
});

t.test(
  'outer header: the file sets every VNI, a VNI its own; names the field when wrong',
  async (t) => {
    const c = validate({
      ...base,
      ttl: 'inherit',
      tos: 0x28,
      df: 'inherit',
      udpCsum: false,
      vnis: [
        { vni: 1 },
        { vni: 2, ttl: 9, tos: 'inherit', df: 'set', udpCsum: true },
        { vni: 3, ttl: 'auto', tos: '0xb8' },
      ],
    });
    t.same(c.outer, { ttl: 'inherit', tos: 0x28, df: 'inherit', udpCsum: false });
    t.same(
      c.vnis.map((v) => v.outer),
      [
        { ttl: 'inherit', tos: 0x28, df: 'inherit', udpCsum: false },
        { ttl: 9, tos: 'inherit', df: 'set', udpCsum: true },
        { tos: 0xb8, df: 'inherit', udpCsum: false },
      ],
      'per VNI over the file; ttl auto: back to the route default; hex strings read',
    );
    const v6 = validate({
      local: '2001:db8::2',
      flowLabel: 'inherit',
      vnis: [{ vni: 1 }, { vni: 2, flowLabel: '0xabcde' }],
    });
    t.same(
      v6.vnis.map((v) => v.outer.flowLabel),
      ['inherit', 0xabcde],
    );
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...base, tos: 0x2b }, /config\.tos 43: sets ECN bits \(0x3\).*RFC 6040.*0x28/],
      [{ ...base, ttl: 0 }, /config\.ttl 0: must be 1\.\.255, "inherit" or "auto"/],
      [{ ...base, ttl: 256 }, /config\.ttl/],
      [{ ...base, tos: 'dscp10' }, /config\.tos "dscp10": must be a TOS byte/],
      [{ ...base, df: 'maybe' }, /config\.df "maybe": must be "set" or "unset" or "inherit"/],
      [
        { ...base, flowLabel: 1 },
        /config\.flowLabel 1: applies to an IPv6 underlay; local is IPv4/,
      ],
      [
        { local: '2001:db8::2', vnis: [{ vni: 1, df: 'unset' }] },
        /config\.vnis\[0\]\.df "unset": applies to an IPv4 underlay/,
      ],
      [
        { local: '2001:db8::2', vnis: [{ vni: 1 }], udpCsum: false },
        /config\.udpCsum false: applies to an IPv4 underlay.*udp6ZeroChecksumTx/,
      ],
      [
        { local: '2001:db8::2', vnis: [{ vni: 1, flowLabel: 0x100000 }] },
        /config\.vnis\[0\]\.flowLabel 1048576: must be a flow label/,
      ],
    ];
    for (const [raw, re] of bad) t.throws(() => validate(raw), re, String(re));
    t.same(validate(toSettings(c)), c, 'showconf keeps the outer header (file and VNIs)');
    t.same(validate(toSettings(v6)), v6);
  },
);

t.test(
  'group: a multicast underlay per VNI, with its interface; names the field when wrong',
  async (t) => {
    const c = validate({
      ...base,
      vnis: [
        { vni: 1, group: '239.1.1.1' },
        { vni: 2, group: '239.1.1.2', interface: 'eth1', remotes: ['192.0.2.9'] },
        { vni: 3, group: '239.1.1.3', learnRemotes: false },
        { vni: 4 },
      ],
    });
    t.same(
      c.vnis.map((v) => [v.group, v.interface, v.learnRemotes, v.remotes.length]),
      [
        ['239.1.1.1', undefined, true, 0],
        ['239.1.1.2', 'eth1', true, 1],
        ['239.1.1.3', undefined, false, 0],
        [undefined, undefined, false, 0],
      ],
      'a group learns its senders unless told not to; remotes beside it',
    );
    t.same(validate(toSettings(c)), c, 'showconf round trip');
    const v6 = validate({
      local: '::',
      vnis: [{ vni: 1, group: 'FF05:0::100', interface: 'eth0' }],
    });
    t.equal(v6.vnis[0].group, 'ff05::100', 'canonical');
    const bad: [Record<string, unknown>, RegExp][] = [
      [
        { ...base, vnis: [{ vni: 1, group: '192.0.2.7' }] },
        /vnis\[0\]\.group "192\.0\.2\.7": must be a multicast group/,
      ],
      [
        { ...base, vnis: [{ vni: 1, group: 'ff05::100' }] },
        /vnis\[0\]\.group "ff05::100": is not of the same IP family as local 192\.0\.2\.2/,
      ],
      [
        { ...base, vnis: [{ vni: 1, group: '224.0.0.251' }] },
        /group "224\.0\.0\.251": is a link-local/,
      ],
      [
        { local: '2001:db8::2', vnis: [{ vni: 1, group: 'ff02::1' }] },
        /group "ff02::1": is a link-local/,
      ],
      [
        { local: '0.0.0.0', vnis: [{ vni: 1, group: '239.1.1.1' }] },
        /missing config\.vnis\[0\]\.interface: is needed with a group when local is 0\.0\.0\.0/,
      ],
      [
        { ...base, vnis: [{ vni: 1, interface: 'eth0' }] },
        /vnis\[0\]\.interface "eth0": is the interface of a group: give group too/,
      ],
      [
        { ...base, vnis: [{ vni: 1, group: '239.1.1.1', interface: 'no such/if' }] },
        /vnis\[0\]\.interface "no such\/if": must be an interface name/,
      ],
      [{ ...base, vnis: [{ vni: 1, group: 5 }] }, /vnis\[0\]\.group 5: must be a multicast group/],
    ];
    for (const [raw, re] of bad) t.throws(() => validate(raw), re, String(re));
  },
);
