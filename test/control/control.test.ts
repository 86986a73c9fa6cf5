import { spawn, spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { formatFdb, formatStats } from '../../src/control/format.js';
import {
  ControlError,
  ControlServer,
  Rows,
  Subscription,
  request,
  subscribe,
  type Command,
} from '../../src/control/server.js';
import { until } from '../../src/lab/sh.js';
import { main } from '../../src/cli/main.js';
import { controlCommands } from '../../src/daemon/commands.js';
import { toSettings, validate } from '../../src/config/config.js';
import { parse as parseYaml } from 'yaml';
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { vtepBin } from '../../src/lab/topology.js';

const dir = mkdtempSync(join(tmpdir(), 'vtep-control-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const cmd = (run: Command['run'], fields: Command['fields'] = {}): Command => ({ fields, run });

/** Send raw text, collect everything until the server closes or `until` matches. */
function rawExchange(path: string, text: string, until?: RegExp): Promise<string> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    let out = '';
    c.on('data', (d) => {
      out += d;
      if (until?.test(out)) (c.end(), resolve(out));
    });
    c.on('close', () => resolve(out));
    c.write(text);
  });
}

t.test('requests and answers over a 0600 unix socket', async (t) => {
  const path = join(dir, 'a.sock');
  const server = await ControlServer.listen(path, {
    echo: cmd((args) => ({ got: args.x }), { x: 'integer', 'y?': 'string' }),
    fail: cmd(() => {
      throw new ControlError('ERR_NOPE', 'nope');
    }),
    plain: cmd(() => {
      throw new Error('plain');
    }),
    later: cmd(async () => 'done'),
  });
  t.teardown(() => server.close());
  t.equal(statSync(path).mode & 0o777, 0o600, 'only the owner may connect');
  t.same(await request(path, { cmd: 'echo', x: 42 }), { got: 42 });
  t.equal(await request(path, { cmd: 'later' }), 'done', 'a handler may answer later');
  await t.rejects(request(path, { cmd: 'fail' }), { code: 'ERR_NOPE', message: 'nope' });
  await t.rejects(request(path, { cmd: 'plain' }), { code: 'ERR_FAILED', message: 'plain' });
  await t.rejects(request(path, { cmd: 'nosuch' }), {
    code: 'ERR_UNKNOWN_COMMAND',
    message: /known: echo, fail, plain/,
  });
  await t.rejects(request(path, { cmd: 'toString' }), { code: 'ERR_UNKNOWN_COMMAND' });
  // Every field is typed; unknown and mistyped fields are refused, naming the field.
  await t.rejects(request(path, { cmd: 'echo', x: '42' }), {
    code: 'ERR_ARG',
    field: 'x',
    message: 'invalid x "42": must be an integer',
  });
  await t.rejects(request(path, { cmd: 'echo', x: 1.5 }), { code: 'ERR_ARG', field: 'x' });
  await t.rejects(request(path, { cmd: 'echo', x: 1, y: true }), {
    message: 'invalid y true: must be a string',
  });
  await t.rejects(request(path, { cmd: 'echo', x: 1, learnedOnly: 'yes' }), {
    code: 'ERR_ARG',
    field: 'learnedOnly',
    message: /unknown field \(known: x, y\)/,
  });
  await t.rejects(request(path, { cmd: 'echo' }), { code: 'ERR_ARG', message: 'missing x' });
  t.match(JSON.parse(await rawExchange(path, 'not json\n', /\n/)), {
    ok: false,
    code: 'ERR_BAD_REQUEST',
  });
  t.match(JSON.parse(await rawExchange(path, '[1]\n', /\n/)), { code: 'ERR_BAD_REQUEST' });
  const long = await rawExchange(path, 'x'.repeat(70_000));
  t.match(JSON.parse(long), { code: 'ERR_TOO_LONG' }, 'an endless line is cut off');
  await t.rejects(ControlServer.listen(path, {}), {
    code: 'EADDRINUSE',
    message: /is another vtep running/,
  });
});

t.test(
  'only a stale socket is replaced; files, directories and missing directories are refused',
  async (t) => {
    const path = join(dir, 'stale.sock');
    const s = createServer().listen(path);
    await new Promise((r) => s.once('listening', r));
    // simulate a crash: close the listener but leave the file
    s.close();
    writeFileSync(join(dir, 'keep'), '');
    const server = await ControlServer.listen(path, { ping: cmd(() => 'pong') });
    t.equal(await request(path, { cmd: 'ping' }), 'pong');
    await server.close();
    await t.rejects(request(path, { cmd: 'ping' }), {
      code: 'ENOENT',
      message: /is vtep running with this --control path/,
    });
    const config = join(dir, 'vtep.yaml');
    writeFileSync(config, 'local: 192.0.2.2\n');
    await t.rejects(ControlServer.listen(config, {}), {
      code: 'ERR_CONTROL_PATH',
      message: `control socket ${config}: a regular file is there; refusing to replace it (choose another --control path)`,
    });
    t.equal(readFileSync(config, 'utf8'), 'local: 192.0.2.2\n', 'the file is untouched');
    await t.rejects(ControlServer.listen(dir, {}), { message: /a directory is there/ });
    await t.rejects(ControlServer.listen(join(dir, 'no', 'such', 'dir.sock'), {}), {
      code: 'ENOENT',
      message: /^control socket .*\/no\/such\/dir\.sock: directory .*\/no\/such does not exist$/,
    });
  },
);

t.test('close() ends idle clients at once; idle connections time out', async (t) => {
  const path = join(dir, 'idle.sock');
  const server = await ControlServer.listen(path, { ping: cmd(() => 'pong') }, { idleMs: 200 });
  const idle = createConnection(path);
  await new Promise((r) => idle.once('connect', r));
  const closedByTimeout = new Promise<number>((r) => {
    const t0 = Date.now();
    idle.once('close', () => r(Date.now() - t0));
  });
  t.ok((await closedByTimeout) < 2000, 'an idle client is dropped after idleMs');
  const clients = await Promise.all(
    [1, 2, 3].map(
      () =>
        new Promise<ReturnType<typeof createConnection>>((r) => {
          const c = createConnection(path);
          c.once('connect', () => r(c));
        }),
    ),
  );
  await until(() => server.connections === 3);
  const t0 = Date.now();
  await server.close();
  t.ok(Date.now() - t0 < 200, `close() did not wait for the clients (${Date.now() - t0} ms)`);
  t.equal(server.connections, 0);
  for (const c of clients) c.destroy();
});

t.test(
  'long lists are streamed in chunks; a client that does not read is not served',
  async (t) => {
    const path = join(dir, 'rows.sock');
    let produced = 0;
    let turns = 0;
    const server = await ControlServer.listen(
      path,
      {
        rows: cmd(
          () =>
            new Rows(
              (function* () {
                for (let i = 0; i < 40; i++) {
                  const chunk = Array.from({ length: 250 }, (_, k) => ({
                    i: i * 250 + k,
                    pad: 'x'.repeat(80),
                  }));
                  produced += chunk.length;
                  yield chunk;
                }
              })(),
            ),
        ),
        empty: cmd(() => new Rows([[], []])),
      },
      { highWater: 64 * 1024, maxQueued: 4 },
    );
    t.teardown(() => server.close());
    const ticker = setInterval(() => turns++, 0);
    const rows = (await request(path, { cmd: 'rows' })) as { i: number }[];
    clearInterval(ticker);
    t.equal(rows.length, 10_000, 'every row arrives');
    t.ok(
      rows.every((r, k) => r.i === k),
      'in order, as one JSON array',
    );
    t.ok(turns > 5, `timers ran while the list was written (${turns} turns)`);
    t.same(await request(path, { cmd: 'empty' }), []);

    // 500 pipelined requests in one write, never read: the server stops after a bounded amount
    // of unread output instead of producing all 500 answers (the data path shares this thread).
    produced = 0;
    const greedy = createConnection(path);
    greedy.write('{"cmd":"rows"}\n'.repeat(500));
    greedy.pause();
    await new Promise((r) => setTimeout(r, 500));
    t.ok(
      produced < 10_000 * 3,
      `at most a few answers produced for a client that does not read (${produced} rows)`,
    );
    t.equal(
      await request(path, { cmd: 'empty' }).then(() => 'served'),
      'served',
      'others are still served',
    );
    greedy.destroy();
  },
);

t.test('the client turns a broken answer into one error line', async (t) => {
  const path = join(dir, 'broken.sock');
  const s = createServer((c) => c.end('<html>\n')).listen(path);
  await new Promise((r) => s.once('listening', r));
  t.teardown(() => s.close());
  await t.rejects(request(path, { cmd: 'x' }), {
    code: 'ERR_BAD_ANSWER',
    message: /the answer is not JSON: "<html>\\n"/,
  });
  const path2 = join(dir, 'mute.sock');
  const s2 = createServer((c) => c.end()).listen(path2);
  await new Promise((r) => s2.once('listening', r));
  t.teardown(() => s2.close());
  await t.rejects(request(path2, { cmd: 'x' }), {
    code: 'ERR_BAD_ANSWER',
    message: /closed without an answer/,
  });
  const path3 = join(dir, 'slow.sock');
  const s3 = createServer(() => {}).listen(path3);
  await new Promise((r) => s3.once('listening', r));
  t.teardown(() => s3.close());
  await t.rejects(request(path3, { cmd: 'x' }, 100), { code: 'ETIMEDOUT' });
});

t.test('text formats', async (t) => {
  t.equal(
    formatFdb(
      [
        {
          vni: 5000,
          mac: '52:54:00:00:00:0a',
          remote: '192.0.2.1:4789',
          static: false,
          source: 'learned',
          ageSeconds: 3,
          usedSeconds: 1,
        },
        {
          vni: 5000,
          mac: '52:54:00:00:00:0c',
          remote: '[2001:db8::3]:8472',
          static: true,
          source: 'static',
          ageSeconds: 9,
          usedSeconds: 9,
        },
        {
          vni: 5000,
          mac: '52:54:00:00:00:0d',
          remote: '192.0.2.9:4789',
          static: true,
          source: 'ovsdb',
          ageSeconds: 0,
          usedSeconds: 0,
        },
      ],
      () => 'vtep0',
    ),
    '52:54:00:00:00:0a dev vtep0 dst 192.0.2.1 port 4789 vni 5000 self age 3s used 1s\n' +
      '52:54:00:00:00:0c dev vtep0 dst 2001:db8::3 port 8472 vni 5000 self permanent\n' +
      '52:54:00:00:00:0d dev vtep0 dst 192.0.2.9 port 4789 vni 5000 self permanent extern_learn ovsdb',
  );
  const s = {
    underlay: '192.0.2.2:4789',
    sourcePorts: 'hash 49152-65535',
    vnis: [
      {
        vni: 5000,
        tap: 'vtep0',
        remotes: [],
        learnRemotes: true,
        tapUp: true,
        fdbEntries: 2,
        rx: { packets: 1, bytes: 60 },
        tx: { packets: 2, bytes: 120 },
        drops: { no_remote: 4 },
      },
    ],
    drops: { vni_unknown: 3, no_remote: 4 },
    icmpTooBig: 2,
    pathMaxFrame: 1464,
    offload: {
      superFrames: 3,
      segments: 130,
      checksums: 5,
      gsoSends: 2,
      coalesced: 4,
      coalescedSegments: 90,
      checksumBad: 1,
      groDatagrams: 0,
      groSegments: 0,
    },
    kernel: { udpReceiveDrops: 7, tapQueueDrops: [{ vni: 5000, drops: null }] },
    fdb: { entries: 2, learned: 2, moved: 0, aged: 0, evicted: 0, capHit: 0, staticConflict: 0 },
  };
  t.equal(
    formatStats(s),
    [
      'underlay 192.0.2.2:4789 source-ports hash 49152-65535',
      'vni 5000 dev vtep0 remotes - learn-remotes fdb 2 tap UP',
      '    RX: packets 1 bytes 60',
      '    TX: packets 2 bytes 120',
      '    drops: no_remote 4',
      'path: largest inner frame 1464 bytes, icmp-too-big sent 2',
      'offload: tcp super-frames 3 cut into 130 segments (2 udp gso sends), checksums finished 5, 90 received segments coalesced into 4 frames, not coalesced for a bad checksum 1',
      'fdb: entries 2 learned 2 moved 0 aged 0 evicted 0 cap-hit 0 static-conflict 0',
      'kernel drops: udp-receive 7, tap-queue vni 5000 ?',
      'drops: ',
      '    vni_unknown 3',
      '    no_remote 4',
    ].join('\n'),
  );
  t.match(formatStats({ ...s, underlay: undefined, drops: {} }), /drops: none$/);
  t.notMatch(
    formatStats({
      ...s,
      offload: {
        superFrames: 0,
        segments: 0,
        checksums: 0,
        gsoSends: 0,
        coalesced: 0,
        coalescedSegments: 0,
        checksumBad: 0,
        groDatagrams: 0,
        groSegments: 0,
      },
    }),
    /offload/,
    'no offload line while offloads are idle',
  );
});

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
      /invalid --vni 6000: must be an interface name/,
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
  ];
  for (const [args, re] of live) {
    t.equal(await vtep(...args), 2, `exit 2: ${args.join(' ')}`);
    t.match(errors.pop(), re);
  }
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

t.test(
  'subscriptions stream events; a client that does not read loses them, counted',
  async (t) => {
    const path = join(dir, 'sub.sock');
    let send: ((e: object) => void) | undefined;
    let stopped = 0;
    const server = await ControlServer.listen(
      path,
      {
        watch: cmd(
          () =>
            new Subscription((s) => {
              send = s;
              return () => stopped++;
            }),
        ),
        refuse: cmd(() => {
          throw new ControlError('ERR_NOPE', 'no');
        }),
      },
      { highWater: 1024, idleMs: 100 },
    );
    t.teardown(() => server.close());
    const got: Record<string, unknown>[] = [];
    const done = subscribe(path, { cmd: 'watch' }, (e) => got.push(e));
    await until(() => send !== undefined);
    send!({ event: 'learn', n: 1 });
    await until(() => got.length === 1);
    await new Promise((r) => setTimeout(r, 300));
    send!({ event: 'learn', n: 2 });
    await until(() => got.length === 2);
    t.same(
      got,
      [
        { event: 'learn', n: 1 },
        { event: 'learn', n: 2 },
      ],
      'not closed as idle',
    );
    await t.rejects(
      subscribe(path, { cmd: 'refuse' }, () => {}),
      { code: 'ERR_NOPE' },
    );

    // A raw client that never reads: past 1 KiB unread, events are counted as lost instead.
    const raw = createConnection(path);
    raw.pause();
    await new Promise((r) => raw.once('connect', r));
    const before = send;
    raw.write('{"cmd":"watch"}\n');
    await until(() => send !== before);
    for (let k = 0; k < 2000; k++) send!({ event: 'learn', pad: 'x'.repeat(100) });
    let text = '';
    raw.on('data', (d) => (text += d));
    raw.resume();
    await new Promise((r) => setTimeout(r, 100));
    send!({ event: 'after' });
    await until(() => text.includes('"after"'));
    t.match(
      text,
      /\{"event":"lost","count":\d+\}\n\{"event":"after"\}/,
      'the loss is said, then events go on',
    );
    raw.destroy();
    await until(() => stopped === 1);
    await server.close();
    await done;
    t.ok(
      await until(() => stopped === 2, 2000),
      `each subscription stopped when its connection went (${stopped})`,
    );
  },
);
