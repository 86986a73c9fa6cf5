// Half-open clients, run inside a test namespace: opens COUNT connections to TARGET (host:port,
// or a unix socket path) as fast as it can, never sends a byte, and holds them for SECONDS.
// Prints {"open":N,"closed":M} every half second. Plain JavaScript, run as `node halfopen.mjs`.
import net from 'node:net';

const [target, count, seconds] = process.argv.slice(2);
let open = 0;
let closed = 0;
for (let i = 0; i < Number(count); i++) {
  const c = target.startsWith('/')
    ? net.connect(target)
    : net.connect(Number(target.split(':').pop()), target.slice(0, target.lastIndexOf(':')));
  c.on('connect', () => open++);
  c.on('error', () => {});
  c.on('close', () => closed++);
}
setInterval(() => console.log(JSON.stringify({ open, closed })), 500);
setTimeout(() => process.exit(0), Number(seconds) * 1000);
