// The vtep command line (src/cli) against control servers: exit statuses, flags named in
// errors, the real command table, the bin through a symlink.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { hostileConfigs } from '../helpers/configs.js';
import { parse as parseYaml } from 'yaml';
import { main } from '../../src/cli/main.js';
import { toSettings, validate } from '../../src/config/config.js';
import { request } from '../../src/control/client.js';
import { ControlServer } from '../../src/control/server.js';
import { controlCommands } from '../../src/daemon/commands.js';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { vtepBin } from '../../src/lab/topology.js';

const dir = mkdtempSync(join(tmpdir(), 'vtep-control-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('CLI: bad input exits 2 naming the flag; help exits 0', async (t) => {
  const errors: string[] = [];
  t.intercept(process.stderr, 'write', { value: (s: string) => (errors.push(String(s)), true) });
  t.intercept(process.stdout, 'write', { value: () => true });
  const run = (...args: string[]) => main(['node', 'vtep', ...args]);
  t.equal(await run('run', '--vni', 'x'), 2);
  t.match(errors.pop(), /invalid --vni "x": must be an integer in 0\.\.16777215/);
  t.equal(await run('run'), 2);
  t.match(errors.pop(), /missing --vni: required \(or give --config FILE, or --ovsdb\)/);
  // The OVSDB gateway from flags: each mistake names its flag.
  const gw = ['run', '--local', '192.0.2.2', '--ovsdb', 'unix:/run/vtep.db'];
  t.equal(await run(...gw, '--tap', 'gw0'), 2);
  t.match(errors.pop(), /missing --physical-switch: required with --ovsdb/);
  t.equal(await run(...gw, '--physical-switch', 'ps0'), 2);
  t.match(errors.pop(), /missing --tap: required with --ovsdb: the TAP\(s\) to create as ports/);
  t.equal(await run(...gw, '--physical-switch', 'ps0', '--tap', 'gw0', '--vni', '5'), 2);
  t.match(errors.pop(), /invalid --vni "5": cannot be given with --ovsdb/);
  t.equal(await run(...gw, '--physical-switch', 'ps0', '--tap', 'gw0', '--remote', '192.0.2.1'), 2);
  t.match(errors.pop(), /invalid --remote "192\.0\.2\.1": sets a static VNI/);
  t.equal(await run(...gw, '--physical-switch', 'ps0', '--tap', 'gw0', '--tap', 'gw0'), 2);
  t.match(errors.pop(), /invalid --tap "gw0": appears twice/);
  t.equal(
    await run(
      'run',
      '--local',
      '192.0.2.2',
      '--ovsdb',
      'tcp:x',
      '--physical-switch',
      'p',
      '--tap',
      'g',
    ),
    2,
  );
  t.match(
    errors.pop(),
    /invalid --ovsdb "tcp:x": must be unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT/,
  );
  t.equal(
    await run(
      'run',
      '--ovsdb',
      'ssl:192.0.2.1:6640',
      '--local',
      '192.0.2.2',
      '--physical-switch',
      'p',
      '--tap',
      'g',
    ),
    2,
  );
  t.match(errors.pop(), /missing --ovsdb-private-key: is needed for an ssl: target/);
  t.equal(await run('run', '--ovsdb', 'unix:/x', '--physical-switch', 'p', '--tap', 'g'), 2);
  t.match(
    errors.pop(),
    /invalid --local "0\.0\.0\.0": must be the IPv4 address announced as tunnel_ips/,
  );
  t.equal(await run('run', '--vni', '1', '--physical-switch', 'p'), 2);
  t.match(errors.pop(), /invalid --physical-switch "p": needs --ovsdb/);
  t.equal(await run('run', '--vni', '1', '--tap', 'a', '--tap', 'b'), 2);
  t.match(errors.pop(), /invalid --tap "b": is a second TAP/);
  t.equal(await run('run', '--vni', '1', '--local', 'nowhere'), 2);
  t.match(errors.pop(), /invalid --local "nowhere"/);
  t.equal(await run('run', '--vni', '1', '--remote', '192.0.2.1', '--remote', 'x'), 2);
  t.match(errors.pop(), /invalid --remote "x"/);
  t.equal(await run('run', '--vni', '1', '--max-entries', '0'), 2);
  t.match(errors.pop(), /invalid --max-entries "0"/);
  t.equal(await run('run', '--vni', '1', '--reserved-bits', 'maybe'), 2);
  t.match(
    errors.join(''),
    /vtep: option '--reserved-bits <policy>' argument 'maybe' is invalid\. Allowed choices are drop, ignore\./,
  );
  errors.length = 0;
  t.equal(await run('run', '--vni', '1', '--tap', 'x'.repeat(20)), 2);
  t.match(errors.pop(), /invalid --tap/);
  t.equal(await run('run', '--config', join(dir, 'none.yaml')), 2);
  t.match(errors.pop(), /invalid --config ".*none\.yaml": cannot be read/);
  t.equal(await run('run', '--config', join(dir, 'x.yaml'), '--vni', '5'), 2);
  t.match(errors.join(''), /vtep: option '--vni <n>' cannot be used with option '--config <file>'/);
  errors.length = 0;
  t.equal(await run('run', '--vni', '1', '--remote', '192.0.2.1', '--remote', '192.0.2.1:4789'), 2);
  t.match(
    errors.pop(),
    /invalid --remote "192\.0\.2\.1:4789": is the same remote as --remote "192\.0\.2\.1"/,
  );
  t.equal(await run('run', '--vni', '1', '--remote', '192.0.2.1:0'), 2);
  t.match(errors.pop(), /invalid --remote "192\.0\.2\.1:0": must be an integer in 1\.\.65535/);
  t.equal(await run('run', '--vni', '1', '--source-ports', '5-4'), 2);
  t.match(errors.pop(), /invalid --source-ports "5-4": must be MIN-MAX with MIN ≤ MAX/);
  t.equal(await run('run', '--vni', '1e3'), 2);
  t.match(errors.pop(), /invalid --vni "1e3"/);
  t.equal(await run('run', '--no-such-flag'), 2);
  t.equal(await run('--help'), 0);
  t.equal(await run('stats', '--control', join(dir, 'absent.sock')), 1);
  t.match(errors.pop(), /control socket .*absent\.sock.*\[ENOENT\]/);
});

t.test('CLI against the real command table: bad input exits 2 naming the flag', async (t) => {
  const path = join(dir, 'cmds.sock');
  const remotes = new Remotes();
  const fdb = new Fdb();
  fdb.addVni(5000, { flood: [remotes.get('192.0.2.1')] });
  let reloads = 0;
  let cfg = validate({ local: '192.0.2.2', vnis: [{ vni: 5000, remotes: ['192.0.2.1'] }] });
  const server = await ControlServer.listen(
    path,
    controlCommands({
      fdb,
      remotes,
      config: () => cfg,
      change: (edit) => {
        const settings = toSettings(cfg);
        edit(settings);
        cfg = validate(settings, 'the running configuration');
        // as a reload does: the FDB has a table for exactly the configured VNIs
        for (const v of cfg.vnis) if (!fdb.hasVni(v.vni)) fdb.addVni(v.vni);
        for (const v of fdb.vnis()) if (!cfg.vnis.some((x) => x.vni === v)) fdb.removeVni(v);
        return ['changed'];
      },
      tapOf: () => 'vtep0',
      stats: () => ({}) as never,
      status: () => ({
        healthy: false,
        problems: ['tap x (vni 5000) is down for 1.0 s'],
        uptimeSeconds: 3,
        taps: [],
      }),
      reload: () => (reloads++, ['no changes']),
    }),
  );
  t.teardown(() => server.close());
  // The real CLI in a child process (asynchronously: this process serves the socket).
  const out: string[] = [];
  const errors: string[] = [];
  const vtep = (...args: string[]) =>
    new Promise<number>((resolve) => {
      const p = spawn(process.execPath, [vtepBin(), ...args, '--control', path]);
      let o = '';
      let e = '';
      p.stdout.on('data', (d) => (o += d));
      p.stderr.on('data', (d) => (e += d));
      p.on('close', (code) => {
        out.push(o);
        errors.push(e);
        resolve(code ?? -1);
      });
    });
  const cases: [string[], RegExp][] = [
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', 'abc', '--remote', '192.0.2.3'],
      /^vtep: option '--vni <n>' argument 'abc' is invalid\. must be an integer in 0\.\.16777215\n/,
    ],
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', '1e3', '--remote', '192.0.2.3'],
      /option '--vni <n>' argument '1e3' is invalid/,
    ],
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', ' 5000', '--remote', '192.0.2.3'],
      /option '--vni <n>' argument ' 5000' is invalid/,
    ],
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', '7', '--remote', '192.0.2.3'],
      /^vtep: invalid --vni 7: is not configured \(configured: 5000\)\n$/,
    ],
    [
      ['fdb', 'add', 'zz', '--vni', '5000', '--remote', '192.0.2.3'],
      /invalid MAC "zz": must be a MAC address/,
    ],
    [
      ['fdb', 'add', '01:00:5e:00:00:01', '--vni', '5000', '--remote', '192.0.2.3'],
      /invalid MAC "01:00:5e:00:00:01": is not a unicast address/,
    ],
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', '5000', '--remote', '0.0.0.0'],
      /invalid --remote "0\.0\.0\.0": is the unspecified address/,
    ],
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', '5000', '--remote', '2001:db8::1'],
      /invalid --remote "2001:db8::1": is not of the same IP family as local 192\.0\.2\.2/,
    ],
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', '5000', '--remote', '192.0.2.2'],
      /invalid --remote "192\.0\.2\.2": is our own local address/,
    ],
    [
      ['fdb', 'add', '02:00:00:00:00:01', '--vni', '5000', '--remote', '192.0.2.3', '--port', '0'],
      /option '--port <port>' argument '0' is invalid\. must be an integer in 1\.\.65535/,
    ],
    [
      ['fdb', 'del', '02:00:00:00:00:09', '--vni', '5000'],
      /invalid MAC "02:00:00:00:00:09": has no entry in vni 5000/,
    ],
    [
      ['fdb', 'flush', '--remote', 'nowhere'],
      /invalid --remote "nowhere": must be an IPv4 or IPv6 address/,
    ],
    [
      ['fdb', 'show', '--vni', '-1'],
      /option '--vni <n>' argument '-1' is invalid\. must be an integer/,
    ],
  ];
  for (const [args, re] of cases) {
    t.equal(await vtep(...args), 2, `exit 2: ${args.join(' ')}`);
    t.match(errors.pop(), re);
  }
  t.equal(
    await vtep('fdb', 'add', '02:00:00:00:00:01', '--vni', '5000', '--remote', '::ffff:192.0.2.3'),
    0,
  );
  t.equal(
    fdb.get(5000, 0x020000000001)?.remote.key,
    '192.0.2.3:4789',
    'a mapped address is the IPv4 remote',
  );
  t.equal(await vtep('fdb', 'flush', '--remote', '192.0.2.3'), 0);
  t.equal(out.pop(), 'removed 1\n', 'so flushing by the IPv4 spelling finds it');
  t.equal(await vtep('status'), 1, 'status exits 1 when degraded');
  t.match(out.pop(), /^degraded: up 3 s, 0 VNIs\n  problem: tap x \(vni 5000\) is down/);
  t.equal(await vtep('reload'), 0);
  t.equal(reloads, 1);

  fdb.addStatic(5000, 0x0200000000aa, remotes.get('192.0.2.3'), 0);
  // Live changes: the same rules as the file, exit 2 naming what was typed.
  const live: [string[], RegExp][] = [
    [
      ['remote', 'add', '192.0.2.1', '--vni', '5000'],
      /^vtep: invalid ADDR "192\.0\.2\.1": is already a remote of vni 5000\n$/,
    ],
    [
      ['remote', 'add', '::ffff:192.0.2.1', '--vni', '5000'],
      /invalid ADDR "::ffff:192\.0\.2\.1": is already a remote of vni 5000/,
    ],
    [
      ['remote', 'add', '0.0.0.0', '--vni', '5000'],
      /invalid ADDR "0\.0\.0\.0": is the unspecified address/,
    ],
    [['remote', 'add', '192.0.2.7', '--vni', '9'], /invalid --vni 9: is not configured/],
    [
      ['remote', 'del', '192.0.2.7', '--vni', '5000'],
      /invalid ADDR "192\.0\.2\.7": is not a remote of vni 5000/,
    ],
    [['vni', 'add', '--vni', '5000'], /invalid --vni 5000: is already configured/],
    [
      ['vni', 'add', '--vni', '6000', '--tap', 'a/b'],
      /^vtep: invalid --tap "a\/b": must be an interface name/,
    ],
    [
      ['vni', 'add', '--vni', '6000', '--tap', 'vtep5000'],
      /^vtep: invalid --tap "vtep5000": is used by two VNIs/,
    ],
    [
      ['vni', 'add', '--vni', '6000', '--mtu', '70000'],
      /^vtep: option '--mtu <bytes>' argument '70000' is invalid/,
    ],
    [
      ['vni', 'add', '--vni', '6000', '--remote', 'nope'],
      /invalid --vni 6000: must be an IPv4 or IPv6 address/,
    ],
    [['vni', 'del', '--vni', '5000'], /invalid --vni 5000: is the only VNI; stop vtep instead/],
    [
      ['fdb', 'add', '02:00:00:00:00:aa', '--vni', '5000', '--remote', '192.0.2.3'],
      /invalid MAC "02:00:00:00:00:aa": already has an entry in vni 5000 \(give --replace\)/,
    ],
    [
      ['fdb', 'flush', '--port', '4789'],
      /^vtep: invalid --port 4789: goes with --remote \(the UDP port of that remote\)\n$/,
    ],
  ];
  for (const [args, re] of live) {
    t.equal(await vtep(...args), 2, `exit 2: ${args.join(' ')}`);
    t.match(errors.pop(), re);
  }
  t.ok(fdb.get(5000, 0x0200000000aa), '--port alone flushed nothing, not the whole table');
  t.equal(
    await vtep(
      'fdb',
      'add',
      '02:00:00:00:00:aa',
      '--vni',
      '5000',
      '--remote',
      '192.0.2.7',
      '--replace',
    ),
    0,
  );
  t.equal(fdb.get(5000, 0x0200000000aa)?.remote.key, '192.0.2.7:4789', '--replace replaces');
  t.equal(await vtep('remote', 'add', '192.0.2.3:8472', '--vni', '5000'), 0);
  t.equal(out.pop(), 'changed\n');
  t.equal(await vtep('vni', 'add', '--vni', '6000', '--remote', '192.0.2.9', '--learn-remotes'), 0);
  t.equal(await vtep('showconf'), 0);
  const shown = out.pop()!;
  t.match(shown, /^local: 192\.0\.2\.2\n/);
  t.same(validate(parseYaml(shown)), cfg, 'showconf prints exactly the running configuration');
  t.same(cfg.vnis[0].remotes, [
    { address: '192.0.2.1', port: 4789 },
    { address: '192.0.2.3', port: 8472 },
  ]);
  t.match(cfg.vnis[1], { vni: 6000, tap: 'vtep6000', learnRemotes: true });
  t.equal(await vtep('remote', 'del', '192.0.2.3', '--port', '8472', '--vni', '5000'), 0);
  t.equal(await vtep('vni', 'del', '--vni', '6000'), 0);
  t.same(
    cfg.vnis.map((v) => [v.vni, v.remotes.length]),
    [[5000, 1]],
  );
  t.equal(await vtep('fdb', 'show'), 0);
  t.match(
    out.pop(),
    /^00:00:00:00:00:00 dev vtep0 dst 192\.0\.2\.1 port 4789 vni 5000 self permanent$/m,
    'the flood list, as bridge fdb show lists the all-zeros entries',
  );
  // Where the socket is: a flag before the verb, or VTEP_CONTROL; a bare `vtep fdb` lists.
  const bare = (env: Record<string, string>, ...args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, [vtepBin(), ...args], { env: { ...process.env, ...env } });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    });
  const listed = await bare({ VTEP_CONTROL: path }, 'fdb');
  t.equal(listed.code, 0, 'VTEP_CONTROL, and a bare fdb');
  t.match(
    listed.out,
    /^00:00:00:00:00:00 dev vtep0 dst 192\.0\.2\.1 port 4789 vni 5000 self permanent$/m,
  );
  t.equal(
    (await bare({ VTEP_CONTROL: '/nonexistent' }, '--control', path, 'fdb', 'show')).code,
    0,
    'a flag before the verb wins over the environment',
  );
  const after = await bare({ VTEP_CONTROL: '/nonexistent' }, 'fdb', 'show', '--control', path);
  t.equal(after.code, 0, 'so does one after it');
  t.equal(
    (
      await bare(
        {},
        'fdb',
        'replace',
        '02:00:00:00:00:aa',
        '--vni',
        '5000',
        '--remote',
        '192.0.2.9',
        '--control',
        path,
      )
    ).code,
    0,
  );
  t.equal(fdb.get(5000, 0x0200000000aa)?.remote.key, '192.0.2.9:4789', 'fdb replace replaces');
  t.equal(
    (
      await bare(
        {},
        'fdb',
        'replace',
        '02:00:00:00:00:ab',
        '--vni',
        '5000',
        '--remote',
        '192.0.2.9',
        '--control',
        path,
      )
    ).code,
    0,
  );
  t.ok(fdb.get(5000, 0x0200000000ab), 'and adds what is not there');
  const usage = await bare({}, 'fdb', 'add', '--vni', '5000');
  t.equal(usage.code, 2);
  t.same(
    usage.err.trimEnd().split('\n'),
    ["vtep: required option '--remote <addr>' not specified", "(see 'vtep fdb add --help')"],
    'a usage error is its line and where to read more, not the whole help',
  );

  // The protocol itself is strict: what the CLI never sends is refused, not guessed at.
  fdb.addStatic(5000, 0x0200000000aa, remotes.get('192.0.2.3'), 0);
  await t.rejects(request(path, { cmd: 'fdb.flush', learnedOnly: 'yes' }), {
    code: 'ERR_ARG',
    message: 'invalid learnedOnly "yes": must be a boolean',
  });
  await t.rejects(request(path, { cmd: 'fdb.show', vni: '5000' }), {
    code: 'ERR_ARG',
    field: 'vni',
  });
  t.ok(fdb.get(5000, 0x0200000000aa), 'the static entry survived the bad flush');
});

t.test('vtep run on an address this host does not have: exit 2 naming it', async (t) => {
  for (const [local, shown] of [
    ['192.0.2.77', '192.0.2.77'],
    ['2001:db8::77', '2001:db8::77'],
  ]) {
    const r = spawnSync(
      process.execPath,
      [vtepBin(), 'run', '--vni', '1', '--local', local, '--control', join(dir, 'nowhere.sock')],
      { encoding: 'utf8', timeout: 20_000 },
    );
    t.equal(r.status, 2, `exit 2 for ${local}`);
    t.equal(
      r.stderr,
      `vtep: invalid local "${shown}": is not an address of this host (no interface has it)\n`,
    );
  }
});

t.test('the bin works through a symlink (npm install -g, npx); --version', async (t) => {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  symlinkSync(vtepBin(), join(bin, 'vtep'));
  const help = spawnSync(process.execPath, [join(bin, 'vtep'), '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /^Usage: vtep \[options\] \[command\]/);
  const version = spawnSync(process.execPath, [join(bin, 'vtep'), '--version'], {
    encoding: 'utf8',
  });
  t.equal(version.stdout.trim(), JSON.parse(readFileSync('package.json', 'utf8')).version);
  const bad = spawnSync(
    process.execPath,
    [join(bin, 'vtep'), 'stats', '--control', join(dir, 'none.sock')],
    {
      encoding: 'utf8',
    },
  );
  t.equal(bad.status, 1);
  t.match(
    bad.stderr,
    /^vtep: control socket .*none\.sock: connect ENOENT .* \[ENOENT\]\n$/,
    'one line, no stack',
  );
});

t.test('vtep run --config with a file that is not a configuration: exit 2, named', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'vtep-cli-cfg-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  for (const [name, path, reason] of hostileConfigs(d)) {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [vtepBin(), 'run', '--config', path], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    t.equal(r.status, 2, `${name}: exit 2 (${Date.now() - t0} ms)`);
    t.match(r.stderr, reason, `${name}: says why`);
  }
});

t.test(
  'a --control path longer than a unix socket holds: exit 2 before anything is made',
  async (t) => {
    const d = mkdtempSync(join(tmpdir(), 'vtep-cli-ctl-'));
    t.teardown(() => rmSync(d, { recursive: true, force: true }));
    const long = join(d, 'x'.repeat(120 - d.length) + '.sock');
    for (const args of [
      ['run', '--vni', '5', '--control', long],
      ['run', '--config', join(d, 'none.yaml'), '--control', long],
    ]) {
      const r = spawnSync(process.execPath, [vtepBin(), ...args], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      t.equal(r.status, 2, args.join(' ').slice(0, 40));
      t.match(
        r.stderr,
        /invalid --control ".*": is 1\d\d bytes; a unix socket path holds at most 107/,
      );
    }
    t.same(readdirSync(d), [], 'no socket, no stray file');
  },
);
