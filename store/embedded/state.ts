// The embedded store's state folder: one SQLite database (WAL, synchronous=FULL) that several Beacon
// processes on a host share. It holds what the manifests cannot: status, leases, each object's
// first-seen time and generation, and the last good text of every manifest file. Every write is one
// short BEGIN IMMEDIATE transaction (status writes that arrive together share one), so a `kill -9`
// loses at most a write that was never reported committed, and concurrent writers are serialized by SQLite's own lock (busy_timeout waits).
import { mkdirSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Lease } from '../types.js';
import { openDatabase, sqliteCode, type Database, type Statement } from './sqlite.js';

export const stateFileName = 'beacon-state.db';
/** 2: leases.data. */
const schemaVersion = 2;

/** The state database cannot be used as it is. Beacon never deletes or resets it: a person decides. */
export class StateCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(
      `embedded store: state database ${file} is unusable (${detail}). Beacon leaves it untouched. ` +
        `Stop every Beacon process that uses it, then restore it from a backup, or move it (with any ` +
        `${file}-wal and ${file}-shm next to it) aside to start with empty state; assigned IPs are then computed again.`,
    );
    this.name = 'StateCorruptError';
  }
}

/** Identity of an object in the state tables; cluster-scoped objects have namespace ''. */
export interface ObjectKey {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export interface StatusRow extends ObjectKey {
  /** The status as JSON; `null` when none was ever written (or it was cleared). */
  readonly statusJson: string;
  /** Revision of the write that set it; 0 when never written. */
  readonly version: number;
}

/** What a process saw in the manifests for one object, to record in the shared tables. */
export interface ObservedObject extends ObjectKey {
  readonly specHash: string;
  /** metadata.creationTimestamp / uid as written in the manifest, when present. */
  readonly fileCreationTimestamp?: string | undefined;
  readonly fileUid?: string | undefined;
}

/** The shared facts about an object that the manifests do not carry. */
export interface ObjectRecord {
  readonly uid: string;
  readonly creationTimestamp: string;
  readonly generation: number;
  /** The stored status as JSON (`null`: none): compact, and a fresh copy is one JSON.parse. */
  readonly statusJson: string;
  readonly statusVersion: number;
}

export type StatusWriteResult = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly current: StatusRow };

export interface StateOptions {
  /** Epoch milliseconds (injected for tests). */
  now?: () => number;
  /** An object absent from the manifests for longer than this comes back as a new object (ms). */
  forgetRemovedAfterMs?: number;
  /** How long a statement waits for another process's write lock (ms). */
  busyTimeoutMs?: number;
}

interface ObjectRow {
  uid: string;
  created_at: string;
  generation: number;
  spec_hash: string;
  removed_at: number | null;
}

interface LeaseRow {
  name: string;
  holder: string;
  duration_ms: number;
  acquired_at: number;
  renewed_at: number;
  transitions: number;
  data: string;
}

/** Kubernetes writes timestamps as RFC 3339 with whole seconds. */
export const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Errors after which the database must not be trusted again in this process. */
const fatalCodes = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_SEQUENCE', 'SQLITE_CORRUPT_VTAB']);

/**
 * Switches the database to WAL. The switch needs an exclusive lock, and SQLite answers SQLITE_BUSY
 * at once (without its busy handler) when another process is opening the same new database at the
 * same moment: retry, bounded by the busy timeout. Opening is synchronous, so the wait is too.
 */
function switchToWAL(db: Database, timeoutMs: number): unknown {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; ; attempt++) {
    try {
      return db.pragma('journal_mode = WAL', { simple: true });
    } catch (e) {
      if (sqliteCode(e) !== 'SQLITE_BUSY' || Date.now() >= deadline) throw e;
      Atomics.wait(pause, 0, 0, Math.min(50, 5 * (attempt + 1)));
    }
  }
}

export class StateDb {
  readonly file: string;
  private readonly db: Database;
  private readonly now: () => number;
  private readonly forgetAfterMs: number;
  private failure: { message: string; sticky: boolean } | undefined;
  private readonly stmt: {
    revision: Statement<{ value: number }>;
    bumpRevision: Statement<{ value: number }>;
    statusSince: Statement<{ kind: string; namespace: string; name: string; status: string; version: number }>;
    statusOf: Statement<{ status: string; version: number }>;
    putStatus: Statement<never>;
    objectOf: Statement<ObjectRow>;
    insertObject: Statement<never>;
    updateObject: Statement<never>;
    markRemoved: Statement<never>;
    lease: Statement<LeaseRow>;
    leasesFrom: Statement<LeaseRow>;
    putLease: Statement<never>;
    lastGood: Statement<{ text: string; saved_at: number }>;
    putLastGood: Statement<never>;
    dropLastGood: Statement<never>;
  };

  private constructor(file: string, db: Database, opts: StateOptions) {
    this.file = file;
    this.db = db;
    this.now = opts.now ?? Date.now;
    this.forgetAfterMs = opts.forgetRemovedAfterMs ?? 7 * 24 * 3600_000;
    const p = <Row>(sql: string): Statement<Row> => db.prepare<Row>(sql);
    this.stmt = {
      revision: p(`SELECT value FROM meta WHERE key = 'revision'`),
      bumpRevision: p(`UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value`),
      statusSince: p(`SELECT kind, namespace, name, status, version FROM status WHERE version > ? ORDER BY version`),
      statusOf: p(`SELECT status, version FROM status WHERE kind = ? AND namespace = ? AND name = ?`),
      putStatus: p(
        `INSERT INTO status (kind, namespace, name, status, version) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (kind, namespace, name) DO UPDATE SET status = excluded.status, version = excluded.version`,
      ),
      objectOf: p(`SELECT uid, created_at, generation, spec_hash, removed_at FROM objects WHERE kind = ? AND namespace = ? AND name = ?`),
      insertObject: p(
        `INSERT INTO objects (kind, namespace, name, uid, created_at, generation, spec_hash, removed_at) VALUES (?, ?, ?, ?, ?, 1, ?, NULL)
         ON CONFLICT (kind, namespace, name) DO UPDATE SET uid = excluded.uid, created_at = excluded.created_at,
           generation = 1, spec_hash = excluded.spec_hash, removed_at = NULL`,
      ),
      updateObject: p(`UPDATE objects SET generation = ?, spec_hash = ?, removed_at = NULL WHERE kind = ? AND namespace = ? AND name = ?`),
      markRemoved: p(`UPDATE objects SET removed_at = ? WHERE kind = ? AND namespace = ? AND name = ? AND removed_at IS NULL`),
      lease: p(`SELECT name, holder, duration_ms, acquired_at, renewed_at, transitions, data FROM leases WHERE name = ?`),
      // Names from prefix (inclusive) to prefix + U+FFFF: an index range, not a scan.
      leasesFrom: p(`SELECT name, holder, duration_ms, acquired_at, renewed_at, transitions, data FROM leases WHERE name >= ? AND name < ? AND holder <> '' ORDER BY name`),
      putLease: p(
        `INSERT INTO leases (name, holder, duration_ms, acquired_at, renewed_at, transitions, data) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, duration_ms = excluded.duration_ms,
           acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at, transitions = excluded.transitions, data = excluded.data`,
      ),
      lastGood: p(`SELECT text, saved_at FROM last_good WHERE path = ?`),
      putLastGood: p(
        `INSERT INTO last_good (path, text, saved_at) VALUES (?, ?, ?)
         ON CONFLICT (path) DO UPDATE SET text = excluded.text, saved_at = excluded.saved_at WHERE last_good.text <> excluded.text`,
      ),
      dropLastGood: p(`DELETE FROM last_good WHERE path = ?`),
    };
  }

  /**
   * Opens (or creates) the database in `stateDir`. An existing file is checked first (PRAGMA
   * quick_check) and never modified when it fails: the caller gets a StateCorruptError.
   */
  static open(stateDir: string, opts: StateOptions = {}): StateDb {
    mkdirSync(stateDir, { recursive: true });
    const file = join(stateDir, stateFileName);
    let db: Database;
    try {
      db = openDatabase(file, { timeout: opts.busyTimeoutMs ?? 5000 });
    } catch (e) {
      throw new Error(`embedded store: cannot open state database ${file}: ${(e as Error).message}`, { cause: e });
    }
    try {
      // Before anything that could write: a file that is not a database, or a damaged one, must
      // reach a person intact.
      let check: unknown;
      try {
        check = db.pragma('quick_check');
      } catch (e) {
        const code = sqliteCode(e);
        if (code === 'SQLITE_NOTADB') throw new StateCorruptError(file, 'not a SQLite database');
        if (code?.startsWith('SQLITE_CORRUPT')) throw new StateCorruptError(file, `damaged: ${(e as Error).message}`);
        throw new Error(`embedded store: cannot read state database ${file}: ${(e as Error).message}`, { cause: e });
      }
      const messages = (check as { quick_check: string }[]).map((r) => r.quick_check);
      if (messages.length !== 1 || messages[0] !== 'ok') {
        throw new StateCorruptError(file, `integrity check failed: ${messages.slice(0, 3).join('; ')}${messages.length > 3 ? '; …' : ''}`);
      }
      // WAL lets readers in other processes proceed during a write; FULL syncs the WAL on every
      // commit, so a committed write survives power loss as well as kill -9.
      const mode = switchToWAL(db, opts.busyTimeoutMs ?? 5000);
      if (mode !== 'wal') throw new Error(`embedded store: state database ${file} cannot use WAL journaling (got ${String(mode)}); put the state folder on a local filesystem`);
      db.pragma('synchronous = FULL');
      db.transaction(() => {
        db.exec(`
          CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
          INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ${schemaVersion}), ('revision', 0);
          CREATE TABLE IF NOT EXISTS objects (
            kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
            uid TEXT NOT NULL, created_at TEXT NOT NULL, generation INTEGER NOT NULL, spec_hash TEXT NOT NULL,
            removed_at INTEGER,
            PRIMARY KEY (kind, namespace, name));
          CREATE TABLE IF NOT EXISTS status (
            kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
            status TEXT NOT NULL, version INTEGER NOT NULL,
            PRIMARY KEY (kind, namespace, name));
          CREATE INDEX IF NOT EXISTS status_by_version ON status (version);
          CREATE TABLE IF NOT EXISTS leases (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, duration_ms INTEGER NOT NULL,
            acquired_at INTEGER NOT NULL, renewed_at INTEGER NOT NULL, transitions INTEGER NOT NULL,
            data TEXT NOT NULL DEFAULT '');
          CREATE TABLE IF NOT EXISTS last_good (path TEXT PRIMARY KEY, text TEXT NOT NULL, saved_at INTEGER NOT NULL);
        `);
        // Schema 1 databases lack leases.data.
        const columns = db.prepare<{ name: string }>(`SELECT name FROM pragma_table_info('leases')`).all().map((c) => c.name);
        if (!columns.includes('data')) db.exec(`ALTER TABLE leases ADD COLUMN data TEXT NOT NULL DEFAULT ''`);
        db.exec(`UPDATE meta SET value = ${schemaVersion} WHERE key = 'schema' AND value < ${schemaVersion}`);
      }).immediate();
      const found = (db.prepare<{ value: number }>(`SELECT value FROM meta WHERE key = 'schema'`).get()?.value) ?? 0;
      if (found > schemaVersion) {
        throw new Error(`embedded store: state database ${file} was written by a newer Beacon (schema ${found}, this one knows ${schemaVersion}); upgrade this Beacon`);
      }
      return new StateDb(file, db, opts);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Runs one database step, remembering failures for health(). */
  private guard<T>(fn: () => T): T {
    if (this.failure?.sticky) throw new StateCorruptError(this.file, this.failure.message);
    try {
      const out = fn();
      this.failure = undefined;
      return out;
    } catch (e) {
      const code = sqliteCode(e);
      if (code && fatalCodes.has(code)) this.failure = { message: `damaged: ${(e as Error).message}`, sticky: true };
      else if (code && code !== 'SQLITE_BUSY' && code !== 'SQLITE_CONSTRAINT') this.failure = { message: (e as Error).message, sticky: false };
      if (this.failure?.sticky) throw new StateCorruptError(this.file, this.failure.message);
      throw e;
    }
  }

  /** Why the database is failing, or undefined while it works. */
  get problem(): string | undefined {
    return this.failure && `state database ${this.file}: ${this.failure.message}`;
  }

  /** The global revision: bumped by every status write. Cheap enough to poll. */
  revision(): number {
    return this.guard(() => this.stmt.revision.get()?.value ?? 0);
  }

  /** Every status written after `revision`, and the revision they bring the reader to. */
  statusSince(revision: number): { revision: number; rows: StatusRow[] } {
    return this.guard(() =>
      this.db
        .transaction(() => {
          const now = this.stmt.revision.get()?.value ?? 0;
          const rows = this.stmt.statusSince.all(revision).map((r) => ({ kind: r.kind, namespace: r.namespace, name: r.name, statusJson: r.status, version: r.version }));
          return { revision: Math.max(now, rows.at(-1)?.version ?? 0), rows };
        })
        .deferred(),
    );
  }

  /**
   * Replaces the status when its stored version is still `expectedVersion` (0: never written).
   * The read and the write are one IMMEDIATE transaction, so of two processes racing from the
   * same version exactly one wins.
   */
  writeStatus(key: ObjectKey, expectedVersion: number, status: unknown): StatusWriteResult {
    return this.writeStatuses([{ key, expectedVersion, json: JSON.stringify(status ?? null) }])[0]!;
  }

  /**
   * Several status writes in one IMMEDIATE transaction (one fsync: a group commit). Each is checked
   * on its own, in order, exactly as if they ran one after another: a write to a key that an
   * earlier one in the batch changed sees the new version. All commit together or none does.
   */
  writeStatuses(writes: readonly { key: ObjectKey; expectedVersion: number; json: string }[]): StatusWriteResult[] {
    if (writes.length === 0) return [];
    return this.guard(() =>
      this.db
        .transaction(() =>
          writes.map(({ key, expectedVersion, json }): StatusWriteResult => {
            const row = this.stmt.statusOf.get(key.kind, key.namespace, key.name);
            const current = row?.version ?? 0;
            if (current !== expectedVersion) return { ok: false, current: { ...key, statusJson: row?.status ?? 'null', version: current } };
            const version = this.stmt.bumpRevision.get()!.value;
            this.stmt.putStatus.run(key.kind, key.namespace, key.name, json, version);
            return { ok: true, version };
          }),
        )
        .immediate(),
    );
  }

  /**
   * Records objects this process found new or changed in the manifests, and returns what the
   * manifests do not say: uid, first-seen time, generation (bumped when the spec hash changes)
   * and the stored status. An object back after a long absence starts over as a new object.
   */
  observe(objects: readonly ObservedObject[]): ObjectRecord[] {
    if (objects.length === 0) return [];
    const now = this.now();
    return this.guard(() =>
      this.db
        .transaction(() =>
          objects.map((o): ObjectRecord => {
            let row = this.stmt.objectOf.get(o.kind, o.namespace, o.name);
            const removedAt = row?.removed_at ?? null;
            const forgotten = removedAt !== null && now - removedAt > this.forgetAfterMs;
            if (!row || forgotten) {
              const uid = o.fileUid ?? randomUUID();
              const created = o.fileCreationTimestamp ?? rfc3339(now);
              this.stmt.insertObject.run(o.kind, o.namespace, o.name, uid, created, o.specHash);
              if (forgotten && this.stmt.statusOf.get(o.kind, o.namespace, o.name)) {
                // Cleared with a new revision, so other processes' pollers see it too.
                this.stmt.putStatus.run(o.kind, o.namespace, o.name, 'null', this.stmt.bumpRevision.get()!.value);
              }
              row = { uid, created_at: created, generation: 1, spec_hash: o.specHash, removed_at: null };
            } else if (row.spec_hash !== o.specHash || row.removed_at !== null) {
              const generation = row.spec_hash !== o.specHash ? row.generation + 1 : row.generation;
              this.stmt.updateObject.run(generation, o.specHash, o.kind, o.namespace, o.name);
              row = { ...row, generation, spec_hash: o.specHash, removed_at: null };
            }
            const status = this.stmt.statusOf.get(o.kind, o.namespace, o.name);
            return {
              uid: o.fileUid ?? row.uid,
              creationTimestamp: o.fileCreationTimestamp ?? row.created_at,
              generation: row.generation,
              statusJson: status?.status ?? 'null',
              statusVersion: status?.version ?? 0,
            };
          }),
        )
        .immediate(),
    );
  }

  /** Notes when objects left the manifests (their status stays). */
  markRemoved(keys: readonly ObjectKey[]): void {
    if (keys.length === 0) return;
    const now = this.now();
    this.guard(() =>
      this.db
        .transaction(() => {
          for (const k of keys) this.stmt.markRemoved.run(now, k.kind, k.namespace, k.name);
        })
        .immediate(),
    );
  }

  /** The last text of a manifest file that parsed cleanly (path relative to the manifests folder). */
  lastGood(path: string): { text: string; savedAt: number } | undefined {
    const row = this.guard(() => this.stmt.lastGood.get(path));
    return row && { text: row.text, savedAt: row.saved_at };
  }

  /** Saves the texts of files that parsed cleanly, in one transaction. */
  saveLastGood(files: readonly { path: string; text: string }[]): void {
    if (files.length === 0) return;
    const now = this.now();
    this.guard(() =>
      this.db
        .transaction(() => {
          for (const f of files) this.stmt.putLastGood.run(f.path, f.text, now);
        })
        .immediate(),
    );
  }

  forgetLastGood(path: string): void {
    this.guard(() => this.stmt.dropLastGood.run(path));
  }

  acquireOrRenew(name: string, holder: string, durationMs: number, data: string): { held: boolean; lease: Lease } {
    if (!holder) throw new Error('lease holder must not be empty');
    const now = this.now();
    return this.guard(() =>
      this.db
        .transaction(() => {
          const row = this.stmt.lease.get(name);
          let next: LeaseRow;
          if (row && row.holder === holder) {
            next = { ...row, duration_ms: durationMs, renewed_at: now, data };
          } else if (!row || row.holder === '' || now > row.renewed_at + row.duration_ms) {
            next = { name, holder, duration_ms: durationMs, acquired_at: now, renewed_at: now, transitions: row ? row.transitions + 1 : 0, data };
          } else {
            return { held: false, lease: leaseOf(row) };
          }
          this.stmt.putLease.run(next.name, next.holder, next.duration_ms, next.acquired_at, next.renewed_at, next.transitions, next.data);
          return { held: true, lease: leaseOf(next) };
        })
        .immediate(),
    );
  }

  release(name: string, holder: string): void {
    this.guard(() =>
      this.db
        .transaction(() => {
          const row = this.stmt.lease.get(name);
          if (!row || row.holder !== holder) return;
          this.stmt.putLease.run(name, '', row.duration_ms, row.acquired_at, this.now(), row.transitions, '');
        })
        .immediate(),
    );
  }

  lease(name: string): Lease | undefined {
    const row = this.guard(() => this.stmt.lease.get(name));
    return row && leaseOf(row);
  }

  leases(prefix: string): Lease[] {
    return this.guard(() => this.stmt.leasesFrom.all(prefix, `${prefix}\uffff`)).map(leaseOf);
  }

  /** Full integrity check (slower than the quick check done on open); 'ok' or the problems. */
  integrityCheck(): string[] {
    return this.guard(() => (this.db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

const leaseOf = (r: LeaseRow): Lease => ({
  name: r.name,
  holder: r.holder,
  durationMs: r.duration_ms,
  acquiredAt: r.acquired_at,
  renewedAt: r.renewed_at,
  transitions: r.transitions,
  data: r.data,
});
