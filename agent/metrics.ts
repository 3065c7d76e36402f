// Prometheus metrics (prom-client), one registry per process. Names say what they count.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'beacon_' });
  const reg = [registry];
  return {
    registry,
    servicesManaged: new Gauge({ name: 'beacon_ipam_services', help: 'LoadBalancer services managed by LB-IPAM', registers: reg }),
    servicesSatisfied: new Gauge({ name: 'beacon_ipam_services_satisfied', help: 'Managed services whose IP request is satisfied', registers: reg }),
    poolIPs: new Gauge({ name: 'beacon_ipam_pool_ips', help: 'Addresses per pool by state (total, used, available)', labelNames: ['pool', 'state'], registers: reg }),
    reconciles: new Counter({ name: 'beacon_reconcile_total', help: 'Reconcile passes by controller', labelNames: ['controller'], registers: reg }),
    reconcileSeconds: new Histogram({
      name: 'beacon_reconcile_duration_seconds',
      help: 'Duration of reconcile passes',
      labelNames: ['controller'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: reg,
    }),
    statusWrites: new Counter({ name: 'beacon_status_writes_total', help: 'Status writes by object kind and result (ok, conflict)', labelNames: ['kind', 'result'], registers: reg }),
    storeErrors: new Counter({ name: 'beacon_store_errors_total', help: 'Failed store operations', labelNames: ['op'], registers: reg }),
    storeUp: new Gauge({ name: 'beacon_store_up', help: '1 when the store is reachable and healthy', registers: reg }),
    leaseHeld: new Gauge({ name: 'beacon_lease_held', help: '1 while this process holds the lease', labelNames: ['lease'], registers: reg }),
    leaseTransitions: new Counter({ name: 'beacon_lease_transitions_total', help: 'Times this process gained or lost a lease', labelNames: ['lease', 'held'], registers: reg }),
    l2Announced: new Gauge({ name: 'beacon_l2_announced_ips', help: 'IPs this node answers ARP/NDP for', registers: reg }),
    l2LiveNodes: new Gauge({ name: 'beacon_l2_live_nodes', help: 'Nodes with a live L2 liveness lease, as this node sees them', registers: reg }),
    l2Answered: new Gauge({ name: 'beacon_l2_requests_answered', help: 'ARP requests and neighbor solicitations answered since start, by protocol', labelNames: ['protocol'], registers: reg }),
    l2Dropped: new Gauge({ name: 'beacon_l2_frames_dropped', help: 'Received frames not answered since start, by reason', labelNames: ['reason'], registers: reg }),
    l2Gratuitous: new Gauge({ name: 'beacon_l2_gratuitous_sent', help: 'Gratuitous ARP and unsolicited NA frames sent since start', registers: reg }),
    l2Takeovers: new Counter({ name: 'beacon_l2_takeovers_total', help: 'IPs this node started announcing, by cause (failover: the previous announcer died; move: rebalancing or handover; new: first announcer)', labelNames: ['cause'], registers: reg }),
    l2FailoverSeconds: new Histogram({
      name: 'beacon_l2_failover_seconds',
      help: 'On failover: time from the dead announcer\'s last lease renewal to this node answering (an upper bound of the outage)',
      buckets: [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10],
      registers: reg,
    }),
    bgpSessions: new Gauge({ name: 'beacon_bgp_sessions', help: 'BGP sessions of this node by state', labelNames: ['state'], registers: reg }),
    bgpRoutes: new Gauge({ name: 'beacon_bgp_routes', help: 'Prefixes advertised to and received from all peers (received ones are counted, never installed)', labelNames: ['direction'], registers: reg }),
    l2LeaseWrites: new Counter({ name: 'beacon_l2_lease_writes_total', help: 'Store writes made for L2 announcements (liveness lease renewals: the only ones)', registers: reg }),
    l2RenewFailures: new Counter({ name: 'beacon_l2_lease_renew_failures_total', help: 'Failed renewals of this node\'s L2 liveness lease', registers: reg }),
    kprEnabled: new Gauge({ name: 'beacon_kpr_enabled', help: '1 while the eBPF kube-proxy replacement runs on this node; 0 with the reason as a label', labelNames: ['reason'], registers: reg }),
    kprFrontends: new Gauge({ name: 'beacon_kpr_frontends', help: 'Frontends (address, port, protocol) programmed in the datapath', registers: reg }),
    kprBackends: new Gauge({ name: 'beacon_kpr_backends', help: 'Backends programmed in the datapath', registers: reg }),
    kprMapWrites: new Counter({ name: 'beacon_kpr_map_operations_total', help: 'Datapath map operations applied, by operation', labelNames: ['op'], registers: reg }),
    kprProblems: new Gauge({ name: 'beacon_kpr_problems', help: 'Frontends not programmed or programmed with a fallback, by reason', labelNames: ['reason'], registers: reg }),
    kprDatapath: new Gauge({ name: 'beacon_kpr_datapath_events', help: 'Datapath counters since the maps were created (connects and datagrams translated, refused, reverse translations)', labelNames: ['event'], registers: reg }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
