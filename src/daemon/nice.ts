import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * The process's scheduling niceness (`nice`, unset unless configured). Linux keeps it per
 * thread, and a thread starts at its creator's: set on every thread at start, before the
 * data-plane workers are spawned, it holds for all of them.
 *
 * A lower one gives the data plane more of a contended core (a VM flooding its TAP then takes
 * less of the core that drains it), and takes it from the VMs' own applications when the
 * workers could keep every core busy: README "Priority" has both, measured. So it is the
 * operator's choice, not a default.
 */

/** This process's threads (Linux: /proc/self/task). */
export function threadIds(): number[] {
  return readdirSync('/proc/self/task').map(Number);
}

/**
 * Moves every thread in `tids` that is not already there to `nice`. Returns the first refusal
 * (EACCES: lowering needs CAP_SYS_NICE or RLIMIT_NICE; EPERM: a seccomp filter, as under the
 * systemd unit, which sets `Nice=` itself) or null. A thread gone meanwhile is not a refusal.
 */
export function setNice(nice: number, tids: number[] = threadIds()): NodeJS.ErrnoException | null {
  let refused: NodeJS.ErrnoException | null = null;
  for (const tid of tids) {
    try {
      if (getPriority(tid) !== nice) setPriority(tid, nice);
    } catch (err) {
      // Node's SystemError: code ERR_SYSTEM_ERROR, the errno's name in info.code
      const e = err as NodeJS.ErrnoException & { info?: { code?: string } };
      const code = e.info?.code ?? e.code;
      if (code !== 'ESRCH') refused ??= Object.assign(e, { code });
    }
  }
  return refused;
}

/** The niceness the process runs at (its main thread's). */
export function currentNice(): number {
  return getPriority(0);
}
