// Network namespaces that must not outlive this process, however it ends. A test runner kills a
// test file that overruns its timeout (tap: SIGALRM, SIGKILL half a second later) before its
// teardown has run, and the namespaces, with the switches, captures and VTEPs inside them,
// would stay behind on the machine. A detached shell watches this process and, once it is gone,
// deletes every namespace still listed: what the process deleted itself is no longer listed.
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let list: string | undefined;

/** The list file of this process, starting its watcher on first use. */
function watched(): string {
  if (list !== undefined) return list;
  const file = join(tmpdir(), `vtep-reap-${process.pid}.list`);
  writeFileSync(file, '');
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
    `while read -r ns; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns del "$ns" 2>/dev/null; done < '${file}'`,
    `rm -f '${file}'`,
  ].join('\n');
  spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' }).unref();
  list = file;
  return file;
}

/** Delete namespace `name` (and everything in it) when this process dies, unless released. */
export function reapOnExit(name: string): void {
  appendFileSync(watched(), `${name}\n`);
}

/** The process deleted `name` itself: the watcher must not touch a later namespace of that name. */
export function release(name: string): void {
  if (list === undefined) return;
  const rest = readFileSync(list, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && l !== name);
  writeFileSync(list, rest.map((l) => `${l}\n`).join(''));
}
