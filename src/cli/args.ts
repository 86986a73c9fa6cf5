import { InvalidArgumentError, Option } from 'commander';
import { ConfigError, integer } from '../config/config.js';
import { parseMac } from '../wire/mac.js';
import { MAX_VNI } from '../wire/vxlan.js';

/** What the command modules share: defaults, exit statuses and option parsers. */

/** In a directory of its own, so a service running as its own user can create it (systemd RuntimeDirectory=vtep). */
export const DEFAULT_CONTROL = '/run/vtep/vtep.sock';
/** Exit status for bad command-line input or configuration (like commander's usage errors). */
export const EXIT_USAGE = 2;

/**
 * An integer option, parsed strictly by commander as it reads the command line (the running
 * vtep checks again): a bad value is commander's usage error, naming the flag and value.
 */
export function intOption(flags: string, description: string, min: number, max: number): Option {
  return new Option(flags, description).argParser((v: string) => {
    try {
      return integer(flags.split(' ')[0], v, min, max);
    } catch (err) {
      throw new InvalidArgumentError((err as ConfigError).reason);
    }
  });
}
export const vniOption = (description = 'VNI') => intOption('--vni <n>', description, 0, MAX_VNI);
export const portOption = (description: string) =>
  intOption('--port <port>', description, 1, 65535);

export function macArg(v: string): string {
  if (parseMac(v) === undefined)
    throw new ConfigError('MAC', v, 'must be a MAC address like 02:00:00:00:00:01');
  return v;
}

export const collect = (v: string, acc: string[] = []) => [...acc, v];

/** Write to stdout and wait until it has been handed on (a pipe may be slower than us). */
export function print(text: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(text, () => resolve()));
}
