// Shared Kubernetes shapes (ObjectMeta, Condition, LabelSelector) as TypeBox schemas: the one
// source for TypeScript types, runtime validation and the generated CRDs.
import { Type, type Static } from '@sinclair/typebox';

export const group = 'beacon.io';
export const version = 'v1alpha1';
export const apiVersion = `${group}/${version}`;

export const StringMap = Type.Record(Type.String(), Type.String());

export const ObjectMeta = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 253 }),
    namespace: Type.Optional(Type.String()),
    uid: Type.Optional(Type.String()),
    resourceVersion: Type.Optional(Type.String()),
    generation: Type.Optional(Type.Integer()),
    creationTimestamp: Type.Optional(Type.String()),
    labels: Type.Optional(StringMap),
    annotations: Type.Optional(StringMap),
  },
  // Kubernetes owns the rest of metadata (managedFields, ownerReferences, ...): let it through.
  { additionalProperties: true },
);
export type ObjectMeta = Static<typeof ObjectMeta>;

export const ConditionStatus = Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')], { description: 'Whether the condition holds.' });

export const Condition = Type.Object(
  {
    type: Type.String({ description: 'Condition type, e.g. beacon.io/PoolConflict.' }),
    status: ConditionStatus,
    observedGeneration: Type.Optional(Type.Integer({ description: 'metadata.generation of the object the condition was computed from.' })),
    lastTransitionTime: Type.Optional(Type.String({ description: 'When status last changed (RFC 3339).' })),
    reason: Type.String({ description: 'One CamelCase or snake_case word a program can match on.' }),
    message: Type.String({ description: 'What a person needs to know, e.g. which field is wrong and why.' }),
  },
  { additionalProperties: false, description: 'A Kubernetes-style status condition.' },
);
export type Condition = Static<typeof Condition>;

export const LabelSelectorRequirement = Type.Object(
  {
    key: Type.String({ description: 'The label key.' }),
    operator: Type.Union([Type.Literal('In'), Type.Literal('NotIn'), Type.Literal('Exists'), Type.Literal('DoesNotExist')], {
      description: 'How the label value is compared with values.',
    }),
    values: Type.Optional(Type.Array(Type.String(), { description: 'Non-empty for In and NotIn, empty for Exists and DoesNotExist.' })),
  },
  { additionalProperties: false },
);

export const labelSelector = (description?: string) =>
  Type.Object(
    {
      matchLabels: Type.Optional(StringMap),
      matchExpressions: Type.Optional(Type.Array(LabelSelectorRequirement, { description: 'Requirements that must all hold.' })),
    },
    { additionalProperties: false, ...(description === undefined ? {} : { description }) },
  );
export const LabelSelector = labelSelector();
export type LabelSelector = Static<typeof LabelSelector>;
