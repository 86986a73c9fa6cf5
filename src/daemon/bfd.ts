import { randomInt } from 'node:crypto';
import type { Remote } from '../fdb/remote.js';
import {
  BFD_STATE_NAMES,
  BfdDiag,
  BfdState,
  bfdFrame,
  parseBfd,
  type BfdPacket,
} from '../wire/bfd.js';

/**
 * BFD on the tunnels (RFC 5880 asynchronous mode, framed as RFC 8971): one session per remote,
 * in the VNI configured for it (or the first the remote serves). The state machine follows
 * RFC 5880 §6.8.6 on receipt and §6.8.4 for detection; while a session is not up it sends at
 * most once a second (§6.8.3), and a change of its intervals is announced by a Poll (§6.5).
 * Time is passed in (ms), so the machine is tested without clocks.
 */
export interface BfdSettings {
  /** Desired transmit and required receive interval, ms. */
  intervalMs: number;
  multiplier: number;
}

export interface BfdStatus {
  state: (typeof BFD_STATE_NAMES)[number];
  diag: number;
  remoteState: (typeof BFD_STATE_NAMES)[number];
  /** How long without a packet from it before it is declared down, ms (0: not yet known). */
  detectMs: number;
  vni: number;
}

export class BfdSession {
  state: number = BfdState.DOWN;
  diag: number = BfdDiag.NONE;
  remoteState: number = BfdState.DOWN;
  remoteDisc = 0;
  /** The remote's required min RX and desired min TX, ms; its multiplier. */
  private remoteMinRx = 1;
  private remoteMinTx = 0;
  private remoteMult = 0;
  private detectAt = Infinity;
  private nextTx = 0;
  private final = false;
  private poll = false;

  constructor(
    public settings: BfdSettings,
    readonly myDisc: number,
  ) {}

  /** The DesiredMinTx we announce: our interval while up, at least a second otherwise. */
  private minTx(): number {
    return this.state === BfdState.UP
      ? this.settings.intervalMs
      : Math.max(this.settings.intervalMs, 1000);
  }

  detectMs(): number {
    return this.remoteMult * Math.max(this.settings.intervalMs, this.remoteMinTx);
  }

  /** A control packet from the remote. Returns true when the session's state changed. */
  receive(p: BfdPacket, now: number): boolean {
    if (p.yourDisc !== 0 && p.yourDisc !== this.myDisc) return false;
    const before = this.state;
    this.remoteDisc = p.myDisc;
    this.remoteState = p.state;
    this.remoteMult = p.multiplier;
    if (p.final) this.poll = false;
    if (p.poll) this.final = true;
    const minRx = Math.max(1, Math.floor(p.requiredMinRx / 1000));
    if (minRx !== this.remoteMinRx) {
      this.remoteMinRx = minRx;
      this.nextTx = Math.min(this.nextTx, now + this.txInterval());
    }
    this.remoteMinTx = Math.max(1, Math.floor(p.desiredMinTx / 1000));
    this.detectAt = now + this.detectMs();
    if (this.state === BfdState.ADMIN_DOWN) return false;
    if (p.state === BfdState.ADMIN_DOWN) {
      if (this.state !== BfdState.DOWN) this.set(BfdState.DOWN, BfdDiag.NEIGHBOR_DOWN);
    } else if (this.state === BfdState.DOWN) {
      if (p.state === BfdState.DOWN) this.set(BfdState.INIT, this.diag);
      else if (p.state === BfdState.INIT) this.set(BfdState.UP, BfdDiag.NONE);
    } else if (this.state === BfdState.INIT) {
      if (p.state !== BfdState.DOWN) this.set(BfdState.UP, BfdDiag.NONE);
    } else if (p.state === BfdState.DOWN) this.set(BfdState.DOWN, BfdDiag.NEIGHBOR_DOWN);
    return this.state !== before;
  }

  /** Detection time passed without a packet: down (returns true when that changed it). */
  expire(now: number): boolean {
    if (now < this.detectAt || this.state === BfdState.DOWN) return false;
    if (this.state === BfdState.ADMIN_DOWN) return false;
    this.set(BfdState.DOWN, BfdDiag.DETECT_EXPIRED);
    return true;
  }

  private set(state: number, diag: number): void {
    const wasUp = this.state === BfdState.UP;
    this.state = state;
    this.diag = diag;
    if (state === BfdState.DOWN) {
      this.remoteDisc = 0;
      this.remoteState = BfdState.DOWN;
      this.remoteMinRx = 1;
      this.remoteMinTx = 0;
      this.detectAt = Infinity;
    }
    // our DesiredMinTx changes between up and not up: announce it (RFC 5880 §6.8.3)
    if ((state === BfdState.UP) !== wasUp && state !== BfdState.DOWN) this.poll = true;
    if (state === BfdState.DOWN) this.poll = false;
  }

  private txInterval(): number {
    return Math.max(this.minTx(), this.remoteMinRx);
  }

  /** Whether a packet is due now (periodic, or the Final of a Poll). */
  due(now: number): boolean {
    return this.final || now >= this.nextTx;
  }

  /** The packet to send now; the next is scheduled with up to 25 % jitter (§6.8.7). */
  send(now: number, jitter: number = randomInt(0, 26)): BfdPacket {
    const p: BfdPacket = {
      diag: this.diag,
      state: this.state,
      poll: this.poll && !this.final,
      final: this.final,
      multiplier: this.settings.multiplier,
      myDisc: this.myDisc,
      yourDisc: this.remoteDisc,
      desiredMinTx: this.minTx() * 1000,
      requiredMinRx: this.settings.intervalMs * 1000,
    };
    this.final = false;
    const interval = this.txInterval();
    this.nextTx = now + interval - Math.floor((interval * jitter) / 100);
    return p;
  }

  status(vni: number): BfdStatus {
    return {
      state: BFD_STATE_NAMES[this.state],
      diag: this.diag,
      remoteState: BFD_STATE_NAMES[this.remoteState],
      detectMs: this.detectMs(),
      vni,
    };
  }
}

/** Our source MAC in BFD frames (locally administered; never reaches a TAP on either side). */
const BFD_SOURCE_MAC = 0x025202000001;

export interface BfdHooks {
  /** Send a frame to `remote` in `vni`, behind a VXLAN header. */
  send(vni: number, remote: Remote, frame: Buffer): void;
  /** A session changed state. */
  changed(remote: Remote, from: number, s: BfdSession, vni: number): void;
}

/**
 * The sessions of a running vtep, one per remote, kept to the configuration by `sync`, driven
 * by one timer (a few per interval: sends and detection) and by `receive` from the data path.
 */
export class Bfd {
  private readonly sessions = new Map<string, { s: BfdSession; remote: Remote; vni: number }>();
  private timer: NodeJS.Timeout | undefined;
  private usedDiscs = new Set<number>();

  constructor(
    private readonly hooks: BfdHooks,
    private readonly clock: () => number,
  ) {}

  /** The remotes to run a session with, each with the VNI its packets go in and its timers. */
  sync(remotes: { remote: Remote; vni: number; settings: BfdSettings }[]): void {
    const want = new Map(remotes.map((r) => [r.remote.key, r]));
    for (const [key, e] of this.sessions)
      if (!want.has(key)) {
        this.sessions.delete(key);
        this.usedDiscs.delete(e.s.myDisc);
      }
    for (const [key, r] of want) {
      const e = this.sessions.get(key);
      if (e) {
        e.s.settings = r.settings;
        e.vni = r.vni;
        e.remote = r.remote;
      } else
        this.sessions.set(key, {
          s: new BfdSession(r.settings, this.disc()),
          remote: r.remote,
          vni: r.vni,
        });
    }
    clearInterval(this.timer);
    const fastest = Math.min(1000, ...remotes.map((r) => r.settings.intervalMs));
    const tick = Math.max(5, Math.min(50, Math.floor(fastest / 4)));
    this.timer = setInterval(() => this.run(), tick);
    this.timer.unref();
  }

  private disc(): number {
    let d = 0;
    while (d === 0 || this.usedDiscs.has(d)) d = randomInt(1, 2 ** 32 - 1);
    this.usedDiscs.add(d);
    return d;
  }

  /** A BFD control packet from `remote` (the data path found it in a tunnel). */
  receive(remote: Remote, bytes: Uint8Array, off: number, len: number): void {
    const e = this.sessions.get(remote.key);
    if (!e) return;
    const p = parseBfd(bytes, off, len);
    if (typeof p === 'string') return;
    const from = e.s.state;
    if (e.s.receive(p, this.clock())) this.hooks.changed(e.remote, from, e.s, e.vni);
    if (e.s.due(this.clock())) this.transmit(e);
  }

  private run(): void {
    const now = this.clock();
    for (const e of this.sessions.values()) {
      const from = e.s.state;
      if (e.s.expire(now)) this.hooks.changed(e.remote, from, e.s, e.vni);
      if (e.s.due(now)) this.transmit(e);
    }
  }

  private transmit(e: { s: BfdSession; remote: Remote; vni: number }): void {
    this.hooks.send(e.vni, e.remote, bfdFrame(e.s.send(this.clock()), BFD_SOURCE_MAC));
  }

  status(key: string): BfdStatus | undefined {
    const e = this.sessions.get(key);
    return e?.s.status(e.vni);
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Remotes whose session is not up. */
  down(): string[] {
    return [...this.sessions].filter(([, e]) => e.s.state !== BfdState.UP).map(([k]) => k);
  }

  close(): void {
    clearInterval(this.timer);
    this.sessions.clear();
  }
}
