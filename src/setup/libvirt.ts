import { ConfigError } from '../config/config.js';
import { render, type Runner } from './runner.js';

/**
 * `vtep setup libvirt`: the interface definition that attaches a domain's NIC to the bridge
 * (`<interface type='bridge'>`, with `<virtualport type='openvswitch'/>` for an OVS bridge),
 * and the guide's virt-install line with both NICs (libvirt's default network for management,
 * the bridge for the overlay).
 */
export interface LibvirtOptions {
  domain: string;
  bridge: string;
  openvswitch?: boolean;
  mac?: string;
  model?: string;
  connect?: string;
}

const DOMAIN = /^[A-Za-z0-9_.+-]{1,64}$/;

function check(o: LibvirtOptions): void {
  if (!DOMAIN.test(o.domain))
    throw new ConfigError(
      '--domain',
      o.domain,
      'must be a domain name of letters, digits, "_", ".", "+" or "-"',
    );
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(o.bridge))
    throw new ConfigError('--bridge', o.bridge, 'must be an interface name');
  if (o.mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(o.mac))
    throw new ConfigError('--mac', o.mac, 'must be a MAC address');
}

export function interfaceXml(o: LibvirtOptions): string {
  check(o);
  return [
    `<interface type='bridge'>`,
    `  <source bridge='${o.bridge}'/>`,
    ...(o.openvswitch ? [`  <virtualport type='openvswitch'/>`] : []),
    ...(o.mac ? [`  <mac address='${o.mac.toLowerCase()}'/>`] : []),
    `  <model type='${o.model ?? 'virtio'}'/>`,
    `</interface>`,
  ].join('\n');
}

/** A domain's XML with the interface added to its <devices> (for `virsh define`). */
export function withInterface(domainXml: string, o: LibvirtOptions): string {
  const end = domainXml.lastIndexOf('</devices>');
  if (end < 0) throw new ConfigError('--domain-xml', '(file)', 'has no <devices> element');
  const iface = interfaceXml(o).replace(/^/gm, '    ');
  return `${domainXml.slice(0, end)}${iface}\n  ${domainXml.slice(end)}`;
}

export function installArgv(
  o: LibvirtOptions & { memory?: number; vcpus?: number; disk?: string; osinfo?: string },
): string[] {
  check(o);
  const bridgeNet = `bridge=${o.bridge}${o.openvswitch ? ',virtualport.type=openvswitch' : ''}${o.mac ? `,mac=${o.mac}` : ''}`;
  return [
    'virt-install',
    ...(o.connect ? ['--connect', o.connect] : []),
    '--name',
    o.domain,
    '--memory',
    String(o.memory ?? 1024),
    '--vcpus',
    String(o.vcpus ?? 1),
    '--disk',
    o.disk ?? 'none',
    '--import',
    '--network',
    'network=default',
    '--network',
    bridgeNet,
    '--osinfo',
    o.osinfo ?? 'generic',
    '--noautoconsole',
  ];
}

/** Attach the interface persistently to a defined domain (real hypervisors; the test driver cannot). */
export function attachCommands(o: LibvirtOptions, xmlFile: string): string[][] {
  check(o);
  return [
    [
      'virsh',
      ...(o.connect ? ['-c', o.connect] : []),
      'attach-device',
      o.domain,
      xmlFile,
      '--config',
    ],
  ];
}

export function printInstall(o: Parameters<typeof installArgv>[0]): string {
  return render(installArgv(o));
}

export function applyLibvirt(o: LibvirtOptions, xmlFile: string, runner: Runner): void {
  runner.run(attachCommands(o, xmlFile));
}
