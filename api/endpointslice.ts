// The parts of a discovery.k8s.io/v1 EndpointSlice that Beacon reads: which nodes have ready
// endpoints of a service (externalTrafficPolicy: Local) and, for the datapath, the backends.
// Kubernetes owns this type: only what Beacon relies on is checked, every other field passes.
import { Type, type Static } from '@sinclair/typebox';
import { ObjectMeta } from './meta.js';

export const endpointSliceKind = 'EndpointSlice';
export const endpointSliceAPIVersion = 'discovery.k8s.io/v1';
/** The label that ties a slice to its service (same namespace). */
export const serviceNameLabelOfSlice = 'kubernetes.io/service-name';

export const EndpointConditions = Type.Object(
  {
    ready: Type.Optional(Type.Boolean({ description: 'Absent counts as ready (API rule). Ready endpoints are the backends.' })),
    serving: Type.Optional(Type.Boolean({ description: 'Used, with terminating, only when no endpoint is ready (KEP-1669).' })),
    terminating: Type.Optional(Type.Boolean({ description: 'See serving.' })),
  },
  { description: 'Which endpoints may take traffic.' },
);

export const Endpoint = Type.Object({
  addresses: Type.Array(Type.String(), { minItems: 1, description: 'The backend address (the first is used).' }),
  conditions: Type.Optional(EndpointConditions),
  nodeName: Type.Optional(Type.String({ description: 'Local backends and the Local traffic policies (which nodes announce and advertise) are decided by it.' })),
  zone: Type.Optional(Type.String({ description: 'Not read: topology is ignored.' })),
});
export type Endpoint = Static<typeof Endpoint>;

export const EndpointPort = Type.Object({
  name: Type.Optional(Type.String({ description: 'Matches the Service port of the same name.' })),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'The backend port.' })),
  protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')], { description: 'Default: TCP.' })),
});

export const EndpointSlice = Type.Object({
  apiVersion: Type.Literal(endpointSliceAPIVersion),
  kind: Type.Literal(endpointSliceKind),
  metadata: ObjectMeta,
  addressType: Type.Union([Type.Literal('IPv4'), Type.Literal('IPv6'), Type.Literal('FQDN')], { description: 'FQDN slices are ignored.' }),
  endpoints: Type.Optional(Type.Array(Endpoint, { description: 'The backends.' })),
  ports: Type.Optional(Type.Array(EndpointPort, { description: 'Backend ports by Service port name.' })),
});
export type EndpointSlice = Static<typeof EndpointSlice>;

/** `namespace/name` of the service a slice belongs to, or undefined when it is not labelled. */
export function sliceService(slice: { metadata: { namespace?: string | undefined; labels?: Record<string, string> | undefined } }): string | undefined {
  const name = slice.metadata.labels?.[serviceNameLabelOfSlice];
  return name ? `${slice.metadata.namespace ?? 'default'}/${name}` : undefined;
}

/** Endpoints count as ready when Kubernetes says so; an absent condition means ready (API rule). */
export const endpointReady = (e: Endpoint): boolean => e.conditions?.ready !== false;
