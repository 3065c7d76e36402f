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
import { Allocator, poolConditions, poolInput, serviceInput, serviceStatus, mergeConditions, type PoolInput } from '../lbipam/index.js';
import { ConflictError, NotFoundError, objectKey, type Reflector, type Store, type StoredObject } from '../store/index.js';
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

/** Status writes in flight at once: enough to hide store latency, few enough not to flood it. */
const writeConcurrency = 16;

/** Equal apart from lastTransitionTime and order. */
const conditionsEqual = (a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean => {
  const text = (cs: readonly Condition[] | undefined) =>
    JSON.stringify((cs ?? []).map(({ lastTransitionTime: _, ...c }) => c).sort((x, y) => (x.type < y.type ? -1 : x.type > y.type ? 1 : 0)));
  return text(a) === text(b);
};

const ingressEqual = (a: ServiceStatus | undefined, b: ServiceStatus | undefined): boolean =>
  JSON.stringify(a?.loadBalancer?.ingress ?? []) === JSON.stringify(b?.loadBalancer?.ingress ?? []);

export class Operator {
  private allocator: Allocator | undefined;
  private poolVersions = new Map<string, string>();
  private serviceVersions = new Map<string, string>();
  private dirtyServices = new Set<string>();
  private allDirty = true;
  private scheduled = false;
  private running: Promise<void> | undefined;
  private active = false;
  private unsubscribe: (() => void)[] = [];
  private readonly now: () => string;

  constructor(private readonly deps: OperatorDeps) {
    this.now = deps.now ?? (() => new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
  }

  /** Takes the role: rebuilds the allocator from the stored statuses and starts reconciling. */
  start(): void {
    if (this.active) return;
    this.active = true;
    this.allocator = undefined;
    this.allDirty = true;
    this.unsubscribe = [
      this.deps.pools.onChange(() => {
        this.allDirty = true;
        this.schedule();
      }),
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
        inputs.push({ name: o.metadata.name, created: o.metadata.creationTimestamp ?? '\uffff', generation: o.metadata.generation, priority: undefined, disabled: true, ranges: [], selector: { requirements: [], text: '' }, errors: checked.errors });
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
      if (poolsChanged) this.allocator.setPools(pools.inputs);
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
        }
      }
    }
    this.poolVersions = poolVersions;
    const changed = new Set(this.allocator.drainChanged());
    const check = this.allDirty ? this.deps.services.items().map(objectKey) : [...new Set([...changed, ...this.dirtyServices])];
    this.allDirty = false;
    this.dirtyServices.clear();

    const writes: (() => Promise<void>)[] = [];
    for (const key of check) {
      const o = this.deps.services.get(key);
      if (!o) continue;
      const write = this.serviceWrite(key, o);
      if (write) writes.push(write);
    }
    for (const p of this.allocator.pools()) {
      const o = pools.objects.get(p.name);
      if (!o) continue;
      const status = (o.status ?? {}) as PoolStatus;
      const fresh = poolConditions(p, o.metadata.generation);
      if (conditionsEqual(status.conditions?.filter((c) => fresh.some((f) => f.type === c.type)), fresh)) continue;
      writes.push(() => this.write(o, { ...status, conditions: mergeConditions(status.conditions, fresh, this.now()) }, 'pool'));
    }
    await runLimited(writes, writeConcurrency);

    const results = this.allocator.results();
    metrics.servicesManaged.set(results.size);
    metrics.servicesSatisfied.set([...results.values()].filter((r) => r.satisfied).length);
    for (const p of this.allocator.pools()) {
      metrics.poolIPs.set({ pool: p.name, state: 'total' }, Number(p.total));
      metrics.poolIPs.set({ pool: p.name, state: 'used' }, Number(p.used));
      metrics.poolIPs.set({ pool: p.name, state: 'available' }, Number(p.available));
    }
    metrics.reconciles.inc({ controller: 'lbipam' });
    metrics.reconcileSeconds.observe({ controller: 'lbipam' }, Number(process.hrtime.bigint() - started) / 1e9);
  }

  /** The status write a service needs, or undefined when its stored status is already right. */
  private serviceWrite(key: string, o: StoredObject): (() => Promise<void>) | undefined {
    const result = this.allocator!.result(key);
    const current = (o.status ?? {}) as ServiceStatus;
    const ours = current.conditions?.some((c) => c.type === ipamConditionType) ?? false;
    if (!result && !ours) return undefined; // not ours, never was: leave it alone
    const desired = serviceStatus(current, result, o.metadata.generation, this.now());
    if (ingressEqual(current, desired) && conditionsEqual(current.conditions, desired.conditions)) return undefined;
    if (result) {
      if (result.satisfied) this.deps.log.info({ service: key, ips: result.ips, reason: result.reason }, result.message);
      else this.deps.log.warn({ service: key, ips: result.ips, reason: result.reason }, result.message);
    } else {
      this.deps.log.info({ service: key }, 'service no longer managed: addresses released');
    }
    return () => this.write(o, desired, 'service');
  }

  private async write(o: StoredObject, status: unknown, what: 'service' | 'pool'): Promise<void> {
    if (!this.active) return;
    const ref = { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name };
    try {
      await this.deps.store.writeStatus(ref, status, o.metadata.resourceVersion ?? '');
      this.deps.metrics.statusWrites.inc({ kind: what, result: 'ok' });
    } catch (e) {
      if (e instanceof ConflictError || e instanceof NotFoundError) {
        // The watch brings the fresh object; reconcile it again from there.
        this.deps.metrics.statusWrites.inc({ kind: what, result: 'conflict' });
        if (what === 'pool') this.allDirty = true;
        else this.dirtyServices.add(objectKey(o));
        this.schedule();
        return;
      }
      this.deps.metrics.storeErrors.inc({ op: 'writeStatus' });
      this.deps.log.warn({ object: objectKey(o), err: (e as Error).message }, 'status write failed; retrying');
      if (what === 'pool') this.allDirty = true;
      else this.dirtyServices.add(objectKey(o));
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
