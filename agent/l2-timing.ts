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

/** The embedded and etcd stores: a renewal and a list are local or cheap, so fail over in about a second. */
export const defaultL2Timing: L2Timing = { leaseDurationMs: 1000, renewMs: 200, scanMs: 100, marginMs: 200, handoverMs: 1500 };

/**
 * The Kubernetes store: every renewal is an API request (a PUT), so one a second per node, and
 * failover in about 3 s (client-go leader election and Cilium's L2 leases use 15 s, retried every
 * 2 s). The live set comes from a watch, so the scan only judges expiry in memory.
 */
export const kubernetesL2Timing: L2Timing = { leaseDurationMs: 3000, renewMs: 1000, scanMs: 100, marginMs: 600, handoverMs: 1500 };
