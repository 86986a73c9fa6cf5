// The package as a user gets it: `npm pack`, `npm install -g` into a prefix of its own, then the
// manual page from that prefix and bash completion from the installed `vtep`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../src/util/package.js';
import { needs } from '../helpers/prereq.js';

const run = (cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync(cmd, args, {
    encoding: 'utf8',
    cwd: o.cwd,
    // tap's loader in NODE_OPTIONS is not for npm's children or the installed vtep
    env: { ...process.env, NODE_OPTIONS: '', ...o.env },
    timeout: 120_000,
  });

t.test('npm pack, npm install -g: man vtep renders; bash completes vtep f to fdb', async (t) => {
  if (!needs(t, { commands: ['npm', 'man', 'bash'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'vtep-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // dist/ is built (npm test builds first); the addon is built on the user's machine by npm
  const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: packageRoot(),
  });
  t.equal(pack.status, 0, `npm pack: ${pack.stderr.trim().split('\n').pop()}`);
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  const files = info.files.map((f) => f.path);
  t.ok(files.includes('LICENSE'), 'LICENSE ships');
  t.ok(files.includes('dist/man/vtep.8') && files.includes('dist/completion/vtep.bash'));
  t.same(
    files.filter((f) => f.endsWith('.map')),
    [],
    'no source maps without their sources',
  );
  t.notOk(
    files.some((f) => /testdevices|testframes/.test(f)),
    'test doubles stay out',
  );

  const prefix = join(dir, 'prefix');
  const inst = run('npm', [
    'install',
    '-g',
    '--prefix',
    prefix,
    '--ignore-scripts',
    '--prefer-offline',
    '--no-audit',
    '--no-fund',
    join(dir, info.filename),
  ]);
  t.equal(inst.status, 0, `npm install -g: ${inst.stderr.trim()}`);
  t.notMatch(inst.stderr, /warn/i, 'without warnings');

  const man = run('man', ['-M', join(prefix, 'share', 'man'), '8', 'vtep'], {
    env: { MANPAGER: 'cat', MANWIDTH: '100' },
  });
  t.equal(man.status, 0, `man vtep: ${man.stderr.trim()}`);
  t.match(man.stdout, /^VTEP\(8\)/);
  t.match(man.stdout, /vtep fdb add <mac>/, 'every command is in it');
  t.match(man.stdout, /--log-format <format>/, 'with its options');
  t.match(man.stdout, /EXIT STATUS/);

  const vtep = join(prefix, 'bin', 'vtep');
  const complete = (line: string[]) =>
    run('bash', [
      '-c',
      `source <("${vtep}" completion bash) && COMP_WORDS=(${line.join(' ')}) && COMP_CWORD=${line.length - 1} && _vtep && echo "\${COMPREPLY[*]}"`,
    ]);
  const f = complete(['vtep', 'f']);
  t.equal(f.status, 0, f.stderr);
  t.equal(f.stdout.trim(), 'fdb', 'vtep f → fdb');
  t.equal(complete(['vtep', 'fdb', 're']).stdout.trim(), 'replace');
  t.equal(complete(['vtep', 'fdb', 'add', '--r']).stdout.trim(), '--remote --replace');
  t.equal(
    complete(['vtep', 'run', '--log-f']).stdout.trim(),
    '--log-format',
    'the options of the command reached',
  );
});
