// A VTEP engine wired to in-memory fakes: one underlay socket, remotes as fake sockets, one
// fake TAP per VNI. Time is a number the test moves.
import { Fdb } from '../../src/fdb/fdb.js';
import { Remotes } from '../../src/fdb/remote.js';
import { addrToString, ipv6Bytes } from '../../src/io/addr.js';
import { FakeNetwork, FakeTap, type FakeUdpSocket } from '../../src/io/testdevices.js';
import {
  TxBatch,
  TxStatus,
  type DatagramSender,
  type DatagramSocket,
  type SegmentSender,
} from '../../src/io/types.js';
import { Engine, type EngineOptions, type VniConfig } from '../../src/engine/engine.js';
import { emitEthernet } from '../../src/wire/ethernet.js';
import { writeMac } from '../../src/wire/mac.js';
import { encapsulate } from '../../src/wire/vxlan.js';

export const LOCAL = '192.0.2.2';
export const PEER_A = '192.0.2.1';
export const PEER_C = '192.0.2.3';
export const STRANGER = '192.0.2.99';

export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(() => setImmediate(r)));
}

/** An Ethernet frame of `size` bytes (≥ 14) with a recognisable payload. */
export function frame(dst: number, src: number, size = 60, fillByte = 0x42): Buffer {
  const f = Buffer.alloc(size, fillByte);
  emitEthernet({ dst, src, ethertype: 0x0800 }, f, 0);
  return f;
}

/** A VXLAN datagram (header + frame) for `vni`. */
export function vxlan(vni: number, inner: Buffer): Buffer {
  const buf = Buffer.alloc(8 + inner.length);
  inner.copy(buf, 8);
  return Buffer.from(encapsulate(buf, 8, inner.length, vni));
}

/** Records what a raw sender would put on the wire. */
export class RecordingSender implements DatagramSender {
  lastError: string | undefined;
  readonly sent: { bytes: Buffer; to: Uint8Array; slab: Uint8Array }[] = [];
  send(slab: Uint8Array, batch: TxBatch): number {
    for (let i = 0; i < batch.count; i++) {
      this.sent.push({
        bytes: Buffer.from(slab.subarray(batch.offsets[i], batch.offsets[i] + batch.lengths[i])),
        to: batch.addrs.slice(i * 20, i * 20 + 20),
        slab,
      });
      batch.status[i] = TxStatus.SENT;
    }
    return batch.count;
  }
  close(): void {}
}

/** Start `socket` keeping a copy of each datagram it receives, in the array returned. */
export function collect(socket: FakeUdpSocket): Buffer[] {
  const got: Buffer[] = [];
  socket.start(
    (n) => {
      for (let i = 0; i < n; i++) got.push(Buffer.from(socket.rx.frame(i)));
    },
    () => {},
  );
  return got;
}

export interface Harness {
  net: FakeNetwork;
  underlay: FakeUdpSocket;
  peerA: FakeUdpSocket;
  peerC: FakeUdpSocket;
  stranger: FakeUdpSocket;
  taps: Map<number, FakeTap>;
  engine: Engine;
  fdb: Fdb;
  remotes: Remotes;
  clock: { now: number };
  /** Datagrams each peer received, decoded as raw bytes. */
  inbox: Map<string, Buffer[]>;
}

export function harness(
  vnis: (Omit<VniConfig, 'tap' | 'remotes'> & { remotes?: string[] })[],
  opts: Partial<EngineOptions> & { ageingMs?: number; maxEntries?: number } = {},
): Harness {
  const net = new FakeNetwork();
  const underlay = net.bind(LOCAL, 4789);
  const peerA = net.bind(PEER_A, 4789);
  const peerC = net.bind(PEER_C, 4789);
  const stranger = net.bind(STRANGER, 4789);
  const remotes = new Remotes();
  const fdb = new Fdb({ ageingMs: opts.ageingMs, maxEntries: opts.maxEntries });
  const clock = { now: 1000 };
  const engine = new Engine({ underlay, fdb, ...opts });
  const taps = new Map<number, FakeTap>();
  for (const v of vnis) {
    // slots sized for the MTU, as the daemon sizes a TAP's (headroom + L2 + MTU, 2 KiB at least)
    const tap = new FakeTap(`vx${v.vni}`, { slotSize: Math.max(2048, (v.mtu ?? 0) + 256) });
    taps.set(v.vni, tap);
    engine.addVni({
      ...v,
      tap,
      remotes: (v.remotes ?? [PEER_A, PEER_C]).map((a) => remotes.get(a)),
    });
    tap.start(
      (n) => engine.tapReceived(v.vni, n, clock.now),
      () => {},
    );
  }
  underlay.start(
    (n) => engine.underlayReceived(n, clock.now),
    () => {},
  );
  const inbox = new Map<string, Buffer[]>();
  for (const peer of [peerA, peerC, stranger]) inbox.set(peer.address, collect(peer));
  return { net, underlay, peerA, peerC, stranger, taps, engine, fdb, remotes, clock, inbox };
}

/** A UDP GSO sender over the fakes: cuts each send into datagrams and sends them through `via`. */
export class FakeGso implements SegmentSender {
  readonly ports = [50000];
  calls: { length: number; segSize: number; hash: number }[] = [];
  /** Errno to answer with instead of sending, when set. */
  fail: number | undefined;
  constructor(private readonly via: DatagramSocket) {}
  sendSegments(
    slab: Uint8Array,
    offset: number,
    length: number,
    segSize: number,
    addrs: Uint8Array,
    slot: number,
    hash: number,
    word = 0,
    label = 0,
  ): number {
    if (this.fail !== undefined) return -this.fail;
    // as the kernel's UDP GSO: a segment over the path's MTU is EINVAL
    const mtu = this.via.pathMtu?.(addrToString(addrs, slot));
    if (mtu !== undefined && segSize + 8 + 20 > mtu) return -22;
    this.calls.push({ length, segSize, hash });
    const b = new TxBatch(64);
    b.outer = new Uint32Array(128);
    for (let o = offset; o < offset + length; o += segSize) {
      const i = b.push(o, Math.min(segSize, offset + length - o));
      b.addrs.set(addrs.subarray(slot * 20, slot * 20 + 20), i * 20);
      b.outer[2 * i] = word;
      b.outer[2 * i + 1] = label;
    }
    this.via.send(slab, b);
    return length;
  }
  errnoName(errno: number): string {
    return (
      ({ 5: 'EIO', 11: 'EAGAIN', 22: 'EINVAL', 90: 'EMSGSIZE' } as Record<number, string>)[errno] ??
      'E?'
    );
  }
  close(): void {}
}

/** An ARP frame: `op` 1 request, 2 reply. */
export function arpFrame(
  op: number,
  dst: number,
  sha: number,
  spa: number,
  tpa: number,
  tag = false,
): Buffer {
  const f = Buffer.alloc(tag ? 46 : 42);
  writeMac(f, 0, dst);
  writeMac(f, 6, sha);
  let o = 12;
  if (tag) (f.writeUInt32BE(0x81000064, 12), (o = 16));
  f.writeUInt16BE(0x0806, o);
  Buffer.from('0001080006040000', 'hex').copy(f, o + 2);
  f.writeUInt16BE(op, o + 8);
  writeMac(f, o + 10, sha);
  f.writeUInt32BE(spa, o + 16);
  f.writeUInt32BE(tpa, o + 26);
  return f;
}

/** An ND frame: 135 solicitation (with source lladdr), 136 advertisement (with target lladdr). */
export function ndFrame(
  type: 135 | 136,
  dst: number,
  src: number,
  from: string,
  target: string,
): Buffer {
  const f = Buffer.alloc(14 + 40 + 32);
  writeMac(f, 0, dst);
  writeMac(f, 6, src);
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f.writeUInt16BE(32, 18);
  f[20] = 58;
  f[21] = 255;
  f.set(ipv6Bytes(from), 22);
  f.set(ipv6Bytes(target), 38); // (the destination: the target itself, fine for a test)
  f[54] = type;
  f.set(ipv6Bytes(target), 62);
  f[78] = type === 135 ? 1 : 2;
  f[79] = 1;
  writeMac(f, 80, src);
  return f;
}
