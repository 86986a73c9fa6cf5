// The OVSDB client (src/ovsdb) against a real ovsdb-server holding Debian's hardware_vtep
// schema (package openvswitch-vtep), with vtep-ctl changing rows under it; and against a fake
// server for what a real one does not readily do (its echo probe, malformed messages).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { until } from '../../src/lab/sh.js';
import { OvsdbClient, OvsdbError, parseTarget } from '../../src/ovsdb/client.js';
import { JsonSplitter } from '../../src/ovsdb/jsonstream.js';
import { needs } from '../helpers/prereq.js';

const SCHEMA = '/usr/share/openvswitch/vtep.ovsschema';

t.test('the stream splitter: any JSON texts, cut anywhere, come out whole and once', async (t) => {
  const json = fc.oneof(
    fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }),
    fc.array(fc.jsonValue(), { maxLength: 4 }),
  );
  fc.assert(
    fc.property(
      fc.array(json, { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (values, cuts) => {
        const text = values.map((v) => JSON.stringify(v)).join(' \n');
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const s = new JsonSplitter();
        const got: unknown[] = [];
        let last = 0;
        for (const p of [...points, text.length]) {
          got.push(...s.push(text.slice(last, p)).map((x) => JSON.parse(x)));
          last = p;
        }
        return JSON.stringify(got) === JSON.stringify(values);
      },
    ),
  );
  t.same(
    new JsonSplitter().push('{"a":"}\\"{"}[1]{'),
    ['{"a":"}\\"{"}', '[1]'],
    'braces and quotes in strings',
  );
  t.throws(() => new JsonSplitter().push('hello'), /not a JSON object or array/);
  t.throws(() => new JsonSplitter(10).push('{"a":"0123456789'), /longer than 10 bytes/);
  t.same(parseTarget('unix:/run/x.sock'), { path: '/run/x.sock' });
  t.same(parseTarget('tcp:[::1]:6640'), { host: '::1', port: 6640, ssl: false });
  t.same(parseTarget('ssl:192.0.2.1:6640'), { host: '192.0.2.1', port: 6640, ssl: true });
  t.throws(() => parseTarget('pssl:6640'), { code: 'ERR_OVSDB_TARGET' });
  t.throws(() => parseTarget('tcp:1.2.3.4:70000'), { code: 'ERR_OVSDB_TARGET' });
});

t.test('against ovsdb-server with the hardware_vtep schema, over unix and tcp', async (t) => {
  if (!needs(t, { commands: ['ovsdb-server', 'ovsdb-tool', 'vtep-ctl'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-ovsdb-'));
  const port = 20000 + (process.pid % 20000);
  const sh = (cmd: string[]) =>
    spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env: { ...process.env, OVS_RUNDIR: dir } });
  t.equal(sh(['ovsdb-tool', 'create', join(dir, 'vtep.db'), SCHEMA]).status, 0);
  const started = sh([
    'ovsdb-server',
    `--remote=punix:${join(dir, 'db.sock')}`,
    `--remote=ptcp:${port}:127.0.0.1`,
    `--pidfile=${join(dir, 'ovsdb.pid')}`,
    `--unixctl=${join(dir, 'ovsdb.ctl')}`,
    `--log-file=${join(dir, 'ovsdb.log')}`,
    '--detach',
    join(dir, 'vtep.db'),
  ]);
  t.equal(started.status, 0, started.stderr);
  t.teardown(() => {
    try {
      process.kill(Number(readFileSync(join(dir, 'ovsdb.pid'), 'utf8')), 'SIGTERM');
    } catch {
      /* gone */
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const db = `unix:${join(dir, 'db.sock')}`;
  const vtepCtl = (...args: string[]) => sh(['vtep-ctl', `--db=${db}`, ...args]);

  for (const target of [db, `tcp:127.0.0.1:${port}`]) {
    const c = await OvsdbClient.connect(target);
    t.teardown(() => c.close());
    t.same((await c.listDbs()).sort(), ['_Server', 'hardware_vtep'], `${target}: list_dbs`);
    const schema = await c.getSchema('hardware_vtep');
    for (const table of [
      'Physical_Switch',
      'Physical_Port',
      'Logical_Switch',
      'Ucast_Macs_Remote',
      'Mcast_Macs_Remote',
      'Ucast_Macs_Local',
      'Physical_Locator',
    ])
      t.ok(schema.tables[table], `${target}: the schema has ${table}`);
    t.same(await c.echo('ping', 1), ['ping', 1], `${target}: echo`);
  }

  const c = await OvsdbClient.connect(db);
  t.teardown(() => c.close());
  // Our rows are what vtep-ctl shows: a switch, inserted and referenced from the Global row in
  // one transaction, as a gateway registers itself.
  const [globals] = await c.transact('hardware_vtep', { op: 'select', table: 'Global', where: [] });
  t.same(globals, { rows: [] }, 'a new database has no Global row');
  const [ins] = await c.transact(
    'hardware_vtep',
    {
      op: 'insert',
      table: 'Physical_Switch',
      row: { name: 'ps0', tunnel_ips: '192.0.2.2' },
      'uuid-name': 'ps',
    },
    { op: 'insert', table: 'Global', row: { switches: ['named-uuid', 'ps'] } },
  );
  t.match(ins, { uuid: ['uuid', /^[0-9a-f-]{36}$/] });
  t.equal(vtepCtl('list-ps').stdout.trim(), 'ps0', 'vtep-ctl list-ps sees our switch');
  // A failing operation rejects with its index and the server's error.
  await t.rejects(c.transact('hardware_vtep', { op: 'insert', table: 'No_Such_Table', row: {} }), {
    name: 'OvsdbError',
    message: /operation 0 failed/,
  });
  await t.rejects(c.getSchema('nope'), { name: 'OvsdbError', code: 'unknown database' });

  // A monitor sees vtep-ctl's changes as they happen.
  const updates: Record<string, unknown>[] = [];
  c.on('update', (id, u) => id === 'm1' && updates.push(u as Record<string, unknown>));
  const initial = (await c.monitor('hardware_vtep', 'm1', {
    Logical_Switch: { columns: ['name', 'tunnel_key'] },
    Ucast_Macs_Remote: { columns: ['MAC', 'logical_switch', 'locator'] },
  })) as Record<string, unknown>;
  t.same(initial, {}, 'nothing there yet');
  const t0 = Date.now();
  t.equal(
    vtepCtl('add-ls', 'ls0', '--', 'set', 'Logical_Switch', 'ls0', 'tunnel_key=5000').status,
    0,
  );
  t.equal(vtepCtl('add-ucast-remote', 'ls0', '52:54:00:00:00:0a', '192.0.2.1').status, 0);
  t.ok(await until(() => updates.length >= 2, 3000), 'both changes arrived');
  t.ok(Date.now() - t0 < 1000, `within a second (${Date.now() - t0} ms)`);
  const ls = Object.values(
    updates[0].Logical_Switch as Record<string, { new: Record<string, unknown> }>,
  )[0];
  t.match(ls.new, { name: 'ls0', tunnel_key: 5000 });
  const mac = Object.values(
    updates[1].Ucast_Macs_Remote as Record<string, { new: Record<string, unknown> }>,
  )[0];
  t.match(mac.new, { MAC: '52:54:00:00:00:0a' });

  // monitor_cond: row diffs (update2).
  const c2 = await OvsdbClient.connect(db);
  t.teardown(() => c2.close());
  const diffs: Record<string, unknown>[] = [];
  c2.on('update2', (_id, u) => diffs.push(u as Record<string, unknown>));
  const now = (await c2.monitorCond('hardware_vtep', 'm2', {
    Logical_Switch: [{ columns: ['name'] }],
  })) as Record<string, Record<string, unknown>>;
  t.match(Object.values(now.Logical_Switch)[0], { initial: { name: 'ls0' } });
  vtepCtl('add-ls', 'ls1');
  t.ok(await until(() => diffs.length > 0, 3000), 'update2 after a change');
  t.match(Object.values(diffs[0].Logical_Switch as Record<string, unknown>)[0], {
    insert: { name: 'ls1' },
  });

  // The server goes away: pending requests fail, the client says it closed.
  const closed = new Promise((r) => c.once('close', r));
  process.kill(Number(readFileSync(join(dir, 'ovsdb.pid'), 'utf8')), 'SIGTERM');
  await closed;
  t.ok(c.isClosed);
  await t.rejects(c.listDbs(), { code: 'ECONNRESET' });
  await t.rejects(OvsdbClient.connect(db, 500), { name: 'OvsdbError' });
});

t.test(
  'a fake server: its echo is answered; malformed messages are reported, never thrown',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vtep-ovsdb-fake-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'fake.sock');
    let answer = '';
    const server = createServer((s) => {
      s.setEncoding('utf8');
      s.write('{"method":"echo","params":["probe"],"id":"e1"}');
      let listed = false;
      let schemaAsked = false;
      s.on('data', (d) => {
        answer += d;
        if (!listed && answer.includes('"list_dbs"')) {
          listed = true;
          const id = /"id":(\d+)/.exec(answer)![1];
          // an answer to nothing, a notification we do not know, then the real answer in two pieces
          s.write('{"id":999,"result":[]}{"method":"surprise","params":[],"id":null}');
          s.write(`{"id":${id},"res`);
          setTimeout(() => s.write('ult":["x"],"error":null}'), 20);
        }
        if (!schemaAsked && answer.includes('"get_schema"')) {
          schemaAsked = true;
          s.write(']]] garbage');
        }
      });
    }).listen(path);
    await new Promise((r) => server.once('listening', r));
    t.teardown(() => server.close());
    const c = await OvsdbClient.connect(`unix:${path}`);
    const problems: string[] = [];
    c.on('protocolError', (e: OvsdbError) => problems.push(e.message));
    t.same(await c.listDbs(), ['x'], 'the answer, split across writes');
    t.match(
      answer,
      /\{"result":\["probe"\],"error":null,"id":"e1"\}/,
      "the server's echo answered",
    );
    t.equal(problems.length, 2);
    t.match(problems[0], /an answer to no request \(id 999\)/);
    t.match(problems[1], /unexpected surprise request/);
    const closed = new Promise<Error>((r) => c.once('close', r));
    await t.rejects(
      c.getSchema('x'),
      { code: 'ERR_OVSDB_PROTOCOL', message: /not a JSON object or array/ },
      'garbage ends the connection, and says why',
    );
    t.match(await closed, { code: 'ERR_OVSDB_PROTOCOL' });
    t.equal(problems.length, 2, 'said by the close, not again');
    t.ok(c.isClosed);
  },
);
