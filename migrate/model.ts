// What a migration takes and gives: decoded YAML objects with the file and line they came from,
// Beacon objects, and the list of what could not be carried over (object, field, reason).
import type { TSchema } from '@sinclair/typebox';
import {
  BGPAdvertisement,
  BGPClusterConfig,
  BGPNodeConfigOverride,
  BGPPeerConfig,
  L2AnnouncementPolicy,
  LoadBalancerIPPool,
  readYamlItems,
  type Located,
  type ObjectMeta,
  type YamlItem,
} from '../api/index.js';

/** One decoded YAML object, not yet trusted to have any shape. */
export type Source = YamlItem;

export type BeaconObject = LoadBalancerIPPool | L2AnnouncementPolicy | BGPClusterConfig | BGPPeerConfig | BGPAdvertisement | BGPNodeConfigOverride;

/** The schema every object of a kind must pass before it is written out. */
export const beaconSchemas: Readonly<Record<BeaconObject['kind'], TSchema>> = {
  LoadBalancerIPPool,
  L2AnnouncementPolicy,
  BGPClusterConfig,
  BGPPeerConfig,
  BGPAdvertisement,
  BGPNodeConfigOverride,
};

/** A source object named for messages: its kind and name as written. */
export interface Origin extends Located {
  readonly kind: string;
  readonly name: string;
}

export interface Converted {
  readonly object: BeaconObject;
  /** The source object it was made from (the first one, when several became one). */
  readonly from: Origin;
}

export interface NotCarried extends Origin {
  /** Path of the field in the source object (`spec.addresses[1]`), or `kind` for a whole object. */
  readonly field: string;
  readonly reason: string;
}

export interface Migration {
  readonly objects: Converted[];
  readonly notCarried: NotCarried[];
}

/** Collects a migration's output; converters write to it. */
export class MigrationBuilder implements Migration {
  readonly objects: Converted[] = [];
  readonly notCarried: NotCarried[] = [];
  emit(from: Origin, object: BeaconObject): void {
    this.objects.push({ from, object });
  }
  note(from: Origin, field: string, reason: string): void {
    this.notCarried.push({ ...from, field, reason });
  }
}

export type Obj = Record<string, unknown>;
export const isRecord = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const record = (v: unknown): Obj => (isRecord(v) ? v : {});
export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function originOf(src: Source): Origin {
  const meta = record(record(src.value).metadata);
  const kind = record(src.value).kind;
  return { file: src.file, line: src.line, kind: typeof kind === 'string' ? kind : '-', name: typeof meta.name === 'string' ? meta.name : '-' };
}

// kubectl keeps the whole previous object here; it describes the source kind, not the Beacon one.
const lastApplied = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * The metadata a Beacon object keeps: name, labels and annotations. Beacon's resources are
 * cluster-scoped (the namespace goes), and server-set fields (uid, resourceVersion, ...) belong to
 * the old object.
 */
export function beaconMeta(value: unknown, name?: string): ObjectMeta {
  const meta = record(record(value).metadata);
  const annotations = Object.fromEntries(Object.entries(record(meta.annotations)).filter(([k]) => k !== lastApplied));
  return {
    name: name ?? (meta.name as string),
    ...(isRecord(meta.labels) && Object.keys(meta.labels).length > 0 ? { labels: meta.labels as Record<string, string> } : {}),
    ...(Object.keys(annotations).length > 0 ? { annotations: annotations as Record<string, string> } : {}),
  };
}

/** Fields of `spec` the converter does not know are reported, never dropped silently. */
export function noteUnknownFields(value: Obj, known: readonly string[], path: string, from: Origin, out: MigrationBuilder): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) out.note(from, `${path}.${key}`, 'unknown field; it has no Beacon equivalent');
  }
}

export interface ParsedSources {
  readonly sources: Source[];
  /** YAML that could not be read: nothing of that document is trustworthy. */
  readonly syntaxErrors: (Located & { reason: string })[];
}

/** Multi-document YAML (and `kind: List`) into objects with the line each starts on. */
export function parseSources(text: string, file: string): ParsedSources {
  const { items, syntaxErrors } = readYamlItems(text, file);
  return { sources: items, syntaxErrors };
}
