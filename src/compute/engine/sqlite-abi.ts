/**
 * SQLite's C ABI as the engine uses it: the numbers from sqlite3.h (result codes with their names,
 * open flags, locks, I/O capabilities, file controls), the shape of the wa-sqlite Emscripten module
 * (raw `_sqlite3_*` exports), and its loader.
 *
 * The engine calls the raw exports directly rather than the package's `sqlite-api.js`: that API
 * returns Promises even in the synchronous build and halved throughput in the spike. The build is the
 * synchronous `dist/wa-sqlite.{mjs,wasm}` of `@journeyapps/wa-sqlite` 2.0.6 (SQLite 3.53 with
 * SQLITE_ENABLE_BATCH_ATOMIC_WRITE, THREADSAFE=0, OMIT_DECLTYPE): one module instance per thread.
 * It is built without WASM_BIGINT, so 64-bit integers cross the boundary as (lo, hi) 32-bit halves,
 * results coming back through `getTempRet0()`.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// ----------------------------------------------------------------------------------- result codes

export const SQLITE_OK = 0;
export const SQLITE_ERROR = 1;
export const SQLITE_BUSY = 5;
export const SQLITE_READONLY = 8;
export const SQLITE_IOERR = 10;
export const SQLITE_NOTFOUND = 12;
export const SQLITE_FULL = 13;
export const SQLITE_CANTOPEN = 14;
export const SQLITE_TOOBIG = 18;
export const SQLITE_MISUSE = 21;
export const SQLITE_RANGE = 25;
export const SQLITE_ROW = 100;
export const SQLITE_DONE = 101;
export const SQLITE_IOERR_READ = 10 | (1 << 8);
export const SQLITE_IOERR_SHORT_READ = 10 | (2 << 8);
export const SQLITE_IOERR_WRITE = 10 | (3 << 8);
export const SQLITE_IOERR_FSYNC = 10 | (4 << 8);
export const SQLITE_IOERR_TRUNCATE = 10 | (6 << 8);

const PRIMARY_NAMES: Record<number, string> = {
  0: "SQLITE_OK", 1: "SQLITE_ERROR", 2: "SQLITE_INTERNAL", 3: "SQLITE_PERM", 4: "SQLITE_ABORT", 5: "SQLITE_BUSY",
  6: "SQLITE_LOCKED", 7: "SQLITE_NOMEM", 8: "SQLITE_READONLY", 9: "SQLITE_INTERRUPT", 10: "SQLITE_IOERR",
  11: "SQLITE_CORRUPT", 12: "SQLITE_NOTFOUND", 13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN", 15: "SQLITE_PROTOCOL",
  16: "SQLITE_EMPTY", 17: "SQLITE_SCHEMA", 18: "SQLITE_TOOBIG", 19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH",
  21: "SQLITE_MISUSE", 22: "SQLITE_NOLFS", 23: "SQLITE_AUTH", 24: "SQLITE_FORMAT", 25: "SQLITE_RANGE",
  26: "SQLITE_NOTADB", 27: "SQLITE_NOTICE", 28: "SQLITE_WARNING", 100: "SQLITE_ROW", 101: "SQLITE_DONE",
};

/** Extended result codes, by (primary, n): the code is primary | (n << 8). */
const EXTENDED_SUFFIXES: Record<number, readonly string[]> = {
  0: ["", "LOAD_PERMANENTLY", "SYMLINK"],
  1: ["", "MISSING_COLLSEQ", "RETRY", "SNAPSHOT", "RESERVESIZE", "KEY", "UNABLE"],
  4: ["", "", "ROLLBACK"],
  5: ["", "RECOVERY", "SNAPSHOT", "TIMEOUT"],
  6: ["", "SHAREDCACHE", "VTAB"],
  8: ["", "RECOVERY", "CANTLOCK", "ROLLBACK", "DBMOVED", "CANTINIT", "DIRECTORY"],
  10: ["", "READ", "SHORT_READ", "WRITE", "FSYNC", "DIR_FSYNC", "TRUNCATE", "FSTAT", "UNLOCK", "RDLOCK", "DELETE",
    "BLOCKED", "NOMEM", "ACCESS", "CHECKRESERVEDLOCK", "LOCK", "CLOSE", "DIR_CLOSE", "SHMOPEN", "SHMSIZE", "SHMLOCK",
    "SHMMAP", "SEEK", "DELETE_NOENT", "MMAP", "GETTEMPPATH", "CONVPATH", "VNODE", "AUTH", "BEGIN_ATOMIC",
    "COMMIT_ATOMIC", "ROLLBACK_ATOMIC", "DATA", "CORRUPTFS", "IN_PAGE", "BADKEY", "CODEC"],
  11: ["", "VTAB", "SEQUENCE", "INDEX"],
  14: ["", "NOTEMPDIR", "ISDIR", "FULLPATH", "CONVPATH", "DIRTYWAL", "SYMLINK"],
  19: ["", "CHECK", "COMMITHOOK", "FOREIGNKEY", "FUNCTION", "NOTNULL", "PRIMARYKEY", "TRIGGER", "UNIQUE", "VTAB",
    "ROWID", "PINNED", "DATATYPE"],
  23: ["", "USER"],
  27: ["", "RECOVER_WAL", "RECOVER_ROLLBACK", "RBU"],
  28: ["", "AUTOINDEX"],
};

/** "SQLITE_CONSTRAINT" for 1555. */
export function primaryCodeName(code: number): string {
  return PRIMARY_NAMES[code & 0xff] ?? `SQLITE_UNKNOWN_${code & 0xff}`;
}

/** "SQLITE_CONSTRAINT_PRIMARYKEY" for 1555; the primary name when the code is not extended. */
export function extendedCodeName(code: number): string {
  const primary = code & 0xff;
  const suffix = EXTENDED_SUFFIXES[primary]?.[code >> 8];
  return suffix ? `${primaryCodeName(primary)}_${suffix}` : primaryCodeName(primary);
}

// ------------------------------------------------------------------------------------ VFS numbers

export const SQLITE_OPEN_READONLY = 0x1;
export const SQLITE_OPEN_READWRITE = 0x2;
export const SQLITE_OPEN_CREATE = 0x4;
export const SQLITE_OPEN_DELETEONCLOSE = 0x8;
export const SQLITE_OPEN_MAIN_DB = 0x100;
export const SQLITE_OPEN_WAL = 0x80000;
export const SQLITE_OPEN_EXRESCODE = 0x02000000;

export const SQLITE_LOCK_NONE = 0;
export const SQLITE_LOCK_SHARED = 1;
export const SQLITE_LOCK_RESERVED = 2;
export const SQLITE_LOCK_EXCLUSIVE = 4;

export const SQLITE_IOCAP_SAFE_APPEND = 0x200;
export const SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN = 0x800;
export const SQLITE_IOCAP_POWERSAFE_OVERWRITE = 0x1000;
export const SQLITE_IOCAP_BATCH_ATOMIC = 0x4000;

export const SQLITE_FCNTL_PRAGMA = 14;
export const SQLITE_FCNTL_SYNC = 21;
export const SQLITE_FCNTL_BEGIN_ATOMIC_WRITE = 31;
export const SQLITE_FCNTL_COMMIT_ATOMIC_WRITE = 32;
export const SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE = 33;

export const SQLITE_INTEGER = 1;
export const SQLITE_FLOAT = 2;
export const SQLITE_TEXT = 3;
export const SQLITE_BLOB = 4;
export const SQLITE_NULL = 5;

export const SQLITE_TXN_NONE = 0;
export const SQLITE_TXN_READ = 1;
export const SQLITE_TXN_WRITE = 2;

/** Makes SQLite copy bound text and blobs before the bind call returns. */
export const SQLITE_TRANSIENT = -1;

// --------------------------------------------------------------------------------- the module shape

/** The subset of the Emscripten module the engine uses. Pointers are numbers into `HEAPU8`. */
export interface SqliteModule {
  /** Replaced when the wasm memory grows: always read it afresh after a call into SQLite. */
  readonly HEAPU8: Uint8Array;
  readonly HEAP32: Int32Array;
  UTF8ToString(ptr: number, maxBytes?: number): string;
  stringToUTF8(s: string, ptr: number, maxBytes: number): number;
  lengthBytesUTF8(s: string): number;
  getTempRet0(): number;
  vfs_register(vfs: object, makeDefault: boolean): number;
  setCallback(key: number, target: unknown): void;
  getCallback(key: number): unknown;

  _sqlite3_malloc(n: number): number;
  _sqlite3_free(p: number): void;
  _sqlite3_open_v2(zName: number, ppDb: number, flags: number, zVfs: number): number;
  _sqlite3_close_v2(db: number): number;
  _sqlite3_vfs_find(zName: number): number;
  _sqlite3_extended_result_codes(db: number, on: number): number;
  _sqlite3_errmsg(db: number): number;
  _sqlite3_extended_errcode(db: number): number;
  _sqlite3_exec(db: number, zSql: number, cb: number, arg: number, pzErr: number): number;
  _sqlite3_prepare_v2(db: number, zSql: number, nBytes: number, ppStmt: number, pzTail: number): number;
  _sqlite3_finalize(stmt: number): number;
  _sqlite3_reset(stmt: number): number;
  _sqlite3_clear_bindings(stmt: number): number;
  _sqlite3_step(stmt: number): number;
  _sqlite3_stmt_readonly(stmt: number): number;
  _sqlite3_stmt_isexplain(stmt: number): number;
  _sqlite3_expanded_sql(stmt: number): number;
  _sqlite3_bind_parameter_count(stmt: number): number;
  _sqlite3_bind_parameter_name(stmt: number, i: number): number;
  _sqlite3_bind_parameter_index(stmt: number, zName: number): number;
  _sqlite3_bind_null(stmt: number, i: number): number;
  _sqlite3_bind_int64(stmt: number, i: number, lo: number, hi: number): number;
  _sqlite3_bind_double(stmt: number, i: number, v: number): number;
  _sqlite3_bind_text(stmt: number, i: number, p: number, n: number, destructor: number): number;
  _sqlite3_bind_blob(stmt: number, i: number, p: number, n: number, destructor: number): number;
  _sqlite3_bind_zeroblob(stmt: number, i: number, n: number): number;
  _sqlite3_column_count(stmt: number): number;
  _sqlite3_column_name(stmt: number, i: number): number;
  _sqlite3_column_type(stmt: number, i: number): number;
  _sqlite3_column_int64(stmt: number, i: number): number;
  _sqlite3_column_double(stmt: number, i: number): number;
  _sqlite3_column_text(stmt: number, i: number): number;
  _sqlite3_column_blob(stmt: number, i: number): number;
  _sqlite3_column_bytes(stmt: number, i: number): number;
  _sqlite3_changes64(db: number): number;
  _sqlite3_last_insert_rowid(db: number): number;
  _sqlite3_get_autocommit(db: number): number;
  _sqlite3_txn_state(db: number, zSchema: number): number;
}

/** Loads one instance of the synchronous wa-sqlite build (one per thread: THREADSAFE=0). */
export async function loadSqliteModule(): Promise<SqliteModule> {
  const require = createRequire(import.meta.url);
  const pkgDir = require.resolve("@journeyapps/wa-sqlite/package.json").replace(/package\.json$/, "");
  // The Emscripten glue is built for the web and cannot read the .wasm in Node: pass the bytes in.
  // A computed specifier: the package ships no declaration for its dist glue, and the one value used
  // from it (the factory) is typed right here.
  const specifier: string = "@journeyapps/wa-sqlite/dist/wa-sqlite.mjs";
  const glue = (await import(specifier)) as { default: (config: object) => Promise<unknown> };
  const factory = glue.default;
  const wasmBinary = readFileSync(`${pkgDir}dist/wa-sqlite.wasm`);
  return (await factory({ wasmBinary })) as SqliteModule;
}

/** A NUL-terminated copy of `s` in the module's heap; the caller frees it with `_sqlite3_free`. */
export function allocString(m: SqliteModule, s: string): number {
  const n = m.lengthBytesUTF8(s) + 1;
  const p = m._sqlite3_malloc(n);
  if (p === 0) throw new RangeError(`sqlite3_malloc(${n}) failed`);
  m.stringToUTF8(s, p, n);
  return p;
}

/** (lo, hi) halves of a signed 64-bit integer → bigint. */
export function int64FromHalves(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

/** A 64-bit result of a raw export: the low half is the return value, the high half in tempRet0. */
export function int64Result(m: SqliteModule, lo: number): bigint {
  const hi = m.getTempRet0();
  if (hi === 0 && lo >= 0) return BigInt(lo);
  if (hi === -1 && lo < 0) return BigInt(lo);
  return int64FromHalves(lo, hi);
}
