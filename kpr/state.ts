// The datapath's state (what the BPF maps hold, without byte layout) and the planner that turns
// desired frontends into the ordered map writes that reach them. Pure: the current state is only
// read; the result is the ops, the delta to apply once they are written, and problems as data.
//
// Write order (no lookup ever meets a missing backend or slot, whatever op it runs between):
//   1. upsert new/changed backends     2. write slots / Maglev tables of new/changed services
//   3. upsert service entries (count)  4. delete services that are gone
//   5. delete slots beyond the count, Maglev tables no longer used   6. delete unreferenced backends
// Ids released by a plan are reused only by a later plan: the released entry still lives until
// steps 4-6, so reusing it in steps 1-3 would point a live service at someone else's backends.
import { isPrime, maglevTable } from './maglev.js';
import {
  backendKey,
  frontendKey,
  sortEndpoints,
  type Algorithm,
  type Backend,
  type BackendState,
  type Frontend,
  type FrontendType,
  type Problem,
  type Protocol,
} from './model.js';

export interface FrontendAddress {
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface DatapathService {
  readonly id: number;
  readonly frontend: FrontendAddress;
  readonly type: FrontendType;
  readonly algorithm: Algorithm;
  /** 0 = no session affinity. */
  readonly affinityTimeoutSeconds: number;
  /** Backend ids by slot (slot i + 1 holds slots[i]); the count is the length; 0 = a hole to repair. */
  readonly slots: readonly number[];
  /** Backend id per table entry; present for Maglev services with at least one backend. */
  readonly maglev?: Uint32Array;
}

export interface DatapathBackend {
  readonly id: number;
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly state: BackendState;
  /** On this node (PlanOptions.nodeName): external traffic reaches it without source NAT. Absent when not. */
  readonly local?: boolean;
}

export interface DatapathState {
  /** Keyed by frontendKey. */
  readonly services: Map<string, DatapathService>;
  readonly backends: Map<number, DatapathBackend>;
}

export type Op =
  | { op: 'upsertBackend'; backend: DatapathBackend }
  /** slots[i] (1-based) gets backendIds[i]. */
  | { op: 'setSlots'; serviceId: number; slots: readonly number[]; backendIds: readonly number[] }
  | { op: 'setMaglev'; serviceId: number; table: Uint32Array }
  | { op: 'upsertService'; service: DatapathService }
  | { op: 'deleteService'; key: string; service: DatapathService }
  | { op: 'deleteSlots'; serviceId: number; slots: number[] }
  | { op: 'deleteMaglev'; serviceId: number }
  | { op: 'deleteBackend'; id: number };

export interface PlanOptions {
  readonly maglevTableSize: number;
  /** This node: its backends are marked local. */
  readonly nodeName?: string;
  /** Entries the service map holds: a plan needs room for current + new services (deletions come last). */
  readonly maxServices?: number;
  /** Entries the backend map holds, counted the same way. */
  readonly maxBackends?: number;
}

/** What a plan changes: a new value per touched key, undefined for a deletion. */
export interface DatapathDelta {
  readonly services: Map<string, DatapathService | undefined>;
  /** Backends given a new id, in id order (a list: 100,000 of them in a first pass). */
  readonly added: readonly DatapathBackend[];
  /** Backends that exist and change or go. */
  readonly backends: Map<number, DatapathBackend | undefined>;
}

export interface DatapathPlan {
  readonly ops: Op[];
  readonly delta: DatapathDelta;
  readonly problems: Problem[];
}

export const emptyDatapathState = (): DatapathState => ({ services: new Map(), backends: new Map() });

// ---- the index: derived data that makes a one-service change O(its backends) -------------------

/** Ids in use; every id below `lowest` is used, so the lowest free id is found by a short scan. */
interface IdPool {
  readonly used: { has(id: number): boolean };
  lowest: number;
}

type Identity = { readonly address: string; readonly port: number; readonly protocol: Protocol };
type Identified = Identity & { readonly id: number };

const sameIdentity = (a: Identity, b: Identity): boolean => a.port === b.port && a.protocol === b.protocol && a.address === b.address;

/**
 * Backend identity → id without building a string per lookup (100,000 of them per full plan):
 * keyed by address, the value being the backend entry itself (nothing allocated per backend); a
 * second port or protocol of one address goes to a map keyed by backendKey.
 */
class IdentityIds {
  private readonly byAddress = new Map<string, Identified>();
  private readonly others = new Map<string, Identified>();

  get size(): number {
    return this.byAddress.size + this.others.size;
  }

  get(e: Identity): number | undefined {
    if (this.byAddress.size === 0 && this.others.size === 0) return undefined; // a first pass asks the empty index 100,000 times
    const held = this.byAddress.get(e.address);
    if (held !== undefined && held.port === e.port && held.protocol === e.protocol) return held.id;
    return this.others.size === 0 ? undefined : this.others.get(backendKey(e))?.id;
  }

  set(entry: Identified): void {
    const held = this.byAddress.get(entry.address);
    if (held === undefined || sameIdentity(held, entry)) {
      this.byAddress.set(entry.address, entry);
      if (this.others.size > 0) this.others.delete(backendKey(entry));
    } else this.others.set(backendKey(entry), entry);
  }

  delete(e: Identity): void {
    const held = this.byAddress.get(e.address);
    if (held !== undefined && sameIdentity(held, e)) this.byAddress.delete(e.address);
    else if (this.others.size > 0) this.others.delete(backendKey(e));
  }
}

/** Ids up to here are counted in a typed array (16 MiB at most); an adopted map may hold any u32 id beyond. */
const DENSE_IDS = 2 ** 22;

/**
 * How many services reference each backend id. Beacon hands out the lowest free ids, so they are
 * dense: a typed array indexed by id, with no hashing, instead of a map of 100,000 entries.
 */
export class RefCounts {
  private dense = new Int32Array(1024);
  private readonly sparse = new Map<number, number>();

  get(id: number): number {
    return id < this.dense.length ? this.dense[id]! : (this.sparse.get(id) ?? 0);
  }

  add(id: number, by: number): void {
    if (id >= this.dense.length && id < DENSE_IDS) {
      const grown = new Int32Array(Math.min(DENSE_IDS, 2 ** Math.ceil(Math.log2(id + 1))));
      grown.set(this.dense);
      this.dense = grown;
    }
    if (id < this.dense.length) this.dense[id]! += by;
    else {
      const count = (this.sparse.get(id) ?? 0) + by;
      if (count !== 0) this.sparse.set(id, count);
      else this.sparse.delete(id);
    }
  }
}

interface Index {
  /** Backend identity → its id. */
  byIdentity: IdentityIds;
  /** Backend id → how many services reference it (slots or Maglev table). */
  readonly refs: RefCounts;
  readonly serviceIds: IdPool & { readonly used: Set<number> };
  /** Backed by the state's backend map, which is keyed by id. */
  readonly backendIds: IdPool;
  serviceCount: number;
  backendCount: number;
}

const indexes = new WeakMap<DatapathState, Index>();

/**
 * The identities a plan gave ids, and the state it planned against, by its delta: an index that
 * knows no backend yet takes them whole instead of 100,000 insertions (the first full pass).
 */
const plannedIdentities = new WeakMap<DatapathDelta, { readonly state: DatapathState; readonly identities: IdentityIds }>();

const noIds: readonly number[] = [];

/** The ids a service references, each once (a planned service's slots are already unique). */
function referenced(service: DatapathService | undefined): readonly number[] {
  if (service === undefined) return noIds;
  if (service.maglev === undefined && !service.slots.includes(0) && distinct(service.slots)) return service.slots;
  const ids = new Set(service.slots);
  if (service.maglev) for (const id of service.maglev) ids.add(id);
  ids.delete(0);
  return [...ids];
}

/** No id twice; without allocating for the usual handful of backends (this runs for every service of every plan). */
function distinct(ids: readonly number[]): boolean {
  if (ids.length > 32) return new Set(ids).size === ids.length;
  for (let i = 1; i < ids.length; i++) for (let j = 0; j < i; j++) if (ids[i] === ids[j]) return false;
  return true;
}

const settle = (pool: IdPool): void => {
  while (pool.used.has(pool.lowest)) pool.lowest++;
};

function buildIndex(state: DatapathState): Index {
  const index: Index = {
    byIdentity: new IdentityIds(),
    refs: new RefCounts(),
    serviceIds: { used: new Set(), lowest: 1 },
    backendIds: { used: state.backends, lowest: 1 },
    serviceCount: state.services.size,
    backendCount: state.backends.size,
  };
  for (const service of state.services.values()) {
    index.serviceIds.used.add(service.id);
    for (const id of referenced(service)) index.refs.add(id, 1);
  }
  // Should an adopted state hold one identity twice, keep the referenced id, then the lowest.
  const preference = (id: number): number => (index.refs.get(id) > 0 ? 0 : 2 ** 32) + id;
  for (const backend of state.backends.values()) {
    const known = index.byIdentity.get(backend);
    if (known === undefined || preference(backend.id) < preference(known)) index.byIdentity.set(backend);
  }
  settle(index.serviceIds);
  settle(index.backendIds);
  return index;
}

/** The cached index of a state, rebuilt when the state was changed other than through applyDelta. */
function indexOf(state: DatapathState): Index {
  const cached = indexes.get(state);
  if (cached && cached.serviceCount === state.services.size && cached.backendCount === state.backends.size) return cached;
  const index = buildIndex(state);
  indexes.set(state, index);
  return index;
}

/**
 * Applies a plan's delta to the state in place, in O(delta): call it once the plan's ops are
 * written. Change a state only through this function, or planDatapathChanges may misjudge it.
 */
export function applyDelta(state: DatapathState, delta: DatapathDelta): void {
  const index = indexes.get(state);
  for (const [key, service] of delta.services) {
    const old = state.services.get(key);
    if (index) {
      for (const id of referenced(old)) index.refs.add(id, -1);
      for (const id of referenced(service)) index.refs.add(id, 1);
      if (old && old.id !== service?.id) {
        index.serviceIds.used.delete(old.id);
        release(index.serviceIds, old.id);
      }
      if (service) index.serviceIds.used.add(service.id);
    }
    if (service) state.services.set(key, service);
    else state.services.delete(key);
  }
  const planned = plannedIdentities.get(delta);
  plannedIdentities.delete(delta); // one index at most may own them
  for (const backend of delta.added) state.backends.set(backend.id, backend);
  if (index && planned?.state === state && index.byIdentity.size === 0) index.byIdentity = planned.identities; // the first pass: they are all it met
  else if (index) for (const backend of delta.added) index.byIdentity.set(backend);
  for (const [id, backend] of delta.backends) {
    const old = state.backends.get(id);
    if (index) {
      if (old && index.byIdentity.get(old) === id) index.byIdentity.delete(old);
      if (backend && index.byIdentity.get(backend) === undefined) index.byIdentity.set(backend);
    }
    if (backend) state.backends.set(id, backend);
    else state.backends.delete(id);
    if (index && !backend) release(index.backendIds, id);
  }
  if (index) {
    // Added ids count up, usually from the lowest free one: walking them spares a lookup each.
    for (const backend of delta.added) if (backend.id === index.backendIds.lowest) index.backendIds.lowest++;
    settle(index.serviceIds);
    settle(index.backendIds);
    index.serviceCount = state.services.size;
    index.backendCount = state.backends.size;
  }
}

/** Lets the next search start at a freed id. */
function release(pool: IdPool, id: number): void {
  if (id < pool.lowest) pool.lowest = id;
}

// ---- planning -------------------------------------------------------------------------------------

/**
 * The full plan: desired frontends against the whole current state (any state, e.g. adopted
 * after a restart), without the next state: apply the delta with applyDelta after the ops.
 */
export function planDatapathFull(current: DatapathState, frontends: readonly Frontend[], opts: PlanOptions): DatapathPlan {
  const desired = new Map<string, Frontend>();
  const problems: Problem[] = [];
  for (const frontend of frontends) {
    const key = frontendKey(frontend);
    if (!desired.has(key)) desired.set(key, frontend);
    else problems.push({ service: frontend.service, reason: 'duplicate_frontend', message: `${key} is given twice; the first is used` });
  }
  const changes = new Map<string, Frontend | undefined>(desired);
  for (const key of current.services.keys()) if (!desired.has(key)) changes.set(key, undefined);
  const plan = planChanges(current, changes, opts, true);
  return { ...plan, problems: [...problems, ...plan.problems] };
}

/** planDatapathFull and the state the maps hold once its ops are written (current is left as it is). */
export function planDatapath(current: DatapathState, frontends: readonly Frontend[], opts: PlanOptions): DatapathPlan & { next: DatapathState } {
  const plan = planDatapathFull(current, frontends, opts);
  const next: DatapathState = { services: new Map(current.services), backends: new Map(current.backends) };
  applyDelta(next, plan.delta);
  return { ...plan, next };
}

/**
 * Plans only the given frontends (undefined = gone), plus the deletion of the backends they
 * release: O(their backends) once the state's index exists. Same ordering and ids as planDatapath
 * would give for the same change; apply the returned delta with applyDelta after the ops.
 */
export function planDatapathChanges(current: DatapathState, changed: ReadonlyMap<string, Frontend | undefined>, opts: PlanOptions): DatapathPlan {
  return planChanges(current, changed, opts, false);
}

function planChanges(
  current: DatapathState,
  changed: ReadonlyMap<string, Frontend | undefined>,
  opts: PlanOptions,
  collectAll: boolean,
): DatapathPlan {
  if (!isPrime(opts.maglevTableSize)) throw new RangeError(`Maglev table size ${opts.maglevTableSize} is not a prime`);
  const index = indexOf(current);
  const maxServices = opts.maxServices ?? Infinity;
  const maxBackends = opts.maxBackends ?? Infinity;
  const problems: Problem[] = [];
  const added: DatapathBackend[] = []; // in id order: the allocator counts up
  const delta: DatapathDelta = { services: new Map(), added, backends: new Map() };
  const steps = { slots: [] as Op[], services: [] as Op[], deletes: [] as Op[], cleanup: [] as Op[] };
  const refChanges = new Map<number, number>();
  // Only backends that exist now can become unreferenced; the ones this plan adds are referenced.
  const count = (service: DatapathService | undefined, by: number): void => {
    if (current.backends.size === 0) return;
    for (const id of referenced(service)) if (current.backends.has(id)) refChanges.set(id, (refChanges.get(id) ?? 0) + by);
  };
  const newIds = new IdentityIds(); // identities given an id by this plan
  const nextServiceId = allocator(index.serviceIds);
  const nextBackendId = allocator(index.backendIds);
  let newServices = 0;
  const tables = new Map<string, Uint32Array>();

  // Frontends in address order, so ids are handed out the same way by a full and a partial plan.
  const work = sortEndpoints([...changed], ([key, frontend]) => frontend ?? current.services.get(key)?.frontend ?? { address: key, port: 0, protocol: 'TCP' });
  for (const [key, frontend] of work) {
    const old = current.services.get(key);
    if (frontend === undefined) {
      if (old === undefined) continue;
      delta.services.set(key, undefined);
      steps.deletes.push({ op: 'deleteService', key, service: old });
      if (old.slots.length > 0) steps.cleanup.push({ op: 'deleteSlots', serviceId: old.id, slots: range(1, old.slots.length) });
      if (old.maglev) steps.cleanup.push({ op: 'deleteMaglev', serviceId: old.id });
      count(old, -1);
      continue;
    }

    // Backend ids of the selected endpoints; new identities are counted before any id is taken.
    const backends = uniqueBackends(frontend.selected);
    const known = backends.map((backend) => index.byIdentity.get(backend) ?? newIds.get(backend));
    let missing = 0;
    for (const id of known) if (id === undefined) missing++;
    const full =
      !old && current.services.size + newServices + 1 > maxServices ? 'service' : current.backends.size + newIds.size + missing > maxBackends ? 'backend' : undefined;
    if (full) {
      problems.push({ service: frontend.service, reason: 'map_full', message: `${key} is not programmed: the ${full} map is full` });
      continue;
    }
    const slotIds: number[] = [];
    for (let i = 0; i < backends.length; i++) {
      const backend = backends[i]!;
      const local = opts.nodeName !== undefined && backend.nodeName === opts.nodeName;
      let id = known[i];
      if (id === undefined) {
        // A new identity: its entry is what this plan's later mentions find in newIds.
        const entry = datapathBackend((id = nextBackendId()), backend, local);
        newIds.set(entry);
        added.push(entry);
      } else {
        // Two frontends may see one backend in different states (display only): the first one
        // this plan meets decides, so a second full plan writes nothing.
        const now = current.backends.get(id);
        const metBefore = now === undefined ? newIds.get(backend) === id : delta.backends.has(id);
        if (!metBefore && (now?.state !== backend.state || (now.local ?? false) !== local)) delta.backends.set(id, datapathBackend(id, backend, local));
      }
      slotIds.push(id);
    }

    let algorithm = frontend.algorithm;
    if (algorithm === 'maglev' && slotIds.length >= opts.maglevTableSize) {
      problems.push({ service: frontend.service, reason: 'maglev_table_too_small', message: `${key} has ${slotIds.length} backends, more than a Maglev table of ${opts.maglevTableSize} holds; using random` });
      algorithm = 'random';
    }
    const { slots, writes } = layoutSlots(old?.slots ?? [], slotIds);
    const table = algorithm === 'maglev' && slotIds.length > 0 ? maglevOf(backends.map(backendKey), slotIds, opts.maglevTableSize, tables) : undefined;
    const maglev = table && old?.maglev && sameTable(old.maglev, table) ? old.maglev : table;
    const maglevChanged = maglev !== undefined && maglev !== old?.maglev;
    const affinityTimeoutSeconds = frontend.affinityTimeoutSeconds ?? 0;
    const entryChanged =
      !old ||
      old.type !== frontend.type ||
      old.algorithm !== algorithm ||
      old.affinityTimeoutSeconds !== affinityTimeoutSeconds ||
      old.slots.length !== slots.length;
    const maglevDropped = old?.maglev !== undefined && maglev === undefined;
    if (!entryChanged && writes.slots.length === 0 && !maglevChanged && !maglevDropped) continue;

    let id = old?.id;
    if (id === undefined) {
      id = nextServiceId();
      newServices++;
    }
    const entry = { id, frontend: { address: frontend.address, port: frontend.port, protocol: frontend.protocol }, type: frontend.type, algorithm, affinityTimeoutSeconds, slots };
    const service: DatapathService = maglev ? { ...entry, maglev } : entry;
    delta.services.set(key, service);
    if (writes.slots.length > 0) steps.slots.push({ op: 'setSlots', serviceId: id, slots: writes.slots, backendIds: writes.backendIds });
    if (maglevChanged) steps.slots.push({ op: 'setMaglev', serviceId: id, table: maglev });
    if (entryChanged) steps.services.push({ op: 'upsertService', service });
    if (old && old.slots.length > slots.length) steps.cleanup.push({ op: 'deleteSlots', serviceId: id, slots: range(slots.length + 1, old.slots.length) });
    if (maglevDropped) steps.cleanup.push({ op: 'deleteMaglev', serviceId: id });
    count(old, -1);
    count(service, +1);
  }

  // Backends nobody references any more; a full plan also collects those an adopted state left unreferenced.
  const unreferenced = new Set<number>();
  for (const [id, change] of refChanges) if (change < 0 && index.refs.get(id) + change <= 0) unreferenced.add(id);
  if (collectAll) for (const id of current.backends.keys()) if (index.refs.get(id) === 0 && !refChanges.has(id)) unreferenced.add(id);
  const deletions = [...unreferenced].filter((id) => current.backends.has(id)).sort((a, b) => a - b);
  for (const id of deletions) delta.backends.set(id, undefined);

  const rewritten = [...delta.backends.values()].filter((b) => b !== undefined).sort((a, b) => a.id - b.id);
  const upserts = rewritten.length === 0 ? added : mergeById(added, rewritten);
  const ops: Op[] = [
    ...upserts.map((backend): Op => ({ op: 'upsertBackend', backend })),
    ...steps.slots,
    ...steps.services,
    ...steps.deletes,
    ...steps.cleanup,
    ...deletions.map((id): Op => ({ op: 'deleteBackend', id })),
  ];
  plannedIdentities.set(delta, { state: current, identities: newIds });
  return { ops, delta, problems };
}

const datapathBackend = (id: number, { address, port, protocol, state }: Backend, local: boolean): DatapathBackend =>
  local ? { id, address, port, protocol, state, local } : { id, address, port, protocol, state };

/** Two lists in id order as one. */
function mergeById(a: readonly DatapathBackend[], b: readonly DatapathBackend[]): DatapathBackend[] {
  const out: DatapathBackend[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) out.push(j === b.length || (i < a.length && a[i]!.id < b[j]!.id) ? a[i++]! : b[j++]!);
  return out;
}

/** The backends without a repeated identity (the first is kept); the input itself when none repeats, as the model gives. */
function uniqueBackends(backends: readonly Backend[]): readonly Backend[] {
  const same = (a: Backend, b: Backend): boolean => a.address === b.address && a.port === b.port && a.protocol === b.protocol;
  if (backends.length <= 32) {
    let repeated = false;
    for (let i = 1; i < backends.length && !repeated; i++) for (let j = 0; j < i && !repeated; j++) repeated = same(backends[i]!, backends[j]!);
    if (!repeated) return backends;
  }
  const seen = new Set<string>();
  return backends.filter((b) => {
    const key = backendKey(b);
    return !seen.has(key) && (seen.add(key), true);
  });
}

/** Hands out the lowest ids not in use, in increasing order, without touching the pool. */
function allocator(pool: IdPool): () => number {
  let candidate = pool.lowest;
  return () => {
    while (pool.used.has(candidate)) candidate++;
    return candidate++;
  };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Slots for the wanted backends that rewrite as few slots as possible: a backend already in a
 * slot within the new count stays there, the others fill the free slots in selection order.
 */
function layoutSlots(old: readonly number[], wanted: readonly number[]): { slots: readonly number[]; writes: { slots: readonly number[]; backendIds: readonly number[] } } {
  if (old.length === wanted.length && old.every((id, i) => id === wanted[i])) return { slots: old, writes: { slots: noIds, backendIds: noIds } };
  if (old.length === 0) return { slots: wanted, writes: { slots: firstSlots(wanted.length), backendIds: wanted } };
  const want = new Set(wanted);
  const slots = new Array<number>(wanted.length).fill(0);
  const placed = new Set<number>();
  for (let i = 0; i < Math.min(old.length, wanted.length); i++) {
    const id = old[i]!;
    if (want.has(id) && !placed.has(id)) {
      slots[i] = id;
      placed.add(id);
    }
  }
  const writes = { slots: [] as number[], backendIds: [] as number[] };
  let free = 0;
  for (const id of wanted) {
    if (placed.has(id)) continue;
    while (slots[free] !== 0) free++;
    slots[free] = id;
    writes.slots.push(free + 1);
    writes.backendIds.push(id);
  }
  return { slots, writes };
}

const slotRanges: (readonly number[])[] = [];

/** Slots 1..n, shared (read-only) for the usual sizes: every new service writes them. */
function firstSlots(n: number): readonly number[] {
  return n > 256 ? range(1, n) : (slotRanges[n] ??= range(1, n));
}

/** The Maglev table as backend ids; services with the same backends share one table per plan. */
function maglevOf(identities: readonly string[], ids: readonly number[], size: number, cache: Map<string, Uint32Array>): Uint32Array {
  const cacheKey = [...identities].sort().join(' ');
  let table = cache.get(cacheKey);
  if (table === undefined) {
    table = maglevTable(identities, size);
    for (let j = 0; j < table.length; j++) table[j] = ids[table[j]!]!;
    cache.set(cacheKey, table);
  }
  return table;
}

function sameTable(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- display ---------------------------------------------------------------------------------------

export interface ServiceDescription {
  frontend: string;
  type: FrontendType;
  algorithm: Algorithm;
  backends: { address: string; port: number; state: BackendState }[];
}

/** What `beacon kpr services -o json` prints: frontends in address order, backends in identity order. */
export function describeServices(state: DatapathState): ServiceDescription[] {
  return sortEndpoints([...state.services.values()], (s) => s.frontend).map((service) => ({
    frontend: frontendKey(service.frontend),
    type: service.type,
    algorithm: service.algorithm,
    backends: sortEndpoints(
      service.slots.flatMap((id) => {
        const backend = state.backends.get(id);
        return backend ? [backend] : [];
      }),
      (b) => b,
    ).map(({ address, port, state }) => ({ address, port, state })),
  }));
}
