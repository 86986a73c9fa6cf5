import { spawn } from 'node:child_process';
import { until } from '../../src/lab/sh.js';

/**
 * A stand-in for systemd's notify socket at `path`: every sd_notify datagram vtep sends, as a
 * line in `heard` (newlines within one as spaces). `close` when done.
 */
export async function notifyListener(path: string): Promise<{ heard: string[]; close(): void }> {
  const heard: string[] = [];
  const listener = spawn('python3', [
    '-c',
    'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound",flush=True)\nwhile True:\n  print(s.recv(4096).decode().replace("\\n"," "),flush=True)',
    path,
  ]);
  listener.stdout.on('data', (d) => heard.push(...String(d).trim().split('\n')));
  await until(() => heard.includes('bound'), 5000);
  return { heard, close: () => listener.kill() };
}
