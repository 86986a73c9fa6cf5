// Writes dist/man/vtep.8 and dist/completion/vtep.bash from the command table (run by
// `npm run build`, after tsc): the manual and the completion cannot drift from the CLI.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { program, DEFAULT_CONTROL } = await import(join(root, 'dist/src/cli/main.js'));
const { manPage, bashCompletion } = await import(join(root, 'dist/src/util/docs.js'));
const { packageVersion } = await import(join(root, 'dist/src/util/package.js'));

const p = program();
const man = manPage(p, {
  name: 'vtep',
  section: 8,
  version: packageVersion(),
  sections: {
    environment: [
      `VTEP_CONTROL: the control socket the verbs use when no --control is given (default ${DEFAULT_CONTROL}).`,
      'JOURNAL_STREAM: set by systemd; when it names stderr, vtep run writes a syslog priority on each log line (--log-format auto).',
      'NOTIFY_SOCKET, WATCHDOG_USEC: set by systemd for Type=notify and WatchdogSec=; vtep says READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1.',
    ],
    'exit status': [
      '0: done. 1: a failure (the running vtep is degraded for vtep status, a device or socket error). 2: bad command-line input or configuration, named by field and value; nothing was changed.',
    ],
    files: [
      `${DEFAULT_CONTROL}: the control socket (mode 0600).`,
      '/etc/vtep/vtep.yaml: the configuration that vtep setup systemd points the unit at.',
    ],
    'see also': ['bridge(8), ip-link(8), ovs-vsctl(8), RFC 7348.'],
  },
});
for (const [file, text] of [
  ['dist/man/vtep.8', man],
  ['dist/completion/vtep.bash', bashCompletion(p, 'vtep')],
]) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), text);
}
