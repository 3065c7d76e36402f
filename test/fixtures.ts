// Builders for the objects tests feed to LB-IPAM: real Kubernetes shapes, short to write.
import type { LoadBalancerIPPool, PoolSpec, Service, ServiceSpec } from '../api/index.js';

export function pool(name: string, spec: Partial<PoolSpec> & { blocks: PoolSpec['blocks'] }, created = '2026-01-01T00:00:00Z'): LoadBalancerIPPool {
  return { apiVersion: 'beacon.io/v1alpha1', kind: 'LoadBalancerIPPool', metadata: { name, creationTimestamp: created }, spec };
}

export const cidrPool = (name: string, ...cidrs: string[]): LoadBalancerIPPool => pool(name, { blocks: cidrs.map((cidr) => ({ cidr })) });

export interface ServiceOptions extends Partial<ServiceSpec> {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  created?: string;
  ips?: string[];
}

/** A LoadBalancer Service `namespace/name`; `ips` become its status, as the operator would have written it. */
export function service(key: string, opts: ServiceOptions = {}): Service {
  const [namespace, name] = key.includes('/') ? key.split('/') : ['default', key];
  const { labels, annotations, created, ips, ...spec } = opts;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: name!,
      namespace: namespace!,
      ...(labels ? { labels } : {}),
      ...(annotations ? { annotations } : {}),
      creationTimestamp: created ?? '2026-01-01T00:00:00Z',
    },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], ...spec },
    ...(ips ? { status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } } } : {}),
  };
}
