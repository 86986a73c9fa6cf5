import { join } from 'node:path';
import { bg, sleep, until } from '../../src/lab/sh.js';
import type { Topology } from '../../src/lab/topology.js';

/**
 * Capture on the vtep host's underlay (hostB eth0; or `at`, a namespace role and device) while
 * `during` runs: tcpdump with `args` (filter, snap length), started and listening first, stopped
 * after the last packets are in. Returns the pcap's path.
 */
export async function underlayCapture(
  topo: Topology,
  args: string,
  during: () => Promise<void> | void,
  at: { role: string; dev: string } = { role: 'hostB', dev: 'eth0' },
): Promise<string> {
  const file = join(topo.dir, `ul-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.pcap`);
  // --immediate-mode: each packet reaches tcpdump at once instead of when a ring block retires.
  const dump = bg(
    `${topo.get(at.role).prefix} tcpdump -i ${at.dev} --immediate-mode -U -n -w ${file} ${args}`,
  );
  let err = '';
  dump.stderr!.on('data', (d) => (err += d));
  await until(() => err.includes('listening'), 5000);
  try {
    await during();
  } finally {
    await sleep(300);
    dump.kill('SIGINT');
    await sleep(300);
  }
  return file;
}
