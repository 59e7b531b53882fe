// SQLite, for CernVM-FS catalogs and history databases (and the fixture that writes them).
//
// Node's own `node:sqlite` where it exists (22.13 and later: CI's 22 and 24, what users run), else
// better-sqlite3 (an optional dependency, compiled by node-gyp at install on Node 20, where there
// is no node:sqlite). Both are the real SQLite library, synchronous, and fast: a catalog lookup is
// a B-tree probe, a listing one indexed range scan. sql.js (SQLite compiled to WASM) was the third
// choice: it reads a whole database into memory and is several times slower per query.
//
// Every integer column is read as a bigint: catalogs key rows by the two halves of an MD5 as
// signed 64-bit integers, past what a double holds exactly.
import { createRequire } from 'node:module';
import { BuildError } from '../model/errors.js';

export type SqlValue = bigint | number | string | Uint8Array | null;
export type SqlRow = Record<string, SqlValue>;

export interface SqlStatement {
  all(...params: SqlValue[]): SqlRow[];
  get(...params: SqlValue[]): SqlRow | undefined;
  run(...params: SqlValue[]): void;
}

export interface SqlDatabase {
  prepare(sql: string): SqlStatement;
  exec(sql: string): void;
  close(): void;
}

interface Library {
  name: string;
  open(file: string, readOnly: boolean): SqlDatabase;
}

const require = createRequire(import.meta.url);
let chosen: Library | null | undefined;

/** What we use of node:sqlite (@types/node 20 has no types for it). */
interface NodeSqlite {
  DatabaseSync: new (file: string, opts: { readOnly: boolean }) => {
    prepare(sql: string): { setReadBigInts(on: boolean): void; all(...p: unknown[]): unknown[]; get(...p: unknown[]): unknown; run(...p: unknown[]): unknown };
    exec(sql: string): void;
    close(): void;
  };
}

/** node:sqlite without its one-time ExperimentalWarning on stderr (a CLI's stderr is for the user). */
function loadNodeSqlite(): NodeSqlite | null {
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (/SQLite is an experimental feature/.test(text)) return;
    (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return require('node:sqlite') as NodeSqlite;
  } catch {
    return null;
  } finally {
    process.emitWarning = emit;
  }
}

function nodeSqlite(): Library | null {
  const mod = loadNodeSqlite();
  if (!mod) return null;
  return {
    name: `node:sqlite (SQLite ${process.versions.sqlite ?? '?'})`,
    open(file, readOnly) {
      const db = new mod.DatabaseSync(file, { readOnly });
      return {
        prepare(sql) {
          const st = db.prepare(sql);
          st.setReadBigInts(true);
          return {
            all: (...p) => st.all(...p) as SqlRow[],
            get: (...p) => st.get(...p) as SqlRow | undefined,
            run: (...p) => void st.run(...p),
          };
        },
        exec: (sql) => db.exec(sql),
        close: () => db.close(),
      };
    },
  };
}

interface BetterStatement {
  safeIntegers(on: boolean): BetterStatement;
  readonly reader: boolean;
  all(...p: unknown[]): unknown[];
  get(...p: unknown[]): unknown;
  run(...p: unknown[]): unknown;
}
interface BetterDatabase {
  prepare(sql: string): BetterStatement;
  exec(sql: string): void;
  close(): void;
}

function betterSqlite(): Library | null {
  let Database: new (file: string, opts: { readonly: boolean; fileMustExist: boolean }) => BetterDatabase;
  let version = '?';
  try {
    Database = require('better-sqlite3');
    version = (require('better-sqlite3/package.json') as { version: string }).version;
  } catch {
    return null;
  }
  return {
    name: `better-sqlite3 ${version}`,
    open(file, readOnly) {
      const db = new Database(file, { readonly: readOnly, fileMustExist: readOnly });
      // better-sqlite3 takes a Uint8Array only as a Buffer.
      const args = (p: SqlValue[]) => p.map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
      return {
        prepare(sql) {
          const st = db.prepare(sql);
          if (st.reader) st.safeIntegers(true);
          return {
            all: (...p) => st.all(...args(p)) as SqlRow[],
            get: (...p) => st.get(...args(p)) as SqlRow | undefined,
            run: (...p) => void st.run(...args(p)),
          };
        },
        exec: (sql) => db.exec(sql),
        close: () => db.close(),
      };
    },
  };
}

/** The SQLite library this process uses, or null when it has none. */
export function sqliteLibrary(): string | null {
  chosen ??= nodeSqlite() ?? betterSqlite();
  return chosen?.name ?? null;
}

/** Open a database file; read-only opens never create or change it. */
export function openDatabase(file: string, opts: { readOnly: boolean }): SqlDatabase {
  chosen ??= nodeSqlite() ?? betterSqlite();
  if (!chosen) {
    throw new BuildError(
      `reading CernVM-FS catalogs needs SQLite: Node ${process.versions.node} has no node:sqlite (22.13 and later do) and the optional better-sqlite3 is not installed (npm install better-sqlite3@12)`,
    );
  }
  return chosen.open(file, opts.readOnly);
}
