// The embedded store: desired objects from a watched manifests folder, status and leases in a
// SQLite database in a state folder that several Beacon processes on one host share.
//
// resourceVersion is `<statusVersion>.<contentHash>`: the revision of the object's last status write
// (shared by every process through SQLite) and a hash of the object as its manifest says it. Both
// halves are computed the same way in every process, so a version read from one process is
// understood by another; it changes whenever the manifest or the status changes.
//
// Watch revisions are local: `<instance>:<sequence>` over this process's own event log (spec
// changes from its scans, status changes from its writes and from polling the shared revision).
// A revision from another instance, or older than the kept history, gets ExpiredError.
import { randomBytes } from 'node:crypto';
import type { ManifestProblem } from '../../api/index.js';
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
  type StoredObject,
  type StoreHealth,
  type Watch,
  type WatchEvent,
} from '../types.js';
import { keyOfRef, ManifestFolder, objectId, problemText, type DesiredObject, type LastGoodStore } from './manifests.js';
import { StateDb, type ObjectKey, type ObjectRecord, type StatusRow, type StatusWriteResult } from './state.js';

export { StateCorruptError, stateFileName } from './state.js';
export { problemText } from './manifests.js';

export interface EmbeddedStoreLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface EmbeddedStoreOptions {
  /** Folder of YAML/JSON manifests (searched recursively): the desired objects. */
  manifestsDir: string;
  /** Folder for the state database (created if missing). */
  stateDir: string;
  /** Rescan period of the manifests folder (ms), on top of fs.watch; default 500. */
  pollMs?: number;
  /** Use fs.watch for quick reaction (default true); off, only the periodic rescan sees changes (e.g. NFS). */
  fsWatch?: boolean;
  /** How often status written by other processes is looked for (ms); default 150. */
  statusPollMs?: number;
  logger?: EmbeddedStoreLogger;
  /** Wall clock, epoch ms (leases, first-seen times). */
  now?: () => number;
  /** An object absent from the manifests longer than this returns as a new object, without its old status (ms); default 7 days. */
  forgetRemovedAfterMs?: number;
  /** How long a write waits for another process's lock (ms); default 5000. */
  busyTimeoutMs?: number;
  /** Watch events kept so that a watch can start from an older list revision; default 10000. */
  historySize?: number;
}

interface Entry {
  desired: DesiredObject;
  record: ObjectRecord;
}

interface PendingWrite {
  readonly ref: ObjectRef;
  /** The status as JSON, taken when the write was made. */
  readonly json: string;
  readonly resourceVersion: string;
  resolve(o: StoredObject): void;
  reject(e: Error): void;
}

interface Watcher {
  readonly kind: string;
  after: number;
  readonly onEvent: (e: WatchEvent) => void;
  readonly onError: (err: Error) => void;
  closed: boolean;
}

const silent: EmbeddedStoreLogger = { info: () => {}, warn: () => {}, error: () => {} };
const rvPattern = /^(\d+)\.([A-Za-z0-9_-]+)$/;
const revisionPattern = /^([0-9a-f]+):(\d+)$/;

const resourceVersionOf = (e: Entry): string => `${e.record.statusVersion}.${e.desired.contentHash}`;

/** The object as served. Callers own what they get: each call parses a fresh copy from the kept JSON. */
function materialize(e: Entry): StoredObject {
  const out = JSON.parse(e.desired.json) as StoredObject;
  const meta = out.metadata;
  meta.uid = e.record.uid;
  meta.creationTimestamp = e.record.creationTimestamp;
  meta.generation = e.record.generation;
  meta.resourceVersion = resourceVersionOf(e);
  if (e.record.statusJson !== 'null') out.status = JSON.parse(e.record.statusJson) as unknown;
  return out;
}

const byNamespaceName = (a: Entry, b: Entry): number => {
  const x = a.desired.key;
  const y = b.desired.key;
  return x.namespace === y.namespace ? (x.name < y.name ? -1 : x.name > y.name ? 1 : 0) : x.namespace < y.namespace ? -1 : 1;
};

export class EmbeddedStore implements Store {
  readonly backend = 'embedded' as const;
  readonly leases: LeaseStore;
  private readonly instance = randomBytes(4).toString('hex');
  private readonly folder: ManifestFolder;
  private readonly log: EmbeddedStoreLogger;
  private readonly historySize: number;
  private entries = new Map<string, Entry>();
  private manifestProblems: readonly ManifestProblem[] = [];
  private scanError: string | undefined;
  /** Shared status revision this process has caught up with. */
  private statusRevision = 0;
  /** Local event log: eventLog[i] has sequence base + i + 1. */
  private eventLog: { seq: number; kind: string; event: WatchEvent }[] = [];
  private base = 0;
  private seq = 0;
  private watchers = new Set<Watcher>();
  private pendingWrites: PendingWrite[] = [];
  /** The manifests' objects as last applied to `entries`. */
  private appliedObjects: ReadonlyMap<string, DesiredObject> | undefined;
  private flushQueued = false;
  private loading = false;
  private timers: NodeJS.Timeout[] = [];
  private fsDebounce: NodeJS.Timeout | undefined;
  private closed = false;
  private lastDbError: string | undefined;

  constructor(
    private readonly db: StateDb,
    private readonly opts: EmbeddedStoreOptions,
  ) {
    this.log = opts.logger ?? silent;
    this.historySize = opts.historySize ?? 10_000;
    // The last-good cache is a safety net: a failing database must not stop scans (health says why).
    const cache: LastGoodStore = {
      lastGood: (path) => this.tryDb(() => db.lastGood(path)),
      saveLastGood: (files) => this.tryDb(() => db.saveLastGood(files)),
      forgetLastGood: (path) => this.tryDb(() => db.forgetLastGood(path)),
    };
    this.folder = new ManifestFolder(opts.manifestsDir, cache);
    this.leases = {
      acquireOrRenew: (name: string, holder: string, durationMs: number, data = '') => this.run(() => db.acquireOrRenew(name, holder, durationMs, data)),
      release: (name: string, holder: string) => this.run(() => db.release(name, holder)),
      get: (name: string): Promise<Lease | undefined> => this.run(() => db.lease(name)),
      list: (prefix: string): Promise<Lease[]> => this.run(() => db.leases(prefix)),
    };
  }

  /** Loads the manifests and starts watching; called once by openEmbeddedStore. */
  start(): void {
    this.statusRevision = this.db.revision();
    if (this.opts.fsWatch === false) this.folder.watch(undefined);
    else
      this.folder.watch(() => {
        // Editors write in bursts (truncate, write, rename): scan once things settle a little.
        if (this.closed || this.fsDebounce) return;
        this.fsDebounce = setTimeout(() => {
          this.fsDebounce = undefined;
          this.rescan();
        }, 30);
        this.fsDebounce.unref();
      });
    this.loading = true;
    try {
      this.applyScan(); // a first load that fails fails the open: never serve an empty view instead
    } finally {
      this.loading = false;
    }
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.pollMs ?? 500, () => this.rescan());
    every(this.opts.statusPollMs ?? 150, () => {
      try {
        this.pollStatus();
      } catch (e) {
        this.log.error(`embedded store: reading status from ${this.db.file} failed: ${(e as Error).message}`);
      }
    });
  }

  private async run<T>(fn: () => T): Promise<T> {
    await Promise.resolve();
    if (this.closed) throw new Error('embedded store is closed');
    return fn();
  }

  private tryDb<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      const message = `embedded store: ${(e as Error).message}`;
      if (message !== this.lastDbError) this.log.error(message); // once, not on every scan
      this.lastDbError = message;
      return undefined;
    }
  }

  /** Full SQLite integrity check of the state database: ['ok'] or what is wrong. */
  checkIntegrity(): string[] {
    return this.db.integrityCheck();
  }

  /** Manifest problems as `file:line: reason` lines: syntax errors, skipped objects, duplicates. */
  problems(): string[] {
    return this.manifestProblems.map(problemText);
  }

  /** Reads the manifests folder and turns differences into events. Runs on fs.watch hints and on a timer. */
  rescan(): void {
    if (this.closed) return;
    try {
      this.applyScan();
    } catch (e) {
      const message = (e as Error).message;
      if (this.scanError !== message) this.log.error(`embedded store: applying manifests from ${this.opts.manifestsDir} failed: ${message}`);
      this.scanError = message;
    }
  }

  private applyScan(): void {
    const snapshot = this.folder.scan();
    this.updateProblems(snapshot.problems);
    if (snapshot.objects === this.appliedObjects) return; // no file changed since the last scan that was applied
    const removed: Entry[] = [];
    for (const [id, entry] of this.entries) if (!snapshot.objects.has(id)) removed.push(entry);
    const changed = [...snapshot.objects.values()].filter((d) => {
      const old = this.entries.get(d.id)?.desired;
      return !old || old.contentHash !== d.contentHash || old.specHash !== d.specHash;
    });
    // Shared facts first (a failure leaves the previous view in place; the next scan retries).
    const records = this.db.observe(changed.map((d) => ({ ...d.key, specHash: d.specHash, fileCreationTimestamp: d.fileCreationTimestamp, fileUid: d.fileUid })));
    this.db.markRemoved(removed.map((e) => e.desired.key));
    this.scanError = undefined;
    for (const entry of removed) {
      this.entries.delete(entry.desired.id);
      this.emit('deleted', entry);
    }
    changed.forEach((desired, i) => {
      const old = this.entries.get(desired.id);
      const entry = { desired, record: records[i]! };
      this.entries.set(desired.id, entry);
      this.emit(old ? 'modified' : 'added', entry);
    });
    // Unchanged objects may have moved between files: keep their location current for messages.
    for (const [id, d] of snapshot.objects) {
      const entry = this.entries.get(id);
      if (entry && entry.desired !== d) entry.desired = d;
    }
    this.appliedObjects = snapshot.objects;
  }

  private updateProblems(next: readonly ManifestProblem[]): void {
    const before = new Set(this.manifestProblems.map(problemText));
    const after = new Set(next.map(problemText));
    for (const p of after) if (!before.has(p)) this.log.warn(`manifest problem: ${p}`);
    for (const p of before) if (!after.has(p)) this.log.info(`manifest problem resolved: ${p}`);
    this.manifestProblems = next;
  }

  /** Picks up status written by other processes (one cheap query when nothing changed). */
  private pollStatus(): void {
    if (this.closed) return;
    const revision = this.db.revision();
    if (revision === this.statusRevision) return;
    const since = this.db.statusSince(revision < this.statusRevision ? 0 : this.statusRevision);
    for (const row of since.rows) this.applyStatus(row);
    this.statusRevision = since.revision;
  }

  private applyStatus(row: StatusRow): void {
    const entry = this.entries.get(objectId(row));
    if (!entry || row.version <= entry.record.statusVersion) return;
    entry.record = { ...entry.record, statusJson: row.statusJson, statusVersion: row.version };
    this.emit('modified', entry);
  }

  private emit(type: WatchEvent['type'], entry: Entry): void {
    this.seq++;
    // Nobody can watch from before the first load (no list has given out a revision yet): the
    // events of the first load are counted, not kept.
    if (this.loading) {
      this.base = this.seq;
      return;
    }
    const event: WatchEvent = { type, object: materialize(entry) };
    this.eventLog.push({ seq: this.seq, kind: event.object.kind, event });
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    for (const w of this.watchers) {
      if (w.closed) continue;
      if (w.after < this.base) {
        this.stopWatcher(w, new ExpiredError(`watch from ${this.instance}:${w.after} fell behind the kept history; list again`));
        continue;
      }
      for (let i = w.after - this.base; i < this.eventLog.length && !w.closed; i++) {
        const { kind, event, seq } = this.eventLog[i]!;
        w.after = seq;
        if (kind !== w.kind) continue;
        try {
          w.onEvent(event);
        } catch (e) {
          this.log.error(`embedded store: a ${w.kind} watch handler threw: ${(e as Error).message}`);
        }
      }
    }
    const extra = this.eventLog.length - this.historySize;
    if (extra > 0) {
      this.eventLog.splice(0, extra);
      this.base += extra;
    }
  }

  private stopWatcher(w: Watcher, err: Error): void {
    if (w.closed) return;
    w.closed = true;
    this.watchers.delete(w);
    w.onError(err);
  }

  async list(kind: string): Promise<ListResult> {
    return this.run(() => {
      this.pollStatus(); // a list sees every status committed before it, from any process
      const items = [...this.entries.values()]
        .filter((e) => e.desired.key.kind === kind)
        .sort(byNamespaceName)
        .map(materialize);
      return { items, revision: `${this.instance}:${this.seq}` };
    });
  }

  watch(kind: string, revision: string, onEvent: (e: WatchEvent) => void, onError: (err: Error) => void): Watch {
    const w: Watcher = { kind, after: 0, onEvent, onError, closed: false };
    const m = revisionPattern.exec(revision);
    const after = m ? Number(m[2]) : NaN;
    let problem: Error | undefined;
    if (this.closed) problem = new Error('embedded store is closed');
    else if (!m || m[1] !== this.instance || after > this.seq) problem = new ExpiredError(`revision ${JSON.stringify(revision)} is not from this embedded store instance; list again`);
    else if (after < this.base) problem = new ExpiredError(`revision ${revision} is older than the kept watch history; list again`);
    if (problem) {
      const err = problem;
      queueMicrotask(() => onError(err));
      w.closed = true;
    } else {
      w.after = after;
      this.watchers.add(w);
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    }
    return {
      close: () => {
        w.closed = true;
        this.watchers.delete(w);
      },
    };
  }

  /**
   * Status writes made in the same turn of the event loop are committed together, in one
   * transaction (one fsync instead of one per write); each keeps its own conflict check and
   * resolves only once the transaction is committed.
   */
  async writeStatus(ref: ObjectRef, status: unknown, resourceVersion: string): Promise<StoredObject> {
    const json = JSON.stringify(status ?? null);
    await Promise.resolve();
    if (this.closed) throw new Error('embedded store is closed');
    return new Promise<StoredObject>((resolve, reject) => {
      this.pendingWrites.push({ ref, json, resourceVersion, resolve, reject });
      if (this.pendingWrites.length === 1) setImmediate(() => this.commitWrites());
    });
  }

  private commitWrites(): void {
    const batch = this.pendingWrites;
    this.pendingWrites = [];
    if (this.closed) {
      for (const w of batch) w.reject(new Error('embedded store is closed'));
      return;
    }
    // The spec half of each resourceVersion is checked against the manifests as this process
    // read them; the status half inside the database transaction, against every process's writes.
    const checked: { w: PendingWrite; key: ObjectKey; entry: Entry; expected: number }[] = [];
    for (const w of batch) {
      const key = keyOfRef(w.ref);
      const entry = this.entries.get(objectId(key));
      if (!entry) {
        w.reject(new NotFoundError(w.ref));
        continue;
      }
      const m = rvPattern.exec(w.resourceVersion);
      if (!m || m[2] !== entry.desired.contentHash) {
        w.reject(new ConflictError(w.ref, w.resourceVersion, resourceVersionOf(entry)));
        continue;
      }
      checked.push({ w, key, entry, expected: Number(m[1]) });
    }
    let results: StatusWriteResult[];
    try {
      results = this.db.writeStatuses(checked.map((c) => ({ key: c.key, expectedVersion: c.expected, json: c.w.json })));
    } catch (e) {
      for (const c of checked) c.w.reject(e as Error);
      return;
    }
    checked.forEach(({ w, entry }, i) => {
      const result = results[i]!;
      if (!result.ok) {
        this.applyStatus(result.current); // so that the caller's next read is fresh
        w.reject(new ConflictError(w.ref, w.resourceVersion, resourceVersionOf(entry)));
        return;
      }
      entry.record = { ...entry.record, statusJson: w.json, statusVersion: result.version };
      this.emit('modified', entry);
      w.resolve(materialize(entry));
    });
  }

  apply(object: StoredObject): Promise<StoredObject> {
    return Promise.reject(
      new Error(`embedded store: ${refText({ kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name })} cannot be applied: objects come from the manifests folder ${this.opts.manifestsDir}; add or edit a YAML file there`),
    );
  }

  delete(ref: ObjectRef): Promise<boolean> {
    return Promise.reject(new Error(`embedded store: ${refText(ref)} cannot be deleted: objects come from the manifests folder ${this.opts.manifestsDir}; remove it from the YAML files there`));
  }

  health(): StoreHealth {
    if (this.closed) return { ok: false, message: 'embedded store is closed' };
    const issues: string[] = [];
    const dbProblem = this.db.problem;
    if (dbProblem) issues.push(dbProblem);
    if (this.scanError) issues.push(`applying manifests failed: ${this.scanError}`);
    const problems = this.problems();
    if (problems.length > 0) {
      const shown = problems.slice(0, 5).join('; ');
      issues.push(`${problems.length} manifest problem${problems.length === 1 ? '' : 's'} in ${this.opts.manifestsDir}: ${shown}${problems.length > 5 ? '; …' : ''}`);
    }
    if (issues.length > 0) return { ok: false, message: `embedded store: ${issues.join(' | ')}` };
    return { ok: true, message: `embedded store: ${this.entries.size} objects from ${this.opts.manifestsDir}, state in ${this.db.file}` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.commitWrites(); // writes already accepted are committed, not dropped
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.fsDebounce);
    this.folder.close();
    this.watchers.clear();
    this.db.close();
    await Promise.resolve();
  }
}


/**
 * Opens the embedded store. Throws StateCorruptError (naming the file, which is left untouched)
 * when the state database is not a SQLite database or fails its integrity check.
 */
export async function openEmbeddedStore(opts: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  await Promise.resolve();
  const db = StateDb.open(opts.stateDir, {
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.forgetRemovedAfterMs !== undefined ? { forgetRemovedAfterMs: opts.forgetRemovedAfterMs } : {}),
    ...(opts.busyTimeoutMs !== undefined ? { busyTimeoutMs: opts.busyTimeoutMs } : {}),
  });
  const store = new EmbeddedStore(db, opts);
  try {
    store.start();
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}
