// `vtep remote show`: each remote summed over its VNIs, from the engine's per-VNI counters and
// the FDB's entries; text in the manner of `wg show`.
import t from 'tap';
import { summarizeRemotes } from '../../src/daemon/remotes.js';
import { formatRemotes } from '../../src/control/format.js';
import type { VniStats } from '../../src/engine/engine.js';

const vni = (n: number, remotes: string[], peers: VniStats['peers']): VniStats =>
  ({ vni: n, remotes, peers }) as unknown as VniStats;
const traffic = (rx: number, tx: number, heard: number | null, drops = {}) => ({
  rx: { packets: rx, bytes: rx * 100 },
  tx: { packets: tx, bytes: tx * 100 },
  drops,
  heardMsAgo: heard,
});

t.test('summed over VNIs; configured, counted and FDB-referenced remotes all listed', async (t) => {
  const A = '192.0.2.1:4789';
  const C = '192.0.2.3:4789';
  const L = '[2001:db8::9]:4789';
  const rows = summarizeRemotes(
    [
      vni(200, [A], [{ remote: A, ...traffic(2, 3, 900, { tap_down: 1 }) }]),
      vni(
        100,
        [A, C],
        [
          { remote: A, ...traffic(5, 1, 40) },
          { remote: 'other', ...traffic(7, 0, 5) },
        ],
      ),
      vni(300, [], []),
    ],
    new Map([
      [
        100,
        new Map([
          [A, 2],
          [L, 1],
        ]),
      ],
      [300, new Map([[L, 4]])],
    ]),
  );
  t.same(rows, [
    {
      remote: A,
      vnis: [100, 200],
      ...traffic(7, 4, 40, { tap_down: 1 }),
      macs: 2,
    },
    { remote: C, vnis: [100], ...traffic(0, 0, null), macs: 0 },
    { remote: L, vnis: [100, 300], ...traffic(0, 0, null), macs: 5 },
    { remote: 'other', vnis: [100], ...traffic(7, 0, 5), macs: 0 },
  ]);
  t.equal(
    formatRemotes(rows.slice(0, 2)),
    [
      'remote 192.0.2.1:4789',
      '  vni: 100, 200',
      '  last heard: 0.0 s ago',
      '  rx: packets 7 bytes 700',
      '  tx: packets 4 bytes 400',
      '  macs: 2',
      '  drops: tap_down 1',
      '',
      'remote 192.0.2.3:4789',
      '  vni: 100',
      '  last heard: never',
      '  rx: packets 0 bytes 0',
      '  tx: packets 0 bytes 0',
      '  macs: 0',
      '  drops: none',
    ].join('\n'),
  );
  t.match(formatRemotes([{ ...rows[0], heardMsAgo: 125_400 }]), /last heard: 125 s ago/);
  const withBfd = summarizeRemotes([vni(100, [A], [])], new Map(), (k) =>
    k === A ? { state: 'down', diag: 1, remoteState: 'down', detectMs: 0, vni: 100 } : undefined,
  );
  t.match(withBfd[0].bfd, { state: 'down', diag: 1 });
  t.match(formatRemotes(withBfd), /  bfd: down \(detection time expired\), remote down, vni 100$/m);
  t.match(
    formatRemotes([
      { ...withBfd[0], bfd: { state: 'up', diag: 0, remoteState: 'up', detectMs: 300, vni: 100 } },
    ]),
    /  bfd: up, remote up, vni 100, detect 300 ms/,
  );
});
