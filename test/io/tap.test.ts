import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { deleteTogether, tapGoesWithUs } from '../../src/io/netif.js';
import { TapDevice, negotiateOffloads } from '../../src/io/tap.js';
import { TxBatch } from '../../src/io/types.js';
import { emitEthernet, EtherType } from '../../src/wire/ethernet.js';
import { formatMac, parseMac, readMac } from '../../src/wire/mac.js';
import { namespaces, uniqueName } from '../../src/lab/netns.js';
import { readPcap } from '../helpers/pcapread.js';
import { needs } from '../helpers/prereq.js';
import { bg, sh, sleep, until } from '../../src/lab/sh.js';

const OUR_MAC = parseMac('02:77:00:00:00:02')!;
const NS_IP = '10.77.0.1';
const OUR_IP = '10.77.0.2';

function ipBytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

/** An ARP reply "OUR_IP is at OUR_MAC" to `dst`, built into `slab` at `offset`; returns its length. */
function arpReply(slab: Buffer, offset: number, dstMac: number): number {
  let o =
    offset + emitEthernet({ dst: dstMac, src: OUR_MAC, ethertype: EtherType.ARP }, slab, offset);
  slab.writeUInt16BE(1, o); // Ethernet
  slab.writeUInt16BE(0x0800, o + 2);
  slab[o + 4] = 6;
  slab[o + 5] = 4;
  slab.writeUInt16BE(2, o + 6); // reply
  slab.writeUIntBE(OUR_MAC, o + 8, 6);
  slab.set(ipBytes(OUR_IP), o + 14);
  slab.writeUIntBE(dstMac, o + 18, 6);
  slab.set(ipBytes(NS_IP), o + 24);
  o += 28;
  slab.fill(0, o, offset + 60); // pad to the Ethernet minimum
  return 60;
}

t.test('TAP: frames both ways with a namespace behind it', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tcpdump', 'ping'] })) return;
  const [ns] = namespaces(t, 'tap');
  const name = uniqueName('tp');
  const tap = TapDevice.open({
    name,
    mtu: 1400,
    mac: Uint8Array.from([2, 0x77, 0, 0, 0, 1]),
    batchSize: 16,
  });
  t.teardown(() => tap.close());
  t.equal(tap.name, name);
  t.equal(formatMac(readMac(tap.getMac(), 0)), '02:77:00:00:00:01');
  const link = JSON.parse(sh(`ip -j link show ${name}`))[0];
  t.equal(link.mtu, 1400, 'MTU set');
  t.equal(link.address, '02:77:00:00:00:01', 'MAC set');
  t.ok(link.flags.includes('UP'), 'link up');

  // Move the netdev into the namespace; our fd keeps working.
  sh(`ip link set ${name} netns ${ns.name}`);
  ns.exec(`ip addr add ${NS_IP}/24 dev ${name} && ip link set ${name} up`);
  const nsMac = parseMac(JSON.parse(ns.exec(`ip -j link show ${name}`))[0].address)!;

  const dir = mkdtempSync(join(tmpdir(), 'vtep-tap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const capture = join(dir, 'in.pcap');
  const dump = bg(
    `${ns.prefix} tcpdump -i ${name} -U -n -w ${capture} ether src ${formatMac(OUR_MAC)}`,
  );
  t.teardown(() => dump.kill('SIGKILL'));
  await until(() => dump.stderr?.read()?.toString().includes('listening'), 5000);

  const seen: { type: number; dst: number; src: number; targetIp?: string; icmpType?: number }[] =
    [];
  const batch = new TxBatch(1);
  const out = Buffer.alloc(128);
  const written: Buffer[] = [];
  tap.start(
    (n) => {
      for (let i = 0; i < n; i++) {
        const f = tap.rx.frame(i);
        const type = f.readUInt16BE(12);
        const row: (typeof seen)[number] = { type, dst: readMac(f, 0), src: readMac(f, 6) };
        if (type === EtherType.ARP && f.readUInt16BE(20) === 1) {
          row.targetIp = [...f.subarray(38, 42)].join('.');
          if (row.targetIp === OUR_IP && written.length === 0) {
            // Answer the kernel's ARP request: the reply goes in through the TAP.
            batch.clear();
            batch.push(0, arpReply(out, 0, row.src));
            t.equal(tap.write(out, batch), 1, 'ARP reply written');
            written.push(Buffer.from(out.subarray(0, 60)));
          }
        }
        if (type === EtherType.IPV4 && f[23] === 1) row.icmpType = f[34];
        seen.push(row);
      }
    },
    (err) => t.fail(`tap error ${err.code}`),
  );

  // The namespace pings our address: an ARP request must come out of the TAP; after our
  // reply, the ICMP echo request addressed to our MAC proves the reply reached its stack.
  const ping = bg(`${ns.prefix} ping -c 3 -i 0.2 -W 1 ${OUR_IP}`);
  t.teardown(() => ping.kill('SIGKILL'));
  const arp = await until(() =>
    seen.find((r) => r.type === EtherType.ARP && r.targetIp === OUR_IP),
  );
  t.ok(arp, 'the kernel ARP request came out of the TAP');
  t.equal(arp?.src, nsMac, 'from the namespace side MAC');
  t.equal(arp?.dst, 0xffffffffffff, 'broadcast');
  const echo = await until(() => seen.find((r) => r.icmpType === 8));
  t.ok(echo, 'an ICMP echo request followed our ARP reply');
  t.equal(echo?.dst, OUR_MAC, 'sent to the MAC we announced');
  const neigh = ns.exec(`ip neigh show ${OUR_IP} dev ${name}`);
  t.match(neigh, formatMac(OUR_MAC), 'the namespace learned our MAC from the written frame');

  await until(() => readPcap(capture).length > 0, 3000);
  dump.kill('SIGINT');
  await sleep(200);
  const captured = readPcap(capture);
  t.ok(captured.length >= 1, 'tcpdump in the namespace saw the frame we wrote');
  t.same(captured[0], written[0], 'byte for byte');
  tap.stop();
});

t.test('TAP: kernel-chosen name, vnet header metadata slot, persist', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const tap = TapDevice.open({ up: false });
  t.teardown(() => tap.close());
  t.match(tap.name, /^tap\d+$/, 'the kernel picked a name');
  tap.setMtu(1300);
  tap.setMac(Uint8Array.from([2, 0, 0, 0, 0, 9]));
  tap.setUp(true);
  t.equal(JSON.parse(sh(`ip -j link show ${tap.name}`))[0].mtu, 1300);
  tap.setUp(false);
  t.notOk(JSON.parse(sh(`ip -j link show ${tap.name}`))[0].flags.includes('UP'));

  const name = uniqueName('pv');
  const p = TapDevice.open({ name, persist: true, vnetHdr: true });
  t.teardown(() => sh(`ip link del ${name}`, { allowFail: true }));
  t.ok(p.rx.meta, 'a metadata slot per frame');
  t.equal(p.rx.meta!.length, p.rx.batchSize * 12, '12-byte virtio-net header per slot');
  const flags = Number(sh(`cat /sys/class/net/${name}/tun_flags`).trim());
  t.ok(flags & 0x4000, 'IFF_VNET_HDR set');
  t.ok(flags & 0x0800, 'IFF_PERSIST set');
  p.close();
  t.ok(sh(`ip -o link show ${name}`).includes(name), 'persistent device outlives the fd');
  const again = TapDevice.open({ name, vnetHdr: true });
  t.equal(again.name, name, 're-attached by name');
  again.setPersist(false);
  again.close();
  await until(() => !sh(`ip -o link show`).includes(`${name}:`), 2000);
  t.notOk(sh(`ip -o link show`).includes(`${name}:`), 'gone once no longer persistent');
  t.throws(
    () =>
      again.start(
        () => {},
        () => {},
      ),
    { code: 'ERR_CLOSED' },
  );
  const b = new TxBatch(1);
  b.push(0, 1);
  t.equal(again.write(Buffer.alloc(1), b), 0);
  t.equal(again.lastError, 'EBADF');
});

t.test('TAP: clear errors for a taken name, a bad name and missing privileges', async (t) => {
  if (!needs(t, { root: true, commands: ['setpriv'] })) return;
  t.throws(() => TapDevice.open({ name: 'lo' }), {
    code: 'ERR_TAP_NAME_IN_USE',
    message: /interface lo already exists and is .*not a TAP/,
  });
  t.throws(() => TapDevice.open({ name: 'a-name-that-is-too-long' }), { code: 'ERR_TAP_NAME' });
  t.throws(() => TapDevice.open({ name: 'bad/name' }), { code: 'ERR_TAP_NAME' });

  // The same call without privileges: as nobody, and as root with every capability dropped.
  // The child must not depend on where the checkout lives (it may sit in a 0700 directory that
  // nobody cannot enter), so it loads a copy of the addon from a world-readable temp directory;
  // the message under test comes from the addon. Which errno nobody gets depends on the mode of
  // /dev/net/tun: 0666 (stock Debian) lets it open the node, and TUNSETIFF refuses with EPERM;
  // a stricter mode refuses the open with EACCES.
  const dir = mkdtempSync(join(tmpdir(), 'vtep-nopriv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const addon = join(dir, 'vtep_io.node');
  copyFileSync(new URL('../../build/Release/vtep_io.node', import.meta.url), addon);
  chmodSync(addon, 0o644);
  const script = `try { require(${JSON.stringify(addon)}).tapOpen('vtnopriv0', 0); console.log('opened'); }
    catch (e) { console.log(e.code + ' ' + e.message); }`;
  const run = (who: string[]) =>
    spawnSync(
      'setpriv',
      // `env -u NODE_OPTIONS`: tap's process-info hook puts an --import of a file in the
      // checkout into every child's NODE_OPTIONS, which nobody cannot read from a 0700 checkout.
      [
        ...who,
        '--inh-caps=-all',
        '--bounding-set=-all',
        'env',
        '-u',
        'NODE_OPTIONS',
        process.execPath,
        '-e',
        script,
      ],
      { encoding: 'utf8', cwd: dir, env: { PATH: process.env.PATH ?? '' } },
    );
  const worldRw = (statSync('/dev/net/tun').mode & 0o006) === 0o006;
  const nobody = run(['--reuid=65534', '--regid=65534', '--clear-groups']);
  t.match(
    nobody.stdout,
    worldRw
      ? /^EPERM .*TUNSETIFF.*CAP_NET_ADMIN.*run as root/m
      : /^EACCES .*open.*CAP_NET_ADMIN.*run as root/m,
    `as nobody (/dev/net/tun ${worldRw ? 'world-writable' : 'restricted'}): ${nobody.stdout.trim() || nobody.stderr}`,
  );
  const capless = run([]);
  t.match(
    capless.stdout,
    /^EPERM .*TUNSETIFF.*CAP_NET_ADMIN/m,
    `root without caps: ${capless.stdout.trim()}`,
  );
});

t.test('TAP: frames the kernel drops because nobody reads them are counted', async (t) => {
  if (!needs(t, { root: true, commands: ['python3'] })) return;
  const name = uniqueName('q');
  const tap = TapDevice.open({ name });
  t.teardown(() => tap.close());
  t.equal(tap.kernelDrops(), 0, 'none yet');
  // 2000 frames out of the TAP towards us, never read: its queue (1000 frames) overflows.
  sh(
    `python3 -c "import socket; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('${name}', 0)); f=bytes.fromhex('ffffffffffff020000000001' + '88b5') + bytes(50); [s.send(f) for _ in range(2000)]"`,
  );
  t.ok(tap.kernelDrops()! >= 900, `queue drops counted: ${tap.kernelDrops()}`);
  tap.close();
  t.equal(tap.kernelDrops(), undefined, 'unknown once the device is gone');
});

t.test(
  'TAP offloads: a kernel that refuses USO gets the TCP offloads, one that refuses those none',
  async (t) => {
    const all = 0x01 | 0x02 | 0x04 | 0x20 | 0x40; // csum tso4 tso6 uso4 uso6
    const kernel = (knows: number) => {
      const asked: number[] = [];
      const set = (f: number) => {
        asked.push(f);
        if (f & ~knows) throw new Error('EINVAL');
      };
      return { asked, set };
    };
    const now = kernel(all);
    t.equal(negotiateOffloads(now.set, all), all, 'Linux 6.2 on: everything');
    t.same(now.asked, [all]);
    const old = kernel(0x07);
    t.equal(negotiateOffloads(old.set, all), 0x07, 'before 6.2: without USO');
    t.same(old.asked, [all, 0x07]);
    const none = kernel(0);
    t.equal(negotiateOffloads(none.set, all), 0, 'none at all');
    t.same(none.asked, [all, 0x07, 0]);
  },
);

t.test('TAPs that closing would delete are deleted as one batch; no other', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const names = [uniqueName('bd'), uniqueName('bd'), uniqueName('bp'), uniqueName('bq')];
  t.teardown(() => {
    for (const n of names) sh(`ip link del ${n}`, { allowFail: true });
  });
  const exists = (name: string) => sh('ip -o link show').includes(` ${name}:`);
  const [a, b] = [TapDevice.open({ name: names[0] }), TapDevice.open({ name: names[1] })];
  const persistent = TapDevice.open({ name: names[2], persist: true });
  // a queue of a multi-queue TAP that someone else (here: a second fd) also holds
  const q1 = TapDevice.open({ name: names[3], multiQueue: true });
  const q2 = TapDevice.open({ name: names[3], multiQueue: true });
  t.teardown(() => [a, b, persistent, q1, q2].forEach((d) => d.close()));
  t.equal(tapGoesWithUs(a.name, 1), true, 'ours alone, not persistent: closing deletes it');
  t.equal(tapGoesWithUs(persistent.name, 1), false, 'persistent: it outlives our fd');
  t.equal(tapGoesWithUs(q1.name, 1), false, 'another queue attached: it outlives our fd');
  t.equal(tapGoesWithUs(q1.name, 2), true, 'unless both queues are ours');
  t.equal(tapGoesWithUs('lo', 1), false, 'not a TAP');
  // devices in a group of their own (not `group default`), as `ip` lists them
  const grouped = () => sh('ip -o link show').match(/ group (?!default )\S+/g) ?? [];
  const groupedBefore = grouped();

  t.equal(deleteTogether([]), 0, 'nothing to do');
  t.equal(deleteTogether([a.ifindex!, b.ifindex!]), 2, 'two deleted');
  t.notOk(exists(a.name) || exists(b.name), 'both gone, with our fds still open');
  t.ok(exists(persistent.name) && exists(q1.name), 'the others untouched');
  t.same(grouped(), groupedBefore, 'no device was left in our group');
  t.equal(deleteTogether([a.ifindex!]), 0, 'a device gone already is skipped');
  // the fds of a deleted device: writes fail with an error, closing is quiet
  t.equal(a.write(Buffer.alloc(64), new TxBatch(1)), 0);
  a.close();
  t.notOk(exists(a.name));
});

t.test('a multi-queue TAP we make has one qdisc, not one per possible queue', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc'] })) return;
  const [single, multi, theirs] = [uniqueName('qs'), uniqueName('qm'), uniqueName('qe')];
  t.teardown(() => {
    for (const n of [single, multi, theirs]) sh(`ip link del ${n}`, { allowFail: true });
  });
  /** `kind handle parent` of each of the device's qdiscs. */
  const qdiscs = (name: string) =>
    sh(`tc qdisc show dev ${name}`)
      .trim()
      .split('\n')
      .map((l) => l.split(' ').slice(1, 4).join(' '));
  // the kernel would give a multi-queue TAP `mq`, and a qdisc for each of its 256 queues
  const m = TapDevice.open({ name: multi, multiQueue: true });
  const s = TapDevice.open({ name: single });
  sh(`ip tuntap add dev ${theirs} mode tap multi_queue && ip link set ${theirs} up`);
  const before = qdiscs(theirs);
  const e = TapDevice.open({ name: theirs, multiQueue: true });
  t.teardown(() => [m, s, e].forEach((d) => d.close()));
  t.equal(m.oneQdisc, true, 'made by us, multi-queue: set');
  t.match(qdiscs(multi), [/^pfifo_fast \S+ root$/], 'up, it has one pfifo_fast as root, no mq');
  t.equal(s.oneQdisc, false, 'a single-queue TAP has one anyway: left to the kernel');
  t.equal(e.oneQdisc, false, 'made by someone else: left alone');
  t.same(qdiscs(theirs), before, `still ${before.join(', ')}`);
  t.match(before[0], /^mq /, '(which is mq)');
});
