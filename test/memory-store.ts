// An in-memory Store for unit tests of the parts above the store (reflector, operator). It keeps
// the interface's rules (revisions, conflicts, lease expiry) and can drop watches on demand.
import { ConflictError, ExpiredError, NotFoundError, objectKey, type Lease, type ListResult, type ObjectRef, type Store, type StoredObject, type Watch, type WatchEvent } from '../store/index.js';

const keyOf = (ref: ObjectRef) => `${ref.kind}|${ref.namespace ?? ''}|${ref.name}`;

export class MemoryStore implements Store {
  readonly backend = 'embedded' as const;
  private revision = 0;
  private objects = new Map<string, StoredObject>();
  private log: { rev: number; kind: string; event: WatchEvent }[] = [];
  private watchers = new Set<{ kind: string; onEvent: (e: WatchEvent) => void; onError: (e: Error) => void }>();
  private leaseMap = new Map<string, Lease>();
  private leaseWatchers = new Set<{ prefix: string; onChange: (leases: Lease[]) => void }>();
  now = () => Date.now();
  /** Fail every status write with a conflict this many times (to test retries). */
  conflictsToInject = 0;
  /** Watch events of these kinds wait until releaseEvents(), as a watch trailing behind the store's writes. */
  readonly heldKinds = new Set<string>();
  private held: { w: { onEvent: (e: WatchEvent) => void }; event: WatchEvent }[] = [];
  writes = 0;

  list(kind: string): Promise<ListResult> {
    const items = [...this.objects.values()].filter((o) => o.kind === kind).map((o) => structuredClone(o));
    return Promise.resolve({ items, revision: String(this.revision) });
  }

  watch(kind: string, revision: string, onEvent: (e: WatchEvent) => void, onError: (e: Error) => void): Watch {
    const w = { kind, onEvent, onError };
    const from = Number(revision);
    if (this.log.length > 0 && from < this.log[0]!.rev - 1) {
      queueMicrotask(() => onError(new ExpiredError(`revision ${revision} compacted`)));
      return { close: () => undefined };
    }
    for (const entry of this.log) if (entry.rev > from && entry.kind === kind) queueMicrotask(() => onEvent(entry.event));
    this.watchers.add(w);
    return { close: () => this.watchers.delete(w) };
  }

  /** Ends every watch with an error, as a store restart would. */
  dropWatches(): void {
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      w.onError(new Error('connection reset'));
    }
  }

  private emit(kind: string, event: WatchEvent): void {
    this.log.push({ rev: this.revision, kind, event });
    if (this.log.length > 10_000) this.log.shift();
    for (const w of this.watchers) {
      if (w.kind !== kind) continue;
      if (this.heldKinds.has(kind)) this.held.push({ w, event: structuredClone(event) });
      else w.onEvent(structuredClone(event));
    }
  }

  /** Delivers the held events, in order, and stops holding. */
  releaseEvents(): void {
    this.heldKinds.clear();
    for (const { w, event } of this.held.splice(0)) w.onEvent(event);
  }

  apply(object: StoredObject): Promise<StoredObject> {
    const ref = { kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name };
    const old = this.objects.get(keyOf(ref));
    const specChanged = JSON.stringify(old?.spec) !== JSON.stringify(object.spec);
    const next: StoredObject = {
      ...structuredClone(object),
      metadata: {
        ...structuredClone(object.metadata),
        resourceVersion: String(++this.revision),
        creationTimestamp: old?.metadata.creationTimestamp ?? object.metadata.creationTimestamp ?? new Date(this.now()).toISOString(),
        generation: (old?.metadata.generation ?? 0) + (specChanged || !old ? 1 : 0),
      },
      ...(old?.status !== undefined ? { status: old.status } : {}),
    };
    this.objects.set(keyOf(ref), next);
    this.emit(object.kind, { type: old ? 'modified' : 'added', object: next });
    return Promise.resolve(structuredClone(next));
  }

  delete(ref: ObjectRef): Promise<boolean> {
    const old = this.objects.get(keyOf(ref));
    if (!old) return Promise.resolve(false);
    this.objects.delete(keyOf(ref));
    this.revision++;
    this.emit(ref.kind, { type: 'deleted', object: old });
    return Promise.resolve(true);
  }

  writeStatus(ref: ObjectRef, status: unknown, resourceVersion: string): Promise<StoredObject> {
    const old = this.objects.get(keyOf(ref));
    if (!old) return Promise.reject(new NotFoundError(ref));
    if (this.conflictsToInject > 0) {
      this.conflictsToInject--;
      return Promise.reject(new ConflictError(ref, resourceVersion, old.metadata.resourceVersion));
    }
    if (old.metadata.resourceVersion !== resourceVersion) return Promise.reject(new ConflictError(ref, resourceVersion, old.metadata.resourceVersion));
    this.writes++;
    const next = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.revision) }, status: structuredClone(status) };
    this.objects.set(keyOf(ref), next);
    this.emit(ref.kind, { type: 'modified', object: next });
    return Promise.resolve(structuredClone(next));
  }

  get(kind: string, key: string): StoredObject | undefined {
    return [...this.objects.values()].find((o) => o.kind === kind && objectKey(o) === key);
  }

  private heldLeases(prefix: string): Lease[] {
    return [...this.leaseMap.values()].filter((l) => l.name.startsWith(prefix) && l.holder !== '').sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Tells the lease watchers after a write, later (as a watch event arrives after the write's answer). */
  private leaseChanged(name: string): void {
    for (const w of this.leaseWatchers) if (name.startsWith(w.prefix)) queueMicrotask(() => this.leaseWatchers.has(w) && w.onChange(this.heldLeases(w.prefix)));
  }

  readonly leases = {
    acquireOrRenew: (name: string, holder: string, durationMs: number, data = ''): Promise<{ held: boolean; lease: Lease }> => {
      const now = this.now();
      const cur = this.leaseMap.get(name);
      if (cur && cur.holder !== holder && cur.renewedAt + cur.durationMs > now) return Promise.resolve({ held: false, lease: cur });
      const lease: Lease =
        cur?.holder === holder ? { ...cur, renewedAt: now, durationMs, data } : { name, holder, durationMs, acquiredAt: now, renewedAt: now, transitions: (cur?.transitions ?? 0) + 1, data };
      this.leaseMap.set(name, lease);
      this.leaseChanged(name);
      return Promise.resolve({ held: true, lease });
    },
    release: (name: string, holder: string): Promise<void> => {
      const cur = this.leaseMap.get(name);
      if (cur?.holder === holder) {
        this.leaseMap.set(name, { ...cur, holder: '', renewedAt: -Infinity });
        this.leaseChanged(name);
      }
      return Promise.resolve();
    },
    get: (name: string): Promise<Lease | undefined> => Promise.resolve(this.leaseMap.get(name)),
    list: (prefix: string): Promise<Lease[]> => Promise.resolve(this.heldLeases(prefix)),
    watch: (prefix: string, onChange: (leases: Lease[]) => void): (() => void) => {
      const w = { prefix, onChange };
      this.leaseWatchers.add(w);
      queueMicrotask(() => this.leaseWatchers.has(w) && onChange(this.heldLeases(prefix)));
      return () => void this.leaseWatchers.delete(w);
    },
  };

  health() {
    return { ok: true, message: 'in memory' };
  }

  close(): Promise<void> {
    this.watchers.clear();
    this.leaseWatchers.clear();
    return Promise.resolve();
  }
}
