// The Kubernetes store: objects are the API server's (Services, EndpointSlices, Nodes, Beacon
// CRDs), resourceVersions are the API server's, and leases are coordination.k8s.io/v1 Lease
// objects. The kubeconfig, its authentication (tokens, client certificates, exec plugins) and
// watches come from @kubernetes/client-node; plain requests go through its HTTPS options so
// objects stay plain JSON (the typed clients turn timestamps into Dates). This is the only module
// that imports the Kubernetes client.
import { request as httpRequest, type Agent, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hostname } from 'node:os';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import {
  ConflictError,
  ExpiredError,
  NotFoundError,
  refText,
  type Lease,
  type LeaseStore,
  type ListResult,
  type ObjectRef,
  type Store,
  type StoreHealth,
  type StoredObject,
  type Watch as StoreWatch,
  type WatchEvent,
} from '../types.js';
import { KubeEventRecorder } from './events.js';
import { TokenBucket } from './rate-limit.js';
import { apiVersionOf, resourceOf, resourcePath, type KubeResource } from './resources.js';

export { apiVersionOf, kubeResources, resourceOf, resourcePath, type KubeResource } from './resources.js';
export { TokenBucket } from './rate-limit.js';
export { clusterScopedEventNamespace, KubeEventRecorder, reportingController, type EventRecorderOptions, type EventRecorderStats } from './events.js';

/** The subset of a pino logger this store uses (pino's Logger fits). */
export interface KubernetesStoreLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

export interface KubernetesStoreOptions {
  /** Path of a kubeconfig file; without it, the pod's service account (in-cluster). */
  kubeconfig?: string;
  /** Namespace of the Lease objects (default 'beacon-system'). */
  namespace?: string;
  /** Client-side rate limit: requests a second on average (default 20) and in a burst (default 40). */
  qps?: number;
  burst?: number;
  /** Events a second on average and in a burst (default 0.5 and 25), within the request budget above. */
  eventQps?: number;
  eventBurst?: number;
  /** A watch that hears nothing (not even a bookmark) this long is restarted (ms, default 150 s). */
  watchQuietMs?: number;
  /** Deadline of each plain request (ms, default 10 s). */
  requestTimeoutMs?: number;
  log?: KubernetesStoreLogger;
  /** Who this process is in the Events it records (reportingInstance; default the host name). */
  identity?: string;
}

export const leaseLabel = 'beacon.io/lease';
export const leaseDataAnnotation = 'beacon.io/lease-data';
/** Lease.spec.leaseDurationSeconds is whole seconds (rounded up); the exact duration rides along here. */
export const leaseDurationAnnotation = 'beacon.io/lease-duration-ms';

/** An answer from the API server that is not success, carrying its v1 Status reason. */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

type Json = Record<string, unknown>;
const silentLogger: KubernetesStoreLogger = { info: () => undefined, warn: () => undefined };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
/** Lease times are MicroTime: RFC 3339 with six fractional digits. */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');
const MAX_ATTEMPTS = 5;

export class KubernetesStore implements Store {
  readonly backend = 'kubernetes' as const;
  readonly leases: LeaseStore;
  readonly events: KubeEventRecorder;
  readonly namespace: string;
  private readonly limiter: TokenBucket;
  private readonly watches = new Set<KubeWatch>();
  private readonly log: KubernetesStoreLogger;
  private readonly timeoutMs: number;
  readonly watchQuietMs: number;
  /** ES private fields: neither util.inspect nor a JSON logger reaches the credentials in the
   * kubeconfig, or the Authorization headers of requests still on the agent's sockets. */
  readonly #config: KubeConfig;
  #agent: Agent | undefined;
  private closed = false;
  private failingSince: number | undefined;
  private lastError = '';

  /** Use openKubernetesStore, which also checks that the API server answers. */
  constructor(config: KubeConfig, opts: Omit<KubernetesStoreOptions, 'kubeconfig'> = {}) {
    this.#config = config;
    this.namespace = opts.namespace ?? 'beacon-system';
    this.limiter = new TokenBucket(opts.qps ?? 20, opts.burst ?? 40);
    this.log = opts.log ?? silentLogger;
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.watchQuietMs = opts.watchQuietMs ?? 150_000;
    this.leases = new KubeLeases(this, this.log);
    // Events take a request token only when one is there (admit) and are then sent unthrottled: best effort, never ahead of a renewal.
    this.events = new KubeEventRecorder((method, path, body, contentType) => this.request(method, path, body, contentType, false), {
      identity: opts.identity ?? hostname(),
      log: this.log,
      admit: () => this.limiter.tryTake(),
      // Steady state at most one Event every 2 s per process (bursts of 25): at 10,000 Services a
      // flapping announcement would otherwise spend more requests on Events than on everything else.
      qps: opts.eventQps ?? 0.5,
      burst: opts.eventBurst ?? 25,
    });
  }

  get server(): string {
    return this.#config.getCurrentCluster()?.server ?? '(no cluster)';
  }

  /** client-node's watcher, on this store's kubeconfig. */
  watcher(): Watch {
    return new Watch(this.#config);
  }

  /** Waits for a token of the client-side rate limit. */
  async throttle(): Promise<void> {
    const wait = this.limiter.take();
    if (wait > 0) await sleep(wait);
  }

  /** One request: JSON in, JSON out; non-2xx answers become KubeApiError. `throttled: false` for a request that already holds a token. */
  async request(method: string, path: string, body?: unknown, contentType = 'application/json', throttled = true): Promise<Json> {
    if (this.closed) throw new Error('kubernetes store closed');
    if (throttled) await this.throttle();
    const opts: RequestOptions = { method, timeout: this.timeoutMs, headers: {} };
    // Called per request: token files and exec plugins refresh credentials here.
    await this.#config.applyToHTTPSOptions(opts);
    this.#agent ??= opts.agent as Agent | undefined;
    const data = body === undefined ? undefined : JSON.stringify(body);
    const url = new URL(path, this.server);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let answer: { status: number; text: string };
    try {
      answer = await new Promise((resolve, reject) => {
        const req = send(
          url,
          { ...opts, agent: this.#agent, headers: { ...opts.headers, accept: 'application/json', ...(data ? { 'content-type': contentType } : {}) } },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${this.timeoutMs} ms`)));
        req.on('error', reject);
        req.end(data);
      });
    } catch (e) {
      this.markUnreachable(e);
      throw e;
    }
    this.markReachable();
    let parsed: Json = {};
    try {
      parsed = answer.text ? (JSON.parse(answer.text) as Json) : {};
    } catch {
      throw new KubeApiError(answer.status, 'BadResponse', `${method} ${path}: answer is not JSON (HTTP ${answer.status})`);
    }
    if (answer.status >= 200 && answer.status < 300) return parsed;
    const message = typeof parsed.message === 'string' ? parsed.message : `HTTP ${answer.status}`;
    throw new KubeApiError(answer.status, typeof parsed.reason === 'string' ? parsed.reason : 'Unknown', `${method} ${path}: ${message}`);
  }

  markReachable(): void {
    if (this.failingSince !== undefined) this.log.info({ server: this.server, downMs: Date.now() - this.failingSince }, 'kubernetes API reachable again');
    this.failingSince = undefined;
  }

  markUnreachable(e: unknown): void {
    this.lastError = errorText(e);
    if (this.failingSince === undefined && !this.closed) {
      this.failingSince = Date.now();
      this.log.warn({ server: this.server, err: this.lastError }, 'kubernetes API unreachable');
    }
  }

  health(): StoreHealth {
    if (this.closed) return { ok: false, message: 'kubernetes store closed' };
    if (this.failingSince !== undefined) {
      return { ok: false, message: `kubernetes API ${this.server} unreachable since ${new Date(this.failingSince).toISOString()}: ${this.lastError}` };
    }
    return { ok: true, message: `kubernetes API ${this.server} reachable` };
  }

  async list(kind: string): Promise<ListResult> {
    const r = resourceOf(kind);
    const res = await this.request('GET', resourcePath(r));
    return { items: ((res.items ?? []) as StoredObject[]).map((o) => typed(r, o)), revision: String((res.metadata as { resourceVersion?: string } | undefined)?.resourceVersion ?? '') };
  }

  watch(kind: string, revision: string, onEvent: (e: WatchEvent) => void, onError: (err: Error) => void): StoreWatch {
    return this.watchScoped(resourceOf(kind), {}, revision, onEvent, onError);
  }

  /** A watch limited to one namespace and/or a label selector (the lease view's). */
  watchScoped(resource: KubeResource, scope: WatchScope, revision: string, onEvent: (e: WatchEvent) => void, onError: (err: Error) => void): StoreWatch {
    const w = new KubeWatch(this, resource, scope, revision, onEvent, onError, this.log);
    this.watches.add(w);
    w.onStop = () => this.watches.delete(w);
    w.start();
    return { close: () => w.stop() };
  }

  /**
   * A JSON patch to /status: replacing metadata.resourceVersion makes the API server check it (409
   * when stale), and `add /status` replaces the whole status. A merge patch could not remove a
   * field the new status no longer has.
   */
  async writeStatus(ref: ObjectRef, status: unknown, resourceVersion: string): Promise<StoredObject> {
    const r = resourceOf(ref.kind);
    const path = objectPath(r, ref, 'status');
    const patch = [
      { op: 'replace', path: '/metadata/resourceVersion', value: resourceVersion },
      { op: 'add', path: '/status', value: status ?? {} },
    ];
    try {
      return typed(r, (await this.request('PATCH', path, patch, 'application/json-patch+json')) as StoredObject);
    } catch (e) {
      if (isCode(e, 404)) throw new NotFoundError(ref);
      if (!isCode(e, 409)) throw e;
      const now = await this.request('GET', objectPath(r, ref)).catch(() => undefined);
      throw new ConflictError(ref, resourceVersion, (now?.metadata as Json | undefined)?.resourceVersion as string | undefined);
    }
  }

  /** Creates the object, or replaces its desired state at the version just read (the API server keeps status). */
  async apply(object: StoredObject): Promise<StoredObject> {
    const r = resourceOf(object.kind);
    const ref: ObjectRef = { kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name };
    const body = { ...object, apiVersion: apiVersionOf(r) };
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.request('GET', objectPath(r, ref)).catch((e: unknown) => {
        if (isCode(e, 404)) return undefined;
        throw e;
      });
      try {
        if (!current) return typed(r, (await this.request('POST', resourcePath(r, ref.namespace), body)) as StoredObject);
        const resourceVersion = (current.metadata as Json).resourceVersion;
        return typed(r, (await this.request('PUT', objectPath(r, ref), { ...body, metadata: { ...object.metadata, resourceVersion } })) as StoredObject);
      } catch (e) {
        // Someone else created or changed it in between: read again.
        if (!isCode(e, 409) && !isCode(e, 404)) throw e;
      }
    }
    throw new Error(`${refText(ref)}: still changing after ${MAX_ATTEMPTS} attempts`);
  }

  async delete(ref: ObjectRef): Promise<boolean> {
    try {
      await this.request('DELETE', objectPath(resourceOf(ref.kind), ref));
      return true;
    } catch (e) {
      if (isCode(e, 404)) return false;
      throw e;
    }
  }

  close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.watches]) w.stop();
    this.#agent?.destroy();
    return Promise.resolve();
  }
}

function objectPath(r: KubeResource, ref: ObjectRef, subresource?: 'status'): string {
  if (r.namespaced && !ref.namespace) throw new Error(`${refText(ref)}: ${r.kind} is namespaced and needs a namespace`);
  return resourcePath(r, r.namespaced ? ref.namespace : undefined, ref.name, subresource);
}

/** List items of built-in kinds come without kind and apiVersion. */
const typed = (r: KubeResource, o: StoredObject): StoredObject => ({ ...o, kind: r.kind, apiVersion: apiVersionOf(r) });
const isCode = (e: unknown, code: number): boolean => e instanceof KubeApiError && e.code === code;
/** Jittered exponential backoff after `failures` failures in a row: 50–100 ms at first, at most 2.5–5 s. */
const backoffMs = (failures: number): number => {
  const ceiling = Math.min(5000, 100 * 2 ** Math.min(failures, 10));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
};

export interface WatchScope {
  readonly namespace?: string;
  readonly labelSelector?: string;
}

/**
 * One watch that survives dropped connections: it reconnects from the last version it saw (an
 * event or a bookmark), restarts a connection that stays quiet too long, and ends with an
 * ExpiredError when the API server answers 410 Gone (the caller lists again).
 */
class KubeWatch {
  onStop: () => void = () => undefined;
  private controller: AbortController | undefined;
  private connection = 0;
  private stopped = false;
  private lastHeard = Date.now();
  private failures = 0;
  private readonly watchdog: NodeJS.Timeout;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: KubernetesStore,
    private readonly resource: KubeResource,
    private readonly scope: WatchScope,
    private revision: string,
    private readonly onEvent: (e: WatchEvent) => void,
    private readonly onError: (err: Error) => void,
    private readonly log: KubernetesStoreLogger,
  ) {
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeard <= store.watchQuietMs) return;
      this.log.warn({ kind: resource.kind, quietMs: Date.now() - this.lastHeard }, 'kubernetes watch quiet for too long: restarting it');
      this.reconnect(0);
    }, Math.max(50, store.watchQuietMs / 4));
    this.watchdog.unref();
  }

  start(): void {
    void this.connect();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    this.controller?.abort();
    this.onStop();
  }

  private async connect(): Promise<void> {
    const id = ++this.connection;
    this.lastHeard = Date.now();
    await this.store.throttle();
    if (this.stopped || id !== this.connection) return;
    // The API server ends a watch after timeoutSeconds; spread them so watches do not all reconnect at once.
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const query = { resourceVersion: this.revision, allowWatchBookmarks: true, timeoutSeconds, labelSelector: this.scope.labelSelector };
    const controller = await this.store
      .watcher()
      .watch(resourcePath(this.resource, this.scope.namespace), query, (phase, obj) => this.heard(id, phase, obj as Json), (err) => this.ended(id, err))
      .catch((e: unknown) => {
        this.ended(id, e);
        return undefined;
      });
    if (id !== this.connection || this.stopped) controller?.abort();
    else this.controller = controller;
  }

  private heard(id: number, phase: string, obj: Json): void {
    if (id !== this.connection || this.stopped) return;
    this.lastHeard = Date.now();
    this.failures = 0;
    this.store.markReachable();
    const version = (obj.metadata as Json | undefined)?.resourceVersion;
    switch (phase) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED':
        if (typeof version === 'string') this.revision = version;
        this.onEvent({ type: phase === 'ADDED' ? 'added' : phase === 'MODIFIED' ? 'modified' : 'deleted', object: typed(this.resource, obj as StoredObject) });
        return;
      case 'BOOKMARK':
        if (typeof version === 'string') this.revision = version;
        return;
      case 'ERROR':
        // A v1 Status; 410 Gone: the version is older than the server's watch history.
        this.fail(obj.code === 410 ? new ExpiredError(`${this.resource.kind} watch from ${this.revision}: ${String(obj.message)}`) : new KubeApiError(Number(obj.code), String(obj.reason), String(obj.message)));
        return;
      default:
        this.log.warn({ kind: this.resource.kind, phase }, 'kubernetes watch: unknown event type');
    }
  }

  private ended(id: number, err: unknown): void {
    if (id !== this.connection || this.stopped) return;
    const code = (err as { statusCode?: unknown } | null)?.statusCode;
    if (code === 410) return this.fail(new ExpiredError(`${this.resource.kind} watch from ${this.revision}: 410 Gone`));
    if (typeof code === 'number' && code >= 400 && code < 500) return this.fail(new KubeApiError(code, 'WatchRefused', `${this.resource.kind} watch: HTTP ${code}`));
    // A clean end (timeoutSeconds, server closing) resumes at once; a failure backs off.
    if (err) {
      this.store.markUnreachable(err);
      this.failures++;
    }
    this.reconnect(err ? backoffMs(this.failures) : 0);
  }

  private reconnect(delayMs: number): void {
    this.connection++; // events from the old connection are ignored from now on
    this.lastHeard = Date.now(); // the watchdog waits for this attempt, backoff included
    this.controller?.abort();
    this.controller = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delayMs);
  }

  private fail(err: Error): void {
    this.stop();
    this.onError(err);
  }
}

interface LeaseObject extends Json {
  metadata: { name: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

function toLease(o: LeaseObject): Lease {
  const s = o.spec ?? {};
  const time = (t: string | undefined): number => (t ? Date.parse(t) || 0 : 0);
  const exactMs = Number(o.metadata.annotations?.[leaseDurationAnnotation]);
  const seconds = s.leaseDurationSeconds ?? 0;
  return {
    name: o.metadata.name,
    holder: s.holderIdentity ?? '',
    // The exact duration only when it agrees with the seconds others (kubectl, client-go) read.
    durationMs: Number.isInteger(exactMs) && Math.ceil(exactMs / 1000) === seconds ? exactMs : seconds * 1000,
    acquiredAt: time(s.acquireTime),
    renewedAt: time(s.renewTime),
    transitions: s.leaseTransitions ?? 0,
    data: o.metadata.annotations?.[leaseDataAnnotation] ?? '',
  };
}

/** The held ones among `objects` whose names start with `prefix`, as Leases sorted by name. */
const heldLeases = (objects: Iterable<LeaseObject>, prefix: string): Lease[] =>
  [...objects]
    .filter((o) => o.metadata.name.startsWith(prefix) && o.spec?.holderIdentity)
    .map(toLease)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

/**
 * Leases as coordination.k8s.io/v1 Lease objects, the way client-go's leader election keeps them,
 * with optimistic concurrency on resourceVersion. The holder's own last write is remembered, so a
 * renewal is one PUT; only a conflict costs a fresh GET. Expiry compares renewTime with this
 * host's clock, so the hosts' clocks must agree to well within the lease duration.
 */
class KubeLeases implements LeaseStore {
  private readonly mine = new Map<string, LeaseObject>();
  private readonly resource = resourceOf('Lease');
  /** Beacon's leases only: other Leases in the namespace (kube components') are not read. */
  private readonly selector = `${leaseLabel}=true`;

  constructor(
    private readonly store: KubernetesStore,
    private readonly log: KubernetesStoreLogger,
  ) {}

  private path(name?: string): string {
    return resourcePath(this.resource, this.store.namespace, name);
  }

  private async read(name: string): Promise<LeaseObject | undefined> {
    try {
      return (await this.store.request('GET', this.path(name))) as LeaseObject;
    } catch (e) {
      if (isCode(e, 404)) return undefined;
      throw e;
    }
  }

  private withSpec(current: LeaseObject | undefined, name: string, spec: LeaseObject['spec'], data: string, durationMs?: number): LeaseObject {
    const { [leaseDataAnnotation]: _data, [leaseDurationAnnotation]: _duration, ...rest } = current?.metadata.annotations ?? {};
    const annotations = { ...rest, ...(data ? { [leaseDataAnnotation]: data } : {}), ...(durationMs ? { [leaseDurationAnnotation]: String(durationMs) } : {}) };
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        ...(current?.metadata ?? {}),
        name,
        labels: { ...current?.metadata.labels, [leaseLabel]: 'true' },
        annotations,
      },
      spec,
    };
  }

  async acquireOrRenew(name: string, holder: string, durationMs: number, data = ''): Promise<{ held: boolean; lease: Lease }> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const cached = this.mine.get(name);
      const current = cached?.spec?.holderIdentity === holder ? cached : await this.read(name);
      const now = Date.now();
      // Whole seconds, rounded up: a lease never ends before the holder expects it to.
      const ms = Math.max(1, Math.ceil(durationMs));
      const spec = { holderIdentity: holder, leaseDurationSeconds: Math.ceil(ms / 1000), renewTime: microTime(now) };
      let next: LeaseObject;
      if (!current) {
        next = this.withSpec(undefined, name, { ...spec, acquireTime: microTime(now), leaseTransitions: 0 }, data, ms);
      } else {
        const lease = toLease(current);
        if (lease.holder === holder) next = this.withSpec(current, name, { ...current.spec, ...spec }, data, ms);
        else if (lease.holder !== '' && lease.renewedAt + lease.durationMs > now) return { held: false, lease };
        else next = this.withSpec(current, name, { ...spec, acquireTime: microTime(now), leaseTransitions: lease.transitions + 1 }, data, ms);
      }
      try {
        const written = (await (current ? this.store.request('PUT', this.path(name), next) : this.store.request('POST', this.path(), next))) as LeaseObject;
        this.mine.set(name, written);
        return { held: true, lease: toLease(written) };
      } catch (e) {
        this.mine.delete(name);
        // Another holder wrote (or created, or deleted) it in between: read it again. A 404 on
        // create is a missing namespace, which no retry fixes.
        if (!isCode(e, 409) && !(current && isCode(e, 404))) throw e;
      }
    }
    throw new Error(`lease ${name}: still contended after ${MAX_ATTEMPTS} attempts`);
  }

  async release(name: string, holder: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.read(name);
      if (!current || current.spec?.holderIdentity !== holder) return;
      // As client-go releases: no holder, so the next candidate takes it without waiting for expiry.
      const now = microTime(Date.now());
      const spec = { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now };
      try {
        await this.store.request('PUT', this.path(name), this.withSpec(current, name, spec, ''));
        this.mine.delete(name);
        return;
      } catch (e) {
        if (!isCode(e, 409)) throw e;
      }
    }
  }

  async get(name: string): Promise<Lease | undefined> {
    const o = await this.read(name);
    return o && o.spec?.holderIdentity ? toLease(o) : undefined;
  }

  private async listObjects(): Promise<{ items: LeaseObject[]; revision: string }> {
    const res = await this.store.request('GET', `${this.path()}?labelSelector=${encodeURIComponent(this.selector)}`);
    return { items: (res.items ?? []) as LeaseObject[], revision: String((res.metadata as { resourceVersion?: string } | undefined)?.resourceVersion ?? '') };
  }

  async list(prefix: string): Promise<Lease[]> {
    return heldLeases((await this.listObjects()).items, prefix);
  }

  /**
   * One list, then one watch of the labelled Leases in the lease namespace from the list's
   * resourceVersion: a renewal anywhere costs this process nothing but the event. The watch
   * resumes after dropped connections (KubeWatch); on 410 Gone it lists again at once, on any
   * other end (a refused watch: RBAC without `watch leases`) after a backoff.
   */
  watch(prefix: string, onChange: (leases: Lease[]) => void): () => void {
    const objects = new Map<string, LeaseObject>();
    let current: StoreWatch | undefined;
    let retry: NodeJS.Timeout | undefined;
    let failures = 0;
    let stopped = false;
    const publish = () => onChange(heldLeases(objects.values(), prefix));
    const again = (delayMs: number) => {
      if (!stopped) retry = setTimeout(() => void start(), delayMs);
    };
    const start = async (): Promise<void> => {
      let listed: Awaited<ReturnType<KubeLeases['listObjects']>>;
      try {
        listed = await this.listObjects();
      } catch {
        return again(backoffMs(++failures)); // the store already logs that the API is unreachable
      }
      if (stopped) return;
      objects.clear();
      for (const o of listed.items) objects.set(o.metadata.name, o);
      publish();
      const onEvent = (e: WatchEvent) => {
        const o = e.object as LeaseObject;
        if (!o.metadata.name.startsWith(prefix)) return;
        failures = 0;
        if (e.type === 'deleted') objects.delete(o.metadata.name);
        else objects.set(o.metadata.name, o);
        publish();
      };
      current = this.store.watchScoped(this.resource, { namespace: this.store.namespace, labelSelector: this.selector }, listed.revision, onEvent, (err) => {
        current = undefined;
        if (err instanceof ExpiredError) return again(0);
        if (++failures === 1) this.log.warn({ err: err.message }, 'lease watch refused; listing and watching again after a backoff');
        again(backoffMs(failures));
      });
    };
    void start();
    return () => {
      stopped = true;
      clearTimeout(retry);
      current?.close();
    };
  }
}

/** Loads the kubeconfig (or the in-cluster service account) and checks the API server answers. */
export async function openKubernetesStore(opts: KubernetesStoreOptions = {}): Promise<KubernetesStore> {
  const config = new KubeConfig();
  if (opts.kubeconfig) config.loadFromFile(opts.kubeconfig);
  else config.loadFromCluster();
  const store = new KubernetesStore(config, opts);
  try {
    await store.leases.list('');
  } catch (e) {
    await store.close();
    throw new Error(`kubernetes API ${store.server} not usable: ${errorText(e)}`, { cause: e });
  }
  return store;
}
