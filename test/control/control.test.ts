import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { formatFdb, formatStats } from '../../src/control/format.js';
import { ControlError, ControlServer, request } from '../../src/control/server.js';
import { main } from '../../src/cli/main.js';

const dir = mkdtempSync(join(tmpdir(), 'vtep-control-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('requests and answers over a 0600 unix socket', async (t) => {
  const path = join(dir, 'a.sock');
  const server = await ControlServer.listen(path, {
    echo: (args) => ({ got: args.x }),
    fail: () => {
      throw new ControlError('ERR_NOPE', 'nope');
    },
    plain: () => {
      throw new Error('plain');
    },
  });
  t.teardown(() => server.close());
  t.equal(statSync(path).mode & 0o777, 0o600, 'only the owner may connect');
  t.same(await request(path, { cmd: 'echo', x: 42 }), { got: 42 });
  await t.rejects(request(path, { cmd: 'fail' }), { code: 'ERR_NOPE', message: 'nope' });
  await t.rejects(request(path, { cmd: 'plain' }), { code: 'ERR_FAILED', message: 'plain' });
  await t.rejects(request(path, { cmd: 'nosuch' }), {
    code: 'ERR_UNKNOWN_COMMAND',
    message: /known: echo, fail, plain/,
  });
  await t.rejects(request(path, { cmd: 'toString' }), { code: 'ERR_UNKNOWN_COMMAND' });
  const raw = await new Promise<string>((resolve) => {
    const c = createConnection(path);
    let out = '';
    c.on('data', (d) => {
      out += d;
      if (out.includes('\n')) (c.end(), resolve(out));
    });
    c.write('not json\n');
  });
  t.match(JSON.parse(raw), { ok: false, code: 'ERR_BAD_REQUEST' });
  await t.rejects(ControlServer.listen(path, {}), {
    code: 'EADDRINUSE',
    message: /is another vtep running/,
  });
});

t.test('a stale socket file is replaced; a missing server is explained', async (t) => {
  const path = join(dir, 'stale.sock');
  const s = createServer().listen(path);
  await new Promise((r) => s.once('listening', r));
  // simulate a crash: close the listener but leave the file
  s.close();
  writeFileSync(join(dir, 'keep'), '');
  const server = await ControlServer.listen(path, { ping: () => 'pong' });
  t.equal(await request(path, { cmd: 'ping' }), 'pong');
  await server.close();
  await t.rejects(request(path, { cmd: 'ping' }), {
    code: 'ENOENT',
    message: /is vtep running with this --control path/,
  });
  await t.rejects(ControlServer.listen(join(dir, 'no', 'such', 'dir.sock'), {}), {
    message: /^control socket .*\/no\/such\/dir\.sock: listen E/,
  });
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
          ageSeconds: 3,
          usedSeconds: 1,
        },
        {
          vni: 5000,
          mac: '52:54:00:00:00:0c',
          remote: '[2001:db8::3]:8472',
          static: true,
          ageSeconds: 9,
          usedSeconds: 9,
        },
      ],
      () => 'vtep0',
    ),
    '52:54:00:00:00:0a dev vtep0 dst 192.0.2.1 port 4789 vni 5000 self age 3s used 1s\n' +
      '52:54:00:00:00:0c dev vtep0 dst 2001:db8::3 port 8472 vni 5000 self permanent',
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
        fdbEntries: 2,
        rx: { packets: 1, bytes: 60 },
        tx: { packets: 2, bytes: 120 },
      },
    ],
    drops: { vni_unknown: 3, no_remote: 0 },
    fdb: { entries: 2, learned: 2, moved: 0, aged: 0, evicted: 0, capHit: 0, staticConflict: 0 },
  };
  t.equal(
    formatStats(s),
    [
      'underlay 192.0.2.2:4789 source-ports hash 49152-65535',
      'vni 5000 dev vtep0 remotes - learn-remotes fdb 2',
      '    RX: packets 1 bytes 60',
      '    TX: packets 2 bytes 120',
      'fdb: entries 2 learned 2 moved 0 aged 0 evicted 0 cap-hit 0 static-conflict 0',
      'drops: ',
      '    vni_unknown 3',
    ].join('\n'),
  );
  t.match(formatStats({ ...s, underlay: undefined, drops: {} }), /drops: none$/);
});

t.test('CLI: bad input exits 2 naming the flag; help exits 0', async (t) => {
  const errors: string[] = [];
  t.intercept(process.stderr, 'write', { value: (s: string) => (errors.push(String(s)), true) });
  t.intercept(process.stdout, 'write', { value: () => true });
  const run = (...args: string[]) => main(['node', 'vtep', ...args]);
  t.equal(await run('run', '--vni', 'x'), 2);
  t.match(errors.pop(), /invalid --vni "x": must be an integer in 0\.\.16777215/);
  t.equal(await run('run'), 2);
  t.match(errors.pop(), /missing --vni: required \(or give --config FILE\)/);
  t.equal(await run('run', '--vni', '1', '--local', 'nowhere'), 2);
  t.match(errors.pop(), /invalid --local "nowhere"/);
  t.equal(await run('run', '--vni', '1', '--remote', '192.0.2.1', '--remote', 'x'), 2);
  t.match(errors.pop(), /invalid --remote "x"/);
  t.equal(await run('run', '--vni', '1', '--max-entries', '0'), 2);
  t.match(errors.pop(), /invalid --max-entries "0"/);
  t.equal(await run('run', '--vni', '1', '--reserved-bits', 'maybe'), 2);
  t.match(errors.pop(), /invalid --reserved-bits "maybe"/);
  t.equal(await run('run', '--vni', '1', '--tap', 'x'.repeat(20)), 2);
  t.match(errors.pop(), /invalid --tap/);
  t.equal(await run('run', '--config', join(dir, 'none.yaml')), 2);
  t.match(errors.pop(), /invalid --config ".*none\.yaml": cannot be read/);
  t.equal(await run('run', '--config', join(dir, 'x.yaml'), '--vni', '5'), 2);
  t.match(errors.pop(), /invalid --vni "5": cannot be combined with --config/);
  t.equal(await run('run', '--no-such-flag'), 2);
  t.equal(await run('--help'), 0);
  t.equal(await run('stats', '--control', join(dir, 'absent.sock')), 1);
  t.match(errors.pop(), /control socket .*absent\.sock.*\[ENOENT\]/);
});
