// The healthCheckNodePort listeners this node serves. A Service of type LoadBalancer with
// externalTrafficPolicy: Local only reaches endpoints on the node the traffic arrives at, so the
// load balancer in front (an ECMP router, a cloud LB, the L2 election) probes every node's
// healthCheckNodePort and sends traffic only to nodes answering 200, as with kube-proxy.
// Pure: plain objects in, plain data out; bad input becomes a problem, never a throw.
import { sliceService, type EndpointSlice, type Family, type Service } from '../api/index.js';
import { READY, portEndpoints, sortByKey } from './model.js';

export interface HealthCheckListener {
  readonly port: number;
  readonly service: { readonly namespace: string; readonly name: string };
  /**
   * Distinct addresses of this node's ready endpoints over all the service's ports, as kube-proxy
   * counts them; terminating endpoints do not count even while serving, so a draining node fails.
   */
  readonly localEndpoints: number;
}

export type HealthCheckProblemReason = 'invalid_health_check_port' | 'health_check_port_conflict' | 'node_port_conflict';

export interface HealthCheckProblem {
  /** `namespace/name` of the Service that gets no listener. */
  readonly service: string;
  readonly port: number;
  readonly reason: HealthCheckProblemReason;
  readonly message: string;
}

export interface HealthCheckInput {
  readonly services: readonly Service[];
  readonly slices: readonly EndpointSlice[];
  readonly nodeName: string;
}

const nameOf = (s: Service): string => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;

/** Creation time in ms (timestamps differ in precision between stores); unknown sorts last. */
const createdAt = (s: Service): number => Date.parse(s.metadata.creationTimestamp ?? '') || Number.MAX_SAFE_INTEGER;

/**
 * One listener per port. When two services name the same port the oldest keeps it (then the
 * first by namespace/name), so creating or editing a service never takes a port from a running
 * one. A port that is also a NodePort is refused: the datapath answers NodePorts before any socket.
 */
export function desiredHealthChecks(input: HealthCheckInput): { listeners: HealthCheckListener[]; problems: HealthCheckProblem[] } {
  const problems: HealthCheckProblem[] = [];
  const nodePorts = new Map<number, string>();
  for (const service of input.services) {
    if (service.spec.type !== 'NodePort' && service.spec.type !== 'LoadBalancer') continue;
    for (const p of service.spec.ports ?? []) if (p.nodePort !== undefined && !nodePorts.has(p.nodePort)) nodePorts.set(p.nodePort, nameOf(service));
  }
  const candidates = sortByKey(
    input.services.filter((s) => s.spec.type === 'LoadBalancer' && s.spec.externalTrafficPolicy === 'Local' && s.spec.healthCheckNodePort !== undefined),
    (s) => `${String(createdAt(s)).padStart(16, '0')} ${nameOf(s)}`,
  );
  const byPort = new Map<number, Service>();
  for (const service of candidates) {
    const name = nameOf(service);
    const port = service.spec.healthCheckNodePort!;
    const refuse = (reason: HealthCheckProblemReason, message: string) => problems.push({ service: name, port, reason, message });
    const holder = byPort.get(port);
    const nodePortOf = nodePorts.get(port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) refuse('invalid_health_check_port', `healthCheckNodePort ${port} is not a port number`);
    else if (holder !== undefined) refuse('health_check_port_conflict', `healthCheckNodePort ${port} is already served for ${nameOf(holder)}`);
    else if (nodePortOf !== undefined) refuse('node_port_conflict', `healthCheckNodePort ${port} is a NodePort of ${nodePortOf}`);
    else byPort.set(port, service);
  }
  if (byPort.size === 0) return { listeners: [], problems };

  const slicesByService = new Map<string, EndpointSlice[]>([...byPort.values()].map((s) => [nameOf(s), []]));
  for (const slice of input.slices) slicesByService.get(sliceService(slice) ?? '')?.push(slice);
  const listeners = [...byPort].map(([port, service]): HealthCheckListener => ({
    port,
    service: { namespace: service.metadata.namespace ?? 'default', name: service.metadata.name },
    localEndpoints: countLocalReadyEndpoints(service, slicesByService.get(nameOf(service)) ?? [], input.nodeName),
  }));
  return { listeners: listeners.sort((a, b) => a.port - b.port), problems };
}

function countLocalReadyEndpoints(service: Service, slices: readonly EndpointSlice[], nodeName: string): number {
  const addresses = new Set<string>();
  for (const port of service.spec.ports ?? []) {
    for (const family of [4, 6] as Family[]) {
      // The protocol only labels the backends built here; the count is by address, as kube-proxy's.
      const { backends, usable } = portEndpoints(slices, port, port.protocol === 'UDP' ? 'UDP' : 'TCP', family);
      backends.forEach((b, i) => {
        if (usable[i] === READY && b.nodeName === nodeName) addresses.add(b.address);
      });
    }
  }
  return addresses.size;
}
