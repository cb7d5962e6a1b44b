/**
 * One SQLite connection in a worker, driven through the raw `_sqlite3_*` exports: prepare (with a
 * bounded per-connection statement cache), bind, step, read columns, describe, run scripts.
 *
 * Values cross the thread boundary in their raw JavaScript form (`RawValue`: null, bigint for
 * INTEGER — all 64 bits, number for REAL, string for TEXT, Uint8Array for BLOB): structured clone
 * copies those far more cheaply than tagged objects; the main thread tags them.
 *
 * Declared column types: this build has SQLITE_OMIT_DECLTYPE, so there is no
 * sqlite3_column_decltype. For a SELECT the connection asks SQLite itself, once per statement text
 * and schema version: it creates a temporary view over the statement (parameters inlined with
 * sqlite3_expanded_sql) and reads `PRAGMA temp.table_info`, which reports each column's declared
 * type the way decltype would (empty for expressions → null). Other statements report null. Column
 * names and types are remembered per prepared statement and schema cookie.
 */
import { SqliteError } from "../sql-engine.js";
import {
  allocString, extendedCodeName, int64Result, primaryCodeName, type SqliteModule,
  SQLITE_BLOB, SQLITE_DONE, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_MISUSE, SQLITE_NULL, SQLITE_OK, SQLITE_RANGE,
  SQLITE_ROW, SQLITE_TEXT, SQLITE_TOOBIG, SQLITE_TRANSIENT,
} from "./sqlite-abi.js";

export type RawValue = null | bigint | number | string | Uint8Array;

export interface RawColumn {
  readonly name: string | null;
  readonly decltype: string | null;
}

export interface RawResult {
  readonly columns: readonly RawColumn[];
  readonly rows: readonly (readonly RawValue[])[];
  readonly affectedRowCount: number;
  readonly lastInsertRowid: bigint | null;
}

export interface RawDescribe {
  readonly params: readonly (string | null)[];
  readonly columns: readonly RawColumn[];
  readonly isExplain: boolean;
  readonly isReadonly: boolean;
}

export interface ResultLimits {
  readonly maxRows: number;
  readonly maxBytes: number;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const STATEMENT_CACHE = 64;
const DECLTYPE_VIEW = "__borealis_decltype";

/** A prepared statement and what is known about it. */
export interface Prepared {
  readonly stmt: number;
  readonly sql: string;
  readonly readonly: boolean;
  readonly cached: boolean;
}

export class SqliteConnection {
  private readonly statements = new Map<string, Prepared>();
  private readonly columnCache = new WeakMap<Prepared, { cookie: number; withTypes: boolean; columns: RawColumn[] }>();
  private scratch = 0;
  private scratchSize = 0;
  private readonly zMain: number;
  private readonly decoder = new TextDecoder();

  private constructor(private readonly m: SqliteModule, readonly db: number) {
    this.zMain = allocString(m, "main");
  }

  static open(m: SqliteModule, filename: string, vfsName: string, flags: number): SqliteConnection {
    const zName = allocString(m, filename);
    const zVfs = allocString(m, vfsName);
    const pp = m._sqlite3_malloc(4);
    const rc = m._sqlite3_open_v2(zName, pp, flags, zVfs);
    const db = m.HEAP32[pp >> 2]!;
    m._sqlite3_free(pp);
    m._sqlite3_free(zVfs);
    m._sqlite3_free(zName);
    if (rc !== SQLITE_OK) {
      const message = db !== 0 ? m.UTF8ToString(m._sqlite3_errmsg(db)) : "out of memory";
      if (db !== 0) m._sqlite3_close_v2(db);
      throw new SqliteError(`open ${filename}: ${message}`, primaryCodeName(rc), extendedCodeName(rc), rc);
    }
    m._sqlite3_extended_result_codes(db, 1);
    return new SqliteConnection(m, db);
  }

  close(): void {
    for (const p of this.statements.values()) this.m._sqlite3_finalize(p.stmt);
    this.statements.clear();
    if (this.scratch !== 0) this.m._sqlite3_free(this.scratch);
    this.m._sqlite3_free(this.zMain);
    this.m._sqlite3_close_v2(this.db);
  }

  /** Runs `sql` (any number of statements), discarding rows. Throws SqliteError. */
  exec(sql: string): void {
    const z = allocString(this.m, sql);
    const rc = this.m._sqlite3_exec(this.db, z, 0, 0, 0);
    this.m._sqlite3_free(z);
    if (rc !== SQLITE_OK) throw this.error(rc);
  }

  /** SQLITE_TXN_NONE / READ / WRITE of the main database. */
  txnState(): number {
    return this.m._sqlite3_txn_state(this.db, this.zMain);
  }

  autocommit(): boolean {
    return this.m._sqlite3_get_autocommit(this.db) !== 0;
  }

  /**
   * Prepares the one statement of `sql`. A tail with another statement is an error (Hrana's
   * `execute` runs one statement; scripts go through `exec`). `fresh`: bypass the statement cache
   * (a cached statement reports its columns as of the schema it was prepared on until it runs).
   */
  prepare(sql: string, fresh = false): Prepared {
    const hit = fresh ? undefined : this.statements.get(sql);
    if (hit !== undefined) {
      // LRU: most recently used last.
      this.statements.delete(sql);
      this.statements.set(sql, hit);
      return hit;
    }
    const m = this.m;
    const n = m.lengthBytesUTF8(sql);
    const z = this.scratchFor(n + 1);
    m.stringToUTF8(sql, z, n + 1);
    const pp = m._sqlite3_malloc(8);
    const rc = m._sqlite3_prepare_v2(this.db, z, n + 1, pp, pp + 4);
    const stmt = m.HEAP32[pp >> 2]!;
    const tail = m.HEAP32[(pp >> 2) + 1]!;
    m._sqlite3_free(pp);
    if (rc !== SQLITE_OK) throw this.error(rc);
    if (stmt === 0) throw new SqliteError("no SQL statement to execute", "SQL_NO_STATEMENT", "SQL_NO_STATEMENT", SQLITE_MISUSE);
    const rest = m.UTF8ToString(tail);
    if (hasStatement(rest)) {
      m._sqlite3_finalize(stmt);
      throw new SqliteError("more than one statement in execute; use a script (sequence)", "SQL_MANY_STATEMENTS", "SQL_MANY_STATEMENTS", SQLITE_MISUSE);
    }
    // PRAGMAs are answered partly at prepare time (our VFS pragmas are): never reuse them.
    const cacheable = !fresh && !/^\s*pragma\b/i.test(sql);
    const p: Prepared = { stmt, sql, readonly: m._sqlite3_stmt_readonly(stmt) !== 0, cached: cacheable };
    if (cacheable) {
      this.statements.set(sql, p);
      if (this.statements.size > STATEMENT_CACHE) {
        const [oldSql, old] = this.statements.entries().next().value!;
        this.statements.delete(oldSql);
        m._sqlite3_finalize(old.stmt);
      }
    }
    return p;
  }

  /** Returns a statement after use: reset (cached) or finalized. */
  release(p: Prepared): void {
    if (p.cached) {
      this.m._sqlite3_reset(p.stmt);
      this.m._sqlite3_clear_bindings(p.stmt);
    } else this.m._sqlite3_finalize(p.stmt);
  }

  bind(p: Prepared, args: readonly RawValue[], named: readonly (readonly [string, RawValue])[]): void {
    const m = this.m;
    const count = m._sqlite3_bind_parameter_count(p.stmt);
    if (args.length > count) {
      throw new SqliteError(`${args.length} arguments for ${count} parameters`, "ARGS_INVALID", "ARGS_INVALID", SQLITE_RANGE);
    }
    for (let i = 0; i < args.length; i++) this.bindOne(p.stmt, i + 1, args[i]!);
    for (const [name, value] of named) {
      const index = this.parameterIndex(p.stmt, name);
      if (index === 0) throw new SqliteError(`no parameter named ${name}`, "ARGS_INVALID", "ARGS_INVALID", SQLITE_RANGE);
      this.bindOne(p.stmt, index, value);
    }
  }

  /** Steps `p` to completion, collecting rows when `wantRows`, within `limits`. */
  run(p: Prepared, wantRows: boolean, limits: ResultLimits): RawResult {
    const m = this.m;
    const stmt = p.stmt;
    const rows: RawValue[][] = [];
    let bytes = 0;
    let nCols = -1;
    for (;;) {
      const rc = m._sqlite3_step(stmt);
      // Counted after the first step: SQLite re-prepares a statement whose schema changed there.
      if (nCols < 0) nCols = m._sqlite3_column_count(stmt);
      if (rc === SQLITE_DONE) break;
      if (rc !== SQLITE_ROW) throw this.error(rc);
      if (!wantRows) continue;
      const row: RawValue[] = new Array(nCols);
      for (let i = 0; i < nCols; i++) {
        const v = this.column(stmt, i);
        row[i] = v;
        bytes += typeof v === "string" ? v.length * 2 : v instanceof Uint8Array ? v.byteLength : 8;
      }
      rows.push(row);
      if (rows.length > limits.maxRows || bytes > limits.maxBytes) {
        throw new SqliteError(`result larger than the engine's limit (${limits.maxRows} rows, ${limits.maxBytes} bytes)`,
          "SQLITE_TOOBIG", "SQLITE_TOOBIG", SQLITE_TOOBIG);
      }
    }
    const columns = this.columns(p, nCols, wantRows);
    const changes = p.readonly ? 0 : Number(int64Result(m, m._sqlite3_changes64(this.db)));
    const rowid = int64Result(m, m._sqlite3_last_insert_rowid(this.db));
    return { columns, rows, affectedRowCount: changes, lastInsertRowid: p.readonly ? null : rowid };
  }

  describe(p: Prepared): RawDescribe {
    const m = this.m;
    const params: (string | null)[] = [];
    const count = m._sqlite3_bind_parameter_count(p.stmt);
    for (let i = 1; i <= count; i++) {
      const z = m._sqlite3_bind_parameter_name(p.stmt, i);
      params.push(z === 0 ? null : m.UTF8ToString(z));
    }
    return {
      params,
      columns: this.columns(p, m._sqlite3_column_count(p.stmt), true),
      isExplain: m._sqlite3_stmt_isexplain(p.stmt) !== 0,
      isReadonly: p.readonly,
    };
  }

  // ---------------------------------------------------------------------------------- internals

  error(rc: number): SqliteError {
    const m = this.m;
    const ext = m._sqlite3_extended_errcode(this.db) || rc;
    const message = m.UTF8ToString(m._sqlite3_errmsg(this.db));
    return new SqliteError(message, primaryCodeName(ext), extendedCodeName(ext), ext);
  }

  private column(stmt: number, i: number): RawValue {
    const m = this.m;
    switch (m._sqlite3_column_type(stmt, i)) {
      case SQLITE_INTEGER:
        return int64Result(m, m._sqlite3_column_int64(stmt, i));
      case SQLITE_FLOAT:
        return m._sqlite3_column_double(stmt, i);
      case SQLITE_TEXT: {
        const ptr = m._sqlite3_column_text(stmt, i);
        const n = m._sqlite3_column_bytes(stmt, i);
        return n === 0 ? "" : this.decoder.decode(m.HEAPU8.subarray(ptr, ptr + n));
      }
      case SQLITE_BLOB: {
        const ptr = m._sqlite3_column_blob(stmt, i);
        const n = m._sqlite3_column_bytes(stmt, i);
        return n === 0 ? new Uint8Array(0) : m.HEAPU8.slice(ptr, ptr + n);
      }
      case SQLITE_NULL:
      default:
        return null;
    }
  }

  private columns(p: Prepared, nCols: number, wantTypes: boolean): RawColumn[] {
    if (nCols === 0) return [];
    // Names and types change only with the schema: remember them per statement and schema cookie.
    const cookie = this.schemaCookie();
    const known = this.columnCache.get(p);
    if (known !== undefined && known.cookie === cookie && (known.withTypes || !wantTypes) && known.columns.length === nCols) {
      return known.columns;
    }
    const m = this.m;
    const types = wantTypes ? this.declTypesOf(p, nCols) : null;
    const columns: RawColumn[] = [];
    for (let i = 0; i < nCols; i++) {
      const z = m._sqlite3_column_name(p.stmt, i);
      columns.push({ name: z === 0 ? null : m.UTF8ToString(z), decltype: types?.[i] ?? null });
    }
    if (p.cached) this.columnCache.set(p, { cookie, withTypes: wantTypes, columns });
    return columns;
  }

  /** Declared types of a SELECT's columns through a temporary view (see header); nulls otherwise. */
  private declTypesOf(p: Prepared, nCols: number): (string | null)[] | null {
    if (!/^\s*(select|with|values)\b/i.test(stripComments(p.sql))) return null;
    const m = this.m;
    const zExpanded = m._sqlite3_expanded_sql(p.stmt);
    if (zExpanded === 0) return null;
    const expanded = m.UTF8ToString(zExpanded);
    m._sqlite3_free(zExpanded);
    let types: (string | null)[] = new Array<string | null>(nCols).fill(null);
    try {
      this.exec(`CREATE TEMP VIEW "${DECLTYPE_VIEW}" AS ${expanded}`);
      try {
        const info = this.prepare(`PRAGMA temp.table_info("${DECLTYPE_VIEW}")`);
        try {
          const r = this.run(info, true, { maxRows: 100_000, maxBytes: 1 << 26 });
          if (r.rows.length === nCols) types = r.rows.map((row) => (typeof row[2] === "string" && row[2] !== "" ? row[2] : null));
        } finally {
          this.release(info);
        }
      } finally {
        this.exec(`DROP VIEW IF EXISTS temp."${DECLTYPE_VIEW}"`);
      }
    } catch {
      // Not expressible as a view (e.g. a statement SQLite cannot nest): no declared types.
    }
    return types;
  }

  /** Set by the worker from the VFS binding after each statement. */
  schemaCookie: () => number = () => 0;

  private parameterIndex(stmt: number, name: string): number {
    const m = this.m;
    const candidates = /^[:@$?]/.test(name) ? [name] : [`:${name}`, `@${name}`, `$${name}`];
    for (const c of candidates) {
      const z = allocString(m, c);
      const index = m._sqlite3_bind_parameter_index(stmt, z);
      m._sqlite3_free(z);
      if (index !== 0) return index;
    }
    return 0;
  }

  private bindOne(stmt: number, i: number, v: RawValue): void {
    const m = this.m;
    let rc: number;
    if (v === null) rc = m._sqlite3_bind_null(stmt, i);
    else if (typeof v === "bigint") {
      if (v < INT64_MIN || v > INT64_MAX) {
        throw new SqliteError(`integer ${v} does not fit 64 bits`, "SQLITE_RANGE", "SQLITE_RANGE", SQLITE_RANGE);
      }
      rc = m._sqlite3_bind_int64(stmt, i, Number(BigInt.asIntN(32, v)), Number(BigInt.asIntN(32, v >> 32n)));
    } else if (typeof v === "number") rc = m._sqlite3_bind_double(stmt, i, v);
    else if (typeof v === "string") {
      const max = v.length * 3 + 1;
      const z = this.scratchFor(max);
      const n = m.stringToUTF8(v, z, max);
      rc = m._sqlite3_bind_text(stmt, i, z, n, SQLITE_TRANSIENT);
    } else {
      if (v.byteLength === 0) rc = m._sqlite3_bind_zeroblob(stmt, i, 0);
      else {
        const z = this.scratchFor(v.byteLength);
        m.HEAPU8.set(v, z);
        rc = m._sqlite3_bind_blob(stmt, i, z, v.byteLength, SQLITE_TRANSIENT);
      }
    }
    if (rc !== SQLITE_OK) throw this.error(rc);
  }

  /** A reusable heap buffer of at least `n` bytes (binds copy out of it at once: SQLITE_TRANSIENT). */
  private scratchFor(n: number): number {
    if (n > this.scratchSize) {
      if (this.scratch !== 0) this.m._sqlite3_free(this.scratch);
      const size = Math.max(n, 4096);
      this.scratch = this.m._sqlite3_malloc(size);
      if (this.scratch === 0) throw new SqliteError(`out of memory allocating ${size} bytes`, "SQLITE_NOMEM", "SQLITE_NOMEM", 7);
      this.scratchSize = size;
    }
    return this.scratch;
  }
}

/** Strips leading SQL comments and whitespace. */
export function stripComments(sql: string): string {
  let s = sql;
  for (;;) {
    s = s.replace(/^\s+/, "");
    if (s.startsWith("--")) {
      const nl = s.indexOf("\n");
      s = nl < 0 ? "" : s.slice(nl + 1);
    } else if (s.startsWith("/*")) {
      const end = s.indexOf("*/");
      s = end < 0 ? "" : s.slice(end + 2);
    } else return s;
  }
}

/** Whether a statement tail holds anything but whitespace, comments and semicolons. */
function hasStatement(tail: string): boolean {
  let s = tail;
  for (;;) {
    s = stripComments(s);
    if (s.startsWith(";")) s = s.slice(1);
    else return s.length > 0;
  }
}
