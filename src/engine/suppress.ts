import { TxBatch, TxStatus } from '../io/types.js';
import { ArpOp, emitArpReply, parseArp, type Arp } from '../wire/arp.js';
import { Drop } from '../wire/drop.js';
import { EthernetFrame } from '../wire/ethernet.js';
import { NA_FRAME_LEN, emitNa, parseNd } from '../wire/nd.js';
import type { Hooks } from './counters.js';
import { key6 } from './neigh.js';
import { formatIpv6Bytes } from '../io/addr.js';
import { formatIpv4Address } from '../wire/ipv4.js';
import type { VniState } from './vni.js';

/**
 * ARP/ND suppression (Linux `neigh_suppress`) for VNIs that have it on: what ARP and ND on
 * either side say about who has which address is learned; a request from the TAP for a known
 * address is answered into the TAP instead of being flooded.
 */
export class Suppression {
  private readonly eth = new EthernetFrame();
  private readonly arp: Arp = { op: 0, senderMac: 0, senderIp: 0, targetMac: 0, targetIp: 0 };
  private readonly replySlab = Buffer.alloc(NA_FRAME_LEN + 4);
  private readonly tx = new TxBatch(1);

  constructor(private readonly hooks: Hooks) {}

  /**
   * One frame of the VNI: learn from it; from the TAP, answer a request for a known address.
   * Returns true when answered (the request then goes no further). Gratuitous ARP and duplicate
   * address detection only teach.
   */
  frame(vs: VniState, slab: Buffer, off: number, len: number, now: number, fromTap: boolean) {
    const eth = this.eth.bind(slab, off, len);
    if (eth.checkLen() !== Drop.NONE) return false;
    const table = vs.neigh!;
    let answer = 0;
    const arp = parseArp(eth, this.arp);
    if (arp !== undefined) {
      if (arp.senderIp !== 0) this.snoop(vs, arp.senderIp, arp.senderMac, now);
      if (!fromTap || arp.op !== ArpOp.REQUEST || arp.senderIp === arp.targetIp) return false;
      const mac = table.lookup(arp.targetIp, now);
      if (mac !== undefined && mac !== arp.senderMac)
        answer = emitArpReply(slab, off, arp, mac, this.replySlab, 0);
    } else {
      const nd = parseNd(eth);
      if (nd === undefined) return false;
      const dad = nd.src.every((x) => x === 0);
      if (nd.type === 'na') this.snoop(vs, key6(nd.target), nd.mac || eth.src, now);
      else if (!dad && nd.mac !== 0) this.snoop(vs, key6(nd.src), nd.mac, now);
      if (!fromTap || nd.type !== 'ns' || dad) return false;
      const mac = table.lookup(key6(nd.target), now);
      if (mac !== undefined && mac !== eth.src)
        answer = emitNa(slab, off, nd, mac, this.replySlab, 0);
    }
    if (answer === 0) {
      vs.flooded++;
      return false;
    }
    const b = this.tx;
    b.clear();
    b.push(0, answer);
    b.status[0] = TxStatus.NONE;
    vs.tap?.write(this.replySlab, b);
    if (b.status[0] !== TxStatus.SENT) return false; // could not answer: let it be flooded
    vs.answered++;
    return true;
  }

  /**
   * Whether a frame from the TAP is a request this VNI would answer, changing nothing (`vtep
   * trace`): the address asked for and the MAC known for it (undefined: not known, flooded), or
   * undefined when it is no request to answer (gratuitous ARP, duplicate address detection).
   */
  wouldAnswer(
    vs: VniState,
    slab: Buffer,
    off: number,
    len: number,
    now: number,
  ): { asks: string; mac: number | undefined } | undefined {
    const eth = new EthernetFrame().bind(slab, off, len);
    if (eth.checkLen() !== Drop.NONE) return undefined;
    const table = vs.neigh!;
    const arp = parseArp(eth, { ...this.arp });
    if (arp !== undefined) {
      if (arp.op !== ArpOp.REQUEST || arp.senderIp === arp.targetIp) return undefined;
      const mac = table.peek(arp.targetIp, now);
      return {
        asks: `arp who-has ${formatIpv4Address(arp.targetIp)}`,
        mac: mac === arp.senderMac ? undefined : mac,
      };
    }
    const nd = parseNd(eth);
    if (nd === undefined || nd.type !== 'ns' || nd.src.every((x) => x === 0)) return undefined;
    const mac = table.peek(key6(nd.target), now);
    return {
      asks: `nd neighbor-solicitation for ${formatIpv6Bytes(nd.target)}`,
      mac: mac === eth.src ? undefined : mac,
    };
  }

  /** An address snooped from the VNI's own traffic: into its table, and to the other threads. */
  private snoop(vs: VniState, ip: number | string, mac: number, now: number): void {
    if (vs.neigh!.learn(ip, mac, now) && this.hooks.onNeigh) this.hooks.onNeigh(vs.vni, ip, mac);
  }
}
