// Builders for the objects tests feed to LB-IPAM and the datapath model: real Kubernetes shapes, short to write.
import type { Endpoint, EndpointSlice, LoadBalancerIPPool, PoolSpec, Service, ServiceSpec } from '../api/index.js';

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

/** An EndpointSlice in namespace `ns` labelled for Service `owner`; by default IPv4 with port `http` 8080/TCP. */
export function endpointSlice(
  name: string,
  owner: string,
  endpoints: Endpoint[],
  opts: { addressType?: EndpointSlice['addressType']; ports?: EndpointSlice['ports'] } = {},
): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': owner } },
    addressType: opts.addressType ?? 'IPv4',
    endpoints,
    ports: opts.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

/** One endpoint address, on a node when one is given. */
export const endpoint = (address: string, nodeName?: string, conditions?: Endpoint['conditions']): Endpoint => ({
  addresses: [address],
  ...(nodeName ? { nodeName } : {}),
  ...(conditions ? { conditions } : {}),
});
