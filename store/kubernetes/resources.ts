// The Kubernetes resources Beacon reads and writes, and where each lives in the API: the one table
// that maps a kind to its REST path (group, version, plural, scope).
import { crdSources, group as beaconGroup, version as beaconVersion } from '../../api/index.js';

export interface KubeResource {
  readonly kind: string;
  /** '' for the core group (served under /api). */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespaced: boolean;
  /** Has a /status subresource: writes to the object ignore status, writes to /status everything else. */
  readonly statusSubresource: boolean;
}

export const kubeResources: readonly KubeResource[] = [
  { kind: 'Service', group: '', version: 'v1', plural: 'services', namespaced: true, statusSubresource: true },
  { kind: 'Node', group: '', version: 'v1', plural: 'nodes', namespaced: false, statusSubresource: true },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespaced: true, statusSubresource: false },
  { kind: 'Lease', group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true, statusSubresource: false },
  { kind: 'Event', group: 'events.k8s.io', version: 'v1', plural: 'events', namespaced: true, statusSubresource: false },
  ...crdSources.map((s) => ({
    kind: s.kind,
    group: beaconGroup,
    version: beaconVersion,
    plural: s.plural,
    namespaced: s.scope === 'Namespaced',
    statusSubresource: true,
  })),
];

const byKind = new Map(kubeResources.map((r) => [r.kind, r]));

export function resourceOf(kind: string): KubeResource {
  const r = byKind.get(kind);
  if (!r) throw new Error(`kubernetes store: unknown kind ${JSON.stringify(kind)} (known: ${[...byKind.keys()].join(', ')})`);
  return r;
}

export const apiVersionOf = (r: KubeResource): string => (r.group ? `${r.group}/${r.version}` : r.version);

/** `/api/v1` or `/apis/<group>/<version>`. */
export const groupPath = (r: KubeResource): string => (r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`);

/** The collection (all namespaces when `namespace` is undefined), or one object and its subresource. */
export function resourcePath(r: KubeResource, namespace?: string, name?: string, subresource?: 'status'): string {
  const ns = r.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const one = name === undefined ? '' : `/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;
  return `${groupPath(r)}${ns}/${r.plural}${one}`;
}
