import { native } from './native.js';

/**
 * A data-plane thread's own I/O figures, beside the engine's counters: busy polling and how its
 * TAP queues are read and written (io_uring where this thread could set one up, else readv and
 * writev). Workers report theirs with their counters; `vtep stats` adds every thread's up.
 */
export interface ThreadIo {
  /** Busy-poll spin periods started, and frames and datagrams read while spinning. */
  spins: number;
  polled: number;
  /** Threads counted, and those of them whose TAP I/O goes through io_uring. */
  threads: number;
  uringThreads: number;
  /**
   * Why a thread is on readv/writev: the errno name of its failed io_uring setup (ENOSYS: built
   * without liburing), or `off` (`ioUring: false`); undefined when every thread has io_uring.
   */
  fallback?: string;
  /** TAP frames read and written through io_uring, and the io_uring_enter calls that did it. */
  ringReads: number;
  ringWrites: number;
  ringEnters: number;
}

/** This thread's figures, from the addon. */
export function threadIo(): ThreadIo {
  const io = native();
  const [spins, polled] = io.busyPollStats();
  const [mode, err, ringReads, ringWrites, ringEnters] = io.tapIoStats();
  return {
    spins,
    polled,
    threads: 1,
    uringThreads: mode,
    ...(mode ? {} : { fallback: err ? io.errnoName(err) : 'off' }),
    ringReads,
    ringWrites,
    ringEnters,
  };
}

/** Two sets of threads' figures as one. */
export function addThreadIo(a: ThreadIo, b: ThreadIo): ThreadIo {
  const fallback = a.fallback ?? b.fallback;
  return {
    spins: a.spins + b.spins,
    polled: a.polled + b.polled,
    threads: a.threads + b.threads,
    uringThreads: a.uringThreads + b.uringThreads,
    ...(fallback ? { fallback } : {}),
    ringReads: a.ringReads + b.ringReads,
    ringWrites: a.ringWrites + b.ringWrites,
    ringEnters: a.ringEnters + b.ringEnters,
  };
}

/** No threads: what `addThreadIo` starts from. */
export const NO_THREAD_IO: ThreadIo = {
  spins: 0,
  polled: 0,
  threads: 0,
  uringThreads: 0,
  ringReads: 0,
  ringWrites: 0,
  ringEnters: 0,
};
