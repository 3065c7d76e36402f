// Client-side rate limiting, as client-go does it: a token bucket refilled at `qps` tokens a
// second holding at most `burst`, so a burst of writes (a relist, a status storm after a restart)
// is spread out instead of tripping the API server's priority and fairness limits.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(qps > 0) || !(burst >= 1)) throw new Error(`rate limit: qps must be > 0 and burst >= 1 (got ${qps}, ${burst})`);
    this.tokens = burst;
    this.last = now();
  }

  /** Takes one token and returns how long (ms) the caller must wait before using it. */
  take(): number {
    this.refill();
    this.tokens -= 1;
    // A negative balance is a queue: the caller waits until its token has been refilled.
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }

  /** Takes one token only if one is there now: for work that is dropped rather than delayed. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
  }
}
