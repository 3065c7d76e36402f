// The etcd store: objects, status and leases in etcd, for several plain Linux hosts without
// Kubernetes. One key per object holds the whole object as JSON; its mod_revision is the
// resourceVersion, so optimistic concurrency is a txn comparing mod_revision. Leases are etcd's own
// leases: etcd deletes the lease key when the holder stops renewing, so expiry does not depend on
// anyone's clock. This is the only module that imports the etcd client.
import { isDeepStrictEqual } from 'node:util';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  Range,
  castGrpcError,
  type IKeyValue,
  type IOptions,
  type ITxnResponse,
  type IWatchResponse,
  type Watcher,
} from 'etcd3';
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
  type Watch,
  type WatchEvent,
} from '../types.js';

/** The subset of a pino logger this store uses (pino's Logger fits). */
export interface EtcdStoreLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

export interface EtcdStoreOptions {
  /** Client URLs, e.g. `http://198.18.0.1:2379`; all `http:` or all `https:`. */
  endpoints: string[];
  /** Every key lives under this prefix (default `/beacon`), so several installations can share etcd. */
  prefix?: string;
  /** How long openEtcdStore waits for the first successful request (ms, default 5000). */
  dialTimeoutMs?: number;
  /** Deadline of each unary request (ms, default 5000). Watch streams have none. */
  callTimeoutMs?: number;
  /** A linearizable read this often keeps health() current when nothing else runs (ms, default 5000). */
  healthCheckIntervalMs?: number;
  /** Longest wait between watch stream reconnects (ms, default 2000). */
  maxWatchBackoffMs?: number;
  /** etcd user/password auth. Never logged. */
  auth?: { username: string; password: string };
  /** TLS material for `https:` endpoints. Never logged. */
  tls?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  logger?: EtcdStoreLogger;
  /** Epoch milliseconds, for creationTimestamp and lease times. */
  now?: () => number;
}

/** An apply or lease step retries this often when another writer wins the txn in between. */
const MAX_TXN_ATTEMPTS = 8;
/** Lists page through this many keys per request at one revision (stays below gRPC's 4 MiB default). */
const LIST_PAGE = 500;
/** Status writes read and written per txn: below etcd's --max-txn-ops (128 by default). */
const STATUS_BATCH = 100;
/** Bytes of objects per status write txn: below etcd's --max-request-bytes (1.5 MiB by default). */
const STATUS_BATCH_BYTES = 1 << 20;
const CLUSTER_SCOPE = '_cluster';

const silentLogger: EtcdStoreLogger = { info: () => undefined, warn: () => undefined };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Endpoints without any `user:password@` part, for logs and health messages. */
export const redactEndpoint = (endpoint: string): string => endpoint.replace(/\/\/[^/@]*@/, '//');

/** Plain JSON (drops undefined, copies), so stored and compared values have one shape. */
const plain = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

/**
 * Capped exponential backoff with jitter, in the shape etcd3 wants for reconnecting its watch
 * stream. Its default grows to 30 s, which would leave watches dark long after etcd is back.
 */
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;
class CappedBackoff implements WatchBackoff {
  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly attempt = 0,
  ) {}
  get duration(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }
  next(): CappedBackoff {
    return new CappedBackoff(this.baseMs, this.maxMs, Math.min(this.attempt + 1, 30));
  }
}

interface PendingStatus {
  readonly ref: ObjectRef;
  readonly key: string;
  /** Plain JSON, copied when the write was made. */
  readonly status: unknown;
  readonly resourceVersion: string;
  resolve(o: StoredObject): void;
  reject(e: Error): void;
}

interface LeaseRecord {
  holder: string;
  durationMs: number;
  acquiredAt: number;
  renewedAt: number;
  transitions: number;
  data: string;
}

interface LeaseHistory {
  holder: string;
  transitions: number;
}

function parseLeaseRecord(value: Buffer): LeaseRecord | undefined {
  try {
    const r = JSON.parse(value.toString('utf8')) as Partial<LeaseRecord>;
    if (typeof r.holder !== 'string' || typeof r.durationMs !== 'number') return undefined;
    return {
      holder: r.holder,
      durationMs: r.durationMs,
      acquiredAt: typeof r.acquiredAt === 'number' ? r.acquiredAt : 0,
      renewedAt: typeof r.renewedAt === 'number' ? r.renewedAt : 0,
      transitions: typeof r.transitions === 'number' ? r.transitions : 0,
      data: typeof r.data === 'string' ? r.data : '',
    };
  } catch {
    return undefined;
  }
}

function parseLeaseHistory(value: Buffer): LeaseHistory | undefined {
  try {
    const h = JSON.parse(value.toString('utf8')) as Partial<LeaseHistory>;
    return typeof h.holder === 'string' && typeof h.transitions === 'number' ? { holder: h.holder, transitions: h.transitions } : undefined;
  } catch {
    return undefined;
  }
}

/** A key segment must be non-empty and free of `/`, or two objects could share a key. */
function segment(what: string, value: string | undefined): string {
  if (!value || value.includes('/')) throw new Error(`invalid ${what} ${JSON.stringify(value)}: must be non-empty and contain no '/'`);
  return value;
}

function parseRevision(revision: string): number | undefined {
  if (!/^\d+$/.test(revision)) return undefined;
  const n = Number(revision);
  return Number.isSafeInteger(n) ? n : undefined;
}

export class EtcdStore implements Store {
  readonly backend = 'etcd' as const;
  readonly leases: LeaseStore;
  /** An ES private field: neither util.inspect nor a JSON logger reaches the credentials inside. */
  readonly #client: Etcd3;
  private readonly prefix: string;
  private readonly log: EtcdStoreLogger;
  /** Epoch milliseconds (injectable for tests). */
  readonly now: () => number;
  private readonly callTimeoutMs: number;
  private readonly endpointsText: string;
  private readonly watches = new Set<EtcdWatch>();
  /** Cancels still waiting for etcd's answer; close() waits for them (bounded). */
  private readonly stopping = new Set<Promise<void>>();
  private readonly probeTimer: NodeJS.Timeout;
  private pendingStatus: PendingStatus[] = [];
  private closed = false;
  private failingSince: number | undefined;
  private lastError = '';
  private lastContact: number | undefined;
  private minTtlLogged = false;

  /** Use openEtcdStore, which also waits for etcd to answer. */
  // The options are not kept: they may hold a password, and a logged store must not show it.
  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) throw new Error('etcd store: no endpoints');
    this.prefix = (options.prefix ?? '/beacon').replace(/\/+$/, '');
    this.log = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.endpointsText = options.endpoints.map(redactEndpoint).join(',');
    const callTimeoutMs = (this.callTimeoutMs = options.callTimeoutMs ?? 5000);
    this.#client = new Etcd3({
      hosts: options.endpoints,
      ...(options.auth ? { auth: options.auth } : {}),
      ...(options.tls ? { credentials: options.tls } : {}),
      // etcd3 sets no deadline by default: a request to a hung member would wait forever.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
      // HTTP/2 pings notice a silently dead connection (a watch stream would otherwise wait for
      // ever); 10 s stays above etcd's --grpc-keepalive-min-time (5 s), which answers faster
      // pings with GOAWAY.
      grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 },
      // etcd3 keeps its default per-host circuit breaker: after 3 failed calls a host is skipped
      // for 5 s, so with a single endpoint calls fail fast for up to 5 s after etcd is back.
      faultHandling: { watchBackoff: new CappedBackoff(100, options.maxWatchBackoffMs ?? 2000) },
    });
    this.leases = new EtcdLeases(this);
    this.probeTimer = setInterval(() => void this.probe().catch(() => undefined), options.healthCheckIntervalMs ?? 5000);
    this.probeTimer.unref();
  }

  // ---- keys ----

  kindPrefix(kind: string): string {
    return `${this.prefix}/objects/${segment('kind', kind)}/`;
  }

  objectKey(ref: ObjectRef): string {
    const ns = ref.namespace ? segment('namespace', ref.namespace) : CLUSTER_SCOPE;
    return `${this.kindPrefix(ref.kind)}${ns}/${segment('name', ref.name)}`;
  }

  leaseKey(name: string): string {
    return `${this.leasesPrefix}${segment('lease name', name)}`;
  }

  get leasesPrefix(): string {
    return `${this.prefix}/leases/`;
  }

  leaseHistoryKey(name: string): string {
    return `${this.prefix}/lease-history/${segment('lease name', name)}`;
  }

  // ---- health ----

  /** Runs one etcd request and records whether etcd answered (this module and its tests only). */
  async call<T>(fn: (client: Etcd3) => Promise<T>): Promise<T> {
    try {
      const result = await fn(this.#client);
      this.markReachable();
      return result;
    } catch (e) {
      // "lease not found" is an answer: etcd is there.
      if (e instanceof EtcdLeaseInvalidError) this.markReachable();
      else this.markUnreachable(e);
      throw e;
    }
  }

  markReachable(): void {
    this.lastContact = this.now();
    if (this.failingSince !== undefined) {
      this.log.info({ endpoints: this.endpointsText, downMs: this.now() - this.failingSince }, 'etcd reachable again');
      this.failingSince = undefined;
    }
  }

  markUnreachable(e: unknown): void {
    this.lastError = errorText(e);
    if (this.failingSince === undefined && !this.closed) {
      this.failingSince = this.now();
      this.log.warn({ endpoints: this.endpointsText, err: this.lastError }, 'etcd unreachable');
    }
  }

  /** A linearizable read of one absent key: cheap, and fails when the cluster has no leader. */
  probe(): Promise<void> {
    return this.call(async (c) => {
      await c.kv.range({ key: Buffer.from(`${this.prefix}/health`), count_only: true });
    });
  }

  health(): StoreHealth {
    if (this.closed) return { ok: false, message: 'etcd store closed' };
    if (this.failingSince !== undefined) {
      return { ok: false, message: `etcd ${this.endpointsText} unreachable since ${new Date(this.failingSince).toISOString()}: ${this.lastError}` };
    }
    const contact = this.lastContact === undefined ? 'no request yet' : `last answer ${new Date(this.lastContact).toISOString()}`;
    return { ok: true, message: `etcd ${this.endpointsText} reachable (${contact})` };
  }

  // ---- objects ----

  private decode(kv: IKeyValue): StoredObject | undefined {
    try {
      const o = JSON.parse(kv.value.toString('utf8')) as StoredObject;
      if (typeof o !== 'object' || o === null || typeof o.metadata?.name !== 'string') throw new Error('no metadata.name');
      o.metadata.resourceVersion = kv.mod_revision;
      return o;
    } catch (e) {
      // Someone else wrote garbage under our prefix: skip that key, keep everything else working.
      this.log.warn({ key: kv.key.toString('utf8'), err: errorText(e) }, 'etcd store: skipping undecodable object');
      return undefined;
    }
  }

  private encode(o: StoredObject): Buffer {
    // The resourceVersion is the key's mod_revision, known only after the write.
    return Buffer.from(JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } }));
  }

  private withVersion(o: StoredObject, revision: string): StoredObject {
    return { ...o, metadata: { ...o.metadata, resourceVersion: revision } };
  }

  async getKv(key: string): Promise<IKeyValue | undefined> {
    const res = await this.call((c) => c.kv.range({ key: Buffer.from(key) }));
    return res.kvs[0];
  }

  /** The object as stored now, or undefined. */
  async get(ref: ObjectRef): Promise<StoredObject | undefined> {
    const kv = await this.getKv(this.objectKey(ref));
    return kv ? this.decode(kv) : undefined;
  }

  async list(kind: string): Promise<ListResult> {
    const range = Range.prefix(this.kindPrefix(kind));
    const items: StoredObject[] = [];
    let from = range.start;
    let revision: string | undefined;
    // Pages are read at the first page's revision, so the list is one consistent snapshot.
    for (;;) {
      const res = await this.call((c) =>
        c.kv.range({ key: from, range_end: range.end, limit: LIST_PAGE, ...(revision ? { revision } : {}) }),
      );
      revision ??= res.header.revision;
      for (const kv of res.kvs) {
        const o = this.decode(kv);
        if (o) items.push(o);
      }
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { items, revision };
  }

  watch(kind: string, revision: string, onEvent: (e: WatchEvent) => void, onError: (err: Error) => void): Watch {
    const w = new EtcdWatch(this, this.#client, kind, revision, onEvent, onError, this.log);
    this.watches.add(w);
    w.onStop = () => this.watches.delete(w);
    w.start();
    return { close: () => this.track(w.stop()) };
  }

  private track(p: Promise<void>): void {
    this.stopping.add(p);
    void p.finally(() => this.stopping.delete(p));
  }

  /** A watch event as an object; a delete without its previous value (compacted) still names the object. */
  eventObject(kv: IKeyValue, prev: IKeyValue | undefined, kind: string): StoredObject | undefined {
    if (prev) {
      const o = this.decode(prev);
      return o ? this.withVersion(o, kv.mod_revision) : undefined;
    }
    const [ns, name] = kv.key.toString('utf8').slice(this.kindPrefix(kind).length).split('/');
    if (!ns || !name) return undefined;
    return {
      apiVersion: '',
      kind,
      metadata: { name, ...(ns === CLUSTER_SCOPE ? {} : { namespace: ns }), resourceVersion: kv.mod_revision },
    };
  }

  decodeEvent(kv: IKeyValue): StoredObject | undefined {
    return this.decode(kv);
  }

  /**
   * Status writes made in the same turn of the event loop travel together: one txn reads all
   * their objects, one txn writes those still at the caller's version (each compared on its own
   * mod_revision). Two round trips for up to STATUS_BATCH writes instead of two each: with 10,000
   * services the per-call cost of gRPC, not etcd, was the limit. When the write txn loses (one of
   * the objects changed in between), each is written on its own, so every call keeps its own
   * outcome: done, ConflictError or NotFoundError.
   */
  writeStatus(ref: ObjectRef, status: unknown, resourceVersion: string): Promise<StoredObject> {
    return new Promise((resolve, reject) => {
      let key: string;
      try {
        key = this.objectKey(ref);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      this.pendingStatus.push({ ref, key, status: plain(status), resourceVersion, resolve, reject });
      if (this.pendingStatus.length === 1) setImmediate(() => this.flushStatus());
    });
  }

  private flushStatus(): void {
    const all = this.pendingStatus;
    this.pendingStatus = [];
    // Batches of distinct keys: two writes of one object race each other as separate calls would.
    let batch: PendingStatus[] = [];
    let keys = new Set<string>();
    for (const w of all) {
      if (batch.length >= STATUS_BATCH || keys.has(w.key)) {
        void this.writeStatusBatch(batch);
        batch = [];
        keys = new Set();
      }
      batch.push(w);
      keys.add(w.key);
    }
    if (batch.length > 0) void this.writeStatusBatch(batch);
  }

  private async writeStatusBatch(batch: PendingStatus[]): Promise<void> {
    let read: ITxnResponse;
    try {
      read = await this.call((c) => c.kv.txn({ compare: [], success: batch.map((w) => ({ request_range: { key: Buffer.from(w.key) } })) }));
    } catch {
      // Too big for one answer, or etcd trouble: each on its own, with its own error.
      await Promise.all(batch.map((w) => this.writeStatusAlone(w)));
      return;
    }
    const ready: { w: PendingStatus; next: StoredObject; value: Buffer }[] = [];
    batch.forEach((w, i) => {
      const kv = read.responses[i]?.response_range.kvs[0];
      if (!kv) return w.reject(new NotFoundError(w.ref));
      if (kv.mod_revision !== w.resourceVersion) return w.reject(new ConflictError(w.ref, w.resourceVersion, kv.mod_revision));
      const existing = this.decode(kv);
      if (!existing) return w.reject(new Error(`${refText(w.ref)}: stored value is not an object; apply it again`));
      // Writing the same status again would only wake every watcher: level-triggered callers
      // may call this on every pass.
      if (isDeepStrictEqual(w.status, existing.status)) return w.resolve(existing);
      const next: StoredObject = { ...existing, status: w.status };
      if (next.status === undefined) delete next.status;
      ready.push({ w, next, value: this.encode(next) });
    });
    // etcd takes requests up to --max-request-bytes (1.5 MiB by default): split big puts.
    const chunks: (typeof ready)[] = [];
    let bytes = Infinity;
    for (const r of ready) {
      if (bytes + r.value.length > STATUS_BATCH_BYTES) {
        chunks.push([]);
        bytes = 0;
      }
      chunks.at(-1)!.push(r);
      bytes += r.value.length + r.w.key.length;
    }
    await Promise.all(
      chunks.map(async (chunk) => {
        let res: ITxnResponse | undefined;
        try {
          res = await this.call((c) =>
            c.kv.txn({
              compare: chunk.map(({ w }) => ({ key: Buffer.from(w.key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: w.resourceVersion })),
              success: chunk.map(({ w, value }) => ({ request_put: { key: Buffer.from(w.key), value } })),
            }),
          );
        } catch {
          res = undefined;
        }
        if (res?.succeeded) {
          for (const { w, next } of chunk) w.resolve(this.withVersion(next, res.header.revision));
          return;
        }
        // One of them changed in between (or the txn failed): each on its own.
        await Promise.all(chunk.map(({ w, next, value }) => this.writeStatusAlone(w, { next, value })));
      }),
    );
  }

  /** One status write in its own txns, as writeStatus did before batching. */
  private async writeStatusAlone(w: PendingStatus, built?: { next: StoredObject; value: Buffer }): Promise<void> {
    try {
      let next = built?.next;
      let value = built?.value;
      if (!next || !value) {
        const current = await this.getKv(w.key);
        if (!current) throw new NotFoundError(w.ref);
        if (current.mod_revision !== w.resourceVersion) throw new ConflictError(w.ref, w.resourceVersion, current.mod_revision);
        const existing = this.decode(current);
        if (!existing) throw new Error(`${refText(w.ref)}: stored value is not an object; apply it again`);
        if (isDeepStrictEqual(w.status, existing.status)) return w.resolve(existing);
        next = { ...existing, status: w.status };
        if (next.status === undefined) delete next.status;
        value = this.encode(next);
      }
      const res = await this.call((c) =>
        c.kv.txn({
          compare: [{ key: Buffer.from(w.key), target: 'Mod', result: 'Equal', mod_revision: w.resourceVersion }],
          success: [{ request_put: { key: Buffer.from(w.key), value: value } }],
          failure: [{ request_range: { key: Buffer.from(w.key) } }],
        }),
      );
      if (!res.succeeded) {
        const now = res.responses[0]?.response_range.kvs[0];
        if (!now) throw new NotFoundError(w.ref);
        throw new ConflictError(w.ref, w.resourceVersion, now.mod_revision);
      }
      w.resolve(this.withVersion(next, res.header.revision));
    } catch (e) {
      w.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  async apply(object: StoredObject): Promise<StoredObject> {
    const desired = plain(object);
    const ref: ObjectRef = { kind: segment('kind', desired.kind), namespace: desired.metadata?.namespace, name: desired.metadata?.name };
    const key = this.objectKey(ref);
    let seen: string | undefined;
    for (let attempt = 1; attempt <= MAX_TXN_ATTEMPTS; attempt++) {
      const current = await this.getKv(key);
      const existing = current ? this.decode(current) : undefined;
      const next = this.applied(desired, existing);
      if (existing && isDeepStrictEqual(plain({ ...next, metadata: { ...next.metadata, resourceVersion: undefined } }), plain({ ...existing, metadata: { ...existing.metadata, resourceVersion: undefined } }))) {
        return existing; // nothing changes: no write, no watch event
      }
      seen = current?.mod_revision;
      const res = await this.call((c) =>
        c.kv.txn({
          // A missing key compares as all-zero, so mod_revision == 0 means "still absent".
          compare: [{ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: current?.mod_revision ?? 0 }],
          success: [{ request_put: { key: Buffer.from(key), value: this.encode(next) } }],
        }),
      );
      if (res.succeeded) return this.withVersion(next, res.header.revision);
    }
    const now = await this.getKv(key);
    throw new ConflictError(ref, seen ?? '0', now?.mod_revision);
  }

  /** Desired state over what is stored: status, creationTimestamp and generation are the store's. */
  private applied(desired: StoredObject, existing: StoredObject | undefined): StoredObject {
    const metadata = { ...desired.metadata, resourceVersion: undefined, generation: undefined, creationTimestamp: undefined };
    const creationTimestamp = desired.metadata.creationTimestamp;
    const specChanged = !existing || !isDeepStrictEqual(plain(existing.spec), desired.spec);
    const generation = existing ? (existing.metadata.generation ?? 1) + (specChanged ? 1 : 0) : 1;
    const next: StoredObject = {
      ...desired,
      metadata: {
        ...metadata,
        name: desired.metadata.name,
        creationTimestamp: existing?.metadata.creationTimestamp ?? creationTimestamp ?? new Date(this.now()).toISOString(),
        generation,
      },
    };
    // A create may bring a status (manifests exported with one); a replace keeps the stored one.
    if (existing) {
      if (existing.status === undefined) delete next.status;
      else next.status = existing.status;
    }
    return next;
  }

  async delete(ref: ObjectRef): Promise<boolean> {
    const key = this.objectKey(ref);
    const res = await this.call((c) => c.kv.deleteRange({ key: Buffer.from(key) }));
    return Number(res.deleted) > 0;
  }

  /** Grants an etcd lease; etcd may raise the TTL to its minimum (see EtcdLeases). */
  async grantLease(ttlSeconds: number): Promise<string> {
    const res = await this.call((c) => c.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }));
    if (Number(res.TTL) !== ttlSeconds && !this.minTtlLogged) {
      this.minTtlLogged = true;
      this.log.info({ requested: ttlSeconds, granted: Number(res.TTL) }, 'etcd raised the lease TTL to its minimum');
    }
    return res.ID;
  }

  async revokeLease(id: string): Promise<void> {
    try {
      await this.call((c) => c.leaseClient.leaseRevoke({ ID: id }));
    } catch (e) {
      if (!(e instanceof EtcdLeaseInvalidError)) throw e; // already expired or revoked
    }
  }

  /** One keepalive on an existing lease; resolves to the remaining TTL in seconds, 0 when it is gone. */
  keepAliveOnce(id: string): Promise<number> {
    return this.call(async (c) => {
      const stream = await c.leaseClient.leaseKeepAlive({ deadline: Date.now() + this.callTimeoutMs });
      try {
        const res = await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', (err) => reject(castGrpcError(err)));
          stream.on('end', () => reject(new Error('lease keepalive stream ended without an answer')));
          stream.write({ ID: id });
        });
        return Number(res.TTL);
      } finally {
        stream.end();
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    // Cancel watches first, so etcd3's watch manager stops reconnecting; bounded, since a
    // cancel waits for etcd's answer and etcd may be gone.
    for (const w of this.watches) this.track(w.stop());
    await Promise.race([Promise.allSettled([...this.stopping]), sleep(2000)]);
    this.#client.close();
  }
}

/**
 * One watch on a kind. etcd3's Watcher reconnects by itself, but resumes from the last *header*
 * revision it saw, and the header of a watch-create answer is the current revision even when older
 * events are still on their way; a disconnect right then would skip them. So the start revision
 * is set here, just before every (re)create, to one past the last revision actually delivered, and
 * events at or below it are dropped: nothing lost, nothing twice.
 */
class EtcdWatch {
  onStop: () => void = () => undefined;
  private watcher: Watcher | undefined;
  private last = 0;
  private stopped = false;

  readonly #client: Etcd3;

  constructor(
    private readonly store: EtcdStore,
    client: Etcd3,
    private readonly kind: string,
    private readonly revision: string,
    private readonly onEvent: (e: WatchEvent) => void,
    private readonly onError: (err: Error) => void,
    private readonly log: EtcdStoreLogger,
  ) {
    this.#client = client;
  }

  start(): void {
    const from = parseRevision(this.revision);
    let prefix: string;
    try {
      prefix = this.store.kindPrefix(this.kind);
    } catch (e) {
      return this.fail(e instanceof Error ? e : new Error(String(e)));
    }
    if (from === undefined) return this.fail(new ExpiredError(`watch ${this.kind}: revision ${JSON.stringify(this.revision)} is not a revision; list again`));
    this.last = from;
    const w = this.#client
      .watch()
      .prefix(prefix)
      .withPreviousKV()
      .startRevision(String(from + 1))
      .watcher();
    this.watcher = w;
    w.on('connecting', () => {
      w.request.start_revision = String(this.last + 1);
    });
    w.on('connected', () => this.store.markReachable());
    w.on('disconnected', (err: Error) => {
      if (!this.stopped) this.store.markUnreachable(err);
    });
    w.on('data', (res: IWatchResponse) => this.handle(res));
    // etcd cancelled the watch: compacted past our revision, or refused it.
    w.on('error', (err: Error) => {
      // etcd3 has already dropped this watcher; cancelling it again would send a cancel for an
      // id etcd no longer knows.
      this.watcher = undefined;
      w.removeAllListeners('data');
      if (this.stopped) return;
      this.stopped = true;
      this.onStop();
      this.report(new ExpiredError(`watch ${this.kind} from revision ${this.last + 1}: ${err.message || 'cancelled by etcd'}`));
    });
  }

  private handle(res: IWatchResponse): void {
    if (this.stopped) return;
    if (res.events.length === 0) {
      // A progress notification: etcd sends these only to watchers that have every event up
      // to the header revision.
      this.last = Math.max(this.last, Number(res.header.revision));
      return;
    }
    // etcd never splits one revision's events across responses, so a whole response is either
    // new or a replay.
    const floor = this.last;
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision);
      if (rev <= floor) continue;
      this.last = Math.max(this.last, rev);
      let event: WatchEvent | undefined;
      if (ev.type === 'Delete') {
        const object = this.store.eventObject(ev.kv, ev.prev_kv ?? undefined, this.kind);
        if (object) event = { type: 'deleted', object };
      } else {
        const object = this.store.decodeEvent(ev.kv);
        if (object) event = { type: ev.kv.create_revision === ev.kv.mod_revision ? 'added' : 'modified', object };
      }
      if (!event) continue;
      try {
        this.onEvent(event);
      } catch (e) {
        // A throwing consumer must not tear down the watch for everyone.
        this.log.warn({ kind: this.kind, err: errorText(e) }, 'etcd store: watch consumer threw');
      }
      if (this.stopped) return;
    }
  }

  private fail(err: Error): void {
    this.stopped = true;
    this.onStop();
    queueMicrotask(() => this.report(err));
  }

  /** Calls onError; a throwing handler is logged, since it runs inside etcd3's stream handler. */
  private report(err: Error): void {
    try {
      this.onError(err);
    } catch (e) {
      this.log.warn({ kind: this.kind, err: errorText(e) }, 'etcd store: watch error handler threw');
    }
  }

  /** Stops delivering at once; resolves when etcd has dropped the watch (or the stream is gone). */
  async stop(): Promise<void> {
    if (this.stopped && !this.watcher) return;
    this.stopped = true;
    this.onStop();
    const w = this.watcher;
    this.watcher = undefined;
    if (!w) return;
    w.removeAllListeners('data');
    try {
      await w.cancel();
    } catch {
      // the stream is gone already, and the watch with it
    }
  }
}

/**
 * Leases on etcd leases. The key `<prefix>/leases/<name>` is attached to an etcd lease with
 * TTL = ceil(durationMs / 1000): etcd deletes it when the holder stops renewing. etcd raises a TTL
 * below its minimum (ceil(1.5 × election timeout), 2 s with default flags) to that minimum, and a
 * new etcd leader (or a restarted single member) gives every lease its full TTL again, so a lease
 * can outlive its duration by up to one TTL across an etcd failover — never end early.
 * `<prefix>/lease-history/<name>` has no lease: it remembers the last holder and the transition
 * count after the lease key expired.
 */
class EtcdLeases implements LeaseStore {
  constructor(private readonly store: EtcdStore) {}

  private toLease(name: string, r: LeaseRecord): Lease {
    return { name, holder: r.holder, durationMs: r.durationMs, acquiredAt: r.acquiredAt, renewedAt: r.renewedAt, transitions: r.transitions, data: r.data };
  }

  private put(key: string, record: LeaseRecord, leaseId: string) {
    return { request_put: { key: Buffer.from(key), value: Buffer.from(JSON.stringify(record)), lease: leaseId } };
  }

  async acquireOrRenew(name: string, holder: string, durationMs: number, data = ''): Promise<{ held: boolean; lease: Lease }> {
    if (!holder) throw new Error(`lease ${name}: empty holder`);
    if (!(durationMs > 0)) throw new Error(`lease ${name}: durationMs must be positive, got ${durationMs}`);
    const s = this.store;
    const key = s.leaseKey(name);
    const historyKey = s.leaseHistoryKey(name);
    const ttl = Math.max(1, Math.ceil(durationMs / 1000));
    const now = s.now();

    for (let attempt = 1; attempt <= MAX_TXN_ATTEMPTS; attempt++) {
      const kv = await s.getKv(key);
      if (kv) {
        const record = parseLeaseRecord(kv.value);
        if (!record) {
          // Not ours to interpret and it would block the election for ever: clear it.
          await s.call((c) => c.kv.txn({ compare: [{ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }], success: [{ request_delete_range: { key: Buffer.from(key) } }] }));
          continue;
        }
        if (record.holder !== holder) return { held: false, lease: this.toLease(name, record) };
        const guard = [{ key: Buffer.from(key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: kv.mod_revision }];
        if (kv.lease !== '0' && record.durationMs === durationMs) {
          // Renew: one keepalive, then record when.
          if ((await s.keepAliveOnce(kv.lease)) <= 0) continue; // just expired: the key is going away
          const next = { ...record, renewedAt: now, data };
          const res = await s.call((c) => c.kv.txn({ compare: guard, success: [this.put(key, next, kv.lease)] }));
          if (res.succeeded) return { held: true, lease: this.toLease(name, next) };
          continue;
        }
        // Same holder, new duration (or a key without an etcd lease): move it to a new etcd lease.
        const id = await s.grantLease(ttl);
        const next = { ...record, durationMs, renewedAt: now, data };
        const res = await s.call((c) => c.kv.txn({ compare: guard, success: [this.put(key, next, id)] }));
        if (res.succeeded) {
          if (kv.lease !== '0') await s.revokeLease(kv.lease).catch(() => undefined);
          return { held: true, lease: this.toLease(name, next) };
        }
        await s.revokeLease(id).catch(() => undefined);
        continue;
      }

      // Free: take it, counting a transition when the previous holder was someone else.
      const hist = await s.getKv(historyKey);
      const previous = hist ? parseLeaseHistory(hist.value) : undefined;
      const transitions = previous === undefined ? 0 : previous.holder === holder ? previous.transitions : previous.transitions + 1;
      const record: LeaseRecord = { holder, durationMs, acquiredAt: now, renewedAt: now, transitions, data };
      const id = await s.grantLease(ttl);
      const res = await s.call((c) =>
        c.kv.txn({
          compare: [
            { key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: 0 },
            { key: Buffer.from(historyKey), target: 'Mod', result: 'Equal', mod_revision: hist?.mod_revision ?? 0 },
          ],
          success: [
            this.put(key, record, id),
            { request_put: { key: Buffer.from(historyKey), value: Buffer.from(JSON.stringify({ holder, transitions } satisfies LeaseHistory)) } },
          ],
        }),
      );
      if (res.succeeded) return { held: true, lease: this.toLease(name, record) };
      await s.revokeLease(id).catch(() => undefined); // someone else was quicker
    }
    throw new Error(`lease ${name}: still contended after ${MAX_TXN_ATTEMPTS} attempts`);
  }

  async release(name: string, holder: string): Promise<void> {
    const s = this.store;
    const key = s.leaseKey(name);
    const kv = await s.getKv(key);
    if (!kv || parseLeaseRecord(kv.value)?.holder !== holder) return;
    // Revoking by ID can only end our own etcd lease, even if the key changed hands meanwhile.
    if (kv.lease !== '0') await s.revokeLease(kv.lease);
    else await s.call((c) => c.kv.txn({ compare: [{ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }], success: [{ request_delete_range: { key: Buffer.from(key) } }] }));
  }

  async get(name: string): Promise<Lease | undefined> {
    const kv = await this.store.getKv(this.store.leaseKey(name));
    const record = kv ? parseLeaseRecord(kv.value) : undefined;
    return record ? this.toLease(name, record) : undefined;
  }

  async list(prefix: string): Promise<Lease[]> {
    if (prefix.includes('/')) throw new Error(`invalid lease name prefix ${JSON.stringify(prefix)}: must contain no '/'`);
    const s = this.store;
    const range = Range.prefix(`${s.leasesPrefix}${prefix}`);
    // One lease per node: a single page is enough for any cluster this store serves.
    const res = await s.call((c) => c.kv.range({ key: range.start, range_end: range.end }));
    return res.kvs.flatMap((kv) => {
      const record = parseLeaseRecord(kv.value);
      return record ? [this.toLease(kv.key.toString('utf8').slice(s.leasesPrefix.length), record)] : [];
    });
  }
}

/** Opens the store and waits (up to dialTimeoutMs) until etcd answers; fails with a clear error if it does not. */
export async function openEtcdStore(options: EtcdStoreOptions): Promise<EtcdStore> {
  const store = new EtcdStore(options);
  const dialTimeoutMs = options.dialTimeoutMs ?? 5000;
  const end = Date.now() + dialTimeoutMs;
  for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
    try {
      await store.probe();
      return store;
    } catch (e) {
      if (Date.now() + wait > end) {
        await store.close();
        throw new Error(`etcd ${options.endpoints.map(redactEndpoint).join(',')} not reachable within ${dialTimeoutMs} ms: ${errorText(e)}`);
      }
      await sleep(wait);
    }
  }
}
