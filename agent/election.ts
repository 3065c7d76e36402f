// Leader election on a store lease. The holder renews every third of the duration and stops
// acting as leader as soon as it cannot prove it still holds the lease (its last successful
// renewal is older than the duration minus a safety margin), before anyone else can take it.
import type { LeaseStore } from '../store/index.js';

export interface ElectionOptions {
  durationMs: number;
  /** How often the holder renews (default duration / 3). */
  renewMs?: number;
  /** How often a candidate tries to take the lease (default 500 ms, at most renewMs). */
  retryMs?: number;
  /** Stop leading this long before the lease could expire elsewhere (default 10% of duration). */
  marginMs?: number;
  now?: () => number;
}

export type LeaderChange = { leader: boolean; reason: string };

export class LeaderElector {
  private timer: NodeJS.Timeout | undefined;
  /** Fires when the last renewal stops covering us, even if a renewal call hangs. */
  private fence: NodeJS.Timeout | undefined;
  private leading = false;
  private lastRenewed = 0;
  private stopped = false;
  private holderSeen: string | undefined;
  /** The last renewal error, for status output. */
  lastError: string | undefined;
  private readonly renewMs: number;
  private readonly retryMs: number;
  private readonly marginMs: number;
  private readonly now: () => number;

  constructor(
    private readonly leases: LeaseStore,
    readonly lease: string,
    readonly identity: string,
    private readonly opts: ElectionOptions,
    private readonly onChange: (change: LeaderChange) => void,
  ) {
    this.renewMs = opts.renewMs ?? Math.max(100, Math.floor(opts.durationMs / 3));
    this.retryMs = Math.min(opts.retryMs ?? 500, this.renewMs);
    this.marginMs = opts.marginMs ?? Math.floor(opts.durationMs / 10);
    this.now = opts.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Who held the lease at the last look (this process or another). */
  get holder(): string | undefined {
    return this.leading ? this.identity : this.holderSeen;
  }

  start(): void {
    void this.tick();
  }

  /** Stops, and releases the lease when held so a successor need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.fence);
    if (this.leading) {
      this.set(false, 'shutting down');
      await this.leases.release(this.lease, this.identity).catch(() => undefined);
    }
  }

  private set(leader: boolean, reason: string): void {
    if (leader === this.leading) return;
    this.leading = leader;
    this.onChange({ leader, reason });
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const started = this.now();
      const { held, lease } = await this.leases.acquireOrRenew(this.lease, this.identity, this.opts.durationMs);
      if (this.stopped) return;
      this.holderSeen = lease.holder;
      if (held) {
        this.lastRenewed = started;
        this.set(true, `acquired lease ${this.lease}`);
        clearTimeout(this.fence);
        this.fence = setTimeout(() => {
          if (this.lastRenewed === started) this.set(false, `lease ${this.lease} not renewed in time`);
        }, Math.max(0, started + this.opts.durationMs - this.marginMs - this.now()));
      } else {
        this.set(false, `lease ${this.lease} is held by ${lease.holder}`);
      }
    } catch (e) {
      // The store is unreachable: the fence timer ends leadership when the last renewal runs out.
      this.lastError = (e as Error).message;
    }
    if (this.stopped) return;
    const delay = this.leading ? this.renewMs : this.retryMs;
    this.timer = setTimeout(() => void this.tick(), delay);
  }
}
