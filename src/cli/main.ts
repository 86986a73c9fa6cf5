#!/usr/bin/env node
// `vtep`: the command table and the exit statuses; each command's work is in its own module.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError } from 'commander';
import { ConfigError } from '../config/config.js';
import { ControlError } from '../control/server.js';
import { bashCompletion } from '../util/docs.js';
import { packageVersion } from '../util/package.js';
import { DEFAULT_CONTROL, EXIT_USAGE } from './args.js';
import { ctlCommands } from './ctl.js';
import { labCommands } from './lab.js';
import { runCommand } from './serve.js';
import { setupCommands } from './setup.js';

export { DEFAULT_CONTROL, EXIT_USAGE } from './args.js';

export function program(): Command {
  const p = new Command('vtep')
    .description(
      'userspace VXLAN tunnel endpoint (RFC 7348): TAP <-> UDP 4789 with a MAC-learning FDB per VNI',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride()
    // commander's own usage errors, in vtep's form: one `vtep: …` line naming flag and value
    .configureOutput({
      outputError: (str, write) => write(`vtep: ${str.replace(/^error: /, '')}`),
    })
    .option('--control <path>', 'control socket, for every verb (default: $VTEP_CONTROL)')
    .hook('preAction', (_, action) => settleControl(p, action));

  runCommand(p);
  ctlCommands(p);
  labCommands(p);
  setupCommands(p);
  p.command('completion')
    .description('print the bash completion script (source <(vtep completion bash))')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash']))
    .action(() => void process.stdout.write(bashCompletion(p, 'vtep')));
  shortUsageErrors(p, 'vtep');
  return p;
}

/**
 * Which control socket a verb uses: its own --control, else one before the verb, else
 * VTEP_CONTROL, else the default. `vtep run` takes only an explicit one (flag or environment):
 * without, its configuration file says where.
 */
function settleControl(p: Command, action: Command): void {
  if (!action.options.some((o) => o.long === '--control')) return;
  const given =
    (action.opts().control as string | undefined) ??
    (p.opts().control as string | undefined) ??
    process.env.VTEP_CONTROL;
  if (given !== undefined) action.setOptionValue('control', given);
  else if (action.name() !== 'run') action.setOptionValue('control', DEFAULT_CONTROL);
}

/** A usage error is its one line and where to read more, not the whole help (`vtep fdb add --help`). */
function shortUsageErrors(cmd: Command, path: string): void {
  cmd.showHelpAfterError(`(see '${path} --help')`);
  for (const sub of cmd.commands) shortUsageErrors(sub, `${path} ${sub.name()}`);
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are not errors; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`vtep: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (
      err instanceof ControlError &&
      (err.code === 'ERR_ARG' || err.code === 'ERR_CONFIG' || err.code === 'ERR_CONTROL_PATH')
    ) {
      // The running vtep refused what we sent (a reload of a bad file, …): still bad input.
      process.stderr.write(`vtep: ${err.message}\n`);
      return EXIT_USAGE;
    }
    const e = err as { code?: string; message?: string };
    process.stderr.write(`vtep: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}\n`);
    return 1;
  }
}

/**
 * Whether this file is the program being run rather than a module imported by tests. npm's bin
 * is a symlink (node_modules/.bin/vtep, or a global one), so compare real paths, not URLs.
 */
function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv).then((code) => {
    // `run` keeps the event loop alive until a signal. The other commands end here: with their
    // output drained first (a pipe takes 64 KiB at a time), then explicitly, since `lab up`
    // leaves its vtep running detached.
    if (code === 0 && process.argv[2] === 'run') return;
    const status = code || Number(process.exitCode ?? 0);
    process.stdout.write('', () => process.exit(status));
  });
}
