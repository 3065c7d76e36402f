// Multi-document YAML manifests into typed objects, each with the file and line it came from.
// Syntax errors are fatal for the file (the caller cannot know what it meant); an object that
// breaks its schema is reported by name and skipped, and the rest is used.
import { LineCounter, parseAllDocuments } from 'yaml';
import type { TSchema } from '@sinclair/typebox';
import {
  BGPAdvertisement,
  bgpAdvertisementKind,
  BGPClusterConfig,
  bgpClusterConfigKind,
  BGPNodeConfigOverride,
  bgpNodeConfigOverrideKind,
  BGPPeerConfig,
  bgpPeerConfigKind,
} from './bgp.js';
import { EndpointSlice, endpointSliceAPIVersion, endpointSliceKind } from './endpointslice.js';
import { L2AnnouncementPolicy, l2PolicyKind } from './l2policy.js';
import { LoadBalancerIPPool, poolKind } from './pool.js';
import { Service } from './service.js';
import { apiVersion } from './meta.js';
import { validate } from './validate.js';

export interface Located {
  readonly file: string;
  readonly line: number;
}

export type KnownObject =
  | ({ kind: 'LoadBalancerIPPool'; object: LoadBalancerIPPool } & Located)
  | ({ kind: 'Service'; object: Service } & Located)
  | ({ kind: 'L2AnnouncementPolicy'; object: L2AnnouncementPolicy } & Located)
  | ({ kind: 'EndpointSlice'; object: EndpointSlice } & Located)
  | ({ kind: 'BGPClusterConfig'; object: BGPClusterConfig } & Located)
  | ({ kind: 'BGPPeerConfig'; object: BGPPeerConfig } & Located)
  | ({ kind: 'BGPAdvertisement'; object: BGPAdvertisement } & Located)
  | ({ kind: 'BGPNodeConfigOverride'; object: BGPNodeConfigOverride } & Located);

export interface ManifestProblem extends Located {
  readonly reason: string;
  readonly kind?: string;
  readonly name?: string;
}

export interface ParsedManifests {
  readonly objects: KnownObject[];
  /** YAML that could not be read: the file's objects are not trustworthy. */
  readonly syntaxErrors: ManifestProblem[];
  /** Objects that were read but skipped (schema errors, unknown kinds). */
  readonly skipped: ManifestProblem[];
}

const schemas: Record<string, { apiVersion: string; schema: TSchema }> = {
  [poolKind]: { apiVersion, schema: LoadBalancerIPPool },
  Service: { apiVersion: 'v1', schema: Service },
  [l2PolicyKind]: { apiVersion, schema: L2AnnouncementPolicy },
  [endpointSliceKind]: { apiVersion: endpointSliceAPIVersion, schema: EndpointSlice },
  [bgpClusterConfigKind]: { apiVersion, schema: BGPClusterConfig },
  [bgpPeerConfigKind]: { apiVersion, schema: BGPPeerConfig },
  [bgpAdvertisementKind]: { apiVersion, schema: BGPAdvertisement },
  [bgpNodeConfigOverrideKind]: { apiVersion, schema: BGPNodeConfigOverride },
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Classifies and validates one decoded object. */
export function decodeObject(value: unknown, where: Located): KnownObject | ManifestProblem | undefined {
  if (value === null || value === undefined) return undefined; // empty document
  if (!isRecord(value)) return { ...where, reason: 'document is not an object' };
  const kind = typeof value.kind === 'string' ? value.kind : undefined;
  const meta = isRecord(value.metadata) ? value.metadata : {};
  const name = typeof meta.name === 'string' ? (typeof meta.namespace === 'string' ? `${meta.namespace}/${meta.name}` : meta.name) : undefined;
  const known = kind === undefined ? undefined : schemas[kind];
  if (!known || value.apiVersion !== known.apiVersion) {
    return { ...where, ...(kind ? { kind } : {}), ...(name ? { name } : {}), reason: `unsupported object ${String(value.apiVersion)}/${String(kind)}` };
  }
  const result = validate(known.schema, value);
  if (!result.ok) return { ...where, kind: kind!, ...(name ? { name } : {}), reason: result.errors.join('; ') };
  return { ...where, kind, object: result.value } as KnownObject;
}

/** One object read from multi-document YAML, with the line its document starts on. */
export interface YamlItem extends Located {
  readonly value: unknown;
}

/**
 * Multi-document YAML into plain values with their lines (kubectl's `kind: List` unwrapped, empty
 * documents left out); a document that cannot be read is a syntax error, never a partial object.
 */
export function readYamlItems(text: string, file: string): { items: YamlItem[]; syntaxErrors: ManifestProblem[] } {
  const lines = new LineCounter();
  const out: { items: YamlItem[]; syntaxErrors: ManifestProblem[] } = { items: [], syntaxErrors: [] };
  for (const doc of parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) out.syntaxErrors.push({ file, line: lines.linePos(e.pos[0]).line, reason: e.message.split('\n')[0]! });
      continue;
    }
    const line = lines.linePos(doc.contents?.range?.[0] ?? doc.range[0]).line;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      out.syntaxErrors.push({ file, line, reason: (e as Error).message });
      continue;
    }
    if (value === null || value === undefined) continue; // an empty document
    const items = isRecord(value) && value.kind === 'List' && Array.isArray(value.items) ? value.items : [value];
    for (const item of items) out.items.push({ file, line, value: item });
  }
  return out;
}

export function parseManifests(text: string, file: string): ParsedManifests {
  const { items, syntaxErrors } = readYamlItems(text, file);
  const out: ParsedManifests = { objects: [], syntaxErrors, skipped: [] };
  for (const { value, ...where } of items) {
    const decoded = decodeObject(value, where);
    if (decoded === undefined) continue;
    if ('reason' in decoded) out.skipped.push(decoded);
    else out.objects.push(decoded);
  }
  return out;
}
