// The package as users get it: `npm pack` holds the built CLI and the addon's sources (npm
// install compiles them) and nothing else of the repository; installed globally from that
// tarball, `vtep` works through npm's bin symlink.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { needs } from '../helpers/prereq.js';

t.test('npm pack, npm install -g from the tarball, vtep --version', async (t) => {
  if (!needs(t, { commands: ['npm', 'g++', 'make'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // `npm test` has built dist/ already; --ignore-scripts skips the prepare build.
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(pack.status, 0, pack.stderr);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  const files = info.files.map((f) => f.path);
  for (const f of ['dist/src/cli/main.js', 'native/vtep_io.cc', 'binding.gyp', 'package.json'])
    t.ok(files.includes(f), `packed: ${f}`);
  t.same(
    files.filter(
      (f) =>
        /^(test|bench|dist\/test|dist\/bench|src)\//.test(f) ||
        /\/(testdevices|testframes)\./.test(f),
    ),
    [],
    'no tests, benchmarks, TypeScript sources or test devices',
  );
  const prefix = join(dir, 'global');
  const install = spawnSync(
    'npm',
    ['install', '-g', '--prefix', prefix, join(dir, info.filename)],
    {
      encoding: 'utf8',
      timeout: 180_000,
    },
  );
  t.equal(install.status, 0, `npm install -g: ${install.stderr.slice(-2000)}`);
  const version = spawnSync(join(prefix, 'bin', 'vtep'), ['--version'], { encoding: 'utf8' });
  t.equal(version.stdout.trim(), JSON.parse(readFileSync('package.json', 'utf8')).version);
  const help = spawnSync(join(prefix, 'bin', 'vtep'), ['run', '--help'], { encoding: 'utf8' });
  t.match(help.stdout, /--suppress-arp/, 'the installed CLI, through its bin symlink');
});
