import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, integer } from '../config/config.js';
import { applyHost } from '../setup/host.js';
import { applyLibvirt, interfaceXml, printInstall, withInterface } from '../setup/libvirt.js';
import { applyOvs, showOvs } from '../setup/ovs.js';
import { executor, printer, render, type Runner } from '../setup/runner.js';
import { checkUnitName, unitText, writeUnit } from '../setup/systemd.js';
import { MAX_VNI } from '../wire/vxlan.js';

/** `vtep setup`: thin provisioning of Open vSwitch, libvirt, a host bridge and systemd. */

/** An optional integer flag, parsed strictly. */
function int(field: string, v: unknown, min: number, max: number): number | undefined {
  return v === undefined ? undefined : integer(field, v, min, max);
}

export function setupCommands(p: Command): void {
  const out = (l: string) => process.stdout.write(l + '\n');
  const setup = p
    .command('setup')
    .description(
      'provision Open vSwitch, libvirt, the host bridge and systemd as the OVS VXLAN guide does',
    );
  ovsSetup(setup, out);
  libvirtSetup(setup, out);
  hostSetup(setup, out);
  systemdSetup(setup, out);
}

function ovsSetup(setup: Command, out: (l: string) => void): void {
  setup
    .command('ovs')
    .description('add the bridge and the VXLAN port (idempotent: --may-exist)')
    .option('--bridge <name>', 'OVS bridge', 'br0')
    .option('--remote <addr>', 'remote_ip of the other host')
    .option('--key <vni>', 'options:key (the VNI; OVS default 0)')
    .option('--port-name <name>', 'port and interface name', 'vx_node1')
    .option('--dst-port <port>', 'options:dst_port (OVS default 4789)')
    .option('--db <unix:PATH>', 'ovsdb-server to talk to (default: the system one)')
    .option('--no-wait', 'do not wait for ovs-vswitchd (needed when it is not running)')
    .option('--datapath-type <type>', 'bridge datapath_type: netdev for the userspace datapath')
    .option('--dry-run', 'print the commands instead of running them')
    .option('--show', 'print the resulting configuration')
    .action((o) => {
      if (o.remote !== undefined || !o.show) {
        if (o.remote === undefined)
          throw new ConfigError('--remote', undefined, "is required (the other host's address)");
        const opts = {
          bridge: o.bridge,
          remote: o.remote,
          key: int('--key', o.key, 0, MAX_VNI),
          portName: o.portName,
          dstPort: int('--dst-port', o.dstPort, 1, 65535),
          db: o.db,
          noWait: o.wait === false,
          datapathType: o.datapathType,
        };
        applyOvs(opts, o.dryRun ? printer(out) : loud(executor(), out));
      }
      if (o.show) {
        // With --dry-run the show commands are printed like the others, not silently skipped.
        const shown = showOvs(
          { db: o.db, portName: o.portName },
          o.dryRun ? printer(out) : executor(),
        );
        if (shown) out(shown);
      }
    });
}

function libvirtSetup(setup: Command, out: (l: string) => void): void {
  setup
    .command('libvirt')
    .description("print or apply the <interface> that puts a domain's NIC on the bridge")
    .requiredOption('--domain <name>', 'libvirt domain')
    .option('--bridge <name>', 'bridge', 'br0')
    .option('--openvswitch', "add <virtualport type='openvswitch'/> (an OVS bridge)")
    .option('--mac <mac>', 'MAC address of the NIC')
    .option('--connect <uri>', 'libvirt URI (virsh -c / virt-install --connect)')
    .option('--print-install', "print the guide's virt-install line with both NICs")
    .option(
      '--domain-xml <file>',
      'print this domain XML with the interface added (for virsh define)',
    )
    .option('--apply', 'attach it persistently: virsh attach-device DOMAIN FILE --config')
    .option('--dry-run', 'with --apply: print the command instead')
    .action((o) => {
      const opts = {
        domain: o.domain,
        bridge: o.bridge,
        openvswitch: o.openvswitch === true,
        mac: o.mac,
        connect: o.connect,
      };
      if (o.printInstall) return void out(printInstall(opts));
      if (o.domainXml) return void out(withInterface(readText('--domain-xml', o.domainXml), opts));
      const xml = interfaceXml(opts);
      if (!o.apply) return void out(xml);
      const tmp = mkdtempSync(join(tmpdir(), 'vtep-iface-'));
      try {
        const file = join(tmp, 'interface.xml');
        writeFileSync(file, xml + '\n');
        applyLibvirt(opts, file, o.dryRun ? printer(out) : loud(executor(), out));
      } finally {
        // virsh has read it (or the dry run printed its path): nothing to leave behind.
        rmSync(tmp, { recursive: true, force: true });
      }
    });
}

function hostSetup(setup: Command, out: (l: string) => void): void {
  setup
    .command('host')
    .description('a Linux bridge holding our TAP, for libvirt VMs on that bridge')
    .option('--bridge <name>', 'Linux bridge', 'br0')
    .requiredOption('--tap <name>', "vtep's TAP device (created persistent if missing)")
    .option('--dry-run', 'print the commands instead of running them')
    .action((o) =>
      applyHost({ bridge: o.bridge, tap: o.tap }, o.dryRun ? printer(out) : loud(executor(), out)),
    );
}

function systemdSetup(setup: Command, out: (l: string) => void): void {
  setup
    .command('systemd')
    .description('a unit that starts "vtep run --config FILE" at boot')
    .requiredOption('--config <file>', 'vtep configuration (validated first)')
    .option('--unit-dir <dir>', 'where to write the unit', '/etc/systemd/system')
    .option('--name <name>', 'unit name', 'vtep')
    .option('--force', 'replace an existing unit file')
    .option('--dry-run', 'print the unit instead of writing it')
    .action((o) => {
      const opts = {
        config: o.config,
        unitDir: o.unitDir,
        name: checkUnitName(o.name),
        force: o.force === true,
      };
      if (o.dryRun) return void out(unitText(opts).trimEnd());
      const path = writeUnit(opts);
      out(
        `wrote ${path}\nenable it with: systemctl daemon-reload && systemctl enable --now ${o.name}.service`,
      );
    });
}

/** An executor that says each command it runs, so nothing is applied silently. */
function loud(r: Runner, out: (l: string) => void): Runner {
  return {
    dryRun: false,
    run(commands) {
      const res = r.run(commands);
      for (const c of commands) out(`applied: ${render(c)}`);
      return res;
    },
  };
}

function readText(field: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(field, path, `cannot be read: ${(err as Error).message}`);
  }
}
