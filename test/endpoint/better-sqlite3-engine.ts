/**
 * TEST ONLY: a `SqlEngine` over better-sqlite3, so the Hrana endpoint can be exercised end to end
 * before the real engine (SQLite in worker threads over the Borealis VFS, `src/compute/`) exists.
 * Never shipped, never imported from `src/`.
 *
 * It does what the real engine must do for the endpoint (and what `endpointConformanceSuite` checks):
 * one SQLite connection per session on a shared WAL database (so transactions are per session and a
 * reader sees the last committed snapshot); `BEGIN TRANSACTION READONLY` rewritten to `BEGIN DEFERRED`
 * plus `PRAGMA query_only` until the transaction ends; bare named parameters resolved; integers as
 * bigints, floats as numbers; SQLite errors as `SqliteError` with primary and extended codes;
 * `close()` rolls back.
 *
 * better-sqlite3 is synchronous, so a busy lock would block the event loop: busy_timeout is 0 and a
 * conflicting writer gets SQLITE_BUSY at once.
 */
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  SqliteError, type DescribeResult, type SqlEngine, type SqlSession, type SqlStatement, type SqlValue, type StatementResult,
} from "../../src/compute/sql-engine.js";

type Db = Database.Database;
type Bindable = null | bigint | number | string | Buffer;

const READONLY_BEGIN = /^\s*BEGIN\s+(?:TRANSACTION\s+)?READONLY\s*;?\s*$/i;

/** Primary result codes (sqlite3.h); extended ones are primary | (n << 8). */
const PRIMARY: Record<string, number> = {
  SQLITE_ERROR: 1, SQLITE_INTERNAL: 2, SQLITE_PERM: 3, SQLITE_ABORT: 4, SQLITE_BUSY: 5, SQLITE_LOCKED: 6,
  SQLITE_NOMEM: 7, SQLITE_READONLY: 8, SQLITE_INTERRUPT: 9, SQLITE_IOERR: 10, SQLITE_CORRUPT: 11,
  SQLITE_NOTFOUND: 12, SQLITE_FULL: 13, SQLITE_CANTOPEN: 14, SQLITE_PROTOCOL: 15, SQLITE_SCHEMA: 17,
  SQLITE_TOOBIG: 18, SQLITE_CONSTRAINT: 19, SQLITE_MISMATCH: 20, SQLITE_MISUSE: 21, SQLITE_RANGE: 25,
};
const EXTENDED: Record<string, number> = {
  SQLITE_CONSTRAINT_CHECK: 19 | (1 << 8), SQLITE_CONSTRAINT_FOREIGNKEY: 19 | (3 << 8),
  SQLITE_CONSTRAINT_NOTNULL: 19 | (5 << 8), SQLITE_CONSTRAINT_PRIMARYKEY: 19 | (6 << 8),
  SQLITE_CONSTRAINT_UNIQUE: 19 | (8 << 8), SQLITE_READONLY_DBMOVED: 8 | (4 << 8),
};

function toSqliteError(e: unknown): unknown {
  if (e instanceof Database.SqliteError) {
    const extended = e.code;
    const primary = extended.split("_").slice(0, 2).join("_");
    return new SqliteError(e.message, primary, extended, EXTENDED[extended] ?? PRIMARY[primary] ?? 1);
  }
  if (e instanceof RangeError || e instanceof TypeError) {
    // better-sqlite3's own checks (statement count, parameter count) — sqld's codes for the same.
    const m = e.message;
    const code = /more than one statement/.test(m) ? "SQL_MANY_STATEMENTS"
      : /no statements/.test(m) ? "SQL_NO_STATEMENT"
      : /parameter|named|bind/i.test(m) ? "ARGS_INVALID" : "SQLITE_ERROR";
    return new SqliteError(m, code, code, code === "SQLITE_ERROR" ? 1 : 21);
  }
  return e;
}

function toBindable(v: SqlValue): Bindable {
  switch (v.type) {
    case "null": return null;
    case "integer": return v.value;
    case "float": return v.value;
    case "text": return v.value;
    case "blob": return Buffer.from(v.value.buffer, v.value.byteOffset, v.value.byteLength);
  }
}

function fromSqlite(v: unknown): SqlValue {
  if (v === null || v === undefined) return { type: "null" };
  if (typeof v === "bigint") return { type: "integer", value: v };
  if (typeof v === "number") return { type: "float", value: v };
  if (typeof v === "string") return { type: "text", value: v };
  if (v instanceof Uint8Array) return { type: "blob", value: new Uint8Array(v) };
  throw new TypeError(`unexpected SQLite value ${String(v)}`);
}

/** Parameter names in order of their SQLite index (`?` is nameless), skipping strings and comments. */
function scanParams(sql: string): (string | null)[] {
  const names: (string | null)[] = [];
  const byName = new Map<string, number>();
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === "`") {
      const end = sql.indexOf(c, i + 1);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "[") {
      const end = sql.indexOf("]", i + 1);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (c === "?") {
      const m = /^\?(\d*)/.exec(sql.slice(i))!;
      if (m[1] === "") names.push(null);
      else {
        const n = Number(m[1]);
        while (names.length < n) names.push(null);
        names[n - 1] = m[0];
      }
      i += m[0].length;
    } else if ((c === ":" || c === "@" || c === "$") && /[A-Za-z0-9_]/.test(sql[i + 1] ?? "")) {
      const m = /^[:@$][A-Za-z0-9_]+/.exec(sql.slice(i))!;
      if (!byName.has(m[0])) {
        names.push(m[0]);
        byName.set(m[0], names.length);
      }
      i += m[0].length;
    } else {
      i++;
    }
  }
  return names;
}

class BetterSqliteSession implements SqlSession {
  private readOnlyTx = false;
  private closed = false;

  constructor(private readonly db: Db) {}

  async execute(statement: SqlStatement): Promise<StatementResult> {
    this.checkOpen();
    if (READONLY_BEGIN.test(statement.sql)) {
      // libSQL's read-only transaction, which stock SQLite does not parse.
      this.run(() => this.db.exec("BEGIN DEFERRED"));
      this.db.pragma("query_only = 1");
      this.readOnlyTx = true;
      return { columns: [], rows: [], affectedRowCount: 0, lastInsertRowid: null };
    }
    try {
      return this.run(() => this.executeSync(statement));
    } finally {
      this.afterStatement();
    }
  }

  private executeSync(statement: SqlStatement): StatementResult {
    const stmt = this.db.prepare(statement.sql);
    const params: unknown[] = (statement.args ?? []).map(toBindable);
    if (statement.namedArgs !== undefined && statement.namedArgs.length > 0) {
      const named: Record<string, Bindable> = {};
      for (const a of statement.namedArgs) named[a.name.replace(/^[:@$]/, "")] = toBindable(a.value);
      params.push(named);
    }
    if (stmt.reader) {
      const columns = stmt.columns().map((c) => ({ name: c.name, decltype: c.type }));
      const raw = stmt.raw(true).all(...params) as unknown[][];
      const rows = statement.wantRows === false ? [] : raw.map((r) => r.map(fromSqlite));
      const info = this.db.prepare("SELECT changes(), last_insert_rowid()").raw(true).get() as [bigint, bigint];
      return { columns, rows, affectedRowCount: stmt.readonly ? 0 : Number(info[0]), lastInsertRowid: info[1] };
    }
    const info = stmt.run(...params);
    return { columns: [], rows: [], affectedRowCount: info.changes, lastInsertRowid: BigInt(info.lastInsertRowid) };
  }

  async executeScript(sql: string): Promise<void> {
    this.checkOpen();
    try {
      this.run(() => this.db.exec(sql));
    } finally {
      this.afterStatement();
    }
  }

  async describe(sql: string): Promise<DescribeResult> {
    this.checkOpen();
    const stmt = this.run(() => this.db.prepare(sql));
    return {
      params: scanParams(sql).map((name) => ({ name })),
      columns: stmt.reader ? stmt.columns().map((c) => ({ name: c.name, decltype: c.type })) : [],
      isExplain: /^\s*EXPLAIN\b/i.test(sql),
      isReadonly: stmt.readonly,
    };
  }

  isAutocommit(): boolean {
    return this.closed || !this.db.inTransaction;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.db.inTransaction) this.db.exec("ROLLBACK");
    this.db.close();
  }

  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw toSqliteError(e);
    }
  }

  private afterStatement(): void {
    if (this.readOnlyTx && !this.db.inTransaction) {
      this.db.pragma("query_only = 0");
      this.readOnlyTx = false;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new SqliteError("session is closed", "SQLITE_MISUSE", "SQLITE_MISUSE", 21);
  }
}

export interface BetterSqliteEngine extends SqlEngine {
  readonly path: string;
}

export function betterSqliteEngine(): BetterSqliteEngine {
  const dir = mkdtempSync(join(tmpdir(), "borealis-endpoint-"));
  const path = join(dir, "db.sqlite");
  const first = new Database(path);
  first.pragma("journal_mode = WAL");
  first.close();
  const sessions = new Set<BetterSqliteSession>();
  return {
    path,
    openSession(): SqlSession {
      const db = new Database(path);
      db.defaultSafeIntegers(true);
      db.pragma("busy_timeout = 0");
      const session = new BetterSqliteSession(db);
      sessions.add(session);
      const close = session.close.bind(session);
      session.close = async () => {
        sessions.delete(session);
        await close();
      };
      return session;
    },
    async close(): Promise<void> {
      for (const s of [...sessions]) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
