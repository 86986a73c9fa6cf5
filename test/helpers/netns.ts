import { sh } from './sh.js';

/**
 * Network namespaces made by a test, with a unique prefix per process so parallel test files
 * never collide, and a teardown that removes them even when the test failed.
 */
let counter = 0;
const prefix = `vt${process.pid % 100000}`;

/** A short unique name (interface names must stay under 16 bytes). */
export function uniqueName(tag: string): string {
  return `${prefix}${tag}${counter++}`.slice(0, 15);
}

export class Netns {
  constructor(readonly name: string) {}

  static create(tag: string): Netns {
    const ns = new Netns(uniqueName(tag));
    sh(`ip netns add ${ns.name}`);
    sh(`ip -n ${ns.name} link set lo up`);
    return ns;
  }

  /** Run a command line inside the namespace. */
  exec(cmd: string, opts: { allowFail?: boolean } = {}): string {
    return sh(`ip netns exec ${this.name} sh -c '${cmd.replace(/'/g, `'\\''`)}'`, opts);
  }

  /** A command prefix for spawning long-running processes inside the namespace. */
  get prefix(): string {
    return `ip netns exec ${this.name}`;
  }

  delete(): void {
    // Kill anything still running inside, then remove the namespace.
    sh(`ip netns pids ${this.name} 2>/dev/null | xargs -r kill -9`, { allowFail: true });
    sh(`ip netns del ${this.name}`, { allowFail: true });
  }
}

/** Create namespaces that `t.teardown` removes, whatever happens in the test. */
export function namespaces(t: { teardown(fn: () => void): void }, ...tags: string[]): Netns[] {
  const all = tags.map((tag) => Netns.create(tag));
  t.teardown(() => all.forEach((ns) => ns.delete()));
  return all;
}
