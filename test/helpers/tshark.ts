import { spawnSync } from 'node:child_process';

/**
 * Decode a capture with tshark, port 4789 as VXLAN, one row of fields per packet (first
 * occurrence of each field). Wireshark shows bytes 2..3 of the header as "Group Policy ID"
 * (`vxlan.gbp`) and the reserved bits of the flags word as `vxlan.flags_reserved`: with
 * `vxlan.reserved8` they are the 32 reserved bits of RFC 7348.
 */
export function tsharkFields(
  pcap: string,
  fields: string[],
  extra: string[] = [],
): { status: number | null; stderr: string; rows: string[][] } {
  const r = spawnSync(
    'tshark',
    [
      '-r',
      pcap,
      '-d',
      'udp.port==4789,vxlan',
      '-T',
      'fields',
      '-E',
      'separator=,',
      '-E',
      'occurrence=f',
      ...fields.flatMap((f) => ['-e', f]),
      ...extra,
    ],
    { encoding: 'utf8' },
  );
  return {
    status: r.status,
    stderr: r.stderr,
    rows: r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(',')),
  };
}

/** The VXLAN header fields, in this order. */
export const VXLAN_FIELDS = [
  'vxlan.flags',
  'vxlan.flag_i',
  'vxlan.vni',
  'vxlan.flags_reserved',
  'vxlan.gbp',
  'vxlan.reserved8',
];
