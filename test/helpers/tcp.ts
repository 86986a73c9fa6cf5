import type { Netns } from '../../src/lab/netns.js';
import { bg, until } from '../../src/lab/sh.js';

/**
 * Send `bytes` random bytes over TCP from `client` to a server on `ip` in `server` (both
 * namespaces), and report what arrived and whether its SHA-256 matches what was sent.
 */
export async function tcpTransfer(
  server: Netns,
  ip: string,
  client: Netns,
  bytes = 1 << 20,
  timeoutMs = 20_000,
): Promise<{ received: number; sameSha: boolean }> {
  const srv = bg(
    `${server.prefix} ${process.execPath} -e "const net=require('net'),c=require('crypto');const h=c.createHash('sha256');let n=0;` +
      `const s=net.createServer(k=>{k.on('data',d=>{h.update(d);n+=d.length});k.on('end',()=>{console.log(JSON.stringify({n,sha:h.digest('hex')}));s.close()})}).listen(5001,'${ip}',()=>console.log('ready'))"`,
  );
  try {
    let out = '';
    srv.stdout!.on('data', (d) => (out += d));
    await until(() => out.includes('ready'), 5000);
    const sent = client.exec(
      `${process.execPath} -e "const net=require('net'),c=require('crypto');const d=c.randomBytes(${bytes});` +
        `const k=net.connect(5001,'${ip}',()=>k.end(d));k.on('close',()=>console.log(c.createHash('sha256').update(d).digest('hex')))"`,
      { allowFail: true },
    );
    await until(() => out.includes('sha'), timeoutMs);
    const line = out.split('\n').find((l) => l.includes('sha'));
    if (!line) return { received: 0, sameSha: false };
    const got = JSON.parse(line) as { n: number; sha: string };
    return { received: got.n, sameSha: got.sha === sent.trim() };
  } finally {
    srv.kill();
  }
}
