/**
 * The seam between the client endpoint (Hrana over HTTP, `src/endpoint/`) and the SQL engine (SQLite
 * in worker threads over the Borealis VFS, `src/compute/`). The endpoint speaks only these types; the
 * engine knows nothing of HTTP or batons.
 *
 * Values are tagged so that an integer and an integral float stay different things end to end, and
 * 64-bit integers are bigints (Hrana sends them as decimal strings).
 */

export type SqlValue =
  | { readonly type: "null" }
  | { readonly type: "integer"; readonly value: bigint }
  | { readonly type: "float"; readonly value: number }
  | { readonly type: "text"; readonly value: string }
  | { readonly type: "blob"; readonly value: Uint8Array };

export interface NamedArg {
  /** As written in the SQL, with its prefix: ":name", "@name", "$name" (Hrana also allows a bare name). */
  readonly name: string;
  readonly value: SqlValue;
}

export interface SqlStatement {
  readonly sql: string;
  readonly args?: readonly SqlValue[];
  readonly namedArgs?: readonly NamedArg[];
  /** When false the engine may skip collecting rows (Hrana's `want_rows`). Default true. */
  readonly wantRows?: boolean;
}

export interface ColumnInfo {
  readonly name: string | null;
  readonly decltype: string | null;
}

export interface StatementResult {
  readonly columns: readonly ColumnInfo[];
  readonly rows: readonly (readonly SqlValue[])[];
  readonly affectedRowCount: number;
  readonly lastInsertRowid: bigint | null;
}

export interface DescribeResult {
  readonly params: readonly { readonly name: string | null }[];
  readonly columns: readonly ColumnInfo[];
  readonly isExplain: boolean;
  readonly isReadonly: boolean;
}

/**
 * An error SQLite reported, with its codes: `code` is the primary result code's name
 * ("SQLITE_CONSTRAINT"), `extendedCode` the extended one ("SQLITE_CONSTRAINT_PRIMARYKEY"), `rawCode`
 * the extended number.
 */
export class SqliteError extends Error {
  override name = "SqliteError";
  constructor(
    message: string,
    readonly code: string,
    readonly extendedCode: string,
    readonly rawCode: number,
  ) {
    super(message);
  }
}

/**
 * One client's sequence of statements (a Hrana stream). Statements on one session run one at a time,
 * in order. A write — an autocommit write statement or a COMMIT — resolves only once the commit is
 * durable (VDL ≥ its commit LSN, invariant 5); a commit whose durability cannot be established is
 * rejected with a BorealisError COMMIT_OUTCOME_UNKNOWN, never reported as failed or succeeded.
 */
export interface SqlSession {
  execute(statement: SqlStatement): Promise<StatementResult>;
  /** Runs several semicolon-separated statements, discarding rows (Hrana's `sequence`). */
  executeScript(sql: string): Promise<void>;
  describe(sql: string): Promise<DescribeResult>;
  /** False while an explicit transaction is open on this session. */
  isAutocommit(): boolean;
  /** Rolls back any open transaction and releases the session's connection. */
  close(): Promise<void>;
}

export interface SqlEngine {
  openSession(): SqlSession;
  close(): Promise<void>;
}
