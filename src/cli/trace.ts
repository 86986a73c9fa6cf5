import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError } from '../config/config.js';
import { formatTrace } from '../control/format.js';
import type { Trace } from '../engine/engine.js';
import { intOption, print, vniOption } from './args.js';
import { ask, control } from './ask.js';
import { buildFrame, pcapFrame } from './traceframe.js';

/**
 * `vtep trace`: what the running vtep would do with one frame, as `ovs-appctl ofproto/trace`
 * answers for a bridge: every decision against the live state (VNI, sender, learning, FDB,
 * flood list, suppression, path MTU, the outer header) and the verdict, with nothing changed.
 */
export function traceCommand(p: Command): void {
  control(
    p
      .command('trace')
      .description(
        'what vtep would do with a frame now (like ovs-appctl ofproto/trace): every decision and the verdict; nothing is learned, counted or sent',
      ),
  )
    .requiredOption('--in <tap:NAME|remote:ADDR[:PORT]>', 'where the frame comes in')
    .addOption(vniOption('the VNI (default: the TAP’s; needed for a remote unless only one)'))
    .option('--src <mac>', 'inner source MAC (default 02:00:00:00:00:01)')
    .option('--dst <mac>', 'inner destination MAC (default: broadcast for --arp)')
    .addOption(intOption('--vlan <id>', 'an 802.1Q tag', 0, 4095))
    .option('--ip4 <a>b>', 'an IPv4 UDP packet from A to B')
    .option('--ip6 <a>b>', 'an IPv6 UDP packet from A to B')
    .option('--arp <a>b>', 'an ARP request from A asking for B')
    .addOption(
      intOption('--len <bytes>', 'frame length (default 60, or what the headers need)', 1, 65535),
    )
    .option('--hex <bytes>', 'the frame itself, as hex from its Ethernet header')
    .option('--pcap <file>', 'take the frame from a capture (pcap or pcapng)')
    .addOption(
      intOption('--index <i>', 'with --pcap: which packet (0-based)', 0, 1 << 30).default(0),
    )
    .addOption(
      intOption('--outer-tos <byte>', 'from a remote: the outer TOS (its ECN bits)', 0, 255),
    )
    .option('--json', 'JSON output')
    .action(async (o) => {
      let frame: Buffer;
      if (o.pcap !== undefined) {
        let data: Buffer;
        try {
          data = readFileSync(o.pcap);
        } catch (err) {
          throw new ConfigError('--pcap', o.pcap, `cannot be read: ${(err as Error).message}`);
        }
        frame = pcapFrame(o.pcap, data, o.index);
      } else frame = buildFrame(o);
      const tr = (await ask(
        o.control,
        { cmd: 'trace', in: o.in, vni: o.vni, hex: frame.toString('hex'), outerTos: o.outerTos },
        { in: '--in', remote: '--in', hex: '--hex', outerTos: '--outer-tos' },
      )) as Trace & { in: string; vni: number; length: number };
      await print((o.json ? JSON.stringify(tr, null, 2) : formatTrace(tr)) + '\n');
    });
}
