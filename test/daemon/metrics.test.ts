// The /metrics exposition, linted by Prometheus's own promtool and counted, for a large
// configuration: 1 000 VNIs with traffic on every one and drops on some.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import type { EvpnStatus } from '../../src/evpn/status.js';
import type { RunningStats } from '../../src/control/api.js';
import { REMOTE_SERIES_MAX, metricsRegistry } from '../../src/daemon/metrics.js';
import { packageVersion } from '../../src/util/package.js';
import { needs } from '../helpers/prereq.js';

const counters = { learned: 5, moved: 1, aged: 2, evicted: 0, capHit: 0, staticConflict: 0 };

function snapshot(vnis: number, ovsdb = false, remotes = 1): RunningStats {
  return {
    remotes: Array.from({ length: remotes }, (_, i) => ({
      remote: `198.51.${Math.floor(i / 256)}.${i % 256}:4789`,
      vnis: [1000],
      rx: { packets: 1, bytes: 100 },
      tx: { packets: 2, bytes: 200 },
      drops: i === 0 ? { own_source_mac: 4 } : {},
      heardMsAgo: i === 0 ? null : 1500,
      macs: 1,
      ...(i === 1
        ? { bfd: { state: 'up', diag: 0, remoteState: 'up', detectMs: 300, vni: 1000 } }
        : {}),
    })),
    vnis: Array.from({ length: vnis }, (_, i) => ({
      vni: 1000 + i,
      tap: `vtep${1000 + i}`,
      tapUp: true,
      remotes: ['192.0.2.1:4789'],
      learnRemotes: false,
      fdbEntries: 4,
      fdbCounters: counters,
      fdbMaxEntries: 16384,
      rx: { packets: 10 + i, bytes: 1000 + i },
      tx: { packets: 20 + i, bytes: 2000 + i },
      drops: i % 100 === 0 ? { no_remote: 3 } : {},
    })),
    drops: { no_remote: (vnis / 100) * 3 + 2, vni_unknown: 7, bad_vxlan_flags: 0 },
    icmpTooBig: 0,
    pathMaxFrame: 1464,
    narrowPaths: { '192.0.2.3:4789': 1364 },
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
    fdb: { ...counters, entries: vnis * 4 },
    fdbMaxEntries: 65536,
    underlay: '192.0.2.2:4789',
    underlayMtu: '1500 eth0',
    sourcePorts: 'hash 49152-65535',
    taps: Array.from({ length: vnis }, (_, i) => ({
      name: `vtep${1000 + i}`,
      vni: 1000 + i,
      state: 'up',
      downForMs: 0,
      recreated: 0,
    })),
    reloads: { ok: 2, failed: 1, lastOk: false, lastOkTime: 1_780_000_000 },
    kernel: { udpReceiveDrops: 0, tapQueueDrops: [] },
    ...(ovsdb
      ? {
          ovsdb: {
            target: 'tcp:127.0.0.1:6640',
            state: 'connected',
            forSeconds: 3,
            connects: 1,
            transactions: { ok: 3, failed: 0 },
            protocolErrors: 0,
          },
        }
      : {}),
  } as unknown as RunningStats;
}

const series = (text: string, name?: string) =>
  text
    .split('\n')
    .filter(
      (l) =>
        l &&
        !l.startsWith('#') &&
        (name === undefined || l.startsWith(`${name}{`) || l.startsWith(`${name} `)),
    );

t.test('1 000 VNIs: promtool check metrics passes; the series are counted', async (t) => {
  const { scrape } = metricsRegistry(() => snapshot(1000));
  const text = await scrape();
  if (needs(t, { commands: ['promtool'] })) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    t.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`.trim());
  }
  const vtep = series(text).filter((l) => l.startsWith('vtep_'));
  t.comment(`series: ${series(text).length} in all, ${vtep.length} vtep_* for 1 000 VNIs`);
  t.ok(vtep.length < 16_000, `bounded: ${vtep.length} vtep_* series (≈15 per VNI)`);
  t.same(
    series(text, 'vtep_drops_total').length,
    10 + 2,
    'drop series only where a drop happened: 10 VNIs × no_remote, and two without a VNI',
  );
  t.ok(
    series(text, 'vtep_drops_total').includes('vtep_drops_total{reason="vni_unknown",vni=""} 7'),
  );
  t.same(
    series(text, 'vtep_underlay_narrow_paths'),
    ['vtep_underlay_narrow_paths 1'],
    'remotes behind a narrower path, counted',
  );
  t.equal(series(text, 'vtep_fdb_learned_total').length, 1000, 'the FDB counters by VNI');
  t.ok(series(text, 'vtep_fdb_learned_total').includes('vtep_fdb_learned_total{vni="1000"} 5'));
  t.ok(
    series(text, 'vtep_fdb_max_entries').includes('vtep_fdb_max_entries{vni=""} 65536'),
    'the table-wide cap',
  );
  t.ok(
    series(text, 'vtep_fdb_max_entries').includes('vtep_fdb_max_entries{vni="1999"} 16384'),
    'and each VNI’s',
  );
  t.same(series(text, 'vtep_build_info'), [
    `vtep_build_info{version="${packageVersion()}",node="${process.version}"} 1`,
  ]);
  t.same(series(text, 'vtep_config_last_reload_successful'), [
    'vtep_config_last_reload_successful 0',
  ]);
  t.same(series(text, 'vtep_config_reloads_total'), [
    'vtep_config_reloads_total{result="applied"} 2',
    'vtep_config_reloads_total{result="refused"} 1',
  ]);
  t.notOk(/^vtep_ovsdb_/m.test(text), 'no OVSDB series without OVSDB');
  t.notOk(/^nodejs_active_\w+_total/m.test(text), 'no gauge named like a counter');
});

t.test('per remote: one series each up to the cap, the rest summed as other', async (t) => {
  const few = await metricsRegistry(() => snapshot(2, false, 2)).scrape();
  t.same(series(few, 'vtep_remote_tx_packets_total'), [
    'vtep_remote_tx_packets_total{remote="198.51.0.0:4789"} 2',
    'vtep_remote_tx_packets_total{remote="198.51.0.1:4789"} 2',
  ]);
  t.same(series(few, 'vtep_remote_drops_total'), [
    'vtep_remote_drops_total{remote="198.51.0.0:4789",reason="own_source_mac"} 4',
  ]);
  t.same(
    series(few, 'vtep_remote_last_heard_seconds'),
    ['vtep_remote_last_heard_seconds{remote="198.51.0.1:4789"} 1.5'],
    'a remote never heard has no last-heard series',
  );
  t.same(series(few, 'vtep_remote_fdb_entries').length, 2);
  t.same(
    series(few, 'vtep_remote_bfd_up'),
    ['vtep_remote_bfd_up{remote="198.51.0.1:4789"} 1'],
    'BFD state only where a session runs',
  );
  const many = await metricsRegistry(() => snapshot(2, false, REMOTE_SERIES_MAX + 44)).scrape();
  const rx = series(many, 'vtep_remote_rx_packets_total');
  t.equal(rx.length, REMOTE_SERIES_MAX + 1, 'capped');
  t.ok(rx.includes('vtep_remote_rx_packets_total{remote="other"} 44'), 'the rest summed');
  t.ok(
    series(many, 'vtep_remote_fdb_entries').includes('vtep_remote_fdb_entries{remote="other"} 44'),
  );
  if (needs(t, { commands: ['promtool'] })) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: many, encoding: 'utf8' });
    t.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`.trim());
  }
});

t.test('with OVSDB: its series are there', async (t) => {
  const { scrape } = metricsRegistry(() => snapshot(2, true), { ovsdb: true });
  const text = await scrape();
  t.same(series(text, 'vtep_ovsdb_connected'), [
    'vtep_ovsdb_connected{target="tcp:127.0.0.1:6640"} 1',
  ]);
  if (needs(t, { commands: ['promtool'] })) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    t.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`.trim());
  }
});

t.test('with EVPN: session, peers, routes per VNI, promtool-clean', async (t) => {
  const evpn: EvpnStatus = {
    gobgp: '127.0.0.1:50051',
    state: 'connected',
    forSeconds: 3,
    connects: 2,
    routerId: '192.0.2.2',
    asn: 65000,
    peers: [
      { address: '192.0.2.3', asn: 65000, state: 'established' },
      { address: '192.0.2.5', asn: 65000, state: 'active' },
    ],
    vnis: [
      {
        vni: 100,
        rd: '192.0.2.2:100',
        rt: ['65000:100'],
        routesIn: { mac: 7, multicast: 2 },
        routesOut: { mac: 3, multicast: 1 },
        flood: ['192.0.2.3'],
      },
    ],
    skipped: { no_import: 4 },
    writeErrors: 1,
  };
  const { scrape } = metricsRegistry(() => ({ ...snapshot(1), evpn }), { evpn: true });
  const text = await scrape();
  t.same(series(text, 'vtep_evpn_connected'), ['vtep_evpn_connected{gobgp="127.0.0.1:50051"} 1']);
  t.same(series(text, 'vtep_evpn_sessions_total'), ['vtep_evpn_sessions_total 2']);
  t.same(series(text, 'vtep_evpn_bgp_peer_up'), [
    'vtep_evpn_bgp_peer_up{peer="192.0.2.3"} 1',
    'vtep_evpn_bgp_peer_up{peer="192.0.2.5"} 0',
  ]);
  t.same(series(text, 'vtep_evpn_routes'), [
    'vtep_evpn_routes{vni="100",direction="in",type="mac"} 7',
    'vtep_evpn_routes{vni="100",direction="in",type="multicast"} 2',
    'vtep_evpn_routes{vni="100",direction="out",type="mac"} 3',
    'vtep_evpn_routes{vni="100",direction="out",type="multicast"} 1',
  ]);
  t.same(series(text, 'vtep_evpn_routes_skipped_total'), [
    'vtep_evpn_routes_skipped_total{reason="no_import"} 4',
  ]);
  t.same(series(text, 'vtep_evpn_write_errors_total'), ['vtep_evpn_write_errors_total 1']);
  t.same(
    series(await metricsRegistry(() => snapshot(1)).scrape(), 'vtep_evpn_connected'),
    [],
    'no EVPN: no series',
  );
  if (needs(t, { commands: ['promtool'] })) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    t.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`.trim());
  }
});

t.test('one snapshot per scrape', async (t) => {
  let calls = 0;
  const { scrape } = metricsRegistry(() => (calls++, snapshot(3)));
  await scrape();
  t.equal(calls, 1);
  await scrape();
  t.equal(calls, 2);
});
