import { join } from 'node:path';
import { bg, sleep, until } from '../../src/lab/sh.js';
import type { Topology } from '../../src/lab/topology.js';

/** tcpdump's capture buffer (-B, KiB): room for bursts of a few hundred full-size slots. */
export const CAPTURE_BUFFER_KIB = 32768;

/**
 * Capture on the vtep host's underlay (hostB eth0; or `at`, a namespace role and device) while
 * `during` runs: tcpdump with `args` (filter, snap length), started and listening first, stopped
 * after the last packets are in. Returns the pcap's path; throws when tcpdump dropped packets,
 * unless `opts.sample` says a sample of the traffic is what the caller checks.
 */
export async function underlayCapture(
  topo: Topology,
  args: string,
  during: () => Promise<void> | void,
  at: { role: string; dev: string } = { role: 'hostB', dev: 'eth0' },
  /** A sample will do (a bulk transfer, which tcpdump cannot keep up with on two cores). */
  opts: { sample?: boolean } = {},
): Promise<string> {
  const file = join(topo.dir, `ul-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.pcap`);
  // --immediate-mode: each packet reaches tcpdump at once instead of when a ring block retires.
  // -B: on a device with GSO, libpcap sizes each ring slot for the 256 KiB snap length, so its
  // default 2 MiB holds 8 packets and one sendmmsg burst overflows it ("dropped by kernel").
  const dump = bg(
    `${topo.get(at.role).prefix} tcpdump -i ${at.dev} --immediate-mode -B ${CAPTURE_BUFFER_KIB} -U -n -w ${file} ${args}`,
  );
  let err = '';
  dump.stderr!.on('data', (d) => (err += d));
  await until(() => err.includes('listening'), 5000);
  try {
    await during();
  } finally {
    await sleep(300);
    // tcpdump writes its statistics (and the last of the file) as it exits: wait for that.
    const exited =
      dump.exitCode === null ? new Promise((r) => dump.once('exit', r)) : Promise.resolve();
    dump.kill('SIGINT');
    await Promise.race([exited, sleep(5000)]);
  }
  // A capture that lost packets would pass for packets the data plane lost.
  const dropped = /(\d+) packets? dropped by kernel/.exec(err);
  if (dropped && Number(dropped[1]) > 0 && !opts.sample)
    throw new Error(`capture on ${at.role} ${at.dev} lost ${dropped[1]} packets: ${err.trim()}`);
  return file;
}
