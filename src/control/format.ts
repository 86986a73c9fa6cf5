import type { FdbRow } from '../fdb/fdb.js';
import type { GatewayStatus } from '../ovsdb/gateway.js';
import type { EvpnStatus } from '../evpn/status.js';
import type {
  ChangeEvent,
  RemoteSummary,
  Status,
  TapIoStats,
  TapStatus,
  ThreadStats,
} from './api.js';
import type { EngineStats, Trace, TraceVerdict } from '../engine/engine.js';

/**
 * Text output for `vtep fdb show` and `vtep stats`, close to `bridge fdb show`
 * (`MAC dev DEV dst ADDR vni N self`) so that people and scripts used to it read it at once.
 */
export function formatFdb(rows: FdbRow[], tapOf: (vni: number) => string): string {
  return rows
    .map((r) => {
      const [addr, port] = splitKey(r.remote);
      // `bridge fdb` marks entries a controller installed as `extern_learn`; ours says which one.
      const state = !r.static
        ? `age ${r.ageSeconds}s used ${r.usedSeconds}s`
        : r.source === 'ovsdb' || r.source === 'evpn'
          ? `permanent extern_learn ${r.source}`
          : 'permanent';
      return `${r.mac} dev ${tapOf(r.vni)} dst ${addr} port ${port} vni ${r.vni} self ${state}`;
    })
    .join('\n');
}

/** `vtep stats`: the OVSDB session and each port's binding. */
function ovsdbLines(o: GatewayStatus): string[] {
  const lines: string[] = [];
  lines.push(
    `ovsdb ${o.target} physical-switch ${o.physicalSwitch}: ${o.state} for ${o.forSeconds} s, sessions ${o.connects}, transactions ${o.transactions.ok} ok ${o.transactions.failed} failed, protocol-errors ${o.protocolErrors}, remote-macs ${o.remoteMacs} local-macs ${o.localMacs}${o.lastError ? `, last error: ${o.lastError}` : ''}`,
  );
  for (const p of o.ports)
    lines.push(
      `    port ${p.name} ${p.vni === null ? 'unbound' : `vni ${p.vni}`}${p.logicalSwitch ? ` logical-switch ${p.logicalSwitch}` : ''}${p.problem ? ` (${p.problem})` : ''}`,
    );
  return lines;
}

/** `vtep stats`: the gobgpd session, its BGP peers, and routes in and out per VNI. */
function evpnLines(e: EvpnStatus): string[] {
  const skipped = Object.entries(e.skipped)
    .map(([why, n]) => `${why} ${n}`)
    .join(', ');
  return [
    `evpn gobgpd ${e.gobgp} router-id ${e.routerId || '-'} as ${e.asn || '-'}: ${e.state} for ${e.forSeconds} s, sessions ${e.connects}, write errors ${e.writeErrors}${skipped ? `, routes skipped: ${skipped}` : ''}${e.lastError ? `, last error: ${e.lastError}` : ''}`,
    ...e.peers.map((p) => `    bgp peer ${p.address} as ${p.asn}: ${p.state}`),
    ...e.vnis.map(
      (v) =>
        `    vni ${v.vni} rd ${v.rd} rt ${v.rt.join(',')}: routes in mac ${v.routesIn.mac} multicast ${v.routesIn.multicast}, out mac ${v.routesOut.mac} multicast ${v.routesOut.multicast}, flood ${v.flood.join(',') || '-'}`,
    ),
  ];
}

/** `192.0.2.1:4789` / `[2001:db8::1]:4789` → address and port. */
export function splitKey(key: string): [string, string] {
  const i = key.lastIndexOf(':');
  return [key.slice(0, i).replace(/^\[|\]$/g, ''), key.slice(i + 1)];
}

/** The underlay path: the link's largest inner frame, and the remotes behind a narrower one. */
function pathLines(s: Pick<EngineStats, 'pathMaxFrame' | 'icmpTooBig' | 'narrowPaths'>): string[] {
  if (s.pathMaxFrame === undefined) return [];
  return [
    `path: largest inner frame ${s.pathMaxFrame} bytes, icmp-too-big sent ${s.icmpTooBig ?? 0}`,
    ...Object.entries(s.narrowPaths ?? {}).map(
      ([remote, max]) => `path: towards ${remote} narrower, largest inner frame ${max} bytes`,
    ),
  ];
}

/** How the TAP queues are read and written, and what io_uring saved in syscalls. */
function tapIoLine(t: TapIoStats): string {
  const ring = `io_uring on ${t.uringThreads} of ${t.threads} threads: ${t.ringReads} frames read, ${t.ringWrites} written in ${t.ringEnters} enters`;
  if (!t.fallback) return `tap i/o: ${ring}`;
  const why = t.fallback === 'off' ? 'ioUring false or VTEP_IO_URING=0' : `io_uring: ${t.fallback}`;
  return `tap i/o: readv/writev on ${t.threads - t.uringThreads} of ${t.threads} threads (${why})${t.uringThreads ? `; ${ring}` : ''}`;
}

export function formatStats(
  s: EngineStats & {
    underlay?: string;
    sourcePorts?: string;
    nice?: number;
    taps?: TapStatus[];
    ovsdb?: GatewayStatus;
    evpn?: EvpnStatus;
    busyPoll?: { us: number; spins: number; polled: number };
    tapIo?: TapIoStats;
    kernel?: {
      udpReceiveDrops: number | null;
      tapQueueDrops: { vni: number; drops: number | null }[];
    };
    workers?: ThreadStats[];
    remotes?: RemoteSummary[];
  },
): string {
  const lines: string[] = [];
  if (s.underlay)
    lines.push(
      `underlay ${s.underlay}${s.sourcePorts ? ` source-ports ${s.sourcePorts}` : ''}${s.nice !== undefined ? ` nice ${s.nice}` : ''}`,
    );
  for (const v of s.vnis)
    lines.push(
      ...vniLines(
        v,
        s.taps?.find((x) => x.vni === v.vni),
      ),
    );
  for (const r of s.remotes ?? [])
    lines.push(
      `remote ${r.remote} vni ${r.vnis.join(',') || '-'}: rx ${r.rx.packets} tx ${r.tx.packets} macs ${r.macs} heard ${heard(r.heardMsAgo)}${r.bfd ? ` bfd ${r.bfd.state}` : ''}`,
    );
  if (s.ovsdb) lines.push(...ovsdbLines(s.ovsdb));
  if (s.evpn) lines.push(...evpnLines(s.evpn));
  if (s.tapIo) lines.push(tapIoLine(s.tapIo));
  if (s.busyPoll)
    lines.push(
      `busy-poll ${s.busyPoll.us} us: spins ${s.busyPoll.spins}, read while spinning ${s.busyPoll.polled}`,
    );
  lines.push(...pathLines(s));
  const o = s.offload;
  if (o && o.superFrames + o.checksums + o.coalesced + (o.groDatagrams ?? 0) > 0)
    lines.push(
      `offload: super-frames (tcp, udp) ${o.superFrames} cut into ${o.segments} segments (${o.gsoSends} udp gso sends), checksums finished ${o.checksums}, ${o.coalescedSegments} received segments coalesced into ${o.coalesced} frames` +
        (o.groDatagrams ? `, udp gro ${o.groSegments} datagrams in ${o.groDatagrams}` : '') +
        (o.checksumBad ? `, not coalesced for a bad checksum ${o.checksumBad}` : ''),
    );
  if (s.ecn && s.ecn.marked + s.ecn.unexpected > 0)
    lines.push(
      `ecn (RFC 6040): inner packets marked CE from the underlay ${s.ecn.marked}, unexpected combinations ${s.ecn.unexpected}`,
    );
  for (const w of s.workers ?? [])
    lines.push(
      `thread ${w.worker}: ` +
        (w.noAnswerSeconds !== undefined
          ? `no answer for ${w.noAnswerSeconds} s (stuck?), counters as last reported: `
          : '') +
        `rx ${w.rx.packets} tx ${w.tx.packets} drops ${w.drops}`,
    );
  const f = s.fdb;
  lines.push(
    `fdb: entries ${f.entries} learned ${f.learned} moved ${f.moved} aged ${f.aged} evicted ${f.evicted} cap-hit ${f.capHit} static-conflict ${f.staticConflict}`,
  );
  if (s.kernel) {
    const k = s.kernel;
    const taps = k.tapQueueDrops.map((t) => `vni ${t.vni} ${t.drops ?? '?'}`).join(', ');
    lines.push(
      `kernel drops: udp-receive ${k.udpReceiveDrops ?? '?'}${taps ? `, tap-queue ${taps}` : ''}`,
    );
  }
  const drops = Object.entries(s.drops).filter(([, n]) => n > 0);
  lines.push(`drops: ${drops.length ? '' : 'none'}`);
  for (const [reason, n] of drops) lines.push(`    ${reason} ${n}`);
  return lines.join('\n');
}

/** One VNI's block of `vtep stats`. */
function vniLines(v: EngineStats['vnis'][number], t: TapStatus | undefined): string[] {
  const state = t ? tapState(t) : v.tapUp ? 'UP' : 'DOWN';
  const lines = [
    `vni ${v.vni} dev ${v.tap} remotes ${v.remotes.join(',') || '-'}${v.learnRemotes ? ' learn-remotes' : ''} fdb ${v.fdbEntries} tap ${state}${t?.offloads ? ` offload ${t.offloads}` : ''}`,
    `    RX: packets ${v.rx.packets} bytes ${v.rx.bytes}`,
    `    TX: packets ${v.tx.packets} bytes ${v.tx.bytes}`,
  ];
  if (v.suppress)
    lines.push(
      `    ARP/ND suppression: answered ${v.suppress.answered} flooded ${v.suppress.flooded} neighbours ${v.suppress.entries}`,
    );
  const vd = Object.entries(v.drops ?? {});
  if (vd.length) lines.push(`    drops: ${vd.map(([r, n]) => `${r} ${n}`).join(' ')}`);
  return lines;
}

/**
 * `vtep remote show`: a block per remote, in the manner of `wg show` (its peer, then indented
 * `field: value` lines), counters as `vtep stats` prints them.
 */
export function formatRemotes(rows: readonly RemoteSummary[]): string {
  return rows
    .map((r) => {
      const drops = Object.entries(r.drops).filter(([, n]) => n > 0);
      return [
        `remote ${r.remote}`,
        `  vni: ${r.vnis.join(', ') || '-'}`,
        `  last heard: ${heard(r.heardMsAgo)}`,
        `  rx: packets ${r.rx.packets} bytes ${r.rx.bytes}`,
        `  tx: packets ${r.tx.packets} bytes ${r.tx.bytes}`,
        `  macs: ${r.macs}`,
        ...(r.bfd ? [`  bfd: ${bfdText(r.bfd)}`] : []),
        `  drops: ${drops.length ? drops.map(([k, n]) => `${k} ${n}`).join(' ') : 'none'}`,
      ].join('\n');
    })
    .join('\n\n');
}

/** `vtep trace`: the frame, each decision indented, then the verdict (as ofproto/trace ends). */
export function formatTrace(tr: Trace & { in: string; vni: number; length: number }): string {
  return [
    `trace ${tr.in} vni ${tr.vni}, ${tr.length} bytes`,
    ...tr.steps.map((s) => `  ${s.step}: ${s.result}`),
    `verdict: ${verdictText(tr.verdict)}`,
  ].join('\n');
}

function verdictText(v: TraceVerdict): string {
  switch (v.action) {
    case 'drop':
      return `drop (${v.reason})`;
    case 'send':
      return `${v.flooded ? 'flood' : 'unicast'} to ${v.remotes.join(', ')}`;
    case 'answer':
      return `answered into the TAP (${v.mac}), not flooded`;
    case 'deliver':
      return `deliver to ${v.tap}`;
  }
}

const BFD_DIAGS = [
  '',
  'detection time expired',
  '',
  'neighbour signalled down',
  '',
  '',
  '',
  'administratively down',
];

function bfdText(b: NonNullable<RemoteSummary['bfd']>): string {
  const diag = b.diag ? ` (${BFD_DIAGS[b.diag] || `diagnostic ${b.diag}`})` : '';
  return `${b.state}${diag}, remote ${b.remoteState}, vni ${b.vni}${b.detectMs ? `, detect ${b.detectMs} ms` : ''}`;
}

function heard(ms: number | null): string {
  if (ms === null) return 'never';
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s ago` : `${Math.floor(ms / 1000)} s ago`;
}

function tapState(t: TapStatus): string {
  const again = t.recreated ? ` (re-created ${t.recreated}x)` : '';
  if (t.state === 'up') return `UP${again}`;
  return `DOWN for ${(t.downForMs / 1000).toFixed(1)} s, re-creating${again}${t.lastError ? `: ${t.lastError}` : ''}`;
}

/** `vtep status`: one line when healthy, the problems otherwise. */
export function formatStatus(s: Status): string {
  const head = `${s.healthy ? 'healthy' : 'degraded'}: up ${s.uptimeSeconds} s, ${s.taps.length} VNI${s.taps.length === 1 ? '' : 's'}`;
  return [
    head,
    ...s.taps.map(
      (t) =>
        `  vni ${t.vni ?? '-'} dev ${t.name}${t.mtu !== undefined ? ` mtu ${t.mtu}` : ''} ${tapState(t)}`,
    ),
    ...(s.groups ?? []).map(
      (g) => `  group ${g.group} joined on ${g.interface} for vni ${g.vnis.join(',')}`,
    ),
    ...s.problems.map((p) => `  problem: ${p}`),
  ].join('\n');
}

/** One `vtep monitor` event as text, in `bridge monitor fdb`'s manner. */
/** `fdb.add vni=100 mac=… remote=192.0.2.3 by uid 0 pid 42 (vtep fdb add …): what it did`. */
export function formatChange(e: ChangeEvent): string {
  const args = Object.entries(e.args)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const by =
    typeof e.by === 'string'
      ? e.by
      : `uid ${e.by.uid} pid ${e.by.pid}${e.by.command ? ` (${e.by.command})` : ''}`;
  const result =
    typeof e.result === 'number'
      ? `: removed ${e.result}`
      : e.result?.length
        ? `: ${e.result.join('; ')}`
        : '';
  return `change ${e.cmd}${args ? ` ${args}` : ''} by ${by}${result}`;
}

export function formatEvent(e: Record<string, unknown>): string {
  const [addr, port] = typeof e.remote === 'string' ? splitKey(e.remote) : ['-', '-'];
  const entry = `${String(e.mac)} dev ${String(e.dev)} dst ${addr} port ${port} vni ${String(e.vni)} self`;
  switch (e.event) {
    case 'learn':
      return entry;
    case 'move':
      return `${entry} (moved from ${String(e.from)})`;
    case 'age':
      return `Deleted ${entry} (aged)`;
    case 'evict':
      return `Deleted ${entry} (evicted: table full)`;
    case 'miss':
      return `miss ${String(e.mac)} dev ${String(e.dev)} vni ${String(e.vni)}`;
    case 'change':
      return formatChange(e as unknown as ChangeEvent);
    case 'bfd':
      return `bfd remote ${String(e.remote)} ${String(e.from)} -> ${String(e.state)}${e.flushed ? ` (${String(e.flushed)} MACs flushed)` : ''}`;
    case 'lost':
      return `(${String(e.count)} events lost: the monitor did not keep up)`;
    default:
      return JSON.stringify(e);
  }
}
