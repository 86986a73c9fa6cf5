import type { Command } from 'commander';
import { ConfigError } from '../config/config.js';
import { request } from '../control/client.js';
import { ControlError } from '../control/server.js';
import { DEFAULT_CONTROL } from './args.js';

/**
 * What every verb that talks to a running vtep shares (ctl.ts, trace.ts, capture.ts): the
 * `--control` option, and a request whose blamed field becomes the flag the user typed.
 */

/** Request fields, and the flag or argument each one came from on the command line. */
const FLAG_OF_FIELD: Record<string, string> = {
  vni: '--vni',
  remote: '--remote',
  remotes: '--remote',
  port: '--port',
  mac: 'MAC',
  tap: '--tap',
  mtu: '--mtu',
  learnedOnly: '--learned-only',
};

/**
 * Ask the running vtep. An answer that blames one of the request's fields is the user's input:
 * it becomes a ConfigError naming the flag, so it exits 2 like every other bad input.
 */
export async function ask(
  control: string,
  req: Record<string, unknown>,
  flags: Record<string, string> = {},
): Promise<unknown> {
  try {
    return await request(control, req);
  } catch (err) {
    const flag =
      err instanceof ControlError && err.field
        ? (flags[err.field] ?? FLAG_OF_FIELD[err.field])
        : undefined;
    if (err instanceof ControlError && flag) {
      const m = /^invalid \S+ (.*?): (.*)$/s.exec(err.message);
      throw new ConfigError(flag, m ? JSON.parse(m[1]) : req[err.field!], m ? m[2] : err.message);
    }
    throw err;
  }
}

/**
 * `--control PATH` on a verb: the socket of the running vtep. It may also stand before the verb
 * (`vtep --control P fdb`) or come from VTEP_CONTROL; main.ts settles which (flag, then the
 * environment, then the default) before the action runs.
 */
export const control = (cmd: Command) =>
  cmd.option(
    '--control <path>',
    `control socket of the running vtep (default: $VTEP_CONTROL, else ${DEFAULT_CONTROL})`,
  );
