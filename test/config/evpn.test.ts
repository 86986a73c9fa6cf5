// `evpn:` in the configuration and `--evpn-*` on the command line: defaults, per-VNI RD and
// targets, every mistake named by its field, and showconf keeping it all.
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { main } from '../../src/cli/main.js';
import { toYaml, validate } from '../../src/config/config.js';

const base = { local: '192.0.2.2', vnis: [{ vni: 100 }] };

t.test('evpn: the minimal form, and what is refused', async (t) => {
  t.equal(validate(base).evpn, undefined, 'off unless asked for');
  t.same(validate({ ...base, evpn: { gobgp: '127.0.0.1:50051' } }).evpn, {
    gobgp: '127.0.0.1:50051',
    holdTimeS: 90,
  });
  t.same(
    validate({
      ...base,
      evpn: { gobgp: '[::1]:50051', routerId: '192.0.2.2', asn: 4200000000, holdTime: 3 },
    }).evpn,
    { gobgp: '[::1]:50051', routerId: '192.0.2.2', asn: 4200000000, holdTimeS: 3 },
  );
  for (const [evpn, re] of [
    [{ gobgp: 'localhost' }, /evpn\.gobgp.*localhost.*HOST:PORT/],
    [{ gobgp: 'h:0' }, /evpn\.gobgp.*HOST:PORT/],
    [{ gobgp: ':50051' }, /evpn\.gobgp/],
    [{}, /evpn\.gobgp/],
    [{ gobgp: 'h:1', routerId: '0.0.0.0' }, /evpn\.routerId.*BGP identifier/],
    [{ gobgp: 'h:1', routerId: '2001:db8::1' }, /evpn\.routerId/],
    [{ gobgp: 'h:1', asn: 0 }, /evpn\.asn/],
    [{ gobgp: 'h:1', holdTime: -1 }, /evpn\.holdTime/],
    [{ gobgp: 'h:1', peers: [] }, /peers/],
    ['on', /evpn.*must be a mapping/],
  ] as const)
    t.throws(() => validate({ ...base, evpn }), { message: re }, JSON.stringify(evpn));
  t.throws(() => validate({ vnis: [{ vni: 100 }], evpn: { gobgp: 'h:1' } }), {
    message: /local.*0\.0\.0\.0.*address to announce as our VTEP/,
  });
});

t.test('per VNI: its own RD and targets, or false', async (t) => {
  const cfg = {
    local: '192.0.2.2',
    evpn: { gobgp: '127.0.0.1:50051' },
    vnis: [
      { vni: 100, evpn: { rd: '192.0.2.2:7', rt: '65000:100' } },
      { vni: 101, tap: 'v101', evpn: { rt: ['65000:1', '4200000000:2', '192.0.2.9:3'] } },
      { vni: 102, tap: 'v102', evpn: false },
      { vni: 103, tap: 'v103' },
    ],
  };
  const v = validate(cfg).vnis.map((x) => x.evpn);
  t.same(v, [
    { rd: '192.0.2.2:7', rt: ['65000:100'] },
    { rt: ['65000:1', '4200000000:2', '192.0.2.9:3'] },
    false,
    undefined,
  ]);
  t.same(
    validate(parseYaml(toYaml(validate(cfg))) as Record<string, unknown>).vnis.map((x) => x.evpn),
    v,
    'showconf keeps them',
  );
  t.same(
    validate(parseYaml(toYaml(validate(cfg))) as Record<string, unknown>).evpn,
    validate(cfg).evpn,
    'and the section',
  );
  const one = (evpn: unknown) => ({ ...base, vnis: [{ vni: 100, evpn }] });
  for (const [evpn, re] of [
    [{ rd: 'x' }, /vnis\[0\]\.evpn\.rd.*"x".*route distinguisher/],
    [{ rd: '192.0.2.1:70000' }, /evpn\.rd/],
    [{ rd: '4200000000:70000' }, /evpn\.rd/],
    [{ rd: '99999999999:1' }, /evpn\.rd/],
    [{ rd: '300.0.0.1:1' }, /evpn\.rd/],
    [{ rt: '65000' }, /vnis\[0\]\.evpn\.rt.*"65000".*route target/],
    [{ rt: ['65000:1', 'x:1'] }, /vnis\[0\]\.evpn\.rt\[1\].*"x:1"/],
    [{ rt: 5 }, /evpn\.rt.*route target like 65000:100, or a list/],
    [{ vni: 5 }, /vnis\[0\]\.evpn\.vni.*not a setting here/],
    [true, /vnis\[0\]\.evpn.*mapping of rd and rt, or false/],
  ] as const)
    t.throws(() => validate(one(evpn)), { message: re }, JSON.stringify(evpn));
});

t.test('flags: --evpn-gobgp and the ones that need it', async (t) => {
  const errors: string[] = [];
  t.intercept(process.stderr, 'write', { value: (s: string) => (errors.push(String(s)), true) });
  t.intercept(process.stdout, 'write', { value: () => true });
  const run = (...args: string[]) => main(['node', 'vtep', ...args]);
  const vni = ['run', '--local', '192.0.2.2', '--vni', '100'];
  t.equal(await run(...vni, '--evpn-asn', '65000'), 2);
  t.match(errors.pop(), /invalid --evpn-asn "65000": needs --evpn-gobgp/);
  t.equal(await run(...vni, '--evpn-gobgp', 'nope'), 2);
  t.match(errors.pop(), /invalid --evpn-gobgp "nope": must be HOST:PORT/);
  t.equal(await run(...vni, '--evpn-gobgp', 'h:1', '--evpn-router-id', 'x'), 2);
  t.match(errors.pop(), /invalid --evpn-router-id "x"/);
  t.equal(await run(...vni, '--evpn-gobgp', 'h:1', '--evpn-hold-time', 'x'), 2);
  t.match(errors.pop(), /invalid --evpn-hold-time "x"/);
  t.equal(await run('run', '--vni', '100', '--evpn-gobgp', 'h:1'), 2);
  t.match(errors.pop(), /invalid --local "0\.0\.0\.0": must be the address to announce/);
});
