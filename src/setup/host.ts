import { existsSync } from 'node:fs';
import { ConfigError } from '../config/config.js';
import type { Runner } from './runner.js';

/**
 * `vtep setup host`: a Linux bridge holding our TAP, so libvirt VMs on that bridge reach the
 * overlay. The TAP is created persistent when it does not exist yet; `vtep run --tap NAME`
 * then attaches to it, whichever starts first.
 */
export interface HostOptions {
  bridge: string;
  tap: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function hostCommands(
  o: HostOptions,
  exists: (dev: string) => boolean = (d) => existsSync(`/sys/class/net/${d}`),
): string[][] {
  if (!NAME.test(o.bridge))
    throw new ConfigError('--bridge', o.bridge, 'must be an interface name');
  if (!NAME.test(o.tap)) throw new ConfigError('--tap', o.tap, 'must be an interface name');
  const cmds: string[][] = [];
  if (!exists(o.bridge)) cmds.push(['ip', 'link', 'add', o.bridge, 'type', 'bridge']);
  // multi_queue: each of vtep's workers reads its own queue of it
  if (!exists(o.tap))
    cmds.push(['ip', 'tuntap', 'add', 'dev', o.tap, 'mode', 'tap', 'multi_queue']);
  cmds.push(
    ['ip', 'link', 'set', o.tap, 'master', o.bridge],
    ['ip', 'link', 'set', o.bridge, 'up'],
    ['ip', 'link', 'set', o.tap, 'up'],
  );
  return cmds;
}

export function applyHost(o: HostOptions, runner: Runner): void {
  runner.run(hostCommands(o));
}
