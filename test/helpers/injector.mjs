// Hostile-input injector, run inside a test namespace: reads a JSON list of hex strings (whole
// IPv4 packets, header included, so the source address can be any configured remote) from
// stdin and sends each through a raw-socket IPPROTO_UDP socket with IP_HDRINCL, in order.
// Prints the number sent. Plain JavaScript: it runs under `ip netns exec node`, without tap's
// TypeScript loader.
import raw from 'raw-socket';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const packets = JSON.parse(Buffer.concat(chunks).toString('utf8')).map((h) =>
  Buffer.from(h, 'hex'),
);

const socket = raw.createSocket({ protocol: raw.Protocol.UDP });
socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
socket.pauseRecv();

let sent = 0;
let failed = 0;
await new Promise((resolve) => {
  if (packets.length === 0) resolve();
  packets.forEach((p) => {
    const dst = `${p[16]}.${p[17]}.${p[18]}.${p[19]}`;
    socket.send(p, 0, p.length, dst, (err) => {
      if (err) failed++;
      else sent++;
      if (sent + failed === packets.length) resolve();
    });
  });
});
socket.close();
console.log(JSON.stringify({ sent, failed }));
