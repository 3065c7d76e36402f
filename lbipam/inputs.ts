// The two adapters between Kubernetes objects and the allocator: everything the allocator needs
// from a pool or a Service, as plain data. Bad input becomes an error string here, never a throw.
import {
  annotations,
  everything,
  familyName,
  formatIP,
  parseBlock,
  parseIP,
  parseSelector,
  serviceClasses,
  serviceNameLabel,
  serviceNamespaceLabel,
  type Family,
  type IP,
  type Labels,
  type LoadBalancerIPPool,
  type PoolRange,
  type Selector,
  type Service,
} from '../api/index.js';

export interface PoolInput {
  readonly name: string;
  /** creationTimestamp; decides which of two overlapping pools is the newer one. */
  readonly created: string;
  readonly generation: number | undefined;
  /** Lower is preferred; undefined sorts after every number. */
  readonly priority: number | undefined;
  readonly disabled: boolean;
  readonly ranges: readonly PoolRange[];
  readonly selector: Selector;
  /** Semantic errors; a pool with errors allocates nothing and its holders keep their IPs. */
  readonly errors: readonly string[];
}

/** Absent timestamps sort as the newest: an object not yet created is younger than any that was. */
export const unknownTime = '\uffff';

export function poolInput(pool: LoadBalancerIPPool): PoolInput {
  const errors: string[] = [];
  const allowFirstLast = pool.spec.allowFirstLastIPs === 'Yes';
  const ranges: PoolRange[] = [];
  for (const block of pool.spec.blocks) {
    const parsed = parseBlock(block, allowFirstLast);
    if (parsed.ok) ranges.push(parsed.value);
    else errors.push(parsed.error);
  }
  if (pool.spec.blocks.length === 0) errors.push('spec.blocks is empty');
  const selector = parseSelector(pool.spec.serviceSelector);
  if (!selector.ok) errors.push(`serviceSelector: ${selector.error}`);
  return {
    name: pool.metadata.name,
    created: pool.metadata.creationTimestamp ?? unknownTime,
    generation: pool.metadata.generation,
    priority: pool.spec.priority,
    disabled: pool.spec.disabled === true,
    ranges,
    selector: selector.ok ? selector.value : everything,
    errors,
  };
}

/** A pool whose object could not be read (it breaks the schema): invalid, so it hands out nothing and its holders keep their IPs. */
export function invalidPoolInput(meta: { name: string; creationTimestamp?: string | undefined; generation?: number | undefined }, errors: readonly string[]): PoolInput {
  return {
    name: meta.name,
    created: meta.creationTimestamp ?? unknownTime,
    generation: meta.generation,
    priority: undefined,
    disabled: true,
    ranges: [],
    selector: everything,
    errors,
  };
}

/** One address a service asks for: a specific IP, or any IP of the listed families (in preference order). */
export type Slot = { readonly ip: IP } | { readonly families: readonly Family[] };

export interface SharingInput {
  readonly key: string;
  /** Namespaces this service agrees to share with, besides its own; `*` is every namespace. */
  readonly crossNamespaces: ReadonlySet<string>;
  /** `port/PROTOCOL` of every service port; two sharers may not use the same one. */
  readonly ports: readonly string[];
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
  /** Canonical pod selector; with Local traffic sharers must select the same pods. */
  readonly podSelector: string;
}

export interface ServiceInput {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly created: string;
  readonly generation: number | undefined;
  /** False for services LB-IPAM leaves alone (other types or load balancer classes). */
  readonly managed: boolean;
  /** The service's labels plus the namespace and name virtual labels. */
  readonly labels: Labels;
  readonly slots: readonly Slot[];
  /** `all`: every slot or none (RequireDualStack, requested IPs); `any`: each slot on its own. */
  readonly need: 'all' | 'any';
  readonly pool: string | undefined;
  readonly sharing: SharingInput | undefined;
  /** IPs found in status.loadBalancer.ingress: the claims a rebuild honours. */
  readonly held: readonly IP[];
  /** Why the request cannot be served (`invalid_request`); the service keeps what it holds. */
  readonly error: string | undefined;
}

export const serviceKey = (namespace: string, name: string): string => `${namespace}/${name}`;

function firstAnnotation(all: Readonly<Record<string, string>>, names: readonly string[]): string | undefined {
  for (const n of names) if (all[n] !== undefined) return all[n];
  return undefined;
}

const splitList = (text: string): string[] =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

const familyOf = (name: string): Family => (name === 'IPv6' ? 6 : 4);

// Most services ask for one of a handful of slot shapes: share them rather than allocate per service.
const anyFamily: Slot = Object.freeze({ families: Object.freeze([4, 6] as Family[]) });
const familySlot: Record<Family, Slot> = {
  4: Object.freeze({ families: Object.freeze([4] as Family[]) }),
  6: Object.freeze({ families: Object.freeze([6] as Family[]) }),
};
const noSlots: readonly Slot[] = Object.freeze([]);
const singleSlots = { 4: Object.freeze([familySlot[4]]), 6: Object.freeze([familySlot[6]]), any: Object.freeze([anyFamily]) };
const dualSlots = { 4: Object.freeze([familySlot[4], familySlot[6]]), 6: Object.freeze([familySlot[6], familySlot[4]]) };

export function isManaged(svc: Service): boolean {
  if (svc.spec.type !== 'LoadBalancer') return false;
  const cls = svc.spec.loadBalancerClass;
  return cls === undefined || cls === serviceClasses.l2 || cls === serviceClasses.bgp;
}

export function serviceInput(svc: Service): ServiceInput {
  const namespace = svc.metadata.namespace ?? 'default';
  const name = svc.metadata.name;
  const ann = svc.metadata.annotations ?? {};
  const errors: string[] = [];

  const held: IP[] = [];
  for (const ingress of svc.status?.loadBalancer?.ingress ?? []) {
    const ip = ingress.ip === undefined ? undefined : parseIP(ingress.ip);
    if (ip) held.push(ip);
  }

  const policy = svc.spec.ipFamilyPolicy ?? 'SingleStack';
  const listed = (svc.spec.ipFamilies ?? []).map(familyOf);
  if (new Set(listed).size !== listed.length) errors.push('spec.ipFamilies lists a family twice');

  const requestText = firstAnnotation(ann, annotations.ips) ?? svc.spec.loadBalancerIP;
  let slots: readonly Slot[] = noSlots;
  let need: 'all' | 'any' = policy === 'PreferDualStack' ? 'any' : 'all';
  if (requestText !== undefined && requestText.trim() !== '') {
    need = 'all';
    const requested: IP[] = [];
    for (const text of splitList(requestText)) {
      const ip = parseIP(text);
      if (!ip) errors.push(`requested IP "${text}" is not a valid address`);
      else if (!requested.some((r) => r.family === ip.family && r.value === ip.value)) requested.push(ip);
    }
    const families = requested.map((r) => r.family);
    if (new Set(families).size !== families.length) errors.push('at most one requested IP per family');
    const foreign = requested.find((r) => listed.length > 0 && !listed.includes(r.family));
    if (foreign) {
      errors.push(`requested IP ${formatIP(foreign)} is ${familyName(foreign.family)}, not in spec.ipFamilies`);
    }
    if (policy === 'SingleStack' && requested.length > 1) errors.push('SingleStack services take one requested IP');
    if (policy === 'RequireDualStack' && new Set(families).size < 2) {
      errors.push('RequireDualStack needs one requested IP of each family');
    }
    slots = requested.map((ip) => ({ ip }));
  } else if (policy === 'SingleStack') {
    // Without ipFamilies (plain manifests), take either family, IPv4 first.
    slots = listed.length > 0 ? singleSlots[listed[0]!] : singleSlots.any;
  } else {
    slots = dualSlots[listed[0] ?? 4];
  }

  const sharingKey = firstAnnotation(ann, annotations.sharingKey);
  let sharing: SharingInput | undefined;
  if (sharingKey !== undefined && sharingKey.trim() !== '') {
    const ports = (svc.spec.ports ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`);
    const podSelector = Object.entries(svc.spec.selector ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join(',');
    sharing = {
      key: sharingKey.trim(),
      crossNamespaces: new Set(splitList(firstAnnotation(ann, annotations.sharingCrossNamespace) ?? '')),
      ports,
      externalTrafficPolicy: svc.spec.externalTrafficPolicy ?? 'Cluster',
      podSelector,
    };
  }

  const pool = firstAnnotation(ann, annotations.pool)?.trim();
  return {
    key: serviceKey(namespace, name),
    namespace,
    name,
    created: svc.metadata.creationTimestamp ?? unknownTime,
    generation: svc.metadata.generation,
    managed: isManaged(svc),
    labels: { ...(svc.metadata.labels ?? {}), [serviceNamespaceLabel]: namespace, [serviceNameLabel]: name },
    slots,
    need,
    pool: pool === '' ? undefined : pool,
    sharing,
    held,
    error: errors.length > 0 ? errors.join('; ') : undefined,
  };
}
