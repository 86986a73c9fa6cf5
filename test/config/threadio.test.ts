// How a data-plane thread does its I/O: `busyPoll:` / `--busy-poll` (microseconds, off by
// default) and `ioUring:` / `--no-io-uring` (on by default); named when wrong, kept by showconf,
// changed only by a restart.
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { main } from '../../src/cli/main.js';
import { toYaml, validate } from '../../src/config/config.js';
import { resolveMtus } from '../../src/daemon/mtu.js';
import { planReload } from '../../src/daemon/reload.js';

const base = { local: '192.0.2.2', vnis: [{ vni: 100 }] };

t.test('busyPoll: off by default, microseconds, bounded', async (t) => {
  t.equal(validate(base).busyPoll, 0, 'off');
  t.equal(validate({ ...base, busyPoll: 200 }).busyPoll, 200);
  t.equal(
    validate(parseYaml(toYaml(validate({ ...base, busyPoll: 200 }))) as Record<string, unknown>)
      .busyPoll,
    200,
    'showconf keeps it',
  );
  t.notMatch(toYaml(validate(base)), /busyPoll/, 'and says nothing when off');
  t.throws(() => validate({ ...base, busyPoll: 100_001 }), {
    message: /busyPoll.*100001.*0\.\.100000/,
  });
  t.throws(() => validate({ ...base, busyPoll: 'fast' }), { message: /busyPoll/ });
  const errors: string[] = [];
  t.intercept(process.stderr, 'write', { value: (s: string) => (errors.push(String(s)), true) });
  t.equal(await main(['node', 'vtep', 'run', '--vni', '1', '--busy-poll', '-5']), 2);
  t.match(errors.pop(), /invalid --busy-poll "-5": must be an integer in 0\.\.100000/);
});

/** A reload from `base` to `change` is refused, naming `field`. */
function restartOnly(t: Test, field: string, change: Record<string, unknown>): void {
  const link = { mtu: 1500, source: 'default' as const };
  const cur = resolveMtus(validate(base), link);
  const next = resolveMtus(validate({ ...base, ...change }), link);
  t.throws(
    () =>
      planReload(cur, next, {
        portsBound: false,
        underlayCapacity: 65536,
        tapCapacity: () => 65536,
        ovsdbVnis: [],
        link,
        nextLink: link,
      }),
    { field, message: /restart to change it/ },
  );
}

t.test('busyPoll changes only with a restart', async (t) => {
  restartOnly(t, 'busyPoll', { busyPoll: 50 });
});

t.test('ioUring: on by default, false turns it off', async (t) => {
  t.equal(validate(base).ioUring, true, 'on');
  t.equal(validate({ ...base, ioUring: false }).ioUring, false);
  t.match(toYaml(validate({ ...base, ioUring: false })), /^ioUring: false$/m, 'showconf keeps it');
  t.notMatch(toYaml(validate(base)), /ioUring/, 'and says nothing when on');
  t.throws(() => validate({ ...base, ioUring: 'sometimes' }), { message: /ioUring.*sometimes/ });
  restartOnly(t, 'ioUring', { ioUring: false });
});

t.test('nice: unset by default (as started), -20..19, named when wrong', async (t) => {
  t.equal(validate(base).nice, undefined);
  t.equal(validate({ ...base, nice: -10 }).nice, -10);
  t.equal(validate({ ...base, nice: '-5' }).nice, -5, 'a string of digits, as flags give it');
  t.match(toYaml(validate({ ...base, nice: -10 })), /^nice: -10$/m, 'showconf keeps it');
  t.notMatch(toYaml(validate(base)), /nice/, 'and says nothing when unset');
  t.throws(() => validate({ ...base, nice: -21 }), { message: /nice.*-21.*-20\.\.19/ });
  t.throws(() => validate({ ...base, nice: 1.5 }), { message: /nice.*1\.5/ });
  const errors: string[] = [];
  t.intercept(process.stderr, 'write', { value: (s: string) => (errors.push(String(s)), true) });
  t.equal(await main(['node', 'vtep', 'run', '--vni', '1', '--nice', '-21']), 2);
  t.match(errors.pop(), /invalid --nice "-21": must be an integer in -20\.\.19/);
  restartOnly(t, 'nice', { nice: -5 });
});
