// Services + EndpointSlices → frontends: every (address, port, protocol) this node must balance,
// with all of the service's endpoints for display and the ones new connections may go to,
// chosen with kube-proxy's rules (KEP-1669 terminating endpoints, KEP-536/2086 traffic policies).
// Pure: plain objects in, plain data out; bad input becomes a Problem, never a throw.
import {
  canonicalIPv4,
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

/** A string that sorts addresses numerically, IPv4 before IPv6; unparsable text sorts last. */
export function addressSortKey(address: string): string {
  const v4 = canonicalIPv4(address);
  if (v4 !== undefined) return `4${v4.toString(16).padStart(8, '0')}`;
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

type Endpointish = { readonly address: string; readonly port: number; readonly protocol: string };

/**
 * The endpointSortKey order as a number for IPv4 (address, port, protocol packed below 2^50)
 * and as that key otherwise: sorting 100,000 IPv4 backends builds no strings.
 */
function endpointOrder(e: Endpointish): number | string {
  const v4 = canonicalIPv4(e.address);
  return v4 === undefined ? endpointSortKey(e) : packedOrder(v4, e.port, e.protocol);
}

const packedOrder = (v4: number, port: number, protocol: string): number => (v4 * 65536 + port) * 2 + (protocol === 'UDP' ? 1 : 0);

const compareOrder = (a: number | string, b: number | string): number =>
  typeof a === 'number' ? (typeof b === 'number' ? a - b : -1) : typeof b === 'number' ? 1 : a < b ? -1 : a > b ? 1 : 0;

/** Whether the items are in endpointSortKey order already, as most inputs are (slices list endpoints in order). */
function inEndpointOrder<T>(items: readonly T[], endpoint: (item: T) => Endpointish): boolean {
  let previous: number | string = -1;
  for (const item of items) {
    const order = endpointOrder(endpoint(item));
    if (compareOrder(previous, order) > 0) return false;
    previous = order;
  }
  return true;
}

/** Sorts in endpointSortKey order of the endpoint each item names. */
export function sortEndpoints<T>(items: readonly T[], endpoint: (item: T) => Endpointish): T[] {
  if (inEndpointOrder(items, endpoint)) return [...items];
  return items
    .map((item) => ({ order: endpointOrder(endpoint(item)), item }))
    .sort((a, b) => compareOrder(a.order, b.order))
    .map((d) => d.item);
}

export interface FrontendInput {
  readonly services: readonly Service[];
  readonly slices: readonly EndpointSlice[];
  readonly nodeName: string;
  readonly nodeAddresses: readonly string[];
  readonly defaultAlgorithm: Algorithm;
}

/** How usable an endpoint is: ready, or serving while terminating (only when none is ready, KEP-1669), or neither. */
export const READY = 2;
export const FALLBACK = 1;

/** One port's endpoints in one family, sorted by identity, and how usable each is (index for index). */
export interface PortEndpoints {
  readonly backends: readonly Backend[];
  readonly usable: readonly number[];
}

/** The canonical text of an address; IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address, as the maps store it. */
function canonicalText(text: string): string | undefined {
  if (canonicalIPv4(text) !== undefined) return text;
  let ip = parseIP(text);
  if (ip?.family === 6 && ip.value >> 32n === 0xffffn) ip = { family: 4, value: ip.value & 0xffffffffn };
  return ip && formatIP(ip);
}

/** The family of canonical text. */
const familyOf = (text: string): Family => (text.includes(':') ? 6 : 4);

const canonical = (text: string): { text: string; family: Family } | undefined => {
  const canon = canonicalText(text);
  return canon === undefined ? undefined : { text: canon, family: familyOf(canon) };
};

export function buildFrontends(input: FrontendInput): { frontends: Frontend[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const slicesByService = new Map<string, EndpointSlice[]>();
  for (const slice of input.slices) {
    const owner = sliceService(slice);
    if (owner === undefined || slice.addressType === 'FQDN') continue;
    const list = slicesByService.get(owner);
    if (list) list.push(slice);
    else slicesByService.set(owner, [slice]);
  }
  // A service's slices in name order, so that which copy of a moving endpoint wins does not depend on input order.
  for (const [owner, list] of slicesByService) if (list.length > 1) slicesByService.set(owner, sortByKey(list, (s) => s.metadata.name));
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
  return { frontends: sortEndpoints([...byKey.values()], (f) => f), problems };
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
    const endpoints = new Map<Family, PortEndpoints>();
    const endpointsOf = (family: Family): PortEndpoints => {
      let list = endpoints.get(family);
      if (list === undefined) endpoints.set(family, (list = portEndpoints(slices, port, protocol, family)));
      return list;
    };
    const { nodePort } = port;
    const nodePorts =
      nodePort !== undefined && serviceType !== 'ClusterIP' ? nodeAddresses.map((address) => ({ type: 'NodePort' as const, address, port: nodePort })) : [];
    for (const { type, address, port: number } of [...parsed.map((p) => ({ ...p, port: port.port })), ...nodePorts]) {
      const list = endpointsOf(address.family);
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
        backends: list.backends,
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
export function portEndpoints(slices: readonly EndpointSlice[], port: ServicePort, protocol: Protocol, family: Family): PortEndpoints {
  const familyName = family === 4 ? 'IPv4' : 'IPv6';
  const backends: Backend[] = [];
  const usable: number[] = [];
  // Slices usually list endpoints in identity order and once each: one comparison with the
  // previous endpoint checks both, with no map or string per endpoint.
  let previous: number | string | undefined;
  let ordered = true;
  for (const slice of slices) {
    if (slice.addressType !== familyName) continue;
    const number = slice.ports?.find((p) => (p.name ?? '') === (port.name ?? ''))?.port;
    if (number === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const text = endpoint.addresses[0]!;
      const v4 = canonicalIPv4(text);
      const address = v4 === undefined ? canonicalText(text) : text;
      if (address === undefined || (v4 === undefined ? familyOf(address) : 4) !== family) continue;
      const order = v4 === undefined ? endpointOrder({ address, port: number, protocol }) : packedOrder(v4, number, protocol);
      if (previous !== undefined && compareOrder(previous, order) >= 0) ordered = false;
      previous = order;
      backends.push(backendOf(endpoint, address, number, protocol));
      usable.push(usability(endpoint));
    }
  }
  return ordered ? { backends, usable } : sortedOnce({ backends, usable });
}

/**
 * The endpoints in identity order, each once: the same endpoint may sit in two slices while it
 * moves; its most usable copy is kept (the first of equals, as the sort is stable).
 */
function sortedOnce(found: PortEndpoints): PortEndpoints {
  const out = { backends: [] as Backend[], usable: [] as number[] };
  const orders = found.backends.map(endpointOrder);
  const byOrder = orders.map((_, i) => i).sort((a, b) => compareOrder(orders[a]!, orders[b]!));
  byOrder.forEach((i, k) => {
    const last = out.backends.length - 1;
    if (k > 0 && compareOrder(orders[byOrder[k - 1]!]!, orders[i]!) === 0) {
      if (found.usable[i]! > out.usable[last]!) [out.backends[last], out.usable[last]] = [found.backends[i]!, found.usable[i]!];
    } else {
      out.backends.push(found.backends[i]!);
      out.usable.push(found.usable[i]!);
    }
  });
  return out;
}

function usability(endpoint: Endpoint): number {
  const ready = endpointReady(endpoint);
  // An absent serving condition defers to ready; an absent terminating condition means not terminating.
  const serving = endpoint.conditions?.serving ?? ready;
  return ready ? READY : serving && endpoint.conditions?.terminating === true ? FALLBACK : 0;
}

function backendOf(endpoint: Endpoint, address: string, port: number, protocol: Protocol): Backend {
  const state = endpoint.conditions?.terminating === true ? 'terminating' : 'active';
  return endpoint.nodeName === undefined ? { address, port, protocol, state } : { address, port, protocol, state, nodeName: endpoint.nodeName };
}

/** Ready endpoints; when none is ready, serving terminating ones (KEP-1669); restricted to this node for Local policies. */
function selectEndpoints({ backends, usable }: PortEndpoints, localNode: string | undefined): readonly Backend[] {
  if (localNode === undefined && usable.every((level) => level === READY)) return backends; // the usual case, shared
  const pick = (level: number): Backend[] => backends.filter((b, i) => usable[i] === level && (localNode === undefined || b.nodeName === localNode));
  const ready = pick(READY);
  return ready.length > 0 ? ready : pick(FALLBACK);
}
