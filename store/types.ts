// The one interface every state source implements (embedded files + SQLite, etcd, and later the
// Kubernetes API): list + watch of typed objects, status writes with optimistic concurrency, and
// leases for leader and announcer election. Reconcilers never see which one they talk to.

/** Identifies one object. Cluster-scoped kinds have no namespace. */
export interface ObjectRef {
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
}

/** An object as stored: Kubernetes shape, with a resourceVersion the store assigns. */
export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    generation?: number;
    [key: string]: unknown;
  };
  spec?: unknown;
  status?: unknown;
  [key: string]: unknown;
}

export type WatchEvent =
  | { readonly type: 'added' | 'modified'; readonly object: StoredObject }
  | { readonly type: 'deleted'; readonly object: StoredObject };

export interface ListResult {
  readonly items: StoredObject[];
  /** Watch from here to see every change after this list. */
  readonly revision: string;
}

export interface Watch {
  close(): void;
}

/** A status write lost a race: re-read the object and compute the status again. */
export class ConflictError extends Error {
  constructor(readonly ref: ObjectRef, readonly expected: string, readonly actual: string | undefined) {
    super(`${refText(ref)}: resourceVersion ${expected} is stale (now ${actual ?? 'deleted'})`);
    this.name = 'ConflictError';
  }
}

export class NotFoundError extends Error {
  constructor(readonly ref: ObjectRef) {
    super(`${refText(ref)} not found`);
    this.name = 'NotFoundError';
  }
}

/** The watch can no longer continue from its revision (compacted, reset): list again. */
export class ExpiredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpiredError';
  }
}

export interface Lease {
  readonly name: string;
  readonly holder: string;
  readonly durationMs: number;
  /** Epoch milliseconds. */
  readonly acquiredAt: number;
  readonly renewedAt: number;
  /** How many times the lease changed hands. */
  readonly transitions: number;
  /** What the holder published with its last renewal ('' when nothing), e.g. a node's candidacy. */
  readonly data: string;
}

export interface LeaseStore {
  /**
   * Takes the lease when it is free or expired, renews it when `holder` already has it, and
   * otherwise leaves it. Returns whether `holder` holds it now, and the lease as it stands.
   * `data` (default '') replaces what the lease publishes when `holder` holds it.
   */
  acquireOrRenew(name: string, holder: string, durationMs: number, data?: string): Promise<{ held: boolean; lease: Lease }>;
  /** Gives the lease up at once (on shutdown), only if `holder` has it. */
  release(name: string, holder: string): Promise<void>;
  get(name: string): Promise<Lease | undefined>;
  /**
   * The held leases whose names start with `prefix`, sorted by name (released ones are left out;
   * expired ones may still be listed: compare renewedAt + durationMs with the clock).
   */
  list(prefix: string): Promise<Lease[]>;
  /**
   * Optional: a live view of what `list(prefix)` returns, for stores where polling costs requests
   * (Kubernetes). Calls `onChange` with the whole set once it is known and after every change to
   * it; while the store is unreachable nothing is called (the set may be stale: judge expiry with
   * care). Returns the function that stops it. Stores whose list is local or cheap leave it out.
   */
  watch?(prefix: string, onChange: (leases: Lease[]) => void): () => void;
}

export interface StoreHealth {
  readonly ok: boolean;
  readonly message: string;
}

/** A decision worth telling the owner of an object about (what `kubectl describe` shows under Events). */
export interface RecordedEvent {
  readonly type: 'Normal' | 'Warning';
  /** CamelCase and stable, e.g. IPAllocated, NoPool: what tools filter on. */
  readonly reason: string;
  /** What was done or failed, e.g. Allocate, Announce. */
  readonly action: string;
  /** For humans. */
  readonly note: string;
}

export interface EventRecorder {
  /** Fire and forget: never throws, never waits for the store; may drop (rate limits) or merge repeats. */
  record(ref: ObjectRef & { readonly uid?: string | undefined }, e: RecordedEvent): void;
}

export interface Store {
  readonly backend: 'embedded' | 'etcd' | 'kubernetes';
  list(kind: string): Promise<ListResult>;
  /**
   * Calls `onEvent` for every change after `revision`, in order. A watch that cannot continue
   * calls `onError` once (an ExpiredError means: list again) and stops.
   */
  watch(kind: string, revision: string, onEvent: (e: WatchEvent) => void, onError: (err: Error) => void): Watch;
  /** Replaces the status when the object's resourceVersion is still `resourceVersion`; else ConflictError. */
  writeStatus(ref: ObjectRef, status: unknown, resourceVersion: string): Promise<StoredObject>;
  /** Creates or replaces an object's desired state (its status is kept). Not every backend allows it. */
  apply(object: StoredObject): Promise<StoredObject>;
  /** Removes an object; false when it did not exist. */
  delete(ref: ObjectRef): Promise<boolean>;
  readonly leases: LeaseStore;
  /** Where decisions are told to users; only the Kubernetes store has it (Events of events.k8s.io/v1). */
  readonly events?: EventRecorder;
  health(): StoreHealth;
  close(): Promise<void>;
}

export const refText = (ref: ObjectRef): string => `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
export const refOf = (o: StoredObject): ObjectRef => ({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
/** What an Event about `o` is regarding: its reference and, when the store gave it one, its uid. */
export const regardingOf = (o: StoredObject): ObjectRef & { uid: string | undefined } => ({ ...refOf(o), uid: typeof o.metadata.uid === 'string' ? o.metadata.uid : undefined });
/** Map key of an object within its kind. */
export const objectKey = (o: { metadata: { namespace?: string | undefined; name: string } }): string =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
