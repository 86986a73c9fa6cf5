import type { Test } from 'tap';
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

/** `tcpTransfer` client → server for each pair (VM namespace roles), asserting 1 MiB byte for byte. */
export async function tcpBetween(
  t: Test,
  topo: { get(role: string): Netns },
  pairs: readonly (readonly [server: string, ip: string, client: string])[],
  how = '',
): Promise<void> {
  for (const [server, ip, client] of pairs) {
    const r = await tcpTransfer(topo.get(server), ip, topo.get(client));
    t.equal(r.received, 1 << 20, `${client} → ${server}: 1 MiB over TCP${how}`);
    t.ok(r.sameSha, `${client} → ${server}: byte for byte`);
  }
}

/** Both directions between our VM (vmB) and each peer VM. */
export const BOTH_WAYS = (vm: Record<'ovs' | 'vtep' | 'kernel', { ip: string }>) =>
  [
    ['vmA', vm.ovs.ip, 'vmB'],
    ['vmB', vm.vtep.ip, 'vmA'],
    ['vmC', vm.kernel.ip, 'vmB'],
    ['vmB', vm.vtep.ip, 'vmC'],
  ] as const;
