// The parts of a discovery.k8s.io/v1 EndpointSlice that Beacon reads: which nodes have ready
// endpoints of a service (externalTrafficPolicy: Local) and, for the datapath, the backends.
// Kubernetes owns this type: only what Beacon relies on is checked, every other field passes.
import { Type, type Static } from '@sinclair/typebox';
import { ObjectMeta } from './meta.js';

export const endpointSliceKind = 'EndpointSlice';
export const endpointSliceAPIVersion = 'discovery.k8s.io/v1';
/** The label that ties a slice to its service (same namespace). */
export const serviceNameLabelOfSlice = 'kubernetes.io/service-name';

export const EndpointConditions = Type.Object({
  ready: Type.Optional(Type.Boolean()),
  serving: Type.Optional(Type.Boolean()),
  terminating: Type.Optional(Type.Boolean()),
});

export const Endpoint = Type.Object({
  addresses: Type.Array(Type.String(), { minItems: 1 }),
  conditions: Type.Optional(EndpointConditions),
  nodeName: Type.Optional(Type.String()),
  zone: Type.Optional(Type.String()),
});
export type Endpoint = Static<typeof Endpoint>;

export const EndpointPort = Type.Object({
  name: Type.Optional(Type.String()),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')])),
});

export const EndpointSlice = Type.Object({
  apiVersion: Type.Literal(endpointSliceAPIVersion),
  kind: Type.Literal(endpointSliceKind),
  metadata: ObjectMeta,
  addressType: Type.Union([Type.Literal('IPv4'), Type.Literal('IPv6'), Type.Literal('FQDN')]),
  endpoints: Type.Optional(Type.Array(Endpoint)),
  ports: Type.Optional(Type.Array(EndpointPort)),
});
export type EndpointSlice = Static<typeof EndpointSlice>;

/** `namespace/name` of the service a slice belongs to, or undefined when it is not labelled. */
export function sliceService(slice: { metadata: { namespace?: string | undefined; labels?: Record<string, string> | undefined } }): string | undefined {
  const name = slice.metadata.labels?.[serviceNameLabelOfSlice];
  return name ? `${slice.metadata.namespace ?? 'default'}/${name}` : undefined;
}

/** Endpoints count as ready when Kubernetes says so; an absent condition means ready (API rule). */
export const endpointReady = (e: Endpoint): boolean => e.conditions?.ready !== false;
