// Services + EndpointSlices → frontends: every (address, port, protocol) this node must balance,
// with all of the service's endpoints for display and the ones new connections may go to,
// chosen with kube-proxy's rules (KEP-1669 terminating endpoints, KEP-536/2086 traffic policies).
// Pure: plain objects in, plain data out; bad input becomes a Problem, never a throw.
import {
  endpointReady,
  formatIP,
  parseIP,
  sliceService,
  type Endpoint,
  type EndpointSlice,
  type Family,
  type Service,
  type ServicePort,
} from '../api/index.js';

export type Protocol = 'TCP' | 'UDP';
export type FrontendType = 'ClusterIP' | 'LoadBalancer' | 'ExternalIP' | 'NodePort';
export type Algorithm = 'random' | 'maglev';
export type BackendState = 'active' | 'terminating';

export interface Backend {
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly state: BackendState;
  readonly nodeName?: string;
}

export interface Frontend {
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly type: FrontendType;
  /** `namespace/name` of the Service. */
  readonly service: string;
  readonly portName?: string;
  readonly algorithm: Algorithm;
  /** Set when sessionAffinity is ClientIP. */
  readonly affinityTimeoutSeconds?: number;
  /** Every endpoint of the port in the frontend's address family, for display. */
  readonly backends: readonly Backend[];
  /** The endpoints new connections may go to, sorted by identity; empty means refuse. */
  readonly selected: readonly Backend[];
}

export type ProblemReason =
  | 'sctp_unsupported'
  | 'invalid_lb_algorithm'
  | 'invalid_address'
  | 'invalid_service_type'
  | 'frontend_conflict'
  | 'duplicate_frontend'
  | 'maglev_table_too_small'
  | 'map_full';

export interface Problem {
  readonly service: string;
  readonly reason: ProblemReason;
  readonly message: string;
}

/** Annotations choosing the algorithm, Beacon's first; Cilium's is honoured for migration. */
export const lbAlgorithmAnnotations = ['beacon.io/lb-algorithm', 'service.cilium.io/lb-algorithm'] as const;

/** Kubernetes' default ClientIP affinity timeout (core/v1 DefaultClientIPServiceAffinitySeconds). */
export const defaultAffinityTimeoutSeconds = 10800;

/** `ADDR:PORT/PROTO`, IPv6 in brackets: the frontend's name in the CLI and the datapath state. */
export const frontendKey = (f: { readonly address: string; readonly port: number; readonly protocol: string }): string =>
  `${f.address.includes(':') ? `[${f.address}]` : f.address}:${f.port}/${f.protocol}`;

/** A backend's node-independent identity (same format as frontendKey). */
export const backendKey = frontendKey;

/** Canonical dotted quads (no leading zeros): the common case, handled without bigints. */
const dottedQuad = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** A string that sorts addresses numerically, IPv4 before IPv6; unparsable text sorts last. */
export function addressSortKey(address: string): string {
  const quad = dottedQuad.exec(address);
  if (quad) return `4${(((Number(quad[1]) * 256 + Number(quad[2])) * 256 + Number(quad[3])) * 256 + Number(quad[4])).toString(16).padStart(8, '0')}`;
  const ip = parseIP(address);
  if (ip === undefined) return `9${address}`;
  return `${ip.family}${ip.value.toString(16).padStart(ip.family === 4 ? 8 : 32, '0')}`;
}

/** Sorts by address, then port, then protocol: the order of frontends and of `selected`. */
export const endpointSortKey = (f: { readonly address: string; readonly port: number; readonly protocol: string }): string =>
  `${addressSortKey(f.address)}:${String(f.port).padStart(5, '0')}/${f.protocol}`;

export const sortByKey = <T>(items: readonly T[], key: (item: T) => string): T[] =>
  items
    .map((item) => [key(item), item] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, item]) => item);

export interface FrontendInput {
  readonly services: readonly Service[];
  readonly slices: readonly EndpointSlice[];
  readonly nodeName: string;
  readonly nodeAddresses: readonly string[];
  readonly defaultAlgorithm: Algorithm;
}

interface Candidate {
  readonly backend: Backend;
  readonly ready: boolean;
  /** Serving and terminating: usable only when no endpoint is ready (KEP-1669). */
  readonly fallback: boolean;
}

/** The canonical text of an address; IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address, as the maps store it. */
const canonical = (text: string): { text: string; family: Family } | undefined => {
  if (dottedQuad.test(text)) return { text, family: 4 };
  let ip = parseIP(text);
  if (ip?.family === 6 && ip.value >> 32n === 0xffffn) ip = { family: 4, value: ip.value & 0xffffffffn };
  return ip && { text: formatIP(ip), family: ip.family };
};

export function buildFrontends(input: FrontendInput): { frontends: Frontend[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const slicesByService = new Map<string, EndpointSlice[]>();
  for (const slice of sortByKey(input.slices, (s) => s.metadata.name)) {
    const owner = sliceService(slice);
    if (owner === undefined || slice.addressType === 'FQDN') continue;
    const list = slicesByService.get(owner) ?? [];
    list.push(slice);
    slicesByService.set(owner, list);
  }
  const nodeAddresses: { text: string; family: Family }[] = [];
  for (const text of input.nodeAddresses) {
    const address = canonical(text);
    if (address) nodeAddresses.push(address);
    else problems.push({ service: '', reason: 'invalid_address', message: `node address "${text}" is not an IP address` });
  }

  const byKey = new Map<string, Frontend>();
  const services = sortByKey(input.services, (s) => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`);
  for (const service of services) {
    for (const frontend of serviceFrontends(service, slicesByService, nodeAddresses, input, problems)) {
      const key = frontendKey(frontend);
      const holder = byKey.get(key);
      if (holder === undefined) byKey.set(key, frontend);
      else if (holder.service !== frontend.service) {
        problems.push({ service: frontend.service, reason: 'frontend_conflict', message: `${key} is already served for ${holder.service}` });
      }
    }
  }
  return { frontends: sortByKey([...byKey.values()], endpointSortKey), problems };
}

function serviceFrontends(
  service: Service,
  slicesByService: ReadonlyMap<string, readonly EndpointSlice[]>,
  nodeAddresses: readonly { text: string; family: Family }[],
  input: FrontendInput,
  problems: Problem[],
): Frontend[] {
  const { spec } = service;
  const name = `${service.metadata.namespace ?? 'default'}/${service.metadata.name}`;
  const serviceType = spec.type ?? 'ClusterIP';
  if (serviceType === 'ExternalName') return [];
  if (serviceType !== 'ClusterIP' && serviceType !== 'NodePort' && serviceType !== 'LoadBalancer') {
    problems.push({ service: name, reason: 'invalid_service_type', message: `type "${serviceType}" is not served` });
    return [];
  }
  const algorithm = algorithmOf(service, name, input.defaultAlgorithm, problems);
  const affinityTimeoutSeconds =
    spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? defaultAffinityTimeoutSeconds) : undefined;

  // Addresses per frontend type; clusterIPs supersedes clusterIP (dual-stack API).
  const addresses: { type: FrontendType; texts: readonly string[] }[] = [
    { type: 'ClusterIP', texts: (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((ip) => ip !== 'None' && ip !== '') },
    { type: 'LoadBalancer', texts: serviceType === 'LoadBalancer' ? (service.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])) : [] },
    { type: 'ExternalIP', texts: spec.externalIPs ?? [] },
  ];
  const parsed: { type: FrontendType; address: { text: string; family: Family } }[] = [];
  for (const { type, texts } of addresses) {
    for (const text of texts) {
      const address = canonical(text);
      if (address) parsed.push({ type, address });
      else problems.push({ service: name, reason: 'invalid_address', message: `${type} address "${text}" is not an IP address` });
    }
  }

  const frontends: Frontend[] = [];
  const slices = slicesByService.get(name) ?? [];
  for (const port of spec.ports ?? []) {
    const protocol = port.protocol ?? 'TCP';
    if (protocol === 'SCTP') {
      problems.push({ service: name, reason: 'sctp_unsupported', message: `port ${port.name ?? port.port}/SCTP is not served: the datapath balances TCP and UDP` });
      continue;
    }
    const candidates = new Map<Family, Candidate[]>();
    const candidatesOf = (family: Family): Candidate[] => {
      let list = candidates.get(family);
      if (list === undefined) candidates.set(family, (list = portEndpoints(slices, port, protocol, family)));
      return list;
    };
    const { nodePort } = port;
    const nodePorts =
      nodePort !== undefined && serviceType !== 'ClusterIP' ? nodeAddresses.map((address) => ({ type: 'NodePort' as const, address, port: nodePort })) : [];
    for (const { type, address, port: number } of [...parsed.map((p) => ({ ...p, port: port.port })), ...nodePorts]) {
      const list = candidatesOf(address.family);
      // internalTrafficPolicy governs cluster IPs, externalTrafficPolicy every address reached from outside.
      const local = type === 'ClusterIP' ? spec.internalTrafficPolicy === 'Local' : spec.externalTrafficPolicy === 'Local';
      frontends.push({
        address: address.text,
        port: number,
        protocol,
        type,
        service: name,
        ...(port.name ? { portName: port.name } : {}),
        algorithm,
        ...(affinityTimeoutSeconds === undefined ? {} : { affinityTimeoutSeconds }),
        backends: list.map((c) => c.backend),
        selected: selectEndpoints(list, local ? input.nodeName : undefined),
      });
    }
  }
  return frontends;
}

function algorithmOf(service: Service, name: string, fallback: Algorithm, problems: Problem[]): Algorithm {
  for (const annotation of lbAlgorithmAnnotations) {
    const value = service.metadata.annotations?.[annotation];
    if (value === undefined) continue;
    if (value === 'random' || value === 'maglev') return value;
    problems.push({ service: name, reason: 'invalid_lb_algorithm', message: `${annotation}: "${value}" is not random or maglev; using ${fallback}` });
    return fallback;
  }
  return fallback;
}

/**
 * The endpoints of one service port in one family, sorted by identity. A slice port matches when
 * its name equals the service port's (an unnamed single port matches the unnamed slice port).
 * Only addresses[0] is used: Kubernetes says consumers may ignore the rest, and kube-proxy does.
 */
function portEndpoints(slices: readonly EndpointSlice[], port: ServicePort, protocol: Protocol, family: Family): Candidate[] {
  const familyName = family === 4 ? 'IPv4' : 'IPv6';
  const byIdentity = new Map<string, Candidate>();
  for (const slice of slices) {
    if (slice.addressType !== familyName) continue;
    const number = slice.ports?.find((p) => (p.name ?? '') === (port.name ?? ''))?.port;
    if (number === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const address = canonical(endpoint.addresses[0]!);
      if (address?.family !== family) continue;
      const candidate = candidateOf(endpoint, address.text, number, protocol);
      const key = backendKey(candidate.backend);
      const seen = byIdentity.get(key);
      // The same endpoint may sit in two slices while it moves; keep its most usable copy.
      if (seen === undefined || rank(candidate) > rank(seen)) byIdentity.set(key, candidate);
    }
  }
  return sortByKey([...byIdentity.values()], (c) => endpointSortKey(c.backend));
}

const rank = (c: Candidate): number => (c.ready ? 2 : c.fallback ? 1 : 0);

function candidateOf(endpoint: Endpoint, address: string, port: number, protocol: Protocol): Candidate {
  const ready = endpointReady(endpoint);
  // An absent serving condition defers to ready; an absent terminating condition means not terminating.
  const serving = endpoint.conditions?.serving ?? ready;
  const terminating = endpoint.conditions?.terminating === true;
  const backend: Backend = {
    address,
    port,
    protocol,
    state: terminating ? 'terminating' : 'active',
    ...(endpoint.nodeName === undefined ? {} : { nodeName: endpoint.nodeName }),
  };
  return { backend, ready, fallback: serving && terminating };
}

/** Ready endpoints; when none is ready, serving terminating ones (KEP-1669); restricted to this node for Local policies. */
function selectEndpoints(candidates: readonly Candidate[], localNode: string | undefined): Backend[] {
  const pool = localNode === undefined ? candidates : candidates.filter((c) => c.backend.nodeName === localNode);
  const ready = pool.filter((c) => c.ready);
  return (ready.length > 0 ? ready : pool.filter((c) => c.fallback)).map((c) => c.backend);
}
