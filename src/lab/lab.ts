import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/config.js';
import { formatFdb } from '../control/format.js';
import type { FdbRow } from '../fdb/fdb.js';
import { Netns } from './netns.js';
import { bg, sh, sleep, until } from './sh.js';
import { Topology, UNDERLAY, VM } from './topology.js';

/**
 * `vtep lab up|down`: the two hosts of the OVS VXLAN guide, in namespaces. Host A runs Open
 * vSwitch (br0 with vx_node1 → 192.0.2.2, key 5000) and VM A; host B runs our vtep with VM B
 * on its TAP. `up` builds it, pings across, prints both forwarding tables and a few tunnel
 * packets as tshark decodes them, and leaves it running to explore; `down` removes it all.
 */

export interface LabOptions {
  prefix?: string;
  dir?: string;
  vni?: number;
}

export const LAB_PREFIX = 'vtlab';
export const LAB_DIR = '/tmp/vtep-lab';

/** What `lab up` writes and `lab down` acts on: nothing it does not list is touched. */
interface LabState {
  prefix: string;
  namespaces: string[];
}

export class LabError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Namespace prefixes: short (interface names derive from them) and plain, and never empty —
 * an empty or odd prefix must not come near `ip netns del`.
 */
export function checkPrefix(prefix: string): string {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(prefix))
    throw new ConfigError(
      '--prefix',
      prefix,
      'must be 1..8 lower-case letters and digits, starting with a letter',
    );
  return prefix;
}

function readState(dir: string): LabState | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const st = raw as Partial<LabState>;
  if (
    typeof st?.prefix !== 'string' ||
    !Array.isArray(st.namespaces) ||
    !st.namespaces.every((n) => typeof n === 'string' && n.startsWith(st.prefix!))
  )
    return undefined;
  return st as LabState;
}

type Out = (line: string) => void;

export async function labUp(opts: LabOptions, out: Out): Promise<void> {
  const prefix = checkPrefix(opts.prefix ?? LAB_PREFIX);
  const dir = opts.dir ?? LAB_DIR;
  if (existsSync(join(dir, 'lab.json')))
    throw new LabError('ERR_LAB_UP', `a lab is already up in ${dir}: run "vtep lab down" first`);
  // `lab down` removes the directory, so it must be one the lab made: new, or empty.
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new ConfigError(
      '--dir',
      dir,
      'exists and is not empty: give a new directory for the lab',
    );
  out(
    `building: underlay 192.0.2.0/24, host A (Open vSwitch, userspace datapath) and host B (vtep), VNI ${opts.vni ?? 5000}`,
  );
  const topo = await Topology.build({ prefix, dir, peers: ['ovs'], vni: opts.vni });
  try {
    writeFileSync(
      join(dir, 'lab.json'),
      JSON.stringify({ prefix, namespaces: [...topo.ns.values()].map((n) => n.name) }) + '\n',
    );
    await topo.startVtep([], { detached: true });
    writeFileSync(join(dir, 'vtep.pid'), `${topo.vtep!.pid}\n`);

    const pcap = join(dir, 'tunnel.pcap');
    const dump = bg(
      `${topo.get('hostB').prefix} tcpdump -i eth0 -U -n -c 8 -w ${pcap} udp port 4789`,
    );
    let err = '';
    dump.stderr!.on('data', (d) => (err += d));
    await until(() => err.includes('listening'), 5000);
    out(`\n$ ip netns exec ${topo.get('vmB').name} ping -c 3 ${VM.ovs.ip}`);
    const ping = topo.get('vmB').exec(`ping -c 3 -i 0.3 -W 2 ${VM.ovs.ip}`, { allowFail: true });
    out(ping.trim());
    checkPing(ping);
    await until(() => !existsSync(pcap) || readFileSync(pcap).length > 24 * 8, 2000);
    await sleep(300);
    dump.kill('SIGINT');
    await sleep(300);

    const rows = (await topo.ask('fdb.show')) as FdbRow[];
    out(`\n$ vtep fdb show --control ${topo.control}`);
    out(formatFdb(rows, () => topo.tap));
    out(`\n$ ovs-appctl fdb/show br0   (host A)`);
    out(topo.ovs!.appctl('fdb/show br0').trim());
    out(`\n$ tshark -r ${pcap} -d udp.port==4789,vxlan   (host B underlay)`);
    out(sh(`tshark -r ${pcap} -d udp.port==4789,vxlan 2>/dev/null`, { allowFail: true }).trimEnd());
    out(
      `\n$ tshark -r ${pcap} -d udp.port==4789,vxlan -O vxlan -c 1   (the VXLAN header of the first packet)`,
    );
    const detail = sh(`tshark -r ${pcap} -d udp.port==4789,vxlan -O vxlan -V -c 1 2>/dev/null`, {
      allowFail: true,
    });
    out(
      detail
        .slice(detail.indexOf('Virtual eXtensible'))
        .split('\n')
        .slice(0, 10)
        .join('\n')
        .trimEnd(),
    );
    out(
      `\nThe lab is up. Try:\n  ip netns exec ${topo.get('vmA').name} ping ${VM.vtep.ip}\n` +
        `  node ${process.argv[1]} stats --control ${topo.control}\n` +
        `Remove it with: vtep lab down${dir !== LAB_DIR ? ` --dir ${dir}` : ''}${prefix !== LAB_PREFIX ? ` --prefix ${prefix}` : ''}`,
    );
    topo.vtep!.unref();
  } catch (e) {
    topo.teardown();
    throw e;
  }
}

/** The demo's point is the ping across: one lost is a failed `lab up` (exit 1), not a success. */
export function checkPing(output: string): void {
  if (!/ 0% packet loss/.test(output))
    throw new LabError(
      'ERR_LAB_PING',
      `the VMs did not reach each other across the overlay (${/\d+% packet loss/.exec(output)?.[0] ?? 'no answer'}); the lab was removed`,
    );
}

/**
 * Remove a lab: its vtep and Open vSwitch, the namespaces its state file lists, its directory.
 * Without a state file there is no lab there, and nothing is touched.
 */
export function labDown(opts: LabOptions, out: Out): number {
  const prefix = checkPrefix(opts.prefix ?? LAB_PREFIX);
  const dir = opts.dir ?? LAB_DIR;
  const state = readState(dir);
  if (state === undefined)
    throw new LabError(
      'ERR_NO_LAB',
      `no lab in ${dir} (no readable lab.json there); nothing removed`,
    );
  if (state.prefix !== prefix)
    throw new ConfigError(
      '--prefix',
      prefix,
      `the lab in ${dir} was made with --prefix ${state.prefix}; nothing removed`,
    );
  const pidfiles = [
    join(dir, 'vtep.pid'),
    join(dir, 'ovs', 'run', 'ovs-vswitchd.pid'),
    join(dir, 'ovs', 'run', 'ovsdb-server.pid'),
  ];
  for (const f of pidfiles) {
    try {
      process.kill(Number(readFileSync(f, 'utf8').trim()), 'SIGTERM');
    } catch {
      /* not running */
    }
  }
  const present = new Set(
    sh('ip netns list', { allowFail: true })
      .split('\n')
      .map((l) => l.split(' ')[0]),
  );
  const names = state.namespaces.filter((n) => present.has(n));
  for (const n of names) new Netns(n).delete();
  rmSync(dir, { recursive: true, force: true });
  out(
    `removed ${names.length} namespaces${names.length ? ` (${names.join(' ')})` : ''} and ${dir}`,
  );
  return names.length;
}

export { UNDERLAY };
