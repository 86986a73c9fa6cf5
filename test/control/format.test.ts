// Text output of the control verbs (src/control/format.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { formatFdb, formatStats } from '../../src/control/format.js';

const dir = mkdtempSync(join(tmpdir(), 'vtep-control-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('text formats', async (t) => {
  t.equal(
    formatFdb(
      [
        {
          vni: 5000,
          mac: '52:54:00:00:00:0a',
          remote: '192.0.2.1:4789',
          static: false,
          source: 'learned',
          ageSeconds: 3,
          usedSeconds: 1,
        },
        {
          vni: 5000,
          mac: '52:54:00:00:00:0c',
          remote: '[2001:db8::3]:8472',
          static: true,
          source: 'static',
          ageSeconds: 9,
          usedSeconds: 9,
        },
        {
          vni: 5000,
          mac: '52:54:00:00:00:0d',
          remote: '192.0.2.9:4789',
          static: true,
          source: 'ovsdb',
          ageSeconds: 0,
          usedSeconds: 0,
        },
      ],
      () => 'vtep0',
    ),
    '52:54:00:00:00:0a dev vtep0 dst 192.0.2.1 port 4789 vni 5000 self age 3s used 1s\n' +
      '52:54:00:00:00:0c dev vtep0 dst 2001:db8::3 port 8472 vni 5000 self permanent\n' +
      '52:54:00:00:00:0d dev vtep0 dst 192.0.2.9 port 4789 vni 5000 self permanent extern_learn ovsdb',
  );
  const s = {
    underlay: '192.0.2.2:4789',
    sourcePorts: 'hash 49152-65535',
    vnis: [
      {
        vni: 5000,
        tap: 'vtep0',
        remotes: [],
        learnRemotes: true,
        tapUp: true,
        fdbEntries: 2,
        rx: { packets: 1, bytes: 60 },
        tx: { packets: 2, bytes: 120 },
        drops: { no_remote: 4 },
        fdbCounters: { learned: 2, moved: 0, aged: 0, evicted: 0, capHit: 0, staticConflict: 0 },
        fdbMaxEntries: 16384,
        peers: [],
      },
    ],
    drops: { vni_unknown: 3, no_remote: 4 },
    icmpTooBig: 2,
    pathMaxFrame: 1464,
    offload: {
      superFrames: 3,
      segments: 130,
      checksums: 5,
      gsoSends: 2,
      coalesced: 4,
      coalescedSegments: 90,
      checksumBad: 1,
      groDatagrams: 0,
      groSegments: 0,
    },
    kernel: { udpReceiveDrops: 7, tapQueueDrops: [{ vni: 5000, drops: null }] },
    ecn: { marked: 0, unexpected: 0 },
    narrowPaths: { '192.0.2.3:4789': 1364 },
    fdb: { entries: 2, learned: 2, moved: 0, aged: 0, evicted: 0, capHit: 0, staticConflict: 0 },
  };
  t.equal(
    formatStats(s),
    [
      'underlay 192.0.2.2:4789 source-ports hash 49152-65535',
      'vni 5000 dev vtep0 remotes - learn-remotes fdb 2 tap UP',
      '    RX: packets 1 bytes 60',
      '    TX: packets 2 bytes 120',
      '    drops: no_remote 4',
      'path: largest inner frame 1464 bytes, icmp-too-big sent 2',
      'path: towards 192.0.2.3:4789 narrower, largest inner frame 1364 bytes',
      'offload: super-frames (tcp, udp) 3 cut into 130 segments (2 udp gso sends), checksums finished 5, 90 received segments coalesced into 4 frames, not coalesced for a bad checksum 1',
      'fdb: entries 2 learned 2 moved 0 aged 0 evicted 0 cap-hit 0 static-conflict 0',
      'kernel drops: udp-receive 7, tap-queue vni 5000 ?',
      'drops: ',
      '    vni_unknown 3',
      '    no_remote 4',
    ].join('\n'),
  );
  t.match(formatStats({ ...s, underlay: undefined, drops: {} }), /drops: none$/);
  t.notMatch(
    formatStats({
      ...s,
      offload: {
        superFrames: 0,
        segments: 0,
        checksums: 0,
        gsoSends: 0,
        coalesced: 0,
        coalescedSegments: 0,
        checksumBad: 0,
        groDatagrams: 0,
        groSegments: 0,
      },
    }),
    /offload/,
    'no offload line while offloads are idle',
  );
  const evpn = {
    gobgp: '127.0.0.1:50051',
    state: 'connected' as const,
    forSeconds: 12,
    connects: 1,
    routerId: '192.0.2.2',
    asn: 65000,
    peers: [{ address: '192.0.2.3', asn: 65000, state: 'established' }],
    vnis: [
      {
        vni: 100,
        rd: '192.0.2.2:100',
        rt: ['65000:100'],
        routesIn: { mac: 2, multicast: 1 },
        routesOut: { mac: 1, multicast: 1 },
        flood: ['192.0.2.3'],
      },
    ],
    skipped: { no_import: 3 },
    writeErrors: 0,
  };
  t.match(
    formatStats({ ...s, evpn }),
    [
      'evpn gobgpd 127.0.0.1:50051 router-id 192.0.2.2 as 65000: connected for 12 s, sessions 1, write errors 0, routes skipped: no_import 3',
      '    bgp peer 192.0.2.3 as 65000: established',
      '    vni 100 rd 192.0.2.2:100 rt 65000:100: routes in mac 2 multicast 1, out mac 1 multicast 1, flood 192.0.2.3',
    ].join('\n'),
  );
  t.match(
    formatStats({
      ...s,
      evpn: {
        ...evpn,
        state: 'backoff',
        routerId: '',
        asn: 0,
        peers: [],
        vnis: [],
        skipped: {},
        lastError: 'x',
      },
    }),
    /evpn gobgpd 127\.0\.0\.1:50051 router-id - as -: backoff for 12 s, sessions 1, write errors 0, last error: x/,
  );
  t.match(
    formatStats({ ...s, busyPoll: { us: 200, spins: 12, polled: 340 } }),
    /busy-poll 200 us: spins 12, read while spinning 340$/m,
  );
  const ring = { ringReads: 640, ringWrites: 900, ringEnters: 40 };
  t.match(
    formatStats({ ...s, tapIo: { threads: 2, uringThreads: 2, ...ring } }),
    /^tap i\/o: io_uring on 2 of 2 threads: 640 frames read, 900 written in 40 enters$/m,
  );
  t.match(
    formatStats({ ...s, tapIo: { threads: 2, uringThreads: 1, fallback: 'EPERM', ...ring } }),
    /^tap i\/o: readv\/writev on 1 of 2 threads \(io_uring: EPERM\); io_uring on 1 of 2 threads: 640/m,
  );
  t.match(
    formatStats({
      ...s,
      tapIo: {
        threads: 1,
        uringThreads: 0,
        fallback: 'off',
        ringReads: 0,
        ringWrites: 0,
        ringEnters: 0,
      },
    }),
    /^tap i\/o: readv\/writev on 1 of 1 threads \(ioUring false or VTEP_IO_URING=0\)$/m,
  );
  t.equal(
    formatFdb(
      [
        {
          vni: 100,
          mac: '52:54:00:00:00:0e',
          remote: '192.0.2.3:4789',
          static: true,
          source: 'evpn',
          ageSeconds: 0,
          usedSeconds: 0,
        },
      ],
      () => 'vtep100',
    ),
    '52:54:00:00:00:0e dev vtep100 dst 192.0.2.3 port 4789 vni 100 self permanent extern_learn evpn',
  );
});
