import { Argument, Command } from 'commander';
import {
  MONITOR_KINDS,
  type RemoteSummary,
  type RunningStats,
  type Status,
} from '../control/api.js';
import {
  formatEvent,
  formatFdb,
  formatRemotes,
  formatStats,
  formatStatus,
} from '../control/format.js';
import { subscribe } from '../control/client.js';
import { ask, control } from './ask.js';
import { captureCommand } from './capture.js';
import { traceCommand } from './trace.js';
import { ControlError } from '../control/server.js';
import type { FdbRow } from '../fdb/fdb.js';
import { collect, intOption, macArg, portOption, print, vniOption } from './args.js';

/**
 * The verbs that talk to a running vtep over its control socket (`vtep fdb`, `remote`, `vni`,
 * `showconf`, `monitor`, `stats`, `status`, `reload`): argv in, a request out, text back.
 */

const printChanges = async (r: unknown) =>
  print((r as { changes: string[] }).changes.join('\n') + '\n');

export function ctlCommands(p: Command): void {
  fdbCommands(p);
  liveCommands(p);
  infoCommands(p);
  traceCommand(p);
  captureCommand(p);
}

/** `vtep fdb show|add|del|flush`, as `bridge fdb` has them. */
function fdbCommands(p: Command): void {
  const fdb = p
    .command('fdb')
    .description('show and change the forwarding table of a running vtep');
  control(
    fdb
      .command('show', { isDefault: true })
      .description('list entries (like bridge fdb show; the default: vtep fdb lists)'),
  )
    .addOption(vniOption('only this VNI'))
    .option('--json', 'JSON output')
    .action(async (o) => {
      const rows = (await ask(o.control, { cmd: 'fdb.show', vni: o.vni })) as (FdbRow & {
        dev: string;
      })[];
      const devs = new Map(rows.map((r) => [r.vni, r.dev]));
      await print(
        o.json
          ? JSON.stringify(rows, null, 2) + '\n'
          : rows.length
            ? formatFdb(rows, (v) => devs.get(v) ?? '-') + '\n'
            : '',
      );
    });
  staticEntry(
    fdb,
    'add',
    'add a static entry (like bridge fdb add: an existing one needs --replace)',
  );
  staticEntry(
    fdb,
    'replace',
    'add a static entry or replace an existing one (like bridge fdb replace)',
  );
  control(fdb.command('del').description('delete an entry').argument('<mac>'))
    .addOption(vniOption().makeOptionMandatory())
    .action(async (mac, o) => {
      await ask(o.control, { cmd: 'fdb.del', mac: macArg(mac), vni: o.vni });
    });
  control(fdb.command('flush').description('remove entries (all, or those matching every option)'))
    .addOption(vniOption('only this VNI'))
    .option('--remote <addr>', 'only entries behind this remote')
    .addOption(portOption('with --remote: its UDP port (default: ours)'))
    .option('--learned-only', 'keep static entries')
    .action(async (o) => {
      const r = (await ask(o.control, {
        cmd: 'fdb.flush',
        vni: o.vni,
        remote: o.remote,
        port: o.port,
        learnedOnly: o.learnedOnly === true,
      })) as { removed: number };
      await print(`removed ${r.removed}\n`);
    });
}

/** `vtep fdb add|replace MAC --vni N --remote ADDR [--port P]`: a static entry. */
function staticEntry(fdb: Command, verb: 'add' | 'replace', description: string): void {
  const cmd = control(fdb.command(verb).description(description).argument('<mac>'))
    .addOption(vniOption().makeOptionMandatory())
    .requiredOption('--remote <addr>', 'remote VTEP address')
    .addOption(portOption('remote UDP port (default: ours)'));
  if (verb === 'add') cmd.option('--replace', 'replace an existing entry (static or learned)');
  cmd.action(async (mac, o) => {
    await ask(o.control, {
      cmd: 'fdb.add',
      mac: macArg(mac),
      vni: o.vni,
      remote: o.remote,
      port: o.port,
      replace: verb === 'replace' || o.replace === true,
    });
  });
}

/** `vtep remote add|del`, `vtep vni add|del`: live changes. */
function liveCommands(p: Command): void {
  const remote = p
    .command('remote')
    .description(
      "show the remote VTEPs and their counters; add or remove a VNI's remote live (its flood list and accepted senders; until the next reload from the file)",
    );
  for (const [verb, what] of [
    ['add', 'add a remote (like bridge fdb append 00:00:00:00:00:00 … dst ADDR)'],
    ['del', 'remove a remote; entries learned behind it are flushed'],
  ] as const)
    control(remote.command(verb).description(what).argument('<addr[:port]>'))
      .addOption(vniOption().makeOptionMandatory())
      .addOption(portOption('its UDP port (default: ours)'))
      .action(async (addr, o) =>
        printChanges(
          await ask(
            o.control,
            { cmd: `remote.${verb}`, vni: o.vni, remote: addr, port: o.port },
            { remote: 'ADDR' },
          ),
        ),
      );
  control(
    remote
      .command('show')
      .description(
        'per remote: VNIs, last heard, packets and bytes each way, MACs behind it, drops (like wg show)',
      )
      .argument('[addr[:port]]'),
  )
    .addOption(vniOption('only this VNI (its share of each remote)'))
    .addOption(portOption('with ADDR: its UDP port (default: ours)'))
    .option('--json', 'JSON output')
    .action(async (addr, o) => {
      const rows = (await ask(
        o.control,
        { cmd: 'remote.show', vni: o.vni, remote: addr, port: o.port },
        { remote: 'ADDR' },
      )) as RemoteSummary[];
      await print((o.json ? JSON.stringify(rows, null, 2) : formatRemotes(rows)) + '\n');
    });
  const vniCmd = p
    .command('vni')
    .description('add or remove a VNI live (its TAP is created or closed); until the next reload');
  control(vniCmd.command('add').description('add a VNI with its own TAP'))
    .addOption(vniOption().makeOptionMandatory())
    .option('--tap <name>', 'TAP device name (default vtep<VNI>)')
    .addOption(intOption('--mtu <bytes>', 'TAP MTU (default: from the underlay)', 68, 65535))
    .option('--remote <addr[:port]>', 'remote VTEP; repeat for several', collect)
    .option('--learn-remotes', 'accept and learn VXLAN from any sender')
    .action(async (o) =>
      printChanges(
        await ask(o.control, {
          cmd: 'vni.add',
          vni: o.vni,
          tap: o.tap,
          mtu: o.mtu,
          remotes: o.remote,
          learnRemotes: o.learnRemotes === true,
        }),
      ),
    );
  control(vniCmd.command('del').description('remove a VNI; its TAP and table go with it'))
    .addOption(vniOption().makeOptionMandatory())
    .action(async (o) => printChanges(await ask(o.control, { cmd: 'vni.del', vni: o.vni })));
}

/** `vtep showconf|monitor|stats|status|reload`. */
function infoCommands(p: Command): void {
  control(
    p
      .command('showconf')
      .description(
        'the running configuration as YAML that vtep run --config accepts (like wg showconf)',
      ),
  ).action(async (o) => print(String(await ask(o.control, { cmd: 'showconf' }))));
  control(
    p
      .command('monitor')
      .description(
        'stream FDB events (learn, move, age, evict) and misses as they happen, like bridge monitor fdb',
      )
      .addArgument(
        new Argument('[what]', 'which events').choices(Object.keys(MONITOR_KINDS)).default('all'),
      ),
  )
    .option('--json', 'one JSON object per line')
    .action(async (what: string, o) => {
      await subscribe(o.control, { cmd: 'monitor', what }, (e) => {
        process.stdout.write((o.json ? JSON.stringify(e) : formatEvent(e)) + '\n');
      });
      // The vtep went away (stopped or restarted): say so, as a failure.
      throw new ControlError('ECONNRESET', `control socket ${String(o.control)}: closed by vtep`);
    });
  control(p.command('stats').description('packet, byte and drop counters; TAP state'))
    .option('--json', 'JSON output')
    .action(async (o) => {
      const s = (await ask(o.control, { cmd: 'stats' })) as RunningStats;
      await print((o.json ? JSON.stringify(s, null, 2) : formatStats(s)) + '\n');
    });
  control(
    p
      .command('status')
      .description('health check: exit 0 when every TAP is up, 1 when degraded or not running'),
  )
    .option('--json', 'JSON output')
    .action(async (o) => {
      const s = (await ask(o.control, { cmd: 'status' })) as Status;
      await print((o.json ? JSON.stringify(s, null, 2) : formatStatus(s)) + '\n');
      if (!s.healthy) process.exitCode = 1;
    });
  control(
    p
      .command('reload')
      .description('re-read the configuration (as SIGHUP does); a bad file keeps the running one'),
  ).action(async (o) => {
    const r = (await ask(o.control, { cmd: 'reload' })) as { changes: string[] };
    await print(r.changes.join('\n') + '\n');
  });
}
