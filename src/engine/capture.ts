import { addrPort, addrToString } from '../io/addr.js';
import { dropReasonName } from '../wire/drop.js';
import { readMac } from '../wire/mac.js';

/**
 * `vtep capture`: copies of the frames the engine handles, and of the packets it drops with
 * the reason, for a pcapng writer. Nothing is done per packet while no capture runs (one
 * `undefined` check); while one runs, what matches the filter is copied out (a Buffer per
 * packet: the capture's cost, measured in bench:alloc).
 */
export interface CaptureFilter {
  /** Only this VNI. */
  vni?: number;
  /** Only frames with this MAC as source or destination. */
  mac?: number;
  /** Only packets from or to this remote (its address). */
  remote?: string;
  /** Capture dropped packets (with their reason) instead of the frames that pass. */
  drops?: boolean;
}

export interface Captured {
  vni: number;
  /** `from-tap`/`to-tap`: an inner Ethernet frame; `underlay`: a VXLAN datagram (UDP payload). */
  kind: 'from-tap' | 'to-tap' | 'underlay';
  /** The drop reason, for a dropped packet. */
  reason?: string;
  /** The address it came from (decap), and its UDP source port. */
  remote?: string;
  port?: number;
  bytes: Uint8Array;
}

export class CaptureTap {
  /** The packet the path is looking at now, for a drop (set only while capturing). */
  private curSlab: Uint8Array | undefined;
  private curOff = 0;
  private curLen = -1;
  private curKind: Captured['kind'] = 'from-tap';
  private curAddrs: Uint8Array | null = null;
  private curSlot = -1;

  constructor(
    readonly filter: CaptureFilter,
    private readonly sink: (c: Captured) => void,
  ) {}

  /** The packet now being handled (a frame from the TAP, or a datagram from slot `slot`). */
  at(
    kind: Captured['kind'],
    slab: Uint8Array,
    off: number,
    len: number,
    addrs: Uint8Array | null = null,
    slot = -1,
  ): void {
    this.curKind = kind;
    this.curSlab = slab;
    this.curOff = off;
    this.curLen = len;
    this.curAddrs = addrs;
    this.curSlot = slot;
  }

  /** Nothing is being handled (between batches). */
  clear(): void {
    this.curLen = -1;
    this.curSlab = undefined;
  }

  /** A frame that passes: into the TAP, or from it. */
  frame(
    vni: number,
    kind: 'from-tap' | 'to-tap',
    slab: Uint8Array,
    off: number,
    len: number,
  ): void {
    const f = this.filter;
    if (f.drops || (f.vni !== undefined && f.vni !== vni)) return;
    const remote = kind === 'to-tap' ? this.sender() : undefined;
    if (f.remote !== undefined && remote !== f.remote) return;
    if (f.mac !== undefined && !hasMac(slab, off, len, f.mac)) return;
    this.sink({ vni, kind, ...this.from(remote), bytes: slab.slice(off, off + len) });
  }

  /** The current packet was dropped for `reason` (vni -1: none could be told). */
  drop(reason: number, vni: number): void {
    const f = this.filter;
    if (!f.drops || this.curLen < 0 || this.curSlab === undefined) return;
    if (f.vni !== undefined && f.vni !== vni) return;
    const remote = this.sender();
    if (f.remote !== undefined && remote !== f.remote) return;
    const inner = this.curKind === 'underlay' ? 8 : 0;
    if (
      f.mac !== undefined &&
      !hasMac(this.curSlab, this.curOff + inner, this.curLen - inner, f.mac)
    )
      return;
    this.sink({
      vni,
      kind: this.curKind,
      reason: dropReasonName(reason),
      ...this.from(remote),
      bytes: this.curSlab.slice(this.curOff, this.curOff + this.curLen),
    });
  }

  private from(remote: string | undefined): { remote?: string; port?: number } {
    return remote === undefined ? {} : { remote, port: addrPort(this.curAddrs!, this.curSlot) };
  }

  private sender(): string | undefined {
    return this.curAddrs && this.curSlot >= 0
      ? addrToString(this.curAddrs, this.curSlot)
      : undefined;
  }
}

function hasMac(b: Uint8Array, off: number, len: number, mac: number): boolean {
  return len >= 12 && (readMac(b, off) === mac || readMac(b, off + 6) === mac);
}
