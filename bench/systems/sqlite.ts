/**
 * Native SQLite (better-sqlite3) in-process: the zero-network, single-node bound.
 *
 * Settings: `journal_mode=WAL`, `synchronous=FULL` (every commit fsyncs the WAL, as durable as the
 * others), everything else SQLite's default (4 KiB pages, automatic checkpoint at 1000 pages).
 *
 * How clients are modelled: the engine runs inside the load generator — one process, one
 * connection, operations one after the other. better-sqlite3 is synchronous, so N "async clients"
 * on one connection would just take turns on the same thread and N processes would mostly measure
 * SQLite's busy-wait on the single write lock; neither is how the bound is meant. The bench therefore
 * measures SQLite at 1 client only and draws it as a flat reference line: the throughput a single
 * application thread gets with no network and no server at all. Its CPU and memory figures are the
 * load generator's own (the engine lives there).
 *
 * Statements are prepared once per SQL text and reused, as better-sqlite3's users do.
 *
 * Log bytes: the connection counts the WAL frames its commits append, from the WAL-index header in
 * the `-shm` file (mxFrame, and the salt that changes when the WAL restarts after a checkpoint) read
 * after each write — exact, and a 48-byte pread per commit. A frame is one page plus a 24-byte header.
 */
import Database from "better-sqlite3";
import { fork } from "node:child_process";
import { closeSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert } from "../../src/core/assert.js";
import { packageVersion } from "./package-version.js";
import type {
  BenchConnection, BenchSystem, ClientSpec, PreparedLog, RestartMeasurement, Rows, RunningSystem, SqlArg, SqlExecutor,
  StartContext,
} from "./system.js";

const BETTER_SQLITE3_VERSION = packageVersion("better-sqlite3");

/** Bound on cached prepared statements per connection (the bench uses a handful of SQL texts). */
const MAX_CACHED_STATEMENTS = 256;
const PAGE_SIZE = 4096;
const WAL_HEADER_BYTES = 32;
const WAL_FRAME_HEADER_BYTES = 24;

export function openSqlite(file: string): Database.Database {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  // Only the harness's setup connection and a load generator ever overlap, and never write at once.
  db.pragma("busy_timeout = 5000");
  return db;
}

/** What the WAL-index header says: frames in the WAL now, and the salt of this WAL generation. */
interface WalHeader {
  readonly mxFrame: number;
  readonly salt: number;
  readonly pageSize: number;
}

class SqliteConnection implements BenchConnection {
  private readonly statements = new Map<string, Database.Statement>();
  private inTransaction = false;
  private shmFd: number | null = null;
  private last: WalHeader | null = null;
  private frames = 0;
  private frameBytes = 0;
  private readonly header = Buffer.alloc(48);

  constructor(private readonly db: Database.Database, private readonly file: string) {
    this.last = this.readWalHeader();
  }

  private readWalHeader(): WalHeader | null {
    try {
      this.shmFd ??= openSync(`${this.file}-shm`, "r");
      if (readSync(this.shmFd, this.header, 0, 48, 0) < 48) return null;
    } catch {
      return null;
    }
    // WalIndexHdr (wal.c), native byte order: szPage u16 @14, mxFrame u32 @16, aSalt[0] u32 @32.
    const sz = this.header.readUInt16LE(14);
    return { mxFrame: this.header.readUInt32LE(16), salt: this.header.readUInt32LE(32), pageSize: sz === 1 ? 65536 : sz };
  }

  /** After a commit: frames appended since the last one (all of them if the WAL restarted). */
  private noteCommit(): void {
    const now = this.readWalHeader();
    if (now === null) return;
    const appended = this.last !== null && this.last.salt === now.salt ? Math.max(0, now.mxFrame - this.last.mxFrame) : now.mxFrame;
    this.frames += appended;
    this.frameBytes += appended * (now.pageSize + WAL_FRAME_HEADER_BYTES);
    this.last = now;
  }

  logCounters(): { bytes: number; records: number } {
    return { bytes: this.frameBytes, records: this.frames };
  }

  private statement(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (st === undefined) {
      if (this.statements.size >= MAX_CACHED_STATEMENTS) this.statements.clear();
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  async execute(sql: string, args: readonly SqlArg[] = []): Promise<Rows> {
    const st = this.statement(sql);
    if (st.reader) return st.raw(true).all(...args) as Rows;
    st.run(...args);
    if (!this.inTransaction) this.noteCommit();
    return [];
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    // One connection, one client: a second transaction at once would be a bug in the harness.
    assert(!this.inTransaction, "sqlite: one transaction at a time on the in-process connection");
    this.inTransaction = true;
    try {
      this.statement("BEGIN IMMEDIATE").run();
      try {
        const value = await fn(this);
        this.statement("COMMIT").run();
        this.noteCommit();
        return value;
      } catch (e) {
        if (this.db.inTransaction) this.statement("ROLLBACK").run();
        throw e;
      }
    } finally {
      this.inTransaction = false;
    }
  }

  isRetryable(error: unknown): boolean {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
  }

  async close(): Promise<void> {
    this.statements.clear();
    if (this.shmFd !== null) closeSync(this.shmFd);
    this.shmFd = null;
    if (this.db.open) this.db.close();
  }
}

function walFrames(file: string): { frames: number; bytes: number } {
  let bytes = 0;
  try {
    bytes = statSync(`${file}-wal`).size;
  } catch {
    return { frames: 0, bytes: 0 };
  }
  return { frames: Math.max(0, Math.floor((bytes - WAL_HEADER_BYTES) / (PAGE_SIZE + WAL_FRAME_HEADER_BYTES))), bytes };
}

/** The message the restart child sends before it kills itself. */
export interface SqliteLogReady {
  readonly rows: number;
  readonly lastId: number;
}

export const sqliteSystem: BenchSystem = {
  name: "sqlite",
  title: "SQLite",
  clientModel: "in-process",
  clientLibrary: `better-sqlite3 ${BETTER_SQLITE3_VERSION} (in-process)`,

  async start(ctx: StartContext): Promise<RunningSystem> {
    const dir = join(ctx.workDir, "sqlite");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "bench.db");
    const db = openSqlite(file);
    const version = String(db.prepare("SELECT sqlite_version()").pluck().get());
    const settings = {
      journal_mode: String(db.pragma("journal_mode", { simple: true })),
      synchronous: ["OFF", "NORMAL", "FULL", "EXTRA"][Number(db.pragma("synchronous", { simple: true }))] ?? "?",
      page_size: String(db.pragma("page_size", { simple: true })),
      wal_autocheckpoint: String(db.pragma("wal_autocheckpoint", { simple: true })),
      clients: "in-process, 1 connection, sequential operations",
    };
    db.close();
    const clientSpec: ClientSpec = { system: "sqlite", file };
    let lastRestartId = 0;

    return {
      version: `SQLite ${version}`,
      settings,
      clientSpec,
      serverPids: async () => [],
      async counters() {
        // Counted by the connections inside the load generator (logCounters), not here.
        return { logBytes: null, logRecords: null, internalNetBytes: null };
      },
      restart: {
        async prepareLog(records: number, budgetMs: number, progress: (done: number) => void): Promise<PreparedLog> {
          // A child process writes until the WAL holds `records` frames since a TRUNCATE checkpoint,
          // with automatic checkpoints off, then SIGKILLs itself: the WAL is left for recovery.
          const childPath = fileURLToPath(new URL("./sqlite-restart-child.js", import.meta.url));
          const child = fork(childPath, [file, String(records), String(Math.round(budgetMs))], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
          const ready = await new Promise<SqliteLogReady>((resolve, reject) => {
            let result: SqliteLogReady | null = null;
            child.on("message", (m: { progress?: number } & Partial<SqliteLogReady>) => {
              if (m.progress !== undefined) progress(m.progress);
              else result = m as SqliteLogReady;
            });
            child.on("exit", (code, signal) => {
              if (result !== null && signal === "SIGKILL") resolve(result);
              else reject(new Error(`sqlite restart child ended with ${signal ?? code} before reporting its log`));
            });
          });
          lastRestartId = ready.lastId;
          const wal = walFrames(file);
          return { records: wal.frames, recordsSource: "WAL frames", bytes: wal.bytes, rows: ready.rows };
        },
        async crashAndRestart(): Promise<RestartMeasurement> {
          assert(lastRestartId > 0, "sqlite: prepareLog before crashAndRestart");
          // The crash already happened (the child killed itself); restart = open + recovery + read.
          const t0 = performance.now();
          const db = new Database(file);
          db.pragma("synchronous = FULL");
          const row = db.prepare("SELECT v FROM restart_log WHERE id = ?").raw(true).get(lastRestartId);
          const restartMs = performance.now() - t0;
          if (row === undefined) throw new Error(`sqlite: row ${lastRestartId} lost after the crash`);
          db.close(); // checkpoints the WAL (not timed)
          return {
            restartMs,
            method: "writer process SIGKILLed with the WAL unchecked (wal_autocheckpoint=0); time = open + WAL recovery + first read in a new connection",
          };
        },
      },
      async stop() {},
    };
  },

  async connect(spec: ClientSpec): Promise<BenchConnection> {
    assert(spec.system === "sqlite" && typeof spec.file === "string", "sqlite: bad client spec");
    return new SqliteConnection(openSqlite(spec.file), spec.file);
  },
};
