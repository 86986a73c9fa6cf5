import { dontFragment, encapEcn, flowLabel, hopLimit, innerIp, trafficClass } from '../wire/ecn.js';
import { OuterFlag } from '../io/types.js';

/**
 * How the outer IP and UDP headers of a VNI's datagrams are written, as Linux VXLAN's `ttl`,
 * `tos`, `df`, `flowlabel` and `[no]udpcsum` (and Open vSwitch's `options:ttl`, `tos`,
 * `df_default`, `csum`). ECN is not a setting: it always follows RFC 6040 normal mode.
 */
export interface OuterPolicy {
  /** 1..255, or `inherit` the inner TTL / hop limit; undefined: the route's default (64). */
  ttl?: number | 'inherit';
  /** An outer TOS / traffic class byte with the ECN bits 0 (DSCP << 2), or `inherit` the inner DSCP. Default 0. */
  tos?: number | 'inherit';
  /** IPv4 underlay: DF `set` (default), `unset`, or `inherit` from the inner IPv4 header. */
  df?: 'set' | 'unset' | 'inherit';
  /**
   * IPv6 underlay: a fixed flow label, or `inherit` the inner IPv6 one; undefined (or 0, or
   * nothing to inherit): a hash of the inner flow (RFC 6438), as Linux VXLAN's automatic label.
   */
  flowLabel?: number | 'inherit';
  /** IPv4 underlay: write UDP checksums (default true; RFC 7348 allows zero, kernel `noudpcsum`). */
  udpCsum?: boolean;
}

const INHERIT = -1;

/**
 * A VNI's policy made into numbers, and the header values it gives a frame: `word` (TOS, TTL
 * and flags, see `OuterFlag` in io/types.ts) and `label`, computed by `of`.
 */
export class OuterHeader {
  private ttl = 0;
  private tos = 0;
  private df = 0;
  private fixedLabel = 0;
  private flags = 0;
  /** The last frame's word and flow label (`of` sets them; no allocation per frame). */
  word = 0;
  label = 0;

  constructor(p: OuterPolicy = {}) {
    this.set(p);
  }

  set(p: OuterPolicy): void {
    this.ttl = p.ttl === 'inherit' ? INHERIT : (p.ttl ?? 0);
    this.tos = p.tos === 'inherit' ? INHERIT : (p.tos ?? 0) & 0xfc;
    this.df = p.df === 'unset' ? 1 : p.df === 'inherit' ? 2 : 0;
    this.fixedLabel = p.flowLabel === 'inherit' ? INHERIT : (p.flowLabel ?? 0) & 0xfffff;
    this.flags = p.udpCsum === false ? OuterFlag.NO_CSUM : 0;
  }

  /**
   * IPv4 datagrams with a zero UDP checksum (`udpCsum: false`): the kernel does no UDP GSO
   * without a checksum, so these go one datagram per message.
   */
  get zeroChecksum(): boolean {
    return (this.flags & OuterFlag.NO_CSUM) !== 0;
  }

  /** The outer header values for the inner frame at `off`; returns `word` (and sets `label`). */
  of(b: Uint8Array, off: number, len: number): number {
    const ip = innerIp(b, off, len);
    const tc = ip < 0 ? 0 : trafficClass(b, ip);
    const tos = (this.tos === INHERIT ? tc & 0xfc : this.tos) | encapEcn(tc);
    const ttl = this.ttl === INHERIT ? (ip < 0 ? 0 : hopLimit(b, ip)) : this.ttl;
    let flags = this.flags;
    if (this.df === 1 || (this.df === 2 && (ip < 0 || !dontFragment(b, ip))))
      flags |= OuterFlag.NO_DF;
    this.label = this.fixedLabel === INHERIT ? (ip < 0 ? 0 : flowLabel(b, ip)) : this.fixedLabel;
    this.word = tos | (ttl << 8) | flags;
    return this.word;
  }
}
