// Feeds the store's changes into the incremental election: services and EndpointSlices one key at
// a time (a relist compares resource versions, so unchanged objects are not parsed again), the
// policies all together (a handful, changed rarely). The slices are indexed once: per service, the
// nodes with a ready endpoint, kept from slice to slice instead of rebuilt from every slice.
import {
  endpointReady,
  parseL2Policy,
  serviceNameLabel,
  serviceNamespaceLabel,
  sliceService,
  type EndpointSlice,
  type L2AnnouncementPolicy,
  type L2Policy,
  type Service,
} from '../api/index.js';
import type { ElectionInput, IncrementalElection, L2Service, LiveNode } from '../l2announce/index.js';
import { objectKey, type Reflector, type StoredObject } from '../store/index.js';

/** A service as the election needs it. */
export function l2Service(o: StoredObject): L2Service {
  const svc = o as unknown as Service;
  const namespace = svc.metadata.namespace ?? 'default';
  return {
    key: `${namespace}/${svc.metadata.name}`,
    labels: { ...svc.metadata.labels, [serviceNamespaceLabel]: namespace, [serviceNameLabel]: svc.metadata.name },
    loadBalancerClass: svc.spec.loadBalancerClass,
    loadBalancerIPs: (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])),
    externalIPs: svc.spec.externalIPs ?? [],
    localTraffic: svc.spec.externalTrafficPolicy === 'Local',
  };
}

/** What the feed reads of a reflector. */
export type L2Source = Pick<Reflector, 'items' | 'get' | 'onChange'>;

export interface L2Sources {
  policies: L2Source;
  services: L2Source;
  slices: L2Source;
}

/** The keys of one kind that changed since the last sync; `all` after a relist. */
class Changed {
  keys = new Set<string>();
  all = false;
  note(key: string | undefined): void {
    if (key === undefined) this.all = true;
    else this.keys.add(key);
  }
  get happened(): boolean {
    return this.all || this.keys.size > 0;
  }
  /** The keys to look at, to be deleted as they are done: after a relist, every key known before or now. */
  pendingKeys(known: Iterable<string>, reflector: L2Source): Set<string> {
    if (this.all) {
      for (const key of known) this.keys.add(key);
      for (const o of reflector.items()) this.keys.add(objectKey(o));
      this.all = false;
    }
    return this.keys;
  }
}

/** The same object, or the same version of it (a relist brings new copies of unchanged objects). */
const sameVersion = (a: StoredObject | undefined, b: StoredObject | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.metadata.resourceVersion !== undefined && a.metadata.resourceVersion === b.metadata.resourceVersion);

export class L2ElectionFeed {
  private policiesChanged = true;
  private readonly services = new Changed();
  private readonly slices = new Changed();
  /** The last version of each object told to the election. */
  private readonly toldServices = new Map<string, StoredObject>();
  private readonly toldSlices = new Map<string, StoredObject>();
  /** Per slice, its service and the nodes with a ready endpoint in it; per service, its slices. */
  private readonly sliceReady = new Map<string, { service: string; nodes: ReadonlySet<string> }>();
  private readonly slicesOf = new Map<string, Set<string>>();

  constructor(
    private readonly election: IncrementalElection,
    private readonly sources: L2Sources,
  ) {
    // Everything the reflectors hold now is new to the election.
    this.services.all = true;
    this.slices.all = true;
  }

  /** Notes changes as the reflectors report them and calls `changed` after each; returns the unsubscribers. */
  subscribe(changed: () => void): (() => void)[] {
    const { policies, services, slices } = this.sources;
    return [
      policies.onChange(() => ((this.policiesChanged = true), changed())),
      services.onChange((key) => (this.services.note(key), changed())),
      slices.onChange((key) => (this.slices.note(key), changed())),
    ];
  }

  get pending(): boolean {
    return this.policiesChanged || this.services.happened || this.slices.happened;
  }

  /**
   * Tells the election what changed since the last sync, one object at a time while `more()` says
   * to go on (the first sync and a relist after an outage can bring thousands); costs in
   * proportion to the changed objects.
   */
  sync(more: () => boolean = () => true): void {
    const { policies, services, slices } = this.sources;
    if (this.policiesChanged) {
      this.policiesChanged = false;
      this.election.setPolicies(parsePolicies(policies));
    }
    const serviceKeys = this.services.pendingKeys(this.toldServices.keys(), services);
    for (const key of serviceKeys) {
      if (!more()) return;
      serviceKeys.delete(key);
      const o = services.get(key);
      const told = this.toldServices.get(key);
      if (o) this.toldServices.set(key, o);
      else this.toldServices.delete(key);
      if (!sameVersion(o, told)) this.election.setService(key, o && l2Service(o));
    }
    const touched = new Set<string>();
    const sliceKeys = this.slices.pendingKeys(this.toldSlices.keys(), slices);
    for (const key of sliceKeys) {
      if (!more()) break;
      sliceKeys.delete(key);
      const o = slices.get(key);
      const told = this.toldSlices.get(key);
      if (sameVersion(o, told)) {
        if (o) this.toldSlices.set(key, o);
        continue;
      }
      const before = this.sliceReady.get(key);
      if (before) {
        touched.add(before.service);
        this.slicesOf.get(before.service)?.delete(key);
        this.sliceReady.delete(key);
      }
      if (o) this.toldSlices.set(key, o);
      else this.toldSlices.delete(key);
      const now = o && readyNodes(o as unknown as EndpointSlice);
      if (now) {
        touched.add(now.service);
        this.sliceReady.set(key, now);
        let set = this.slicesOf.get(now.service);
        if (!set) this.slicesOf.set(now.service, (set = new Set()));
        set.add(key);
      }
    }
    for (const service of touched) {
      const nodes = new Set<string>();
      for (const slice of this.slicesOf.get(service) ?? []) for (const n of this.sliceReady.get(slice)!.nodes) nodes.add(n);
      if (this.slicesOf.get(service)?.size === 0) this.slicesOf.delete(service);
      this.election.setReadyEndpointNodes(service, nodes.size > 0 ? nodes : undefined);
    }
  }
}

/**
 * The whole election input rebuilt from the reflectors, as every pass did before the feed: the
 * reference the feed is tested against, and the cost per change that bench/l2-election.ts compares.
 */
export function electionInputOf(sources: L2Sources, nodes: readonly LiveNode[]): ElectionInput {
  const readyEndpointNodes = new Map<string, ReadonlySet<string>>();
  for (const o of sources.slices.items()) {
    const ready = readyNodes(o as unknown as EndpointSlice);
    if (ready) readyEndpointNodes.set(ready.service, new Set([...(readyEndpointNodes.get(ready.service) ?? []), ...ready.nodes]));
  }
  return { policies: parsePolicies(sources.policies), services: sources.services.items().map(l2Service), readyEndpointNodes, nodes };
}

const parsePolicies = (source: L2Source): L2Policy[] =>
  source.items().flatMap((o) => {
    const p = parseL2Policy(o as unknown as L2AnnouncementPolicy);
    return p.ok ? [p.value] : []; // the operator reports why on the policy
  });

/** The service of a slice and the nodes with a ready endpoint in it; undefined for an unlabelled slice. */
function readyNodes(slice: EndpointSlice): { service: string; nodes: ReadonlySet<string> } | undefined {
  const service = sliceService(slice);
  if (!service) return undefined;
  const nodes = new Set<string>();
  for (const e of slice.endpoints ?? []) if (e.nodeName && endpointReady(e)) nodes.add(e.nodeName);
  return { service, nodes };
}
