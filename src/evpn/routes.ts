import { isIP } from 'node:net';
import { ipv6Bytes } from '../io/addr.js';
import { formatMac, parseMac } from '../wire/mac.js';
import type { AnyCodec, AnyMsg, ApiPath } from './gobgp.js';
import { EVPN_FAMILY } from './gobgp.js';

/**
 * What EVPN routes (RFC 7432, over VXLAN as RFC 8365 has it) mean to a VTEP, and their GoBGP API
 * form both ways. Two route types matter to a layer-2 VTEP: type 3 (inclusive multicast Ethernet
 * tag: "this VTEP floods this VNI", with a PMSI attribute of type 6, ingress replication) and
 * type 2 (MAC/IP advertisement: "this MAC, and maybe this IP, is behind this VTEP"). Decoding
 * never throws on what a peer sent: a path that is not one of these, or is malformed, comes back
 * as a reason.
 */

/** Tunnel type of the BGP encapsulation extended community for VXLAN (RFC 9012). */
export const TUNNEL_VXLAN = 8;
/** PMSI tunnel type "ingress replication" (RFC 6514). */
export const PMSI_INGRESS_REPLICATION = 6;

interface Common {
  /** `admin:assigned`, as the CLI prints it. */
  rd: string;
  etag: number;
  /** Route targets, `AS:N` (two- or four-octet AS) or `A.B.C.D:N`. */
  rts: string[];
  /** Where the route came from: the BGP neighbour, `''` for one of the speaker's own. */
  from: string;
  nexthop: string;
}

export interface MacRoute extends Common {
  type: 2;
  mac: number;
  /** `''` for a MAC-only route. */
  ip: string;
  /** The label field: the VNI, as a raw 24-bit value. */
  label: number;
  seq: number;
  sticky: boolean;
}

export interface ImetRoute extends Common {
  type: 3;
  /** The originating router's IP: the VTEP (FRR reads it from here, not from the PMSI id). */
  origin: string;
  /** The PMSI tunnel attribute, if any (no flood entry without ingress replication). */
  pmsi?: { type: number; label: number };
}

export type EvpnRoute = MacRoute | ImetRoute;

/** Identity of a route in the table: a newer path with the same key replaces it. */
export function routeKey(r: EvpnRoute): string {
  return r.type === 2
    ? `2|${r.rd}|${r.etag}|${r.mac}|${r.ip}|${r.from}`
    : `3|${r.rd}|${r.etag}|${r.origin}|${r.from}`;
}

/** An address, or '' for absent ones: GoBGP writes `<nil>`, and `0.0.0.0` for its own next hop. */
function addr(s: unknown): string {
  return typeof s === 'string' && isIP(s) && s !== '0.0.0.0' && s !== '::' ? s : '';
}

function rdText(codec: AnyCodec, any: AnyMsg | undefined): string | undefined {
  const rd = any && codec.unpack(any);
  if (!rd) return undefined;
  const v = rd.value as { admin: unknown; assigned: number };
  return `${String(v.admin)}:${v.assigned}`;
}

function rdAny(codec: AnyCodec, rd: string): AnyMsg {
  const i = rd.lastIndexOf(':');
  const admin = rd.slice(0, i);
  const assigned = Number(rd.slice(i + 1));
  if (isIP(admin) === 4) return codec.pack('RouteDistinguisherIPAddress', { admin, assigned });
  const asn = Number(admin);
  return asn > 0xffff
    ? codec.pack('RouteDistinguisherFourOctetASN', { admin: asn, assigned })
    : codec.pack('RouteDistinguisherTwoOctetASN', { admin: asn, assigned });
}

/** A route target `AS:N` / `A.B.C.D:N` as the extended community GoBGP takes. */
function rtAny(codec: AnyCodec, rt: string): AnyMsg {
  const i = rt.lastIndexOf(':');
  const admin = rt.slice(0, i);
  const local_admin = Number(rt.slice(i + 1));
  const base = { is_transitive: true, sub_type: 2, local_admin };
  if (isIP(admin) === 4)
    return codec.pack('IPv4AddressSpecificExtended', { ...base, address: admin });
  const asn = Number(admin);
  return asn > 0xffff
    ? codec.pack('FourOctetAsSpecificExtended', { ...base, asn })
    : codec.pack('TwoOctetAsSpecificExtended', { ...base, asn });
}

interface Attrs {
  rts: string[];
  nexthop: string;
  seq: number;
  sticky: boolean;
  pmsi?: { type: number; label: number };
}

function attrs(codec: AnyCodec, pattrs: AnyMsg[]): Attrs {
  const a: Attrs = { rts: [], nexthop: '', seq: 0, sticky: false };
  for (const p of pattrs) {
    const u = codec.unpack(p);
    if (!u) continue;
    const v = u.value as Record<string, unknown>;
    if (u.type === 'NextHopAttribute') a.nexthop ||= addr(v.next_hop);
    else if (u.type === 'MpReachNLRIAttribute')
      a.nexthop ||= addr((v.next_hops as unknown[] | undefined)?.[0]);
    else if (u.type === 'PmsiTunnelAttribute')
      a.pmsi = { type: Number(v.type), label: Number(v.label) };
    else if (u.type === 'ExtendedCommunitiesAttribute')
      for (const c of (v.communities as AnyMsg[] | undefined) ?? []) community(codec, c, a);
  }
  return a;
}

function community(codec: AnyCodec, c: AnyMsg, a: Attrs): void {
  const u = codec.unpack(c);
  if (!u) return;
  const v = u.value as Record<string, unknown>;
  if (u.type === 'MacMobilityExtended') {
    a.seq = Number(v.sequence_num);
    a.sticky = v.is_sticky === true;
  } else if (Number(v.sub_type) === 2) {
    if (u.type === 'IPv4AddressSpecificExtended')
      a.rts.push(`${String(v.address)}:${Number(v.local_admin)}`);
    else if (u.type === 'TwoOctetAsSpecificExtended' || u.type === 'FourOctetAsSpecificExtended')
      a.rts.push(`${Number(v.asn)}:${Number(v.local_admin)}`);
  }
}

/**
 * A path from GoBGP (`WatchEvent`, `ListPath`) as a route, or why it is not one vtep takes: an
 * EVPN route of another type, or one with a missing or malformed field.
 */
export function decodePath(codec: AnyCodec, p: ApiPath): EvpnRoute | { skip: string } {
  try {
    const n = codec.unpack(p.nlri);
    if (!n) return { skip: `unknown NLRI type ${p.nlri.type_url}` };
    const v = n.value as Record<string, unknown>;
    const from = addr(p.neighbor_ip);
    if (
      n.type !== 'EVPNMACIPAdvertisementRoute' &&
      n.type !== 'EVPNInclusiveMulticastEthernetTagRoute'
    )
      return { skip: `not a type-2 or type-3 route: ${n.type}` };
    const rd = rdText(codec, v.rd as AnyMsg | undefined);
    if (rd === undefined) return { skip: 'no route distinguisher' };
    const a = attrs(codec, p.pattrs ?? []);
    const common = { rd, etag: Number(v.ethernet_tag), rts: a.rts, from, nexthop: a.nexthop };
    if (n.type === 'EVPNInclusiveMulticastEthernetTagRoute') {
      const origin = addr(v.ip_address);
      if (!origin) return { skip: `type-3 originating router ${String(v.ip_address)}` };
      return { type: 3, ...common, origin, ...(a.pmsi ? { pmsi: a.pmsi } : {}) };
    }
    const mac = parseMac(String(v.mac_address));
    if (mac === undefined) return { skip: `type-2 MAC ${String(v.mac_address)}` };
    const labels = (v.labels as number[] | undefined) ?? [];
    if (labels.length === 0) return { skip: 'type-2 without a label' };
    if (!a.nexthop) return { skip: 'type-2 without a next hop' };
    return {
      type: 2,
      ...common,
      mac,
      ip: addr(v.ip_address),
      label: labels[0]! & 0xffffff,
      seq: a.seq,
      sticky: a.sticky,
    };
  } catch (err) {
    return { skip: `malformed: ${(err as Error).message}` };
  }
}

export interface Originate {
  rd: string;
  rt: string[];
  vni: number;
  /** Our VTEP address: next hop, originating router, PMSI tunnel id. */
  vtep: string;
}

function common(codec: AnyCodec, o: Originate, extra: AnyMsg[] = []): AnyMsg[] {
  return [
    codec.pack('OriginAttribute', { origin: 0 }),
    codec.pack('NextHopAttribute', { next_hop: o.vtep }),
    codec.pack('ExtendedCommunitiesAttribute', {
      communities: [
        ...o.rt.map((rt) => rtAny(codec, rt)),
        codec.pack('EncapExtended', { tunnel_type: TUNNEL_VXLAN }),
        ...extra,
      ],
    }),
  ];
}

function ipBytes(ip: string): Buffer {
  return isIP(ip) === 4 ? Buffer.from(ip.split('.').map(Number)) : Buffer.from(ipv6Bytes(ip));
}

/** Our type-3 route for a VNI: ingress replication to our address, label = VNI. */
export function imetPath(codec: AnyCodec, o: Originate): ApiPath {
  return {
    family: { ...EVPN_FAMILY },
    // Zero fields left out, as gobgpd leaves them: the NLRI is byte for byte what its CLI builds.
    nlri: codec.pack('EVPNInclusiveMulticastEthernetTagRoute', {
      rd: rdAny(codec, o.rd),
      ip_address: o.vtep,
    }),
    pattrs: [
      ...common(codec, o),
      codec.pack('PmsiTunnelAttribute', {
        flags: 0,
        type: PMSI_INGRESS_REPLICATION,
        label: o.vni,
        id: ipBytes(o.vtep),
      }),
    ],
  };
}

/** Our type-2 route for a TAP-side MAC (and IP): MAC mobility when moved here or sticky. */
export function macPath(
  codec: AnyCodec,
  o: Originate & { mac: number; ip?: string; seq: number; sticky: boolean },
): ApiPath {
  const mobility =
    o.seq > 0 || o.sticky
      ? [codec.pack('MacMobilityExtended', { is_sticky: o.sticky, sequence_num: o.seq })]
      : [];
  return {
    family: { ...EVPN_FAMILY },
    nlri: codec.pack('EVPNMACIPAdvertisementRoute', {
      rd: rdAny(codec, o.rd),
      esi: {},
      mac_address: formatMac(o.mac),
      // '' is MAC-only: 0.0.0.0 would be a MAC+IP route with IP 0.0.0.0.
      ip_address: o.ip ?? '',
      labels: [o.vni],
    }),
    pattrs: common(codec, o, mobility),
  };
}

/** FRR's automatic values: RD `router-id:index`, RT `ASN:VNI`. */
export function autoRd(routerId: string, index: number): string {
  return `${routerId}:${index}`;
}

export function autoRt(asn: number, vni: number): string {
  return `${asn}:${vni}`;
}

/**
 * Route-target import, as FRR does it: a VNI's own targets match exactly, and an automatic one
 * (`*:VNI`) matches that VNI with any AS. Returns the VNI a route is for, or undefined.
 */
export class RtImport {
  private readonly exact = new Map<string, number>();
  private readonly anyAs = new Map<number, number>();

  add(vni: number, rt: string): void {
    if (rt.startsWith('*:')) this.anyAs.set(Number(rt.slice(2)), vni);
    else this.exact.set(rt, vni);
  }

  vniOf(rts: readonly string[]): number | undefined {
    for (const rt of rts) {
      const v = this.exact.get(rt);
      if (v !== undefined) return v;
    }
    for (const rt of rts) {
      const i = rt.lastIndexOf(':');
      if (isIP(rt.slice(0, i))) continue;
      const v = this.anyAs.get(Number(rt.slice(i + 1)));
      if (v !== undefined) return v;
    }
    return undefined;
  }
}
