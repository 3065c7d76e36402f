// The parts of a core v1 Service that Beacon reads and writes. Kubernetes owns this type, so the
// schema checks only what Beacon relies on and lets every other field through.
import { Type, type Static } from '@sinclair/typebox';
import { Condition, ObjectMeta } from './meta.js';

export const ServicePort = Type.Object({
  name: Type.Optional(Type.String({ description: 'Matches the EndpointSlice port of the same name (the backend port).' })),
  port: Type.Integer({ minimum: 1, maximum: 65535, description: 'Frontend port; LB-IPAM sharing refuses two sharers with one port and protocol.' }),
  protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')], { description: 'SCTP is not balanced by the datapath. Default: TCP.' })),
  // A number, or the name of a container port (IANA_SVC_NAME); the datapath takes the number from the EndpointSlice.
  targetPort: Type.Optional(
    Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.String()], { description: 'Not read: the backend port comes from the EndpointSlice.' }),
  ),
  nodePort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Balanced on every node address by the datapath.' })),
});
export type ServicePort = Static<typeof ServicePort>;

export const IPFamilyName = Type.Union([Type.Literal('IPv4'), Type.Literal('IPv6')]);

export const ServiceSpec = Type.Object({
  type: Type.Optional(Type.String({ description: 'LB-IPAM serves LoadBalancer only; the datapath serves every type but ExternalName.' })),
  loadBalancerClass: Type.Optional(
    Type.String({ description: 'Absent, beacon.io/l2-announcer or beacon.io/bgp-control-plane: Beacon serves the service; any other class is left alone.' }),
  ),
  loadBalancerIP: Type.Optional(Type.String({ description: 'Requested addresses (deprecated by Kubernetes); the beacon.io/ips annotation wins.' })),
  externalIPs: Type.Optional(Type.Array(Type.String(), { description: 'Balanced by the datapath; announced when a policy or advertisement asks for ExternalIP.' })),
  ipFamilies: Type.Optional(Type.Array(IPFamilyName, { maxItems: 2, description: 'Families to assign, in order. Default: IPv4, else IPv6.' })),
  ipFamilyPolicy: Type.Optional(
    Type.Union([Type.Literal('SingleStack'), Type.Literal('PreferDualStack'), Type.Literal('RequireDualStack')], {
      description: 'SingleStack: one address; PreferDualStack: one per family it can get; RequireDualStack: one per family, or none. Default: SingleStack.',
    }),
  ),
  ports: Type.Optional(Type.Array(ServicePort, { description: 'Frontend ports.' })),
  selector: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Pod selector; with externalTrafficPolicy Local, sharers of one IP must have equal selectors.' })),
  externalTrafficPolicy: Type.Optional(
    Type.Union([Type.Literal('Cluster'), Type.Literal('Local')], {
      description: 'Local: only nodes with a ready endpoint announce (L2, BGP) and external frontends keep the client address. Default: Cluster.',
    }),
  ),
  internalTrafficPolicy: Type.Optional(
    Type.Union([Type.Literal('Cluster'), Type.Literal('Local')], { description: 'Local: ClusterIP frontends use endpoints on this node only. Default: Cluster.' }),
  ),
  clusterIP: Type.Optional(Type.String({ description: 'Balanced by the datapath; advertised when an advertisement asks for ClusterIP.' })),
  clusterIPs: Type.Optional(Type.Array(Type.String(), { maxItems: 2, description: 'As clusterIP, one per family; None (headless) has none.' })),
  sessionAffinity: Type.Optional(Type.Union([Type.Literal('None'), Type.Literal('ClientIP')], { description: 'ClientIP: a client keeps its backend. Default: None.' })),
  sessionAffinityConfig: Type.Optional(
    Type.Object(
      {
        clientIP: Type.Optional(
          Type.Object(
            { timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'How long a client keeps its backend. Default: 10800.' })) },
            { description: 'ClientIP affinity settings.' },
          ),
        ),
      },
      { description: 'Settings of sessionAffinity.' },
    ),
  ),
  healthCheckNodePort: Type.Optional(Type.Integer({ description: 'With externalTrafficPolicy Local: the agent answers HTTP health checks on it as kube-proxy does.' })),
});
export type ServiceSpec = Static<typeof ServiceSpec>;

export const LoadBalancerIngress = Type.Object({
  ip: Type.Optional(Type.String({ description: 'Written by the operator: an assigned address.' })),
  hostname: Type.Optional(Type.String({ description: 'Not written by Beacon.' })),
});

export const ServiceStatus = Type.Object({
  loadBalancer: Type.Optional(
    Type.Object(
      { ingress: Type.Optional(Type.Array(LoadBalancerIngress, { description: 'Assigned addresses, in ipFamilies order.' })) },
      { description: 'Written by the operator (JSON patch of /status only).' },
    ),
  ),
  conditions: Type.Optional(Type.Array(Condition, { description: 'Written by the operator: beacon.io/IPAMRequestSatisfied.' })),
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
