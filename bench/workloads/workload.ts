/**
 * What a workload is, and the SQL every workload shares. The same SQL text runs on every system
 * (`?` placeholders; types and syntax both SQLite and PostgreSQL accept).
 *
 * A workload has two halves that run in different processes:
 * - `prepare` / `beforeRun` run in the harness, once per system / before every run: create and load
 *   the tables it needs;
 * - `clientOp` runs in a load generator: it builds one client's operation, which the load generator
 *   calls in a loop (timed workloads) or until it reports `done` (fixed-work workloads: bulk load).
 */
import type { BenchConnection, SqlArg, SqlExecutor } from "../systems/system.js";

export type WorkloadName = "write" | "read" | "mix" | "transfer" | "bulk";
export const WORKLOAD_NAMES: readonly WorkloadName[] = ["write", "read", "mix", "transfer", "bulk"];

export interface WorkloadParams {
  /** Rows preloaded into `kv` for reads and the mix. */
  readonly preloadRows: number;
  /** Rows in `accounts` for the bank transfer. */
  readonly accounts: number;
  /** Rows the bulk load inserts. */
  readonly bulkRows: number;
  /** Rows per multi-row INSERT statement and statements per transaction (bulk load and preload). */
  readonly batchRows: number;
  readonly batchesPerTxn: number;
  /** Percent of reads in the mix. */
  readonly mixReadPercent: number;
  /** Attempts of one transaction on retryable errors before it counts as an error. */
  readonly maxAttempts: number;
}

export interface ClientContext {
  readonly conn: BenchConnection;
  readonly params: WorkloadParams;
  /** This client's index among all clients of the run (across load generator processes), 0-based. */
  readonly clientIndex: number;
  readonly totalClients: number;
  /** First `kv.id` free for inserts in this run; ids are `idBase + seq × totalClients + clientIndex`. */
  readonly idBase: number;
  /** Uniform in [0, 1): seeded per client so runs are reproducible in shape. */
  readonly random: () => number;
}

export interface OpOutcome {
  /** Durable write transactions this operation committed (0 for a read). */
  readonly commits: number;
  /** Retries after retryable errors. */
  readonly retries: number;
  /** Rows written (bulk load). */
  readonly rows?: number;
  /** Fixed-work workloads: no more work for this client. */
  readonly done?: boolean;
}

export interface ClientOp {
  run(): Promise<OpOutcome>;
  /** Highest insert sequence number used, so the harness can move `idBase` past it. */
  maxSeq(): number;
}

export interface Workload {
  readonly name: WorkloadName;
  readonly title: string;
  /** One paragraph for the report: what one operation is. */
  readonly description: string;
  readonly kind: "timed" | "fixed";
  /** Whether the operation writes: figures per commit are shown only for writing workloads. */
  readonly writes: boolean;
  /** Once per system, before its first run of this workload. */
  prepare(conn: BenchConnection, params: WorkloadParams, progress: (line: string) => void): Promise<void>;
  /** Before every run (bulk load: empty its table). */
  beforeRun?(conn: BenchConnection, params: WorkloadParams): Promise<void>;
  /** After all runs on a system: a consistency check; returns a line for the report. */
  check?(conn: BenchConnection, params: WorkloadParams): Promise<string>;
  clientOp(ctx: ClientContext): ClientOp;
}

// ----------------------------------------------------------------------------------------- shared SQL

/** A deterministic 100-character value (sysbench's `c` column is 120): realistic redo per row. */
export function rowValue(id: number): string {
  const seed = ((id * 2654435761) >>> 0).toString(36).padStart(7, "0");
  return (seed + "-").repeat(13).slice(0, 100);
}

export const KV_DDL = "CREATE TABLE kv (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL)";
export const ACCOUNTS_DDL = "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)";

/** `INSERT INTO t (c1, c2) VALUES (?, ?), (?, ?) …` for `rows` rows. */
export function multiRowInsert(table: string, columns: readonly string[], rows: number): string {
  const tuple = `(${columns.map(() => "?").join(", ")})`;
  return `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${Array.from({ length: rows }, () => tuple).join(", ")}`;
}

/**
 * Inserts rows `first … first + count − 1` of a kv-shaped table in multi-row statements,
 * `batchesPerTxn` statements per transaction. Used for preloads, the bulk load and restart logs.
 */
export async function loadKvRows(
  conn: BenchConnection, table: string, first: number, count: number,
  params: Pick<WorkloadParams, "batchRows" | "batchesPerTxn">, progress?: (done: number) => void,
): Promise<void> {
  const end = first + count;
  let next = first;
  while (next < end) {
    await conn.transaction(async (tx) => {
      for (let b = 0; b < params.batchesPerTxn && next < end; b++) {
        const n = Math.min(params.batchRows, end - next);
        await tx.execute(multiRowInsert(table, ["id", "k", "v"], n), kvArgs(next, n));
        next += n;
      }
    });
    progress?.(next - first);
  }
}

export function kvArgs(first: number, n: number): SqlArg[] {
  const args: SqlArg[] = [];
  for (let id = first; id < first + n; id++) args.push(id, id % 1000, rowValue(id));
  return args;
}

export async function recreate(conn: SqlExecutor, table: string, ddl: string): Promise<void> {
  await conn.execute(`DROP TABLE IF EXISTS ${table}`);
  await conn.execute(ddl);
}

/** Count of rows, as a number whatever the driver returns (PostgreSQL's count is a bigint string). */
export async function countRows(conn: SqlExecutor, table: string): Promise<number> {
  const rows = await conn.execute(`SELECT count(*) FROM ${table}`);
  return Number(rows[0]?.[0] ?? 0);
}

/**
 * Creates and preloads `kv` once per system: read, write and mix share it, and only the first of
 * them to run pays for the load.
 */
export async function ensureKv(conn: BenchConnection, params: WorkloadParams, progress: (line: string) => void): Promise<void> {
  const present = await conn.execute("SELECT count(*) FROM kv WHERE id <= ?", [params.preloadRows]).catch(() => null);
  if (present !== null && Number(present[0]?.[0]) === params.preloadRows) return;
  progress(`preloading kv with ${params.preloadRows.toLocaleString("en-US")} rows`);
  await recreate(conn, "kv", KV_DDL);
  await loadKvRows(conn, "kv", 1, params.preloadRows, params);
}

/** Runs `fn` in a transaction, again on retryable errors, up to `maxAttempts`; counts the retries. */
export async function withRetries<T>(
  conn: BenchConnection, maxAttempts: number, fn: (tx: SqlExecutor) => Promise<T>,
): Promise<{ value: T; retries: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await conn.transaction(fn), retries: attempt - 1 };
    } catch (e) {
      if (attempt >= maxAttempts || !conn.isRetryable(e)) throw new OpFailed(e, attempt - 1);
    }
  }
}

/** An operation that failed after `retries` retries; the load generator counts both. */
export class OpFailed extends Error {
  override name = "OpFailed";
  constructor(override readonly cause: unknown, readonly retries: number) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}
