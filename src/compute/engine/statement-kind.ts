/**
 * What the engine must know about a statement before any SQLite sees it: whether it opens a
 * transaction, and of which kind, so that the session can pick the connection it will be pinned to
 * (the writer worker for BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] and SAVEPOINT, a reader for libSQL's
 * `BEGIN TRANSACTION READONLY`, which stock SQLite does not parse and the engine rewrites to BEGIN).
 * Everything else is classified by SQLite itself (sqlite3_stmt_readonly) on a reader.
 */
import { stripComments } from "./connection.js";

export type TxKind = "begin-deferred" | "begin-immediate" | "begin-exclusive" | "begin-readonly" | "savepoint" | "other";

const READONLY_BEGIN = /^BEGIN(?:\s+TRANSACTION)?\s+READONLY\s*;?\s*$/i;
const BEGIN = /^BEGIN(?:\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(?:\s+TRANSACTION)?\b/i;
const SAVEPOINT = /^SAVEPOINT\b/i;

export function txKind(sql: string): TxKind {
  const s = stripComments(sql);
  if (READONLY_BEGIN.test(s)) return "begin-readonly";
  const m = BEGIN.exec(s);
  if (m !== null) {
    const mode = m[1]?.toUpperCase();
    return mode === "IMMEDIATE" ? "begin-immediate" : mode === "EXCLUSIVE" ? "begin-exclusive" : "begin-deferred";
  }
  return SAVEPOINT.test(s) ? "savepoint" : "other";
}

/** The SQL a reader connection runs for `BEGIN TRANSACTION READONLY`. */
export const READONLY_BEGIN_SQL = "BEGIN DEFERRED";
