// The L2 announcer's timing, apart from the announcer so the CLI reads the defaults without loading it.

export interface L2Timing {
  /** How long a liveness lease lasts without renewal. */
  leaseDurationMs: number;
  renewMs: number;
  /** How often the live set is read. */
  scanMs: number;
  /** Stop answering this long before the own lease could be seen as expired elsewhere. */
  marginMs: number;
  /**
   * On shutdown, how long the node stays after announcing that it leaves: it answers for two scan
   * intervals more (successors take over first), then stays quiet until the successors' repeated
   * gratuitous announcements (0.25, 1 s) have gone out.
   */
  handoverMs: number;
}

export const defaultL2Timing: L2Timing = { leaseDurationMs: 1000, renewMs: 200, scanMs: 100, marginMs: 200, handoverMs: 1500 };
