import { isIPv4 } from 'node:net';
import type { Config, VniSpec } from '../config/config.js';
import type { UnderlayLink } from '../io/netif.js';
import type { Log } from '../util/log.js';
import { encapOverhead } from '../engine/paths.js';
import { TunOffload } from '../wire/gso.js';
import { HEADROOM } from './threads/plane.js';

/**
 * Sizes the running endpoint derives from its configuration and the underlay: each TAP's MTU
 * when none is given, receive slot sizes, and what does not fit.
 */

/** Bytes of a frame beyond its MTU: Ethernet header and one 802.1Q tag. */
export const L2_MAX = 18;

/** The largest frame a TAP with TCP segmentation offload hands us: 64 KiB of IP, and L2. */
export const SUPER_FRAME = 65535 + L2_MAX;

/**
 * What we offer the kernel on TAPs: partial checksums, and TCP and UDP super-frames over IPv4
 * and IPv6 (UDP where the kernel has it: 6.2 on; the TAP takes the rest without it).
 */
export const TAP_OFFLOADS =
  TunOffload.CSUM | TunOffload.TSO4 | TunOffload.TSO6 | TunOffload.USO4 | TunOffload.USO6;

/** A receive slot for frames or datagrams of up to `bytes`: at least 2 KiB, cache-line aligned. */
export function slotFor(bytes: number): number {
  return Math.max(2048, Math.ceil((HEADROOM + bytes) / 64) * 64);
}

/** The receive slot of a TAP with this MTU (a super-frame's with offloads). */
export function tapSlot(mtu: number, offload: boolean): number {
  return slotFor(offload ? SUPER_FRAME : mtu + L2_MAX);
}

/** The TAP MTU when none is configured: what fits the underlay once encapsulated. */
export function defaultMtu(link: UnderlayLink, family: 4 | 6): number {
  return link.mtu - encapOverhead(family) - 14;
}

/** A configuration whose every VNI (and OVSDB port) has its MTU decided. */
export type Resolved = Omit<Config, 'vnis'> & {
  vnis: (VniSpec & { mtu: number })[];
  /** The MTU of the OVSDB ports. */
  ovsdbMtu: number;
};

/** The configuration with every VNI's MTU decided (configured, or derived from the underlay). */
export function resolveMtus(cfg: Config, link: UnderlayLink): Resolved {
  const family = isIPv4(cfg.local) ? 4 : 6;
  return {
    ...cfg,
    vnis: cfg.vnis.map((v) => ({ ...v, mtu: v.mtu ?? defaultMtu(link, family) })),
    ovsdbMtu: cfg.ovsdb?.mtu ?? defaultMtu(link, family),
  };
}

/** The largest frame MTU of the configuration: static VNIs and OVSDB ports. */
export function largestMtu(cfg: Resolved): number {
  return Math.max(...cfg.vnis.map((v) => v.mtu), cfg.ovsdb ? cfg.ovsdbMtu : 0);
}

/** The largest datagram the underlay ring must hold: what the link carries, or our own frames. */
export function udpPayloadMax(cfg: Resolved, link: UnderlayLink): number {
  const ip = isIPv4(cfg.local) ? 20 : 40;
  return Math.max(link.mtu - ip - 8, 16 + largestMtu(cfg) + L2_MAX);
}

/** Say when a VNI's MTU cannot fit the underlay: its larger packets will get ICMP "too big". */
export function mtuWarnings(cfg: Resolved, link: UnderlayLink, log: Log): void {
  const family = isIPv4(cfg.local) ? 4 : 6;
  const fits = defaultMtu(link, family);
  for (const v of cfg.vnis)
    if (v.mtu > fits)
      log(
        'warn',
        'mtu_too_big',
        `vni ${v.vni}: mtu ${v.mtu} does not fit the underlay (MTU ${link.mtu}${link.name ? ` on ${link.name}` : ''}, ${encapOverhead(family) + 14} bytes of VXLAN over IPv${family}): packets over ${fits} bytes are dropped and answered with ICMP "${family === 4 ? 'fragmentation needed' : 'packet too big'}"`,
        {
          vni: v.vni,
          mtu: v.mtu,
          fits,
          underlayMtu: link.mtu,
          ...(link.name ? { dev: link.name } : {}),
        },
      );
}
