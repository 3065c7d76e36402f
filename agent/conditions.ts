// Status conditions on configuration objects (L2 policies, BGP resources): the operator computes
// each object's conditions from its spec with a pure function and writes them when they differ.
// Level-triggered: a lost race (conflict) is retried from the next watch event or resync.
import type { Condition } from '../api/index.js';
import { mergeConditions } from '../lbipam/index.js';
import { ConflictError, NotFoundError, objectKey, refOf, type Reflector, type Store, type StoredObject } from '../store/index.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export type FreshCondition = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

const rfc3339 = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

const sameConditions = (a: readonly Condition[], b: readonly Condition[]): boolean =>
  a.length === b.length && a.every((c, i) => {
    const d = b[i]!;
    return c.type === d.type && c.status === d.status && c.reason === d.reason && c.message === d.message && c.observedGeneration === d.observedGeneration;
  });

export class ConditionWriter {
  private unsubscribe: (() => void) | undefined;
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly objects: Reflector,
    private readonly compute: (o: StoredObject) => FreshCondition[],
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.objects.onChange((key) => {
      if (key === undefined) for (const o of this.objects.items()) this.pending.add(objectKey(o));
      else this.pending.add(key);
      this.flushSoon();
    });
    for (const o of this.objects.items()) this.pending.add(objectKey(o));
    this.flushSoon();
  }

  /** Checks every object again (when what decides their conditions lies in other objects). */
  recheckAll(): void {
    if (!this.unsubscribe) return;
    for (const o of this.objects.items()) this.pending.add(objectKey(o));
    this.flushSoon();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }

  private flushSoon(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, 10);
  }

  private async flush(): Promise<void> {
    const keys = [...this.pending];
    this.pending.clear();
    for (const key of keys) {
      const o = this.objects.get(key);
      if (!o?.metadata.resourceVersion) continue;
      const status = (o.status ?? {}) as { conditions?: Condition[] };
      const generation = o.metadata.generation;
      const fresh = this.compute(o).map((c) => ({ ...c, ...(generation === undefined ? {} : { observedGeneration: generation }) }));
      const conditions = mergeConditions(status.conditions, fresh, rfc3339());
      if (sameConditions(conditions, status.conditions ?? [])) continue;
      try {
        await this.store.writeStatus(refOf(o), { ...status, conditions }, o.metadata.resourceVersion);
        this.metrics.statusWrites.inc({ kind: o.kind, result: 'ok' });
        const bad = fresh.filter((c) => c.status === 'False');
        if (bad.length > 0) this.log.warn({ kind: o.kind, name: o.metadata.name, reasons: bad.map((c) => `${c.reason}: ${c.message}`) }, 'configuration object has problems');
      } catch (e) {
        if (e instanceof ConflictError) this.metrics.statusWrites.inc({ kind: o.kind, result: 'conflict' });
        else if (!(e instanceof NotFoundError)) this.log.warn({ kind: o.kind, name: o.metadata.name, err: (e as Error).message }, 'status write failed; retrying on the next change');
      }
    }
  }
}
