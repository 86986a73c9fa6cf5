// The gateway's session (src/ovsdb/gateway.ts), in this process, with a recording host: against a
// real ovsdb-server holding the hardware_vtep schema (registration, bindings, our MACs, a server
// restart, convergence for any sequence of MAC sets), and against fake servers for what a real one
// does not do (garbage, a missing database, silence).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { sleep } from '../../src/lab/sh.js';
import { OvsdbClient } from '../../src/ovsdb/client.js';
import { Gateway, type GatewayHost } from '../../src/ovsdb/gateway.js';
import { MONITORED, type GatewayView } from '../../src/ovsdb/hwvtep.js';
import type { Level } from '../../src/util/log.js';
import { formatMac } from '../../src/wire/mac.js';
import { needs } from '../helpers/prereq.js';
import { within as soon } from '../helpers/within.js';
import { VtepDb } from '../helpers/vtepdb.js';

class Host implements GatewayHost {
  views: GatewayView[] = [];
  macs = new Map<number, number[]>();
  apply(v: GatewayView): void {
    this.views.push(v);
  }
  localMacs(vni: number): number[] {
    return this.macs.get(vni) ?? [];
  }
  get last(): GatewayView | undefined {
    return this.views[this.views.length - 1];
  }
}

function recorder() {
  const lines: { level: Level; event: string; msg: string }[] = [];
  return {
    lines,
    log: (level: Level, event: string, msg: string) => lines.push({ level, event, msg }),
  };
}

/** True once `cond` holds within `ms`. */
const within = async (ms: number, cond: () => boolean) => (await soon(ms, cond, 10)) >= 0;

const me = { name: 'ps0', tunnelIp: '192.0.2.2', ports: ['tap0'] };

t.test('against ovsdb-server: register, bind, publish, survive a restart', async (t) => {
  if (!needs(t, { commands: ['ovsdb-server', 'ovsdb-tool', 'vtep-ctl'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-gw-'));
  const db = new VtepDb(dir).start();
  const host = new Host();
  const r = recorder();
  const gw = new Gateway({ target: db.target, me, host, log: r.log, backoffMs: [50, 200] });
  t.teardown(async () => {
    gw.close();
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  gw.start();
  t.ok(
    await within(3000, () => db.ctl(['list-ports', 'ps0'], true).trim() === 'tap0'),
    'registered',
  );
  t.ok(await within(1000, () => gw.status().transactions.ok === 1), 'in one transaction');
  t.match(gw.status(), { state: 'connected', connects: 1, transactions: { ok: 1, failed: 0 } });
  t.match(r.lines, [{ event: 'ovsdb_connected' }]);

  db.ctl(['add-ls', 'ls0', '--', 'set', 'Logical_Switch', 'ls0', 'tunnel_key=42']);
  db.ctl(['bind-ls', 'ps0', 'tap0', '0', 'ls0']);
  db.ctl(['add-ucast-remote', 'ls0', '52:54:00:00:00:0a', '192.0.2.1']);
  t.ok(
    await within(1000, () => host.last?.switches.values().next().value?.remoteMacs.size === 1),
    'the host is told the binding and the remote MAC',
  );
  t.match(gw.status(), { ports: [{ name: 'tap0', vni: 42, logicalSwitch: 'ls0' }], remoteMacs: 1 });

  host.macs.set(42, [0x52540000000b]);
  gw.localMacsChanged();
  gw.localMacsChanged(); // gathered into one write
  t.ok(
    await within(1000, () => db.ctl(['list-local-macs', 'ls0']).includes('52:54:00:00:00:0b')),
    'a local MAC is published',
  );
  t.ok(await within(1000, () => gw.status().localMacs === 1), 'status counts it');

  // Any sequence of MAC sets converges to exactly the last one, with no row twice.
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 12 }), {
        minLength: 1,
        maxLength: 4,
      }),
      async (sets) => {
        for (const s of sets) {
          host.macs.set(
            42,
            s.map((x) => 0x020000000000 + x),
          );
          gw.localMacsChanged();
          await sleep(5 + (s.length % 3) * 20);
        }
        const want = sets[sets.length - 1].map((x) => formatMac(0x020000000000 + x)).sort();
        const rows = () =>
          db
            .rows('Ucast_Macs_Local')
            .map((r) => String(r.MAC))
            .sort();
        return within(3000, () => JSON.stringify(rows()) === JSON.stringify(want));
      },
    ),
    { numRuns: 6 },
  );

  await db.stop();
  t.ok(await within(2000, () => gw.status().state !== 'connected'), 'the loss is seen');
  t.match(r.lines.find((l) => l.event === 'ovsdb_lost')?.msg, /session lost/);
  db.start();
  t.ok(await within(3000, () => gw.status().connects === 2), 'reconnected with backoff');
  await sleep(300);
  t.equal(db.rows('Physical_Switch').length, 1, 'no duplicate switch');
  t.equal(db.rows('Physical_Port').length, 1, 'no duplicate port');
  t.equal(db.rows('Mcast_Macs_Local').length, 1, 'one unknown-dst row');

  // Unbound: the host hears it, our rows go.
  db.ctl(['unbind-ls', 'ps0', 'tap0', '0']);
  t.ok(await within(1000, () => host.last?.switches.size === 0), 'unbound');
  t.ok(await within(1000, () => db.rows('Ucast_Macs_Local').length === 0), 'our rows withdrawn');
  gw.close();
  t.equal(gw.status().state, 'stopped');
});

t.test('over tcp: and ssl: (mutual certificates, as ovsdb-server does it)', async (t) => {
  if (!needs(t, { commands: ['ovsdb-server', 'ovsdb-tool', 'vtep-ctl', 'openssl'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-gwtls-'));
  const f = (n: string) => join(dir, n);
  const ssl = (args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=test-ca',
  ]);
  // A CA nobody trusts, whose own certificate a client presents.
  ssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('rogue.key'),
    '-out',
    f('rogue.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=rogue',
  ]);
  for (const who of ['server', 'client']) {
    ssl(['req', ...ec, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`), '-subj', `/CN=${who}`]);
    ssl([
      'x509',
      '-req',
      '-in',
      f(`${who}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f(`${who}.pem`),
      '-days',
      '2',
    ]);
  }
  const base = 21000 + (process.pid % 20000);
  const db = new VtepDb(dir).start([
    `--remote=ptcp:${base}:127.0.0.1`,
    `--remote=pssl:${base + 1}:127.0.0.1`,
    `--private-key=${f('server.key')}`,
    `--certificate=${f('server.pem')}`,
    `--ca-cert=${f('ca.pem')}`,
  ]);
  t.teardown(async () => {
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const [target, tls] of [
    [`tcp:127.0.0.1:${base}`, undefined],
    [
      `ssl:127.0.0.1:${base + 1}`,
      { privateKey: f('client.key'), certificate: f('client.pem'), caCert: f('ca.pem') },
    ],
  ] as const) {
    const gw = new Gateway({
      target,
      me: { ...me, name: target.slice(0, 3) },
      host: new Host(),
      log: () => {},
      ...(tls ? { tls } : {}),
    });
    gw.start();
    t.ok(
      await within(3000, () => db.ctl(['list-ps'], true).includes(target.slice(0, 3))),
      `registered over ${target}`,
    );
    gw.close();
  }
  // A client certificate the server's CA did not sign: refused, said, retried.
  const r = recorder();
  const bad = new Gateway({
    target: `ssl:127.0.0.1:${base + 1}`,
    me,
    host: new Host(),
    log: r.log,
    backoffMs: [50, 100],
    tls: { privateKey: f('rogue.key'), certificate: f('rogue.pem'), caCert: f('ca.pem') },
  });
  bad.start();
  t.ok(await within(3000, () => r.lines.some((l) => l.event === 'ovsdb_lost')), 'refused');
  t.equal(bad.status().connects, 0);
  bad.close();
  const missing = new Gateway({
    target: `ssl:127.0.0.1:${base + 1}`,
    me,
    host: new Host(),
    log: r.log,
    tls: { privateKey: f('none.key'), certificate: f('client.pem'), caCert: f('ca.pem') },
  });
  missing.start();
  t.ok(
    await within(1000, () => /none\.key/.test(missing.status().lastError ?? '')),
    'a missing key file is named',
  );
  missing.close();
});

// The real schema when installed (openvswitch-vtep); else enough of it for the fake to pass.
const SCHEMA_FILE = '/usr/share/openvswitch/vtep.ovsschema';
const schema: unknown = existsSync(SCHEMA_FILE)
  ? JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'))
  : {
      tables: Object.fromEntries(
        Object.entries(MONITORED).map(([t, cols]) => [
          t,
          { columns: Object.fromEntries(cols.map((c) => [c, {}])) },
        ]),
      ),
    };

/** A fake OVSDB server: `reply` gets each request and the socket. */
async function fakeServer(
  reply: (req: { method: string; params: unknown[]; id: unknown }, s: Socket) => void,
): Promise<{ server: Server; path: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'vtep-fake-'));
  const path = join(dir, 'db.sock');
  const server = createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += String(d);
      // Requests from our client arrive one JSON object per write; good enough for a fake.
      for (;;) {
        const end = buf.indexOf('}{') >= 0 ? buf.indexOf('}{') + 1 : buf.length;
        const text = buf.slice(0, end);
        try {
          reply(JSON.parse(text) as never, s);
        } catch {
          return;
        }
        buf = buf.slice(end);
        if (!buf) return;
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { server, path, dir };
}

t.test('against a fake server: garbage, a missing database, silence', async (t) => {
  // 1. No hardware_vtep database: said once, retried.
  let calls = 0;
  const f1 = await fakeServer((req, s) => {
    calls++;
    s.write(JSON.stringify({ id: req.id, error: null, result: ['Open_vSwitch'] }));
  });
  const r1 = recorder();
  const g1 = new Gateway({
    target: `unix:${f1.path}`,
    me,
    host: new Host(),
    log: r1.log,
    backoffMs: [20, 40],
  });
  g1.start();
  t.ok(await within(1000, () => calls >= 3), 'retried');
  g1.close();
  t.match(g1.status(), { state: 'stopped', connects: 0, lastError: /no hardware_vtep database/ });
  t.equal(
    r1.lines.filter((l) => l.event === 'ovsdb_lost').length,
    1,
    'one log line for one reason, however many retries',
  );
  f1.server.close();
  rmSync(f1.dir, { recursive: true, force: true });

  // 2. A server that answers, then sends garbage, bad updates and an unexpected request.
  let sock: Socket | undefined;
  const f2 = await fakeServer((req, s) => {
    sock = s;
    if (req.method === 'list_dbs')
      s.write(JSON.stringify({ id: req.id, error: null, result: ['hardware_vtep'] }));
    else if (req.method === 'get_schema')
      s.write(JSON.stringify({ id: req.id, error: null, result: schema }));
    else if (req.method === 'monitor')
      s.write(JSON.stringify({ id: req.id, error: null, result: {} }));
    else if (req.method === 'transact')
      s.write(
        JSON.stringify({
          id: req.id,
          error: null,
          result: [{ error: 'constraint violation', details: 'nope' }],
        }),
      );
    // echo: never answered (silence)
  });
  const host = new Host();
  const r2 = recorder();
  const g2 = new Gateway({
    target: `unix:${f2.path}`,
    me,
    host,
    log: r2.log,
    backoffMs: [20, 40],
    probeMs: 150,
    settleMs: 1,
  });
  t.teardown(() => {
    g2.close();
    f2.server.close();
    rmSync(f2.dir, { recursive: true, force: true });
  });
  g2.start();
  t.ok(await within(1000, () => g2.status().state === 'connected'), 'connected');
  t.ok(await within(1000, () => g2.status().transactions.failed >= 1), 'a failed transaction');
  t.match(r2.lines.find((l) => l.event === 'ovsdb_transaction')?.msg, /constraint violation: nope/);
  sock!.write(
    '{"method":"update","params":["vtep",{"Nope":{}, "Physical_Port":{"x":5}}],"id":null}',
  );
  sock!.write('{"method":"steal","params":[],"id":7}');
  sock!.write('{"id":12345,"result":[],"error":null}');
  sock!.write('{"not json');
  t.ok(await within(1000, () => g2.status().protocolErrors >= 3), 'counted');
  t.ok(
    r2.lines.some((l) => l.event === 'ovsdb_protocol'),
    'and logged',
  );
  t.equal(host.last?.switches.size ?? 0, 0, 'nothing bound from garbage');
  // The echo probe gets no answer: the session is given up and started again.
  t.ok(
    await within(2000, () => r2.lines.some((l) => l.event === 'ovsdb_probe')),
    'an unanswered echo ends the session',
  );
  t.ok(await within(2000, () => g2.status().connects >= 2), 'and a new one starts');

  // 3. A database by that name with another schema: refused by name, not misread.
  const f3 = await fakeServer((req, s) => {
    const result =
      req.method === 'list_dbs'
        ? ['hardware_vtep']
        : { name: 'hardware_vtep', tables: { Global: { columns: {} } } };
    s.write(JSON.stringify({ id: req.id, error: null, result }));
  });
  const r4 = recorder();
  const g4 = new Gateway({ target: `unix:${f3.path}`, me, host: new Host(), log: r4.log });
  g4.start();
  t.ok(await within(1000, () => r4.lines.length > 0), 'said');
  t.match(r4.lines[0].msg, /schema lacks Global\.switches, Physical_Switch, .*not vtep\.ovsschema/);
  g4.close();
  f3.server.close();
  rmSync(f3.dir, { recursive: true, force: true });

  // 4. Nobody there at all.
  const r3 = recorder();
  const g3 = new Gateway({
    target: `unix:${join(f2.dir, 'absent.sock')}`,
    me,
    host: new Host(),
    log: r3.log,
    backoffMs: [10, 20],
  });
  g3.start();
  t.ok(await within(1000, () => g3.status().state === 'backoff'), 'backing off');
  t.match(r3.lines[0]?.msg, /cannot connect: .*ENOENT/);
  t.match(g3.status().ports, [{ name: 'tap0', vni: null }], 'ports listed before any session');
  g3.close();
});

t.test(
  'a hostile server: deep nesting, huge strings, garbage, silence — the session ends, the process stays, a real server resyncs',
  async (t) => {
    if (!needs(t, { commands: ['ovsdb-server', 'ovsdb-tool', 'vtep-ctl'] })) return;
    const dir = mkdtempSync(join(tmpdir(), 'vtep-hostile-'));
    const db = new VtepDb(dir);
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    // One hostile answer per session, in this order; the session after the last one is silent.
    // Built before the test starts: the fake shares this process's event loop with the client.
    const huge = Buffer.from(`"${'a'.repeat(100_000_000)}"],"error":null}`);
    const phases: [string, (id: unknown) => string | Buffer][] = [
      ['echo params', () => `{"method":"echo","params":[${deep}],"id":"e"}`],
      ['reply id', () => `{"id":${deep},"result":[],"error":null}`],
      [
        'error details',
        (id) => `{"id":${id},"result":null,"error":{"error":"x","details":${deep}}}`,
      ],
      ['100 MB string', (id) => Buffer.concat([Buffer.from(`{"id":${id},"result":[`), huge])],
      ['garbage', () => ']]] garbage'],
    ];
    let sessions = 0;
    const socks = new Set<Socket>();
    const fake = createServer((s) => {
      socks.add(s);
      s.on('error', () => {});
      const phase = phases[sessions++];
      s.once('data', (d) => {
        const id = /"id":(\d+)/.exec(String(d))?.[1];
        if (phase) s.write(phase[1](id));
        // after the phases: accept, read, never answer
      });
    });
    await new Promise<void>((r) => fake.listen(db.sock, r));
    const host = new Host();
    const r = recorder();
    const gw = new Gateway({
      target: db.target,
      me,
      host,
      log: r.log,
      backoffMs: [20, 40],
      limits: { answerMs: 500 },
    });
    t.teardown(async () => {
      gw.close();
      fake.close();
      for (const s of socks) s.destroy();
      await db.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    gw.start();
    t.ok(
      await within(20_000, () =>
        /no answer to list_dbs in 500 ms/.test(gw.status().lastError ?? ''),
      ),
      'through every phase to the silent server, which is given up',
    );
    const lost = r.lines.filter((l) => l.event === 'ovsdb_lost').map((l) => l.msg);
    for (const [what, pattern] of [
      ['echo params', /nested deeper than 128 levels/],
      ['garbage', /not a JSON object or array/],
      ['100 MB string', /longer than 67108864 bytes/],
      ['silence', /no answer to list_dbs in 500 ms/],
    ] as const)
      t.equal(lost.filter((m) => pattern.test(m)).length, 1, `${what}: said once`);
    t.ok(lost.length <= 6, `${lost.length} lines for ${sessions} sessions`);
    t.ok(gw.status().protocolErrors >= 5, 'each counted');
    t.equal(gw.status().connects, 0, 'none of them became a session');
    // The real server takes over the socket: the gateway registers and syncs.
    fake.close();
    for (const s of socks) s.destroy();
    db.start();
    db.ctl(['add-ps', 'other']);
    t.ok(
      await within(5000, () => db.ctl(['list-ports', 'ps0'], true).trim() === 'tap0'),
      'registered with the real server',
    );
    t.match(gw.status(), { state: 'connected', connects: 1 });
  },
);

t.test('100 000 Ucast_Macs_Remote rows in the first snapshot: they sync', async (t) => {
  if (!needs(t, { commands: ['ovsdb-server', 'ovsdb-tool', 'vtep-ctl'] })) return;
  const N = 100_000;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-scale-'));
  const db = new VtepDb(dir).start();
  t.teardown(async () => {
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  db.ctl(['add-ls', 'ls0', '--', 'set', 'Logical_Switch', 'ls0', 'tunnel_key=42']);
  db.ctl([
    'add-ps',
    'ps0',
    '--',
    'add-port',
    'ps0',
    'tap0',
    '--',
    'bind-ls',
    'ps0',
    'tap0',
    '0',
    'ls0',
  ]);
  const ls = db.rows('Logical_Switch')[0]._uuid as [string, string];
  const writer = await OvsdbClient.connect(db.target);
  const rows = Array.from({ length: N }, (_, i) => ({
    op: 'insert',
    table: 'Ucast_Macs_Remote',
    row: {
      MAC: formatMac(0x02cc00000000 + i),
      logical_switch: ls,
      locator: ['named-uuid', 'loc'],
    },
  }));
  await writer.transact(
    'hardware_vtep',
    {
      op: 'insert',
      table: 'Physical_Locator',
      'uuid-name': 'loc',
      row: { dst_ip: '192.0.2.1', encapsulation_type: 'vxlan_over_ipv4' },
    },
    ...rows,
  );
  writer.close();
  const host = new Host();
  const r = recorder();
  const gw = new Gateway({ target: db.target, me, host, log: r.log });
  t.teardown(() => gw.close());
  const rssBefore = process.memoryUsage().rss;
  let peak = rssBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = Date.now();
  gw.start();
  const synced = await within(60_000, () => {
    for (const sw of host.last?.switches.values() ?? []) if (sw.remoteMacs.size === N) return true;
    return false;
  });
  clearInterval(sampler);
  const ms = Date.now() - t0;
  t.ok(synced, `${N} remote MACs handed to the host in ${ms} ms`);
  t.match(gw.status(), { state: 'connected', connects: 1, remoteMacs: N });
  t.comment(
    `sync ${ms} ms; RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
  );
  t.ok(peak - rssBefore < 1024 * 2 ** 20, 'memory bounded (under 1 GiB more)');
});
