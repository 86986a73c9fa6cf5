import { spawnSync } from 'node:child_process';
import type { Netns } from '../../src/lab/netns.js';

/**
 * Write raw Ethernet frames (hex) out of `dev` in `ns` through an AF_PACKET socket, in order.
 * `burst`: a 2 ms pause after every that many frames, so that a test counting every frame does
 * not depend on the kernel's per-CPU backlog (1000 packets, each veth hop one entry) being
 * drained in time on a loaded machine; default: no pause.
 */
export function sendFrames(ns: Netns, dev: string, frames: string[], burst = 0): void {
  const py = `import socket,sys,json,time\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\nb=int(sys.argv[2])\nfor i,h in enumerate(json.load(sys.stdin)):\n  s.send(bytes.fromhex(h))\n  if b and i%b==b-1: time.sleep(0.002)`;
  const r = spawnSync('ip', ['netns', 'exec', ns.name, 'python3', '-c', py, dev, String(burst)], {
    input: JSON.stringify(frames),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`AF_PACKET sender failed in ${ns.name}: ${r.stderr}`);
}
