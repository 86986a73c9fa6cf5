// Who holds a UDP port, read from /proc as the daemon reads it: real sockets on loopback.
import { createSocket, type Socket } from 'node:dgram';
import t from 'tap';
import {
  describeHolder,
  ownSocketInodes,
  processCommand,
  udpHolders,
  whose,
} from '../../src/io/portowners.js';
import { remoteKey } from '../../src/fdb/remote.js';

async function bound(type: 'udp4' | 'udp6', address: string): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((r) => s.bind(0, address, r));
  t.teardown(() => s.close());
  return s;
}

for (const [type, address] of [
  ['udp4', '127.0.0.1'],
  ['udp6', '::1'],
] as const) {
  t.test(`${type}: a socket on ${address} is found, with its inode, and is ours`, async (t) => {
    const s = await bound(type, address);
    const port = s.address().port;
    const held = udpHolders(address, port);
    t.equal(held.length, 1, 'exactly one socket on the port');
    t.match(held[0], { address, port, uid: process.getuid!() });
    t.ok(ownSocketInodes().has(held[0].inode), 'its inode is one of this process');
    whose(held);
    t.equal(held[0].pid, process.pid, 'whose: this process');
    t.match(
      describeHolder(held[0]),
      new RegExp(`^pid ${process.pid} \\(portowners\\.test\\.ts\\), uid \\d+$`),
    );
    t.same(udpHolders(address, port === 65535 ? 65534 : port + 1), [], 'the next port is free');
  });
}

t.test('a wildcard bind overlaps every address of its family', async (t) => {
  const s = await bound('udp4', '0.0.0.0');
  const port = s.address().port;
  t.equal(udpHolders('127.0.0.1', port).length, 1, 'a specific address meets the wildcard');
  t.equal(udpHolders('0.0.0.0', port).length, 1);
  t.same(udpHolders('::1', port), [], 'not the other family');
});

t.test('descriptions and names', async (t) => {
  t.equal(remoteKey('2001:db8::1', 4789), '[2001:db8::1]:4789');
  t.equal(remoteKey('192.0.2.1', 4789), '192.0.2.1:4789');
  t.match(
    describeHolder({ inode: 0, uid: 0, address: '0.0.0.0', port: 4789 }),
    /a kernel socket on 0\.0\.0\.0:4789/,
  );
  t.match(
    describeHolder({ inode: 7, uid: 1000, address: '0.0.0.0', port: 4789 }),
    'socket inode 7 of uid 1000 (process not readable)',
  );
  t.equal(processCommand(process.pid), 'portowners.test.ts', 'this process: the script node runs');
  t.equal(processCommand(2 ** 22 + 1), undefined, 'no such process');
});
