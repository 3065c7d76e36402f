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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
