import { spawnSync } from 'node:child_process';
import type { Netns } from '../../src/lab/netns.js';

/** Write raw Ethernet frames (hex) out of `dev` in `ns` through an AF_PACKET socket, in order. */
export function sendFrames(ns: Netns, dev: string, frames: string[]): void {
  const py = `import socket,sys,json\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\nfor h in json.load(sys.stdin): s.send(bytes.fromhex(h))`;
  const r = spawnSync('ip', ['netns', 'exec', ns.name, 'python3', '-c', py, dev], {
    input: JSON.stringify(frames),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`AF_PACKET sender failed in ${ns.name}: ${r.stderr}`);
}
