// The slice of better-sqlite3 (12.x) the embedded store uses, typed here because the package ships
// no declarations and @types/better-sqlite3 is not a dependency. Loaded through createRequire: it is
// a CommonJS native addon.
import { createRequire } from 'node:module';

export interface RunResult {
  readonly changes: number;
  readonly lastInsertRowid: number | bigint;
}

export interface Statement<Row> {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): Row | undefined;
  all(...params: unknown[]): Row[];
}

export interface TransactionFunction<Args extends unknown[], R> {
  (...args: Args): R;
  deferred(...args: Args): R;
  immediate(...args: Args): R;
}

export interface Database {
  readonly open: boolean;
  readonly name: string;
  prepare<Row = unknown>(sql: string): Statement<Row>;
  exec(sql: string): void;
  pragma(sql: string, options?: { simple?: boolean }): unknown;
  transaction<Args extends unknown[], R>(fn: (...args: Args) => R): TransactionFunction<Args, R>;
  close(): void;
}

export interface DatabaseOptions {
  readonly?: boolean;
  fileMustExist?: boolean;
  /** Busy timeout in ms: how long a statement waits for another connection's lock. */
  timeout?: number;
}

type DatabaseConstructor = new (filename: string, options?: DatabaseOptions) => Database;

const require = createRequire(import.meta.url);
const BetterSqlite3 = require('better-sqlite3') as DatabaseConstructor;

export const openDatabase = (filename: string, options?: DatabaseOptions): Database => new BetterSqlite3(filename, options);

/** better-sqlite3 errors carry SQLite's extended result code name, e.g. SQLITE_CORRUPT or SQLITE_BUSY. */
export const sqliteCode = (e: unknown): string | undefined => {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
};
