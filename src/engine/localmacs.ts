import { isValidUnicast } from '../wire/mac.js';

/**
 * The MACs seen as sources on a VNI's TAP side: what a hardware_vtep switch publishes as
 * `Ucast_Macs_Local` so that a controller (OVN) can send their traffic to it. Pure: `now` comes
 * in; the caller is told of a new MAC at once (`see` returns true) and of MACs that aged out by
 * `sweep`. Bounded: past `max` MACs a new one is not recorded (counted as `capHit`): it is still
 * forwarded, it is only not announced, so a flood of MACs from one VM cannot grow the database
 * of the controller without bound.
 *
 * A refresh only stores the time; `sweep` scans the table, once a second from the caller's timer,
 * which for the 8192 entries of the default cap costs far less than keeping an LRU order per
 * frame would.
 */
export class LocalMacs {
  private readonly seen = new Map<number, number>();
  capHit = 0;

  constructor(public max: number) {}

  get size(): number {
    return this.seen.size;
  }

  /** A frame from the TAP with source `mac`: true when the MAC is new (announce it). */
  see(mac: number, now: number): boolean {
    const last = this.seen.get(mac);
    if (last !== undefined) {
      if (last !== now) this.seen.set(mac, now);
      return false;
    }
    if (!isValidUnicast(mac)) return false;
    if (this.seen.size >= this.max) {
      this.capHit++;
      return false;
    }
    this.seen.set(mac, now);
    return true;
  }

  /** Forget one MAC (it moved elsewhere): the next frame from it makes it new again. */
  forget(mac: number): void {
    this.seen.delete(mac);
  }

  /** Forget MACs not seen for `ageingMs`; each is passed to `gone` (withdraw it). */
  sweep(now: number, ageingMs: number, gone: (mac: number) => void): void {
    for (const [mac, last] of this.seen)
      if (now - last >= ageingMs) {
        this.seen.delete(mac);
        gone(mac);
      }
  }

  /** The MACs seen at or after `since`. */
  *seenSince(since: number): Generator<number> {
    for (const [mac, last] of this.seen) if (last >= since) yield mac;
  }

  /** The MACs known now, in ascending order (a resync publishes exactly these). */
  macs(): number[] {
    return [...this.seen.keys()].sort((a, b) => a - b);
  }
}
