// `nice`: every thread given is moved, a thread gone meanwhile ignored, and a refusal (no
// CAP_SYS_NICE) returned with its errno rather than thrown.
import { spawn, spawnSync } from 'node:child_process';
import { getPriority } from 'node:os';
import t from 'tap';
import { distFile } from '../../src/lab/peers.js';
import { setNice, threadIds } from '../../src/daemon/nice.js';
import { needs } from '../helpers/prereq.js';

t.test('every thread given is moved; a thread gone is not a refusal', async (t) => {
  if (!needs(t, { root: true, commands: ['sleep'] })) return;
  const a = spawn('sleep', ['30']);
  const b = spawn('sleep', ['30']);
  t.teardown(() => void (a.kill(), b.kill()));
  t.equal(setNice(-7, [a.pid!, b.pid!, 0x3fffffff]), null, 'no refusal (the last one never was)');
  t.same([getPriority(a.pid!), getPriority(b.pid!)], [-7, -7]);
  t.equal(setNice(3, [a.pid!]), null);
  t.same([getPriority(a.pid!), getPriority(b.pid!)], [3, -7], 'only the ones given');
  t.ok(threadIds().includes(process.pid), "this process's threads include its main thread");
});

t.test('without CAP_SYS_NICE: lowering is refused with EACCES, raising is not', async (t) => {
  if (!needs(t, { root: true, commands: ['setpriv'] })) return;
  // root less one capability; the module from the build (a child of this test runs it)
  const script = `const { setNice } = await import(${JSON.stringify(distFile('src', 'daemon', 'nice.js'))});
    const low = setNice(-10); const high = setNice(5);
    console.log(JSON.stringify({ low: low && low.code, high, now: (await import('node:os')).getPriority(0) }));`;
  const r = spawnSync(
    'setpriv',
    [
      '--inh-caps=-sys_nice',
      '--bounding-set=-sys_nice',
      '--',
      process.execPath,
      '--input-type=module',
      '-e',
      script,
    ],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { low: 'EACCES', high: null, now: 5 });
});
