// One manifest file's text into the objects the embedded store serves: parsed (by the fast
// reader for plain YAML when it can, else by the yaml library), validated, normalized and hashed.
import { createHash } from 'node:crypto';
import { crdSources, decodeObject, parseManifests, type KnownObject, type ManifestProblem, type ParsedManifests } from '../../api/index.js';
import type { StoredObject } from '../types.js';
import { readPlainYaml } from './plain-yaml.js';
import type { ObjectKey } from './state.js';

/** Kinds without a namespace; every other kind is namespaced, and defaults to `default` as kubectl does. */
const clusterScoped = new Set([...crdSources.filter((s) => s.scope === 'Cluster').map((s) => s.kind), 'Node', 'Namespace']);

export interface DesiredObject {
  /** `kind\0namespace\0name`: unique over all kinds. */
  readonly id: string;
  readonly key: ObjectKey;
  /**
   * The object as the manifest says, normalized (no status, resourceVersion or generation), as
   * JSON: more compact in memory than the object, and a fresh copy is one JSON.parse. (Values JSON
   * cannot hold, such as .nan, are hashed as JSON too, so they were never told apart anyway.)
   */
  readonly json: string;
  /** metadata.creationTimestamp and uid as written in the manifest, for the state tables. */
  readonly fileCreationTimestamp: string | undefined;
  readonly fileUid: string | undefined;
  /** Changes with anything in the object (labels, annotations, spec): part of the resourceVersion. */
  readonly contentHash: string;
  /** Changes with the spec only: bumps the generation. */
  readonly specHash: string;
  readonly file: string;
  readonly line: number;
}

/** A file's text that parsed: its objects ready to serve, and the documents skipped (schema errors). */
export interface GoodParse {
  readonly desired: readonly DesiredObject[];
  readonly skipped: readonly ManifestProblem[];
}

/** A parse: `good` when the text is valid YAML, else the syntax errors. */
export interface FileParse {
  readonly good: GoodParse | undefined;
  readonly syntaxErrors: readonly ManifestProblem[];
}

export const objectId = (k: ObjectKey): string => `${k.kind}\0${k.namespace}\0${k.name}`;

export const problemText = (p: ManifestProblem): string =>
  `${p.file}:${p.line}: ${p.kind || p.name ? `${[p.kind, p.name].filter(Boolean).join(' ')}: ` : ''}${p.reason}`;

/**
 * JSON with object keys sorted, so key order in a file does not count as a change. `known` gives
 * the text of some top-level members already computed (the spec, hashed on its own too). Written
 * as plain loops: it runs over every object of every file that changed.
 */
export function canonicalJson(value: unknown, known?: Readonly<Record<string, string>>): string {
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + canonicalJson(value[i]);
    return out + ']';
  }
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort(); // UTF-16 code unit order
    let out = '{';
    for (const k of keys) {
      const v = obj[k];
      if (v === undefined) continue;
      out += (out.length > 1 ? ',' : '') + JSON.stringify(k) + ':' + (known !== undefined && Object.hasOwn(known, k) ? known[k] : canonicalJson(v));
    }
    return out + '}';
  }
  return JSON.stringify(value) ?? 'null';
}

export const shortHash = (text: string): string => createHash('sha256').update(text).digest('base64url').slice(0, 16);

/** The state-table key of a reference, with the same namespace rules as manifests. */
export const keyOfRef = (ref: { kind: string; namespace?: string | undefined; name: string }): ObjectKey => ({
  kind: ref.kind,
  namespace: clusterScoped.has(ref.kind) ? '' : ref.namespace || 'default',
  name: ref.name,
});

/**
 * The object as the store serves it from a manifest: store-owned fields removed, namespace
 * settled, hashed. Takes the freshly parsed object over (nothing else holds it): no copy.
 */
function desiredOf(known: KnownObject): DesiredObject {
  const object = known.object as StoredObject;
  delete object.status;
  const meta = object.metadata;
  delete meta.resourceVersion;
  delete meta.generation;
  if (clusterScoped.has(object.kind)) delete meta.namespace;
  else meta.namespace = meta.namespace || 'default';
  const key = { kind: object.kind, namespace: meta.namespace ?? '', name: meta.name };
  const spec = canonicalJson(object.spec ?? null);
  return {
    id: objectId(key),
    key,
    json: JSON.stringify(object),
    fileCreationTimestamp: typeof meta.creationTimestamp === 'string' ? meta.creationTimestamp : undefined,
    fileUid: typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : undefined,
    contentHash: shortHash(canonicalJson(object, { spec })),
    specHash: shortHash(spec),
    file: known.file,
    line: known.line,
  };
}

/** What parseManifests gives, for text the fast reader understood (see plain-yaml.ts). */
function decodePlain(text: string, file: string): ParsedManifests | undefined {
  const docs = readPlainYaml(text);
  if (!docs) return undefined;
  const out: ParsedManifests = { objects: [], syntaxErrors: [], skipped: [] };
  for (const { value, line } of docs) {
    // kubectl's `kind: List` wraps objects in items, as in parseManifests.
    const list = typeof value === 'object' && value !== null && !Array.isArray(value) && (value as { kind?: unknown }).kind === 'List' ? (value as { items?: unknown }).items : undefined;
    for (const item of Array.isArray(list) ? list : [value]) {
      const decoded = decodeObject(item, { file, line });
      if (decoded === undefined) continue;
      if ('reason' in decoded) out.skipped.push(decoded);
      else out.objects.push(decoded);
    }
  }
  return out;
}

export function parseFile(text: string, path: string): FileParse {
  const parsed = decodePlain(text, path) ?? parseManifests(text, path);
  if (parsed.syntaxErrors.length > 0) return { good: undefined, syntaxErrors: parsed.syntaxErrors };
  return { good: { desired: parsed.objects.map(desiredOf), skipped: parsed.skipped }, syntaxErrors: [] };
}
