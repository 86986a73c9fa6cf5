// Namespaces created with `reap` are deleted when the process that made them is killed before
// it can tear down (as tap does to a test file that overruns its timeout); namespaces it
// deleted itself stay released, so a later namespace of the same name is left alone.
import { spawn } from 'node:child_process';
import t from 'tap';
import { distFile } from '../../src/lab/peers.js';
import { sh, until } from '../../src/lab/sh.js';
import { needs } from '../helpers/prereq.js';

const exists = (name: string) =>
  sh('ip netns list')
    .split('\n')
    .some((l) => l.split(' ')[0] === name);

t.test('a killed process leaves no reaped namespace behind', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'sh'] })) return;
  const tag = `rp${process.pid % 10000}`;
  const [kept, reused] = [`${tag}a`, `${tag}b`];
  t.teardown(() => {
    for (const n of [kept, reused]) sh(`ip netns del ${n}`, { allowFail: true });
  });
  // The child: namespace a (reaped, with a process inside); namespace b reaped, deleted by the
  // child itself, then made again without reaping, as another owner would; then it waits.
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { Netns } from ${JSON.stringify(distFile('src', 'lab', 'netns.js'))};
       const a = Netns.create('${kept}', { reap: true });
       a.exec('sleep 600 >/dev/null 2>&1 &');
       Netns.create('${reused}', { reap: true }).delete();
       Netns.create('${reused}');
       console.log('ready');
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  t.ok(await until(() => out.includes('ready'), 10_000), 'the child made its namespaces');
  const inside = sh(`ip netns pids ${kept}`).trim();
  t.not(inside, '', 'a process runs inside the reaped namespace');
  child.kill('SIGKILL');
  t.ok(await until(() => !exists(kept), 10_000), 'the reaped namespace is deleted');
  // killed: gone, or a zombie until whichever process adopted it reaps it
  const state = sh(`ps -o stat= -p ${inside.split('\n')[0]}`, { allowFail: true }).trim();
  t.ok(
    state === '' || state.startsWith('Z'),
    `the process inside it is killed (${state || 'gone'})`,
  );
  t.ok(exists(reused), 'the released name, made again without reaping, is left alone');
});
