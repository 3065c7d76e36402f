// L2AnnouncementPolicy: which services' IPs are announced with ARP/NDP, from which nodes and on
// which interfaces. Field names follow Cilium's CiliumL2AnnouncementPolicy so a policy moves over
// by changing apiVersion and kind.
import { Type, type Static } from '@sinclair/typebox';
import { apiVersion, Condition, labelSelector, ObjectMeta } from './meta.js';
import { everything, parseSelector, type Selector } from './selector.js';

export const l2PolicyKind = 'L2AnnouncementPolicy';

export const L2PolicySpec = Type.Object(
  {
    serviceSelector: Type.Optional(labelSelector('Which services this policy announces; absent selects every service. Services also carry the labels io.kubernetes.service.namespace and io.kubernetes.service.name.')),
    nodeSelector: Type.Optional(labelSelector('Which nodes may announce (standalone: the labels of --node-labels); absent selects every node.')),
    interfaces: Type.Optional(
      Type.Array(Type.String(), {
        description:
          'JavaScript regular expressions matched against interface names (e.g. ^eth[0-9]+$). Empty: every interface with an address in the IP\'s subnet, else the interface of the default route.',
      }),
    ),
    loadBalancerIPs: Type.Optional(Type.Boolean({ description: 'Announce the IPs in status.loadBalancer.ingress. Default: true.' })),
    externalIPs: Type.Optional(Type.Boolean({ description: 'Announce the IPs in spec.externalIPs. Default: false.' })),
  },
  { additionalProperties: false, description: 'Which services\' IPs are answered for with ARP (IPv4) and NDP (IPv6), from which nodes, on which interfaces.' },
);
export type L2PolicySpec = Static<typeof L2PolicySpec>;

export const L2AnnouncementPolicy = Type.Object(
  {
    apiVersion: Type.Literal(apiVersion),
    kind: Type.Literal(l2PolicyKind),
    metadata: ObjectMeta,
    spec: L2PolicySpec,
    status: Type.Optional(
      Type.Object(
        { conditions: Type.Optional(Type.Array(Condition, { description: 'Written by the operator: beacon.io/PolicyValid.' })) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type L2AnnouncementPolicy = Static<typeof L2AnnouncementPolicy>;

/** Condition set on a policy: True when every field could be used. */
export const l2PolicyConditionType = 'beacon.io/PolicyValid';

/** A policy ready for the election, or the reasons it cannot be used. */
export interface L2Policy {
  readonly name: string;
  readonly serviceSelector: Selector;
  readonly nodeSelector: Selector;
  /** Empty: choose interfaces by subnet, then by default route. */
  readonly interfaces: readonly RegExp[];
  readonly loadBalancerIPs: boolean;
  readonly externalIPs: boolean;
}

export type ParsedL2Policy = { ok: true; value: L2Policy } | { ok: false; reason: 'InvalidSelector' | 'InvalidInterfacePattern'; message: string };

export function parseL2Policy(policy: { metadata: { name: string }; spec: L2PolicySpec }): ParsedL2Policy {
  const { spec } = policy;
  const services = spec.serviceSelector ? parseSelector(spec.serviceSelector) : { ok: true as const, value: everything };
  if (!services.ok) return { ok: false, reason: 'InvalidSelector', message: `serviceSelector: ${services.error}` };
  const nodes = spec.nodeSelector ? parseSelector(spec.nodeSelector) : { ok: true as const, value: everything };
  if (!nodes.ok) return { ok: false, reason: 'InvalidSelector', message: `nodeSelector: ${nodes.error}` };
  const interfaces: RegExp[] = [];
  for (const [i, pattern] of (spec.interfaces ?? []).entries()) {
    try {
      interfaces.push(new RegExp(pattern));
    } catch (e) {
      return { ok: false, reason: 'InvalidInterfacePattern', message: `interfaces[${i}] ${JSON.stringify(pattern)}: ${(e as Error).message}` };
    }
  }
  return {
    ok: true,
    value: {
      name: policy.metadata.name,
      serviceSelector: services.value,
      nodeSelector: nodes.value,
      interfaces,
      loadBalancerIPs: spec.loadBalancerIPs ?? true,
      externalIPs: spec.externalIPs ?? false,
    },
  };
}

/** The condition a policy carries: why it is unused, or that it is in use. */
export function l2PolicyCondition(parsed: ParsedL2Policy): Pick<Condition, 'type' | 'status' | 'reason' | 'message'> {
  return parsed.ok
    ? { type: l2PolicyConditionType, status: 'True', reason: 'Valid', message: 'policy is in use' }
    : { type: l2PolicyConditionType, status: 'False', reason: parsed.reason, message: `${parsed.message}; the policy announces nothing until fixed` };
}
