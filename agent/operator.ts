// The operator role: feeds pools and Services from the store into the LB-IPAM allocator and
// writes the outcome back as status. Level-triggered: it compares what the store shows with what
// the allocator decided and writes only the difference; a lost race is retried from fresh state.
import {
  decodeObject,
  ipamConditionType,
  LoadBalancerIPPool as PoolSchema,
  validate,
  type Condition,
  type PoolStatus,
  type Service,
  type ServiceStatus,
} from '../api/index.js';
import { Allocator, invalidPoolInput, mergeConditions, poolConditions, poolInput, serviceInput, serviceStatus, type PoolInput, type ServiceResult } from '../lbipam/index.js';
import { ConflictError, NotFoundError, objectKey, regardingOf, type Reflector, type Store, type StoredObject } from '../store/index.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface OperatorDeps {
  store: Store;
  pools: Reflector;
  services: Reflector;
  log: Logger;
  metrics: Metrics;
  now?: () => string;
}

/**
 * Status writes in flight at once: enough to hide store latency (etcd answers each in about a
 * millisecond; the embedded store commits the writes made together in one transaction), few
 * enough not to flood it.
 */
const writeConcurrency = 256;

/** How long an object waits for the watch to show a version newer than one this operator wrote from. */
const behindWaitMs = 10_000;

/** The fields a condition is compared on: all but lastTransitionTime. */
const conditionText = (c: Condition): string => `${c.type}\u0000${c.status}\u0000${c.reason}\u0000${c.message}\u0000${c.observedGeneration ?? ''}`;

/** Equal apart from lastTransitionTime and order. Runs for every service on every full pass. */
const conditionsEqual = (a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean => {
  const x = a ?? [];
  const y = b ?? [];
  if (x.length !== y.length) return false;
  if (x.length === 1) return conditionText(x[0]!) === conditionText(y[0]!);
  const ys = new Set(y.map(conditionText));
  return x.every((c) => ys.has(conditionText(c)));
};

/** An LB-IPAM reason as an Event reason: `no_pool` → `NoPool`. */
const eventReason = (reason: string): string => reason.replace(/(?:^|_)([a-z])/g, (_, c: string) => c.toUpperCase());

const ingressEqual = (a: ServiceStatus | undefined, b: ServiceStatus | undefined): boolean => {
  const x = a?.loadBalancer?.ingress ?? [];
  const y = b?.loadBalancer?.ingress ?? [];
  return x.length === y.length && (x.length === 0 || JSON.stringify(x) === JSON.stringify(y));
};

export class Operator {
  private allocator: Allocator | undefined;
  private poolVersions = new Map<string, string>();
  private serviceVersions = new Map<string, string>();
  /**
   * Objects (by kind and key) whose copy in the reflector is known to be older than the store's:
   * this operator wrote their status, or lost a race on it, from resourceVersion `stale`. Until
   * the watch shows a newer version, a write computed from that copy could only lose its race
   * again, so they wait (on etcd the watch can trail thousands of writes behind: without this, the
   * first pass turns into a storm of conflicts). `wrote`: the version this operator's write made.
   */
  private behind = new Map<string, { stale: string; wrote: string | undefined; at: number }>();
  /** Services to check once the watch has caught up with them. */
  private recheck = new Set<string>();
  private recheckTimer: NodeJS.Timeout | undefined;
  private dirtyServices = new Set<string>();
  private allDirty = true;
  private scheduled = false;
  private running: Promise<void> | undefined;
  private active = false;
  private unsubscribe: (() => void)[] = [];
  private readonly now: () => string;
  /** Per service, the result its last Event told (satisfied, IPs, reason): one Event per change, not per write. */
  private told = new Map<string, string>();

  constructor(private readonly deps: OperatorDeps) {
    this.now = deps.now ?? (() => new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
  }

  /** Takes the role: rebuilds the allocator from the stored statuses and starts reconciling. */
  start(): void {
    if (this.active) return;
    this.active = true;
    this.allocator = undefined;
    this.allDirty = true;
    this.behind.clear();
    this.recheck.clear();
    this.unsubscribe = [
      // Every pass reads all pools and checks their status; a change of their specs makes it check every service.
      this.deps.pools.onChange(() => this.schedule()),
      this.deps.services.onChange((key) => {
        if (key === undefined) this.allDirty = true;
        else this.dirtyServices.add(key);
        this.schedule();
      }),
    ];
    this.schedule();
  }

  /** Gives the role up; in-flight writes finish. */
  async stop(): Promise<void> {
    this.active = false;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    clearTimeout(this.recheckTimer);
    this.recheckTimer = undefined;
    await this.running;
  }

  get isActive(): boolean {
    return this.active;
  }

  /** Resolves when no reconcile is pending or running (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running || this.scheduled) await (this.running ?? new Promise((r) => setImmediate(r)));
  }

  private schedule(): void {
    if (this.scheduled || !this.active) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.running) {
        void this.running.then(() => this.schedule());
        return;
      }
      this.running = this.reconcile()
        .catch((e: unknown) => this.deps.log.error({ err: e }, 'reconcile failed'))
        .finally(() => {
          this.running = undefined;
        });
    });
  }

  private decodePools(): { inputs: PoolInput[]; objects: Map<string, StoredObject> } {
    const inputs: PoolInput[] = [];
    const objects = new Map<string, StoredObject>();
    for (const o of this.deps.pools.items()) {
      const checked = validate(PoolSchema, o);
      if (!checked.ok) {
        // A stored pool that breaks the schema is still a pool: invalid, so its holders keep their IPs.
        inputs.push(invalidPoolInput(o.metadata, checked.errors));
      } else {
        inputs.push(poolInput(checked.value));
      }
      objects.set(o.metadata.name, o);
    }
    return { inputs, objects };
  }

  private decodeService(o: StoredObject): Service | undefined {
    const checked = decodeObject(o, { file: 'store', line: 0 });
    if (checked && 'object' in checked && checked.kind === 'Service') return checked.object;
    this.deps.log.warn({ service: objectKey(o), reason: checked && 'reason' in checked ? checked.reason : 'empty' }, 'ignoring a Service that breaks its schema');
    return undefined;
  }

  private async reconcile(): Promise<void> {
    if (!this.active) return;
    const started = process.hrtime.bigint();
    const { metrics } = this.deps;
    const pools = this.decodePools();
    // Status writes change resourceVersion; only what the allocator reads decides a rebuild.
    const poolVersions = new Map([...pools.objects].map(([k, o]) => [k, JSON.stringify([o.spec, o.metadata.creationTimestamp, o.metadata.generation])]));
    const poolsChanged = poolVersions.size !== this.poolVersions.size || [...poolVersions].some(([k, v]) => this.poolVersions.get(k) !== v);

    if (!this.allocator) {
      const services = this.deps.services.items().flatMap((o) => this.decodeService(o) ?? []);
      this.allocator = new Allocator(pools.inputs, services.map(serviceInput));
      this.serviceVersions = new Map(this.deps.services.items().map((o) => [objectKey(o), o.metadata.resourceVersion ?? '']));
      this.deps.log.info({ pools: pools.inputs.length, services: services.length }, 'operator: rebuilt assignments from stored status');
      this.allDirty = true;
    } else {
      if (poolsChanged) {
        this.allocator.setPools(pools.inputs);
        this.allDirty = true;
      }
      const keys = this.allDirty ? new Set([...this.serviceVersions.keys(), ...this.deps.services.items().map(objectKey)]) : this.dirtyServices;
      for (const key of keys) {
        const o = this.deps.services.get(key);
        const version = o?.metadata.resourceVersion ?? '';
        if (o && this.serviceVersions.get(key) === version) continue;
        const svc = o ? this.decodeService(o) : undefined;
        if (svc) {
          this.allocator.upsertService(serviceInput(svc));
          this.serviceVersions.set(key, version);
        } else if (!o) {
          this.allocator.deleteService(key);
          this.serviceVersions.delete(key);
          this.told.delete(key);
          this.behind.delete(`Service ${key}`);
        }
      }
    }
    this.poolVersions = poolVersions;
    const changed = new Set(this.allocator.drainChanged());
    // A service whose only news is the status this operator wrote is settled, unless its result changed since.
    const news = [...this.dirtyServices].filter((key) => {
      const v = this.deps.services.get(key)?.metadata.resourceVersion;
      return v === undefined || v !== this.behind.get(`Service ${key}`)?.wrote;
    });
    const due = [...this.recheck].filter((key) => !this.isBehind(this.deps.services.get(key)));
    for (const key of due) this.recheck.delete(key);
    const check = this.allDirty ? this.deps.services.items().map(objectKey) : [...new Set([...changed, ...news, ...due])];
    this.allDirty = false;
    this.dirtyServices.clear();

    const writes: (() => Promise<void>)[] = [];
    const now = this.now(); // one timestamp for the pass (whole seconds anyway)
    for (const key of check) {
      const o = this.deps.services.get(key);
      if (!o) continue;
      if (this.isBehind(o)) {
        this.recheck.add(key);
        this.wakeLater();
        continue;
      }
      const write = this.serviceWrite(key, o, now);
      if (write) writes.push(write);
    }
    for (const p of this.allocator.pools()) {
      const o = pools.objects.get(p.name);
      if (!o) continue;
      if (this.isBehind(o)) {
        this.wakeLater(); // its next event schedules a pass, which checks every pool
        continue;
      }
      const status = (o.status ?? {}) as PoolStatus;
      const fresh = poolConditions(p, o.metadata.generation);
      if (conditionsEqual(status.conditions?.filter((c) => fresh.some((f) => f.type === c.type)), fresh)) continue;
      writes.push(() => this.write(o, { ...status, conditions: mergeConditions(status.conditions, fresh, now) }, 'pool'));
    }
    await runLimited(writes, writeConcurrency);

    const counts = this.allocator.counts();
    metrics.servicesManaged.set(counts.managed);
    metrics.servicesSatisfied.set(counts.satisfied);
    for (const p of this.allocator.pools()) {
      metrics.poolIPs.set({ pool: p.name, state: 'total' }, Number(p.total));
      metrics.poolIPs.set({ pool: p.name, state: 'used' }, Number(p.used));
      metrics.poolIPs.set({ pool: p.name, state: 'available' }, Number(p.available));
    }
    metrics.reconciles.inc({ controller: 'lbipam' });
    metrics.reconcileSeconds.observe({ controller: 'lbipam' }, Number(process.hrtime.bigint() - started) / 1e9);
  }

  /** True while the reflector still shows the version this operator wrote from or lost with (bounded: a lost event must not silence an object). */
  private isBehind(o: StoredObject | undefined): boolean {
    const b = o && this.behind.get(`${o.kind} ${objectKey(o)}`);
    return b !== undefined && b.stale === o!.metadata.resourceVersion && Date.now() - b.at < behindWaitMs;
  }

  /** The watch's next event for a waiting object schedules a pass; this one is for a watch that never brings it. */
  private wakeLater(): void {
    this.recheckTimer ??= setTimeout(() => {
      this.recheckTimer = undefined;
      this.schedule();
    }, behindWaitMs + 100);
    this.recheckTimer.unref();
  }

  /** The status write a service needs, or undefined when its stored status is already right. */
  private serviceWrite(key: string, o: StoredObject, now: string): (() => Promise<void>) | undefined {
    const result = this.allocator!.result(key);
    const current = (o.status ?? {}) as ServiceStatus;
    const ours = current.conditions?.some((c) => c.type === ipamConditionType) ?? false;
    if (!result && !ours) return undefined; // not ours, never was: leave it alone
    const desired = serviceStatus(current, result, o.metadata.generation, now);
    if (ingressEqual(current, desired) && conditionsEqual(current.conditions, desired.conditions)) return undefined;
    if (result) {
      if (result.satisfied) this.deps.log.info({ service: key, ips: result.ips, reason: result.reason }, result.message);
      else this.deps.log.warn({ service: key, ips: result.ips, reason: result.reason }, result.message);
      this.tell(key, o, result);
    } else {
      this.deps.log.info({ service: key }, 'service no longer managed: addresses released');
      this.told.delete(key);
    }
    return () => this.write(o, desired, 'service');
  }

  /** Records the result as an Event when it differs from the last one told (before the write: it waits behind no status writes). */
  private tell(key: string, o: StoredObject, r: ServiceResult): void {
    const told = `${r.satisfied}\u0000${r.ips.join(',')}\u0000${r.reason}`;
    if (this.told.get(key) === told) return;
    this.told.set(key, told);
    this.deps.store.events?.record(regardingOf(o), { type: r.satisfied ? 'Normal' : 'Warning', reason: r.satisfied ? 'IPAllocated' : eventReason(r.reason), action: 'Allocate', note: r.message });
  }

  private async write(o: StoredObject, status: unknown, what: 'service' | 'pool'): Promise<void> {
    if (!this.active) return;
    const ref = { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name };
    const key = objectKey(o);
    const from = o.metadata.resourceVersion ?? '';
    try {
      const written = await this.deps.store.writeStatus(ref, status, from);
      this.deps.metrics.statusWrites.inc({ kind: what, result: 'ok' });
      const version = written.metadata.resourceVersion ?? '';
      if (version !== from) this.behind.set(`${o.kind} ${key}`, { stale: from, wrote: version, at: Date.now() });
      // The write changed nothing the allocator reads (it keeps what it decided, not status): when
      // the watch brings this version back, there is nothing to redo for it.
      if (what === 'service' && this.serviceVersions.get(key) === from) this.serviceVersions.set(key, version);
    } catch (e) {
      if (e instanceof ConflictError || e instanceof NotFoundError) {
        this.deps.metrics.statusWrites.inc({ kind: what, result: 'conflict' });
        if (e instanceof ConflictError && e.actual === from) {
          // The store has the version we wrote from after all: nothing newer to wait for.
          this.behind.delete(`${o.kind} ${key}`);
          if (what === 'service') this.dirtyServices.add(key);
          this.schedule();
          return;
        }
        // The watch brings the fresh object, and its event a new pass that checks it again.
        this.behind.set(`${o.kind} ${key}`, { stale: from, wrote: undefined, at: Date.now() });
        if (what === 'service') this.recheck.add(key);
        this.wakeLater();
        return;
      }
      this.deps.metrics.storeErrors.inc({ op: 'writeStatus' });
      this.deps.log.warn({ object: key, err: (e as Error).message }, 'status write failed; retrying');
      this.behind.delete(`${o.kind} ${key}`);
      if (what === 'service') this.dirtyServices.add(key);
      setTimeout(() => this.schedule(), 500).unref();
    }
  }
}

async function runLimited(tasks: readonly (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
