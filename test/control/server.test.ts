// The control socket server (src/control/server.ts): requests and answers, stale sockets,
// idle and streaming clients, subscriptions.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request, subscribe } from '../../src/control/client.js';
import {
  ControlError,
  ControlServer,
  Rows,
  Subscription,
  type Command,
} from '../../src/control/server.js';
import { until } from '../../src/lab/sh.js';

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
