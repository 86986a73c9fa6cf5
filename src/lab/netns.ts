import { reapOnExit, release } from './reaper.js';
import { sh } from './sh.js';

/**
 * Network namespaces as test hosts. Names carry a per-process prefix (tests) or a fixed one
 * (the lab), so parallel users never collide and teardown finds everything it made.
 */
let counter = 0;
const prefix = `vt${process.pid % 100000}`;

/** A short unique name (interface names must stay under 16 bytes). */
export function uniqueName(tag: string): string {
  return `${prefix}${tag}${counter++}`.slice(0, 15);
}

export class Netns {
  constructor(readonly name: string) {}

  /**
   * Add a namespace. With `reap`, it is deleted even if this process is killed before it can
   * delete it (tests: tap kills a file on its timeout before teardown runs).
   */
  static create(name: string, opts: { reap?: boolean } = {}): Netns {
    const ns = new Netns(name);
    sh(`ip netns add ${ns.name}`);
    if (opts.reap) reapOnExit(ns.name);
    sh(`ip -n ${ns.name} link set lo up`);
    return ns;
  }

  /** Run a command line inside the namespace. */
  exec(cmd: string, opts: { allowFail?: boolean; env?: Record<string, string> } = {}): string {
    return sh(`ip netns exec ${this.name} sh -c '${cmd.replace(/'/g, `'\\''`)}'`, opts);
  }

  /** A command prefix for spawning long-running processes inside the namespace. */
  get prefix(): string {
    return `ip netns exec ${this.name}`;
  }

  delete(): void {
    // Kill anything still running inside, then remove the namespace (and its veths with it).
    sh(`ip netns pids ${this.name} 2>/dev/null | xargs -r kill -9`, { allowFail: true });
    sh(`ip netns del ${this.name}`, { allowFail: true });
    release(this.name);
  }
}

/**
 * Create namespaces with unique names that `t.teardown` removes, whatever happens in the test,
 * and that are removed even if the test process is killed.
 */
export function namespaces(t: { teardown(fn: () => void): void }, ...tags: string[]): Netns[] {
  const all = tags.map((tag) => Netns.create(uniqueName(tag), { reap: true }));
  t.teardown(() => all.forEach((ns) => ns.delete()));
  return all;
}

/** A veth pair with one end in each namespace (checksum offload off: OVS userspace needs it). */
export function veth(
  a: Netns,
  aName: string,
  b: Netns,
  bName: string,
  opts: { mtu?: number; mac?: string } = {},
): void {
  const tmpA = uniqueName('va');
  const tmpB = uniqueName('vb');
  sh(`ip link add ${tmpA} type veth peer name ${tmpB}`);
  sh(`ip link set ${tmpA} netns ${a.name}`);
  sh(`ip link set ${tmpB} netns ${b.name}`);
  a.exec(`ip link set ${tmpA} name ${aName}`);
  b.exec(`ip link set ${tmpB} name ${bName}`);
  for (const [ns, name] of [
    [a, aName],
    [b, bName],
  ] as const) {
    if (opts.mtu) ns.exec(`ip link set ${name} mtu ${opts.mtu}`);
    ns.exec(`ethtool -K ${name} tx off >/dev/null 2>&1 || true`);
    ns.exec(`ip link set ${name} up`);
  }
  if (opts.mac) b.exec(`ip link set ${bName} address ${opts.mac}`);
}
