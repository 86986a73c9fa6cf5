/**
 * A token bucket with time passed in (no clocks): `burst` events at once, refilled at
 * `burst` per `intervalMs`. Suppressed events are counted so the next allowed report can say
 * how many were dropped, like the kernel's net_ratelimit.
 */
export class RateLimiter {
  private tokens: number;
  private last = Number.NEGATIVE_INFINITY;
  /** Events refused since the last allowed one. */
  suppressed = 0;

  constructor(
    readonly burst = 10,
    readonly intervalMs = 5000,
  ) {
    this.tokens = burst;
  }

  /** True when an event at `now` may be reported. */
  allow(now: number): boolean {
    if (this.last === Number.NEGATIVE_INFINITY) this.last = now;
    const refill = ((now - this.last) * this.burst) / this.intervalMs;
    if (refill > 0) {
      this.tokens = Math.min(this.burst, this.tokens + refill);
      this.last = now;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.suppressed++;
    return false;
  }

  /** Read and reset the suppressed count (to print "N messages suppressed"). */
  takeSuppressed(): number {
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }
}
