// The parts of a core v1 Service that Beacon reads and writes. Kubernetes owns this type, so the
// schema checks only what Beacon relies on and lets every other field through.
import { Type, type Static } from '@sinclair/typebox';
import { Condition, ObjectMeta, StringMap } from './meta.js';

export const ServicePort = Type.Object({
  name: Type.Optional(Type.String()),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')])),
  // A number, or the name of a container port (IANA_SVC_NAME); the datapath takes the number from the EndpointSlice.
  targetPort: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.String()])),
  nodePort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
});
export type ServicePort = Static<typeof ServicePort>;

export const IPFamilyName = Type.Union([Type.Literal('IPv4'), Type.Literal('IPv6')]);

export const ServiceSpec = Type.Object({
  type: Type.Optional(Type.String()),
  loadBalancerClass: Type.Optional(Type.String()),
  loadBalancerIP: Type.Optional(Type.String()),
  externalIPs: Type.Optional(Type.Array(Type.String())),
  ipFamilies: Type.Optional(Type.Array(IPFamilyName, { maxItems: 2 })),
  ipFamilyPolicy: Type.Optional(
    Type.Union([Type.Literal('SingleStack'), Type.Literal('PreferDualStack'), Type.Literal('RequireDualStack')]),
  ),
  ports: Type.Optional(Type.Array(ServicePort)),
  selector: Type.Optional(StringMap),
  externalTrafficPolicy: Type.Optional(Type.Union([Type.Literal('Cluster'), Type.Literal('Local')])),
  internalTrafficPolicy: Type.Optional(Type.Union([Type.Literal('Cluster'), Type.Literal('Local')])),
  clusterIP: Type.Optional(Type.String()),
  clusterIPs: Type.Optional(Type.Array(Type.String(), { maxItems: 2 })),
  sessionAffinity: Type.Optional(Type.Union([Type.Literal('None'), Type.Literal('ClientIP')])),
  sessionAffinityConfig: Type.Optional(
    Type.Object({
      clientIP: Type.Optional(Type.Object({ timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })) })),
    }),
  ),
  healthCheckNodePort: Type.Optional(Type.Integer()),
});
export type ServiceSpec = Static<typeof ServiceSpec>;

export const LoadBalancerIngress = Type.Object({
  ip: Type.Optional(Type.String()),
  hostname: Type.Optional(Type.String()),
});

export const ServiceStatus = Type.Object({
  loadBalancer: Type.Optional(Type.Object({ ingress: Type.Optional(Type.Array(LoadBalancerIngress)) })),
  conditions: Type.Optional(Type.Array(Condition)),
});
export type ServiceStatus = Static<typeof ServiceStatus>;

export const Service = Type.Object({
  apiVersion: Type.Literal('v1'),
  kind: Type.Literal('Service'),
  metadata: ObjectMeta,
  spec: ServiceSpec,
  status: Type.Optional(ServiceStatus),
});
export type Service = Static<typeof Service>;

/** Load balancer classes Beacon serves; a service with no class is served too. */
export const serviceClasses = {
  l2: 'beacon.io/l2-announcer',
  bgp: 'beacon.io/bgp-control-plane',
} as const;

/** Annotations read on Services. Beacon's own come first; Cilium's and MetalLB's are honoured for migration. */
export const annotations = {
  ips: ['beacon.io/ips', 'lbipam.cilium.io/ips', 'metallb.io/loadBalancerIPs'],
  pool: ['beacon.io/pool', 'metallb.io/address-pool'],
  sharingKey: ['beacon.io/sharing-key', 'lbipam.cilium.io/sharing-key', 'metallb.io/allow-shared-ip'],
  sharingCrossNamespace: ['beacon.io/sharing-cross-namespace', 'lbipam.cilium.io/sharing-cross-namespace'],
} as const;

/** Virtual labels every Service carries for pool selection (as in Cilium). */
export const serviceNamespaceLabel = 'io.kubernetes.service.namespace';
export const serviceNameLabel = 'io.kubernetes.service.name';

/** Condition type set on Services by LB-IPAM. */
export const ipamConditionType = 'beacon.io/IPAMRequestSatisfied';
