/**
 * The seam between the harness and a database under test. A system module (postgres.ts, sqlite.ts,
 * borealis.ts, borealis-hrana.ts) exports one `BenchSystem`; adding a system is one module plus one line in `index.ts`.
 *
 * A system is used from two kinds of process:
 * - the harness (run.ts) calls `start()` once, reads `counters()` and `serverPids()` at the edges of
 *   every measured window, prepares tables through `connect()`, and calls `stop()` at the end;
 * - each load generator (loadgen.ts, a forked child) receives the JSON-serializable `ClientSpec` that
 *   `start()` returned and calls `connect()` once per simulated client.
 *
 * Every system takes the same SQL text: `?` placeholders, SQL that SQLite and PostgreSQL both accept.
 * A connection translates placeholders if its driver needs to (node-postgres wants `$1`).
 */
import type { Cleanup } from "../cleanup.js";

/** `borealis-hrana`: the same Borealis server through a lean client (borealis-hrana.ts). */
export type SystemName = "borealis" | "borealis-hrana" | "postgres" | "sqlite";
export const SYSTEM_NAMES: readonly SystemName[] = ["borealis", "borealis-hrana", "postgres", "sqlite"];

export type SqlArg = number | string | null;
/** Rows as arrays of column values, in select-list order. */
export type Rows = unknown[][];

export interface SqlExecutor {
  execute(sql: string, args?: readonly SqlArg[]): Promise<Rows>;
}

/** One client's connection, as its users' driver gives it. */
export interface BenchConnection extends SqlExecutor {
  /**
   * Runs `fn` in a read-write transaction and commits; on any error rolls back and rethrows. The
   * harness retries when `isRetryable` says so (and counts the retry).
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** A serialization failure, deadlock or busy lock: the transaction may simply be run again. */
  isRetryable(error: unknown): boolean;
  /**
   * Log this connection has written so far (cumulative), for engines that run inside the load
   * generator and so cannot be asked by the harness (SQLite: WAL frames). Absent for servers.
   */
  logCounters?(): { readonly bytes: number; readonly records: number };
  close(): Promise<void>;
}

/** What a load generator needs to connect; crosses the process boundary as JSON. */
export interface ClientSpec {
  readonly system: SystemName;
  readonly [key: string]: string | number | boolean | null;
}

/**
 * Cumulative counters of the system's own work; the harness takes differences over a window. Null
 * where the system cannot tell.
 */
export interface SystemCounters {
  /** Bytes of log the system produced: PostgreSQL's WAL (LSN distance), Borealis's redo records shipped. */
  readonly logBytes: number | null;
  /** Log records produced (PostgreSQL: not counted per window; Borealis: redo records). */
  readonly logRecords: number | null;
  /** Bytes the system moved between its own processes (Borealis: writer ↔ storage nodes). */
  readonly internalNetBytes: number | null;
  /** Anything else worth keeping in results.json, by name. */
  readonly extra?: Readonly<Record<string, number>>;
}

export interface StartContext {
  /** A fresh directory the system may use for data and logs; the harness deletes it afterwards. */
  readonly workDir: string;
  readonly cleanup: Cleanup;
  /** A progress line for the terminal. */
  readonly log: (line: string) => void;
}

/** The log a restart will have to deal with, as the system counts it. */
export interface PreparedLog {
  /** Log records written since the last checkpoint/materialization (the figure's x axis). */
  readonly records: number;
  /** How `records` was obtained: "pg_waldump", "wal frames", "metrics", "estimate (…)". */
  readonly recordsSource: string;
  readonly bytes: number | null;
  /** Rows written to build it. */
  readonly rows: number;
}

export interface RestartMeasurement {
  /** From the crash (the old process gone) to the first successful read of the last committed row. */
  readonly restartMs: number;
  /** How the crash was made and what was restarted, for the report. */
  readonly method: string;
  /** Where the time went, as the system tells it (Borealis: the new writer's start-up timings). */
  readonly detail?: string;
}

/** Crash-restart measurement: "writer restart time as a function of log length". */
export interface RestartSupport {
  /**
   * Optional, once before the figure's logs, with the longest of them: builds what every log then
   * shares (Borealis: the table its logs update), so that the points differ in the log's length
   * only. Returns a line for the progress output.
   */
  prepareTable?(longestLog: number, budgetMs: number): Promise<string>;
  /**
   * Makes the log since the last checkpoint/materialization hold at least `records` records (it first
   * forces one). Stops writing once `budgetMs` has passed, short of the target if need be: the
   * returned `records` is what the log really holds, and the figure is drawn at that length.
   * `progress` is called now and then with records so far.
   */
  prepareLog(records: number, budgetMs: number, progress: (done: number) => void): Promise<PreparedLog>;
  /** Crashes the writer (no clean shutdown), restarts it, waits until the last write reads back. */
  crashAndRestart(): Promise<RestartMeasurement>;
}

export interface RunningSystem {
  /** Server version, e.g. "PostgreSQL 15.18". */
  readonly version: string;
  /** Settings that matter for a reader of the report (durability, where the clients connect). */
  readonly settings: Readonly<Record<string, string>>;
  readonly clientSpec: ClientSpec;
  /**
   * Root PIDs of the server's processes; their descendants are found by the sampler. Empty for an
   * in-process system, whose work is done inside the load generator (the harness then counts it).
   */
  serverPids(): Promise<number[]>;
  counters(): Promise<SystemCounters>;
  readonly restart?: RestartSupport;
  /** Stops every process the system started and releases what it holds; idempotent. */
  stop(): Promise<void>;
}

export interface BenchSystem {
  readonly name: SystemName;
  /** Display name: "PostgreSQL", "SQLite", "Borealis". */
  readonly title: string;
  /**
   * "network": clients are separate connections from load-generator processes.
   * "in-process": the engine runs inside the load generator; one process, one connection, operations
   * one after the other — the zero-network single-node bound, measured at 1 client only.
   */
  readonly clientModel: "network" | "in-process";
  /** The client library used, for the report ("node-postgres 8.23.1"). */
  readonly clientLibrary: string;
  /** Starts the server (installing it if needed). Throws `SystemUnavailable` with the reason. */
  start(ctx: StartContext): Promise<RunningSystem>;
  /** Opens one client connection; used in load generators and by the harness for setup. */
  connect(spec: ClientSpec): Promise<BenchConnection>;
}

/** A system could not be started; `reason` goes into the report verbatim. */
export class SystemUnavailable extends Error {
  override name = "SystemUnavailable";
  constructor(
    readonly reason: string,
    /** "not-installable": the software is missing and could not be installed (the smoke test may skip). */
    readonly kind: "not-installable" | "failed" = "failed",
  ) {
    super(reason);
  }
}

/** `?` placeholders → `$1, $2, …` (the bench's SQL has no string literals containing `?`). */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}
