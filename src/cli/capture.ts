import { createWriteStream, type WriteStream } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError } from '../config/config.js';
import type { RunningStats } from '../control/api.js';
import { subscribe } from '../control/client.js';
import { splitKey } from '../control/format.js';
import { pcapngHeader, pcapngPacket, type CaptureEvent } from '../control/pcapng.js';
import { packageVersion } from '../util/package.js';
import { intOption, macArg, vniOption } from './args.js';
import { ask, control } from './ask.js';

/**
 * `vtep capture`: pcapng of the inner frames of the running vtep (per VNI, both directions), or
 * with `--drops` of the packets it drops, each with the reason, VNI and remote as its comment
 * (`vtep capture --drops -w - | tshark -r -`). Stops after `--count` packets, after
 * `--duration` seconds, or on SIGINT/SIGTERM, leaving a valid file.
 */
export function captureCommand(p: Command): void {
  control(
    p
      .command('capture')
      .description(
        'write pcapng of inner frames (or, with --drops, of dropped packets with the reason as the comment) to a file or stdout',
      ),
  )
    .addOption(vniOption('only this VNI'))
    .option('--mac <mac>', 'only frames from or to this MAC')
    .option('--remote <addr>', 'only packets from (or, for drops, to) this remote')
    .option('--drops', 'the packets vtep drops, with the reason, instead of those it forwards')
    .option('-w, --write <file>', 'pcapng to this file (- : stdout)', '-')
    .addOption(intOption('-c, --count <n>', 'stop after this many packets', 1, 1e9))
    .addOption(intOption('--duration <seconds>', 'stop after this long', 1, 86400))
    .action(async (o) => {
      if (o.mac !== undefined) macArg(o.mac);
      const stats = (await ask(o.control, { cmd: 'stats' })) as RunningStats;
      const [address, port] = splitKey(stats.underlay);
      const local = { address, port: Number(port) };
      const out = await open(o.write);
      out.write(pcapngHeader(`vtep ${packageVersion()}`));
      const done = new AbortController();
      const stop = () => done.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const timer = o.duration ? setTimeout(stop, o.duration * 1000) : undefined;
      let n = 0;
      let lost = 0;
      await subscribe(
        o.control,
        { cmd: 'capture', vni: o.vni, mac: o.mac, remote: o.remote, drops: o.drops === true },
        (e) => {
          if (done.signal.aborted) return;
          if (e.event === 'lost') return void (lost += Number(e.count));
          if (e.event !== 'packet') return;
          out.write(pcapngPacket(e as unknown as CaptureEvent, local));
          n++;
          if (o.count && n >= o.count) stop();
        },
        {
          signal: done.signal,
          onReady: () =>
            process.stderr.write(
              `capturing ${o.drops ? 'dropped packets' : 'frames'}${o.vni !== undefined ? ` of vni ${o.vni}` : ''} to ${o.write === '-' ? 'stdout' : o.write}\n`,
            ),
        },
      );
      clearTimeout(timer);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      // (stdout cannot be ended: wait for what was written to be handed on)
      await new Promise<void>((resolve) =>
        out === process.stdout ? out.write('', () => resolve()) : out.end(() => resolve()),
      );
      process.stderr.write(
        `${n} packets captured${lost ? `, ${lost} lost (vtep or this reader did not keep up)` : ''}\n`,
      );
    });
}

async function open(file: string): Promise<NodeJS.WritableStream | WriteStream> {
  if (file === '-') return process.stdout;
  const s = createWriteStream(file);
  await new Promise<void>((resolve, reject) => {
    s.once('open', () => resolve());
    s.once('error', (err) =>
      reject(new ConfigError('--write', file, `cannot be written: ${err.message}`)),
    );
  });
  return s;
}
