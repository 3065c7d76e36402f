// Beacon's decisions as events.k8s.io/v1 Events, the ones `kubectl describe` and `kubectl events`
// show. Events are best effort by design: recording never throws and never makes the caller wait;
// repeats of the same (object, reason, note) within a window become one Event whose `series` counts
// them, and two limits keep a storm (a relist, a flapping link) from flooding the API server: a
// token bucket per process and at most one Event per object a second. What does not fit is
// dropped and counted.
import { randomBytes } from 'node:crypto';
import type { EventRecorder, ObjectRef, RecordedEvent } from '../types.js';
import { TokenBucket } from './rate-limit.js';
import { apiVersionOf, resourceOf, resourcePath } from './resources.js';

/** One plain request to the API server (KubernetesStore.request). */
export type KubeRequest = (method: string, path: string, body?: unknown, contentType?: string) => Promise<unknown>;

export interface EventRecorderOptions {
  /** reportingInstance: who in the cluster made the decision (pod or node name). */
  identity: string;
  /** Events a second on average (default 10) and in a burst (default 25). */
  qps?: number;
  burst?: number;
  /**
   * The process's shared request budget, asked once per Event that passes the limits above: an
   * Event goes out only when a token is there now, so Events never queue ahead of the requests
   * that must go (lease renewals). Default: always.
   */
  admit?: () => boolean;
  /** Least time between two Events about one object (ms, default 1000). */
  perObjectMs?: number;
  /** Repeats within this time join the earlier Event's series (ms, default 10 minutes). */
  dedupeWindowMs?: number;
  /** Objects and (object, reason, note) series remembered, least recently used forgotten first (default 4096). */
  cacheSize?: number;
  now?: () => number;
  log?: { warn(fields: object, msg: string): void };
}

export interface EventRecorderStats {
  readonly created: number;
  readonly updated: number;
  readonly dropped: { readonly rate: number; readonly perObject: number };
  readonly failed: number;
}

export const reportingController = 'beacon.io/beacon';
/**
 * The API server takes an Event about a cluster-scoped object only in `default` or `kube-system`
 * (events.k8s.io/v1 validation of regarding.namespace against the Event's namespace).
 */
export const clusterScopedEventNamespace = 'default';

/** MicroTime: RFC 3339 with six fractional digits. */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');
/** The API server's Status reason (Forbidden, NotFound), else the socket's error code (ECONNREFUSED), else the error's name. */
const errorReason = (e: unknown): string => {
  const { reason, code, name } = (e ?? {}) as { reason?: unknown; code?: unknown; name?: unknown };
  return [reason, code, name].find((v): v is string => typeof v === 'string') ?? 'Error';
};

interface Series {
  readonly namespace: string;
  readonly name: string;
  count: number;
  lastMs: number;
  /** The last request about this Event: the next one waits for it (a patch must not overtake the create). */
  pending: Promise<void>;
}

/** A Map used as an LRU: reading an entry moves it to the end, inserting past the bound drops the oldest. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly size: number) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, v: V): void {
    this.map.delete(key);
    this.map.set(key, v);
    if (this.map.size > this.size) this.map.delete(this.map.keys().next().value!);
  }

  delete(key: string): void {
    this.map.delete(key);
  }
}

export class KubeEventRecorder implements EventRecorder {
  private readonly bucket: TokenBucket;
  private readonly perObjectMs: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly series: Lru<Series>;
  private readonly lastPerObject: Lru<number>;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly loggedReasons = new Set<string>();
  private counts = { created: 0, updated: 0, rate: 0, perObject: 0, failed: 0 };

  constructor(
    private readonly request: KubeRequest,
    private readonly opts: EventRecorderOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.bucket = new TokenBucket(opts.qps ?? 10, opts.burst ?? 25, this.now);
    this.perObjectMs = opts.perObjectMs ?? 1000;
    this.windowMs = opts.dedupeWindowMs ?? 600_000;
    this.series = new Lru(opts.cacheSize ?? 4096);
    this.lastPerObject = new Lru(opts.cacheSize ?? 4096);
  }

  record(ref: ObjectRef & { readonly uid?: string | undefined }, e: RecordedEvent): void {
    try {
      const now = this.now();
      const objectKey = `${ref.kind}\u0000${ref.namespace ?? ''}\u0000${ref.name}`;
      const last = this.lastPerObject.get(objectKey);
      if (last !== undefined && now - last < this.perObjectMs) {
        this.counts.perObject++;
        return;
      }
      if (!this.bucket.tryTake() || this.opts.admit?.() === false) {
        this.counts.rate++;
        return;
      }
      this.lastPerObject.set(objectKey, now);
      const key = `${objectKey}\u0000${e.reason}\u0000${e.note}`;
      const seen = this.series.get(key);
      if (!seen || now - seen.lastMs >= this.windowMs) return this.create(key, ref, e, now);
      seen.count++;
      seen.lastMs = now;
      const patch = { series: { count: seen.count, lastObservedTime: microTime(now) } };
      seen.pending = this.track(seen.pending.then(() => this.addToSeries(seen, patch, key, ref, e, now)));
    } catch (err) {
      this.failed(err, e);
    }
  }

  private create(key: string, ref: ObjectRef & { readonly uid?: string | undefined }, e: RecordedEvent, now: number): void {
    const r = resourceOf(ref.kind);
    const namespace = r.namespaced ? (ref.namespace ?? 'default') : clusterScopedEventNamespace;
    // As client-go names them: the object's name and a unique suffix (here time and randomness).
    const name = `${ref.name.slice(0, 200)}.${now.toString(16)}${randomBytes(3).toString('hex')}`;
    const series: Series = { namespace, name, count: 1, lastMs: now, pending: Promise.resolve() };
    this.series.set(key, series);
    const event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace },
      eventTime: microTime(now),
      reportingController,
      reportingInstance: this.opts.identity.slice(0, 128),
      regarding: { apiVersion: apiVersionOf(r), kind: r.kind, name: ref.name, ...(r.namespaced ? { namespace } : {}), ...(ref.uid ? { uid: ref.uid } : {}) },
      type: e.type,
      // The API server's limits on these fields.
      reason: e.reason.slice(0, 128),
      action: e.action.slice(0, 128),
      note: e.note.slice(0, 1024),
    };
    series.pending = this.track(
      this.request('POST', resourcePath(resourceOf('Event'), namespace), event).then(
        () => void this.counts.created++,
        (err: unknown) => {
          if (this.series.get(key) === series) this.series.delete(key); // no Event to add a series to: a repeat creates one
          this.failed(err, e);
        },
      ),
    );
  }

  /** Adds to an Event's series; when the API server no longer has it (Events expire, 1 h by default), starts a new one. */
  private async addToSeries(s: Series, patch: object, key: string, ref: ObjectRef, e: RecordedEvent, now: number): Promise<void> {
    try {
      await this.request('PATCH', resourcePath(resourceOf('Event'), s.namespace, s.name), patch, 'application/merge-patch+json');
      this.counts.updated++;
    } catch (err) {
      if ((err as { code?: unknown } | null)?.code === 404) this.create(key, ref, e, now);
      else this.failed(err, e);
    }
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  /** Logged once per error reason (a missing RBAC rule would otherwise log every decision). */
  private failed(err: unknown, e: RecordedEvent): void {
    this.counts.failed++;
    const reason = errorReason(err);
    if (this.loggedReasons.has(reason)) return;
    this.loggedReasons.add(reason);
    this.opts.log?.warn({ reason, event: e.reason, err: err instanceof Error ? err.message : String(err) }, 'recording a Kubernetes Event failed; further failures of this kind are not logged');
  }

  stats(): EventRecorderStats {
    const { created, updated, rate, perObject, failed } = this.counts;
    return { created, updated, dropped: { rate, perObject }, failed };
  }

  /** Resolves when every request started so far has ended (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}
