// `bfd:` in the configuration: defaults, the management VNI, strict keys, and showconf.
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { toYaml, validate } from '../../src/config/config.js';

const base = { local: '192.0.2.2', vnis: [{ vni: 5000, remotes: ['192.0.2.1'] }] };

t.test('bfd: defaults, a management VNI, and what is refused', async (t) => {
  t.equal(validate(base).bfd, undefined, 'off unless asked for');
  t.same(validate({ ...base, bfd: {} }).bfd, { intervalMs: 300, multiplier: 3 });
  t.same(validate({ ...base, bfd: { interval: 100, multiplier: 5, vni: 5000 } }).bfd, {
    intervalMs: 100,
    multiplier: 5,
    vni: 5000,
  });
  t.throws(() => validate({ ...base, bfd: { vni: 77 } }), {
    message: /config\.bfd\.vni.*77.*not a configured VNI \(5000\)/,
  });
  t.throws(() => validate({ ...base, bfd: { interval: 5 } }), {
    message: /bfd\.interval.*10\.\.60000/,
  });
  t.throws(() => validate({ ...base, bfd: { multiplier: 0 } }), { message: /bfd\.multiplier/ });
  t.throws(() => validate({ ...base, bfd: { every: 1 } }), { message: /every/ });
  t.throws(() => validate({ ...base, bfd: 'on' }), { message: /bfd.*must be a mapping/ });
  const two = {
    local: '192.0.2.2',
    bfd: { interval: 100 },
    vnis: [
      { vni: 5000, remotes: ['192.0.2.1'], bfd: { multiplier: 5 } },
      { vni: 5001, remotes: ['192.0.2.3'], bfd: false },
      { vni: 5002, remotes: ['192.0.2.4'] },
    ],
  };
  t.same(
    validate(two).vnis.map((v) => v.bfd),
    [{ intervalMs: 100, multiplier: 5 }, false, undefined],
    'per VNI: its own timers over the file’s, or none',
  );
  t.same(
    validate({ ...base, vnis: [{ ...base.vnis[0], bfd: {} }] }).vnis[0].bfd,
    { intervalMs: 300, multiplier: 3 },
    'a VNI alone with bfd: the defaults',
  );
  t.throws(() => validate({ ...base, vnis: [{ ...base.vnis[0], bfd: true }] }), {
    message: /vnis\[0\]\.bfd.*mapping of interval and multiplier, or false/,
  });
  t.same(
    validate(parseYaml(toYaml(validate(two))) as Record<string, unknown>).vnis.map((v) => v.bfd),
    validate(two).vnis.map((v) => v.bfd),
    'showconf keeps them',
  );
  const cfg = validate({ ...base, bfd: { interval: 100, vni: 5000 } });
  t.same(
    validate(parseYaml(toYaml(cfg)) as Record<string, unknown>).bfd,
    cfg.bfd,
    'showconf round-trips it',
  );
});
