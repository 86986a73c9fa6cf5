import { sleep } from '../../src/lab/sh.js';

/**
 * Milliseconds until `cond` holds (polled every `step` ms), or -1 after `ms`: for tests that
 * state how fast something propagated ("in the FDB after 2 ms"), where `until` only says whether.
 */
export async function within(
  ms: number,
  cond: () => Promise<boolean> | boolean,
  step = 20,
): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await cond()) return Date.now() - t0;
    await sleep(step);
  }
  return -1;
}
