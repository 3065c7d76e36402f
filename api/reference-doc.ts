// The resource reference (docs/reference.md), rendered from the schemas the CRDs are generated
// from, so it cannot drift from what the API server and Beacon accept. A default is the last
// sentence of a field's description, written "Default: X.".
// `npx tsx api/reference-doc.ts --write` writes the file; without --write it prints it.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crdSources, toStructural } from './crd.js';
import { apiVersion, Condition, LabelSelector, ObjectMeta } from './meta.js';
import { annotations, ipamConditionType, Service, serviceClasses, serviceNameLabel, serviceNamespaceLabel } from './service.js';
import { EndpointSlice, serviceNameLabelOfSlice } from './endpointslice.js';

/** A schema node: the structural form of a CRD, or a TypeBox schema (Service, EndpointSlice). */
type SchemaNode = Record<string, unknown>;

export interface FieldRow {
  readonly path: string;
  readonly type: string;
  readonly required: boolean;
  readonly default: string | undefined;
  readonly allowed: string | undefined;
  readonly description: string;
}

export const referencePath = join(import.meta.dirname, '..', 'docs', 'reference.md');

/** Where each kind is explained with examples. */
const guides: Readonly<Record<string, string>> = {
  LoadBalancerIPPool: 'lbipam.md',
  L2AnnouncementPolicy: 'l2.md',
  BGPClusterConfig: 'bgp.md#bgpclusterconfig',
  BGPPeerConfig: 'bgp.md#bgppeerconfig',
  BGPAdvertisement: 'bgp.md#bgpadvertisement',
  BGPNodeConfigOverride: 'bgp.md#bgpnodeconfigoverride',
};

/** What each Service annotation asks for; the type makes a new annotation group fail to compile here until described. */
const annotationMeaning: Readonly<Record<keyof typeof annotations, string>> = {
  ips: 'Comma-separated addresses to assign, at most one per family; all or nothing. Wins over `spec.loadBalancerIP`.',
  pool: 'Only this pool may serve the service; its selector must still match.',
  sharingKey: 'Services with the same key share one address when compatible (namespaces, ports, traffic policy).',
  sharingCrossNamespace: 'Namespaces (comma-separated, or `*`) this service agrees to share an address with.',
};

const keysOf = (node: SchemaNode | undefined): string => Object.keys((node?.properties as SchemaNode | undefined) ?? {}).sort().join(',');
const selectorKeys = keysOf(LabelSelector);
const conditionKeys = keysOf(Condition);

/** The allowed values of an enum, a union of literals or a literal. */
function enumOf(node: SchemaNode): unknown[] | undefined {
  if (Array.isArray(node.enum)) return node.enum as unknown[];
  const anyOf = node.anyOf as SchemaNode[] | undefined;
  if (anyOf?.every((b) => b.const !== undefined)) return anyOf.map((b) => b.const);
  return node.const !== undefined ? [node.const] : undefined;
}

/** The value schema of a map (structural additionalProperties or TypeBox's catch-all pattern). */
function mapValueOf(node: SchemaNode): SchemaNode | undefined {
  if (typeof node.additionalProperties === 'object') return node.additionalProperties as SchemaNode;
  const pattern = node.patternProperties as Record<string, SchemaNode> | undefined;
  return pattern ? Object.values(pattern)[0] : undefined;
}

function typeText(node: SchemaNode): string {
  const values = enumOf(node);
  if (values) return typeof values[0] === 'number' ? 'integer' : 'string';
  const anyOf = node.anyOf as SchemaNode[] | undefined;
  if (anyOf) return anyOf.map(typeText).join(' or ');
  if (node.type === 'array') {
    const items = node.items as SchemaNode;
    if (keysOf(items) === conditionKeys) return 'list of [conditions](#condition)';
    const item = typeText(items);
    return `list of ${/^(string|integer|boolean|object)$/.test(item) ? `${item}s` : item}`;
  }
  if (node.type === 'object') {
    if (keysOf(node) === selectorKeys) return '[label selector](#label-selector)';
    const value = mapValueOf(node);
    return value ? `map of string to ${typeText(value)}` : 'object';
  }
  return String(node.type);
}

function allowedText(node: SchemaNode): string | undefined {
  const values = enumOf(node) ?? enumOf((node.items as SchemaNode | undefined) ?? {});
  const parts: string[] = values ? [values.map((v) => `\`${String(v)}\``).join(', ')] : [];
  const range = (min: number | undefined, max: number | undefined, unit: string) => {
    if (min !== undefined && max !== undefined) parts.push(`${unit}${min}–${max}`);
    else if (min !== undefined) parts.push(`${unit}≥ ${min}`);
    else if (max !== undefined) parts.push(`${unit}≤ ${max}`);
  };
  const n = (key: string) => node[key] as number | undefined;
  range(n('minimum'), n('maximum'), '');
  range(n('minLength'), n('maxLength'), 'length ');
  range(n('minItems'), n('maxItems'), 'items ');
  if (typeof node.pattern === 'string') parts.push(`pattern \`${node.pattern}\``);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** Splits "… Default: X." into the description and X. */
function splitDefault(description: string): { description: string; default: string | undefined } {
  const m = /^(.*?)\s*Default: (.+)\.$/s.exec(description);
  return m ? { description: m[1]!, default: m[2]! } : { description, default: undefined };
}

/** The rows of an object's properties (paths `prefix` + key), without a row for the object itself. */
function propertyRows(node: SchemaNode, prefix = ''): FieldRow[] {
  const required = (node.required as string[] | undefined) ?? [];
  return Object.entries((node.properties as Record<string, SchemaNode> | undefined) ?? {}).flatMap(([key, child]) => fieldRows(child, prefix + key, required.includes(key)));
}

/** Every field under `node`, depth first; selectors and conditions are one row each (described once, below). */
export function fieldRows(node: SchemaNode, path: string, required = false): FieldRow[] {
  const { description, default: dflt } = splitDefault(typeof node.description === 'string' ? node.description : '');
  const rows: FieldRow[] = [{ path, type: typeText(node), required, default: dflt, allowed: allowedText(node), description }];
  const items = node.type === 'array' ? (node.items as SchemaNode) : undefined;
  const object = items ?? node;
  const shared = keysOf(object) === selectorKeys || keysOf(object) === conditionKeys;
  if (object.type !== 'object' || shared) return rows;
  return [...rows, ...propertyRows(object, `${items ? `${path}[]` : path}.`)];
}

const cell = (text: string | undefined): string => (text === undefined || text === '' ? '' : text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' '));

function fieldTable(rows: readonly FieldRow[]): string {
  const lines = ['| field | type | required | default | allowed values | description |', '| --- | --- | --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| \`${r.path}\` | ${cell(r.type)} | ${r.required ? 'yes' : ''} | ${cell(r.default)} | ${cell(r.allowed)} | ${cell(r.description)} |`);
  return lines.join('\n');
}


function kindSection(src: (typeof crdSources)[number]): string {
  const props = (src.schema as SchemaNode).properties as Record<string, SchemaNode>;
  const spec = toStructural(props.spec!);
  const status = props.status ? toStructural(props.status) : undefined;
  const guide = guides[src.kind];
  const rows = [...propertyRows(spec, 'spec.'), ...(status ? propertyRows(status, 'status.') : [])];
  return [
    `## ${src.kind}`,
    '',
    `\`apiVersion: ${apiVersion}\` · \`kind: ${src.kind}\` · scope ${src.scope} · plural \`${src.plural}\` · short name${src.shortNames.length > 1 ? 's' : ''} ${src.shortNames.map((n) => `\`${n}\``).join(', ')}${guide ? ` · guide: [${guide.split('#')[0]}](${guide})` : ''}`,
    '',
    `${typeof spec.description === 'string' ? `${spec.description} ` : ''}\`spec\` is required; \`status\` is written by Beacon.`,
    '',
    fieldTable(rows),
    '',
    `\`kubectl get ${src.plural}\` columns: ${src.printerColumns.map((c) => `${c.name}${c.priority ? ' (`-o wide`)' : ''}`).join(', ')}.`,
  ].join('\n');
}

function annotationTable(): string {
  const lines = ['| annotation | also read (migration) | meaning |', '| --- | --- | --- |'];
  for (const [group, names] of Object.entries(annotations) as [keyof typeof annotations, readonly string[]][]) {
    lines.push(`| \`${names[0]!}\` | ${names.slice(1).map((n) => `\`${n}\``).join(', ')} | ${annotationMeaning[group]} |`);
  }
  return lines.join('\n');
}

/** The whole reference as Markdown. */
export function referenceMarkdown(): string {
  const serviceProps = Service.properties;
  const sliceRows = propertyRows(EndpointSlice as unknown as SchemaNode).filter((r) => !/^(apiVersion|kind|metadata)(\.|$)/.test(r.path));
  return [
    '# Resource reference',
    '',
    '<!-- Generated from the schemas in api/ by `npx tsx api/reference-doc.ts --write`. Do not edit. -->',
    '',
    'Every field of every Beacon resource, and the parts of Services and EndpointSlices Beacon reads,',
    'generated from the schemas in `api/` — the same schemas `deploy/crds/` is generated from and that',
    'Beacon validates manifests with in every mode — so it cannot drift (a test compares this file with',
    'the generator). What each resource is for, with examples: [lbipam.md](lbipam.md), [l2.md](l2.md),',
    '[bgp.md](bgp.md). How the parts fit together: [concepts.md](concepts.md).',
    '',
    'A field marked *required* is required when its parent is present. Unknown fields are refused',
    '(`spec.blocks[0].cidrr: unknown field`); `metadata` is standard Kubernetes object metadata',
    `(\`name\` required, ${allowedText(ObjectMeta.properties.name) ?? ''}).${crdSources.every((s) => s.scope === 'Cluster') ? ' All kinds are cluster-scoped.' : ''}`,
    '',
    ...crdSources.map((s) => `- [${s.kind}](#${s.kind.toLowerCase()})`),
    '- [Label selector](#label-selector), [Condition](#condition)',
    '- [Service and EndpointSlice fields Beacon reads](#service-and-endpointslice-fields-beacon-reads)',
    '',
    ...crdSources.flatMap((s) => [kindSection(s), '']),
    '## Shared types',
    '',
    '### Label selector',
    '',
    'A Kubernetes label selector: `matchLabels` and `matchExpressions` must all hold; `{}` selects',
    'everything. Where a field says "absent selects none" the field must be present to select anything.',
    '',
    fieldTable(propertyRows(toStructural(LabelSelector))),
    '',
    '### Condition',
    '',
    fieldTable(propertyRows(toStructural(Condition))),
    '',
    '## Service and EndpointSlice fields Beacon reads',
    '',
    'Kubernetes owns these types; Beacon checks only the fields below and passes every other field',
    'through. In standalone mode they are written in manifests exactly as for a cluster.',
    '',
    '### Service (`v1`)',
    '',
    fieldTable([...propertyRows(serviceProps.spec, 'spec.'), ...propertyRows(serviceProps.status, 'status.')]),
    '',
    `Load balancer classes Beacon serves: ${Object.values(serviceClasses).map((c) => `\`${c}\``).join(', ')}, or none. Condition set on`,
    `Services: \`${ipamConditionType}\` (reasons in [lbipam.md](lbipam.md#results)). Pools, L2 policies and BGP advertisements`,
    `select Services by their labels plus the virtual labels \`${serviceNamespaceLabel}\` and \`${serviceNameLabel}\`.`,
    '',
    '#### Annotations',
    '',
    'The first name is Beacon\'s; the others are Cilium\'s and MetalLB\'s, read as the same when Beacon\'s',
    'is absent ([migrate.md](migrate.md)). The datapath\'s `beacon.io/lb-algorithm` is described in',
    '[kpr.md](kpr.md#which-backends).',
    '',
    annotationTable(),
    '',
    '### EndpointSlice (`discovery.k8s.io/v1`)',
    '',
    `A slice belongs to the Service named by its \`${serviceNameLabelOfSlice}\` label, in the same namespace.`,
    '',
    fieldTable(sliceRows),
    '',
  ].join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === import.meta.filename) {
  const text = referenceMarkdown();
  if (process.argv.includes('--write')) {
    writeFileSync(referencePath, text);
    console.log('wrote docs/reference.md');
  } else process.stdout.write(text);
}
