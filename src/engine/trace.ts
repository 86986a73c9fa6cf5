import type { Fdb } from '../fdb/fdb.js';
import { makeRemote, type Remote } from '../fdb/remote.js';
import { ADDR_LEN, writeAddr } from '../io/addr.js';
import { OuterFlag } from '../io/types.js';
import { Drop, dropReasonName } from '../wire/drop.js';
import { HEADER_LEN as ETHERNET_HEADER_LEN } from '../wire/ethernet.js';
import { formatMac, isValidUnicast, readMac } from '../wire/mac.js';
import { decapsulateInto, type ReservedBitsPolicy } from '../wire/vxlan.js';
import { ECN_MASK, EcnVerdict, decapVerdict, innerIp, trafficClass } from '../wire/ecn.js';
import { autoLabel, flowHash } from './flowhash.js';
import type { Paths } from './paths.js';
import type { Suppression } from './suppress.js';
import type { VniState } from './vni.js';

/**
 * `vtep trace`: the decisions the engine takes on one frame, walked against the live state
 * and changing none of it (no learning, no counters, no send), as `ovs-appctl ofproto/trace`
 * does for a bridge. Each step says what was looked at and what it gave; the verdict is what
 * the data path would do. The walk follows encap.ts and decap.ts step by step (a property test
 * holds it to what they actually do).
 */
export interface TraceStep {
  step: string;
  result: string;
}

export type TraceVerdict =
  | { action: 'drop'; reason: string }
  /** To these remotes: one (a known unicast) or the flood list. */
  | { action: 'send'; remotes: string[]; flooded: boolean }
  /** An ARP/ND request answered into the TAP from the neighbour table (not flooded). */
  | { action: 'answer'; mac: string }
  /** Decapsulated and written into the VNI's TAP. */
  | { action: 'deliver'; tap: string };

export interface Trace {
  steps: TraceStep[];
  verdict: TraceVerdict;
}

/** A frame from the TAP of `vni`, or a VXLAN datagram (header on) from `address`:`port`. */
export type TraceInput =
  | { from: 'tap'; vni: number; frame: Buffer }
  | { from: 'remote'; address: string; port: number; datagram: Buffer; outerTos?: number };

/** What of the engine a trace reads. */
export interface TraceContext {
  vnis: Map<number, VniState>;
  fdb: Fdb;
  paths: Paths;
  suppress: Suppression;
  /** The link's largest inner frame. */
  pathMax: number;
  policy: ReservedBitsPolicy;
  dropInvalidSource: boolean;
  /** The UDP source port a frame would leave from (0: the underlay socket's own). */
  sourcePort: (slab: Buffer, off: number, len: number) => number;
  /** IPv6 underlay: flow labels are written. */
  labels: boolean;
  /** Port of remotes learned from traffic. */
  dstPort: number;
}

class Walk {
  readonly steps: TraceStep[] = [];
  say(step: string, result: string): void {
    this.steps.push({ step, result });
  }
  end(verdict: TraceVerdict): Trace {
    return { steps: this.steps, verdict };
  }
  drop(reason: number, why?: string): Trace {
    const name = dropReasonName(reason);
    this.say('drop', why ? `${name}: ${why}` : name);
    return this.end({ action: 'drop', reason: name });
  }
}

export function trace(c: TraceContext, input: TraceInput, now: number): Trace {
  return input.from === 'tap'
    ? traceTap(c, input.vni, input.frame, now)
    : traceRemote(c, input, now);
}

function traceTap(c: TraceContext, vni: number, f: Buffer, now: number): Trace {
  const w = new Walk();
  const vs = c.vnis.get(vni);
  if (vs === undefined) return w.drop(Drop.VNI_UNKNOWN, `vni ${vni} is not configured`);
  w.say('vni', `${vni} (tap ${vs.tapName})`);
  const len = f.length;
  if (len < ETHERNET_HEADER_LEN) return w.drop(Drop.ETHERNET_TRUNCATED, `${len} bytes`);
  w.say('frame', `${formatMac(readMac(f, 6))} > ${formatMac(readMac(f, 0))}, ${len} bytes`);
  if (len > vs.maxFrame)
    return w.drop(Drop.FRAME_TOO_BIG, `${len} bytes, the TAP carries ${vs.maxFrame}`);
  const { word, label } = outerOf(vs, f, len, c.labels);
  const df = (word & OuterFlag.NO_DF) === 0;
  if (len > c.pathMax && df)
    return w.drop(
      Drop.PATH_MTU_EXCEEDED,
      `${len} bytes, the underlay path carries ${c.pathMax} (ICMP too big sent back)`,
    );
  if (vs.neigh !== undefined) {
    const a = c.suppress.wouldAnswer(vs, f, 0, len, now);
    if (a?.mac !== undefined) {
      w.say('suppression', `${a.asks}: known at ${formatMac(a.mac)}, answered into the TAP`);
      return w.end({ action: 'answer', mac: formatMac(a.mac) });
    }
    if (a) w.say('suppression', `${a.asks}: not known, flooded`);
  }
  const dst = readMac(f, 0);
  const group = (f[0] & 1) === 1;
  const e = group ? undefined : c.fdb.get(vni, dst);
  let to: Remote[];
  if (e !== undefined) {
    const age = e.isStatic
      ? e.source
      : `learned, updated ${Math.floor((now - e.updated) / 1000)} s ago`;
    w.say('fdb', `${formatMac(dst)} at ${e.remote.key} (${age})`);
    to = [e.remote];
  } else {
    w.say(
      'fdb',
      group
        ? `${formatMac(dst)}: broadcast/multicast, flooded`
        : `${formatMac(dst)}: unknown, flooded`,
    );
    to = [...c.fdb.floodList(vni)];
    if (to.length === 0) return w.drop(Drop.NO_REMOTE, 'the flood list is empty');
    w.say('flood list', to.map((r) => r.key).join(', '));
  }
  const fits = to.filter((r) => !df || len <= c.paths.peek(r));
  for (const r of to)
    if (!fits.includes(r))
      w.say('path', `towards ${r.key} carries ${c.paths.peek(r)}: ${len} bytes do not fit`);
  if (fits.length === 0)
    return w.drop(Drop.PATH_MTU_EXCEEDED, 'no path fits (ICMP too big sent back)');
  w.say('outer', outerText(word, label, c.sourcePort(f, 0, len), fits));
  return w.end({ action: 'send', remotes: fits.map((r) => r.key), flooded: e === undefined });
}

/** The outer header values `vs` gives the frame, leaving the VNI's scratch as it was. */
function outerOf(vs: VniState, f: Buffer, len: number, labels: boolean) {
  const o = vs.outer;
  const [w0, l0] = [o.word, o.label];
  const word = o.of(f, 0, len);
  const label = labels && o.label === 0 ? autoLabel(flowHash(f, 0, len)) : o.label;
  o.word = w0;
  o.label = l0;
  return { word, label };
}

function outerText(word: number, label: number, port: number, to: Remote[]): string {
  const ttl = (word >> 8) & 0xff;
  const parts = [
    `to ${to.map((r) => r.key).join(', ')}`,
    `source port ${port || "the underlay socket's"}`,
    `ttl ${ttl || 'default (64)'}`,
    `tos 0x${(word & 0xff).toString(16).padStart(2, '0')}`,
    (word & OuterFlag.NO_DF) !== 0 ? 'df unset' : 'df set',
  ];
  if (to.some((r) => r.family === 6)) parts.push(`flow label ${label}`);
  if ((word & OuterFlag.NO_CSUM) !== 0) parts.push('udp checksum 0');
  return parts.join(', ');
}

function traceRemote(
  c: TraceContext,
  input: Extract<TraceInput, { from: 'remote' }>,
  now: number,
): Trace {
  const w = new Walk();
  const d = input.datagram;
  const dec = { vni: 0, offset: 0, length: 0 };
  const reason = decapsulateInto(d, 0, d.length, c.policy, dec);
  if (reason !== Drop.NONE) return w.drop(reason, 'the VXLAN header');
  const vs = c.vnis.get(dec.vni);
  if (vs === undefined) return w.drop(Drop.VNI_UNKNOWN, `vni ${dec.vni} is not configured`);
  w.say('vni', `${dec.vni} (tap ${vs.tapName})`);
  const slot = new Uint8Array(ADDR_LEN);
  writeAddr(slot, 0, input.address, input.port);
  let remote = vs.senders.lookup(slot, 0);
  if (remote === undefined) {
    if (!vs.learnRemotes)
      return w.drop(Drop.SENDER_NOT_REMOTE, `${input.address} is not a remote of vni ${dec.vni}`);
    remote = makeRemote(input.address, c.dstPort);
    w.say('sender', `${input.address}: not known, accepted (learnRemotes) as ${remote.key}`);
  } else w.say('sender', `${input.address}: remote ${remote.key}`);
  const src = readMac(d, dec.offset + 6);
  w.say('frame', `${formatMac(src)} > ${formatMac(readMac(d, dec.offset))}, ${dec.length} bytes`);
  if (vs.ownMacs.includes(src)) return w.drop(Drop.OWN_SOURCE_MAC, formatMac(src));
  if (c.dropInvalidSource && !isValidUnicast(src))
    return w.drop(Drop.INVALID_SOURCE_MAC, formatMac(src));
  if (vs.tap === null) return w.drop(Drop.TAP_DOWN, `${vs.tapName} is down`);
  w.say('learning', learnText(c.fdb.wouldLearn(dec.vni, src, remote), src, remote));
  const outer = (input.outerTos ?? 0) & ECN_MASK;
  const ip = innerIp(d, dec.offset, dec.length);
  if (outer !== 0 && ip >= 0) {
    // RFC 6040's decapsulation table, as Decap.ecn applies it
    const inner = trafficClass(d, ip) & ECN_MASK;
    const v = decapVerdict(outer, inner);
    if (v === EcnVerdict.DROP) return w.drop(Drop.ECN_CE_NOT_ECT, 'outer CE over inner not-ECT');
    w.say(
      'ecn',
      `outer ${outer}, inner ${inner}${v === EcnVerdict.UNEXPECTED ? ' (unexpected)' : ''}`,
    );
  }
  w.say('split horizon', 'from the underlay: to the TAP only, never to another remote');
  return w.end({ action: 'deliver', tap: vs.tapName });
}

function learnText(v: ReturnType<Fdb['wouldLearn']>, mac: number, remote: Remote): string {
  const m = formatMac(mac);
  switch (v.verdict) {
    case 'new':
      return `${m} would be learned at ${remote.key}`;
    case 'refreshed':
      return `${m} is at ${remote.key} already: refreshed`;
    case 'moved':
      return `${m} would move from ${v.from} to ${remote.key}`;
    case 'evicts':
      return `${m} would be learned, evicting ${formatMac(v.mac)} of vni ${v.vni} (table full)`;
    case 'static':
      return `${m} has a static entry: not learned`;
    case 'disabled':
      return `learning is off for this VNI`;
    case 'full':
      return `the table is full of static entries: ${m} is not learned`;
    default:
      return `${m} is not learned (${v.verdict})`;
  }
}
