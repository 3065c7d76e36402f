// CustomResourceDefinitions generated from the TypeBox schemas, rewritten into Kubernetes
// structural schemas: a `type` on every node, no `$ref`, enums instead of literal unions, and
// maps as `additionalProperties` (never beside `properties`).
import type { TSchema } from '@sinclair/typebox';
import { stringify } from 'yaml';
import { group, version } from './meta.js';
import { LoadBalancerIPPool, poolKind } from './pool.js';
import { L2AnnouncementPolicy, l2PolicyConditionType, l2PolicyKind } from './l2policy.js';
import {
  BGPAdvertisement,
  bgpAdvertisementKind,
  BGPClusterConfig,
  bgpClusterConfigKind,
  bgpConditionType,
  BGPNodeConfigOverride,
  bgpNodeConfigOverrideKind,
  BGPPeerConfig,
  bgpPeerConfigKind,
} from './bgp.js';

type JSONSchema = Record<string, unknown>;

/** Rewrites one TypeBox schema node into its structural OpenAPI v3 form. */
export function toStructural(schema: TSchema | JSONSchema): JSONSchema {
  const s = schema as JSONSchema;
  const out: JSONSchema = {};
  if (typeof s.description === 'string') out.description = s.description;
  const anyOf = s.anyOf as JSONSchema[] | undefined;
  if (anyOf) {
    if (!anyOf.every((b) => b.const !== undefined && typeof b.const === typeof anyOf[0]!.const)) {
      throw new Error('only unions of literals of one type can become structural enums');
    }
    return { ...out, type: typeof anyOf[0]!.const === 'number' ? 'integer' : 'string', enum: anyOf.map((b) => b.const) };
  }
  if (s.const !== undefined) return { ...out, type: typeof s.const === 'number' ? 'integer' : 'string', enum: [s.const] };
  if (s.$ref !== undefined) throw new Error('$ref cannot appear in a structural schema');
  const type = s.type;
  if (typeof type !== 'string') throw new Error(`schema node without a type: ${JSON.stringify(s)}`);
  out.type = type;
  for (const k of ['minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'pattern', 'format']) {
    if (s[k] !== undefined) out[k] = s[k];
  }
  if (type === 'array') out.items = toStructural(s.items as JSONSchema);
  if (type === 'object') {
    const pattern = s.patternProperties as Record<string, JSONSchema> | undefined;
    const props = s.properties as Record<string, JSONSchema> | undefined;
    if (pattern) {
      // TypeBox writes Record<string, T> as a catch-all pattern: a map.
      out.additionalProperties = toStructural(Object.values(pattern)[0]!);
    } else if (props) {
      out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, toStructural(v)]));
      if (Array.isArray(s.required) && s.required.length > 0) out.required = s.required;
    } else if (s.additionalProperties === true) {
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
  }
  return out;
}

interface CRDSource {
  kind: string;
  plural: string;
  shortNames: string[];
  scope: 'Cluster' | 'Namespaced';
  schema: TSchema;
  printerColumns: { name: string; type: string; jsonPath: string; description?: string; priority?: number }[];
}

const conditionMessage = (type: string) => `.status.conditions[?(@.type=="${type}")].message`;
const conditionStatus = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;

export const crdSources: CRDSource[] = [
  {
    kind: poolKind,
    plural: 'loadbalancerippools',
    shortNames: ['lbippool'],
    scope: 'Cluster',
    schema: LoadBalancerIPPool,
    printerColumns: [
      { name: 'Disabled', type: 'boolean', jsonPath: '.spec.disabled' },
      { name: 'Conflicting', type: 'string', jsonPath: conditionStatus('beacon.io/PoolConflict') },
      { name: 'IPs Available', type: 'string', jsonPath: conditionMessage('beacon.io/IPsAvailable') },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: l2PolicyKind,
    plural: 'l2announcementpolicies',
    shortNames: ['l2policy'],
    scope: 'Cluster',
    schema: L2AnnouncementPolicy,
    printerColumns: [
      { name: 'Valid', type: 'string', jsonPath: conditionStatus(l2PolicyConditionType) },
      { name: 'Message', type: 'string', jsonPath: conditionMessage(l2PolicyConditionType), priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  ...(
    [
      [bgpClusterConfigKind, 'bgpclusterconfigs', 'bgpcc', BGPClusterConfig],
      [bgpPeerConfigKind, 'bgppeerconfigs', 'bgppc', BGPPeerConfig],
      [bgpAdvertisementKind, 'bgpadvertisements', 'bgpadvert', BGPAdvertisement],
      [bgpNodeConfigOverrideKind, 'bgpnodeconfigoverrides', 'bgpnco', BGPNodeConfigOverride],
    ] as const
  ).map(([kind, plural, shortName, schema]): CRDSource => ({
    kind,
    plural,
    shortNames: [shortName],
    scope: 'Cluster',
    schema,
    printerColumns: [
      { name: 'Valid', type: 'string', jsonPath: conditionStatus(bgpConditionType) },
      { name: 'Message', type: 'string', jsonPath: conditionMessage(bgpConditionType), priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  })),
];

export function crdObject(src: CRDSource): JSONSchema {
  const props = (src.schema as JSONSchema).properties as Record<string, JSONSchema>;
  const openAPIV3Schema: JSONSchema = {
    type: 'object',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: toStructural(props.spec!),
      ...(props.status ? { status: toStructural(props.status) } : {}),
    },
    required: ['spec'],
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${src.plural}.${group}` },
    spec: {
      group,
      names: { kind: src.kind, listKind: `${src.kind}List`, plural: src.plural, singular: src.kind.toLowerCase(), shortNames: src.shortNames },
      scope: src.scope,
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: src.printerColumns,
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

/** File name to YAML text for every CRD, as committed under deploy/crds/. */
export function renderCRDs(): Map<string, string> {
  const header = '# Generated from api/ by `npm run gen:crds`. Do not edit.\n';
  return new Map(
    crdSources.map((src) => [`${group}_${src.plural}.yaml`, header + stringify(crdObject(src), { lineWidth: 0 })]),
  );
}
