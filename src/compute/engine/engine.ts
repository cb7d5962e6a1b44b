/**
 * The SQL engine on the main thread: `Engine` implements `SqlEngine` (sql-engine.ts) over one writer
 * worker and N reader workers, each running real SQLite over the Borealis VFS, sharing one buffer
 * pool and the VDL word; the volume is reached only through `VolumeIO`.
 *
 * Sessions and routing:
 * - An autocommit statement is first offered to a reader (least loaded): the reader prepares it and
 *   runs it if `sqlite3_stmt_readonly` says it is read-only, at read point VDL (invariant 7).
 *   Otherwise it goes to the writer under the shared write lock. The answer is cached per SQL text
 *   (bounded), so a known statement goes straight to its worker.
 * - `BEGIN`, `BEGIN DEFERRED|IMMEDIATE|EXCLUSIVE` and `SAVEPOINT` pin the session to a connection of
 *   the writer worker; `BEGIN TRANSACTION READONLY` (libSQL) pins it to a reader connection, where it
 *   runs as `BEGIN DEFERRED` on a read-only connection. The pin ends when SQLite is back in
 *   autocommit mode, whatever ended the transaction.
 * - Write lock (write-gate.ts): autocommit writes share it and are pipelined into the writer; an
 *   explicit transaction takes it exclusively at BEGIN IMMEDIATE/EXCLUSIVE or at its first write
 *   (the worker answers `needWriteLock` and the statement is re-sent once granted), and gives it back
 *   as soon as its connection no longer has a write transaction. Waiting is bounded; timeout →
 *   SQLITE_BUSY. A transaction whose snapshot went stale gets SQLITE_BUSY from the VFS (WAL semantics).
 * - Commit acknowledgement (invariant 5): a reply carrying a commit LSN resolves only when
 *   `VolumeIO.whenDurable(commitLsn)` has, and acknowledgements are chained in LSN order. The write
 *   lock is released before waiting (asynchronous commit). Results read on a writer connection at a
 *   snapshot above VDL also wait until that snapshot is durable, so no client sees data a crash could
 *   take back.
 * - Failure: if the volume refuses an MTR or durability cannot be established, commits stop
 *   (shared flag, vetoed in the writer), waiting commits get COMMIT_OUTCOME_UNKNOWN, and later writes
 *   WRITER_FENCED; reads go on. A durability wait that merely timed out (no write quorum for now,
 *   `isDurabilityWaitTimeout`) answers its commit COMMIT_OUTCOME_UNKNOWN and stops nothing.
 *
 * Everything is bounded: sessions, statements queued per session, connections per worker (pinned
 * transactions), requests in flight per worker, write lock waiters, result rows and bytes.
 */
import { availableParallelism } from "node:os";
import { assert } from "../../core/assert.js";
import { BorealisError } from "../../core/errors.js";
import { Lsn, PageNo } from "../../core/types.js";
import { silentLogger } from "../../env/real.js";
import type { Logger } from "../../env/env.js";
import {
  SqliteError, type ColumnInfo, type DescribeResult, type SqlEngine, type SqlSession, type SqlStatement, type SqlValue,
  type StatementResult,
} from "../sql-engine.js";
import { isDurabilityWaitTimeout, type LsnState, type MiniTransaction, type VolumeIO } from "../volume-io.js";
import { BufferPool } from "./buffer-pool.js";
import type { RawResult, RawValue } from "./connection.js";
import { createPageBridge } from "./page-bridge.js";
import { SharedControl } from "./shared-control.js";
import { SQLITE_BUSY, SQLITE_FULL, SQLITE_TXN_WRITE } from "./sqlite-abi.js";
import { READONLY_BEGIN_SQL, txKind } from "./statement-kind.js";
import { WorkerHost, type Answer, type RequestBody } from "./worker-host.js";
import type { WorkerInit, WorkerReply, WorkerStats } from "./worker-protocol.js";
import { WriteGate } from "./write-gate.js";

export interface EngineOptions {
  readonly volume: VolumeIO;
  /** Where LSN allocation resumes (a fresh volume: `freshLsnState()`; after recovery: its result). */
  readonly lsnState: LsnState;
  /** PG geometry: pages per protection group. */
  readonly pgPages: number;
  /** Reader workers (default 1–2 by CPU count). */
  readonly readers?: number;
  /** Shared buffer pool size (`--cache-mb`, default 256). */
  readonly cacheMb?: number;
  /** LSN allocation limit (invariant 6); default a quarter of the pool's pages. */
  readonly lal?: number;
  /** How long a commit waits for VDL to come within LAL before it is refused (default 5 s). */
  readonly lalWaitMs?: number;
  /** How long a write waits for the write lock before SQLITE_BUSY (default 5 s). */
  readonly busyTimeoutMs?: number;
  readonly maxSessions?: number;
  readonly maxQueuedPerSession?: number;
  /** SQLite connections per worker: one for autocommit, the rest for pinned transactions. */
  readonly maxConnectionsPerWorker?: number;
  readonly maxResultRows?: number;
  readonly maxResultBytes?: number;
  /** SQLite page cache per writer connection, MiB (large: commits stay batch-atomic). Default 256. */
  readonly writerCacheMb?: number;
  /** SQLite page cache per reader connection, MiB. Default 16. */
  readonly readerCacheMb?: number;
  /** Writer's page backlink directory, entries (bounded, oldest dropped first). Default 1M. */
  readonly directoryCapacity?: number;
  /** Spin iterations before a worker sleeps on the page bridge. */
  readonly bridgeSpin?: number;
  readonly bridgeTimeoutMs?: number;
  /**
   * Enforce foreign keys on every connection (default false, SQLite's default). Connections are
   * pooled across sessions, so a session's own `PRAGMA foreign_keys` does not reliably apply to its
   * later statements: set it here.
   */
  readonly foreignKeys?: boolean;
  /**
   * Group commit: autocommit writes of different sessions that reach the writer together commit as
   * one SQLite transaction (one MTR, one durability wait), with the semantics of running them one by
   * one (sql-worker.ts). Default true.
   */
  readonly groupCommit?: boolean;
  /** TEST ONLY: ship page images with each MTR so a MemoryVolume can check its materialization. */
  readonly shipPageImages?: boolean;
  readonly log?: Logger;
}

export interface EngineStats {
  readonly writer: WorkerStats;
  readonly readers: readonly WorkerStats[];
  readonly mtrs: number;
  readonly commitLsn: number;
  readonly sessions: number;
}

const CLASSIFY_CACHE = 4096;

/** Connections of one worker: 0 is the shared autocommit connection; 1… are handed to pinned sessions. */
class ConnPool {
  private readonly free: number[] = [];

  constructor(max: number) {
    for (let c = max - 1; c >= 1; c--) this.free.push(c);
  }

  take(): number {
    const c = this.free.pop();
    if (c === undefined) {
      throw new SqliteError("too many open transactions on this engine", "SQLITE_BUSY", "SQLITE_BUSY", SQLITE_BUSY);
    }
    return c;
  }

  give(c: number): void {
    assert(c >= 1 && !this.free.includes(c), `connection ${c} returned once`);
    this.free.push(c);
  }
}

interface Worker {
  readonly host: WorkerHost;
  readonly conns: ConnPool;
}

type Pin =
  | { readonly kind: "writer"; readonly conn: number; holdsLock: boolean }
  | { readonly kind: "reader"; readonly worker: Worker; readonly conn: number };

export class Engine implements SqlEngine {
  private readonly gate: WriteGate;
  private readonly sessions = new Set<EngineSession>();
  private readonly classified = new Map<string, boolean>();
  private ackTail: Promise<void> = Promise.resolve();
  private lastAckLsn = 0;
  private lastAck: Promise<void> | null = null;
  /** Statements sharing `lastAck` (a group commit), and whether it has been acknowledged. */
  private lastAckGroup: { statements: number; acked: boolean } = { statements: 0, acked: false };
  /** Commits acknowledged to clients (the writer's `/metrics`); a group commit counts each statement. */
  private acknowledged = 0;
  private lastMtrLsn: number;
  private mtrCount = 0;
  private failure: Error | null = null;
  private closed = false;
  /** Rejects when the engine closes: nothing waits for durability past that. */
  private readonly closeSignal: Promise<never>;
  private signalClose: (e: Error) => void = () => undefined;
  readonly busyTimeoutMs: number;
  readonly maxQueuedPerSession: number;
  private readonly maxSessions: number;
  readonly log: Logger;

  private constructor(
    private readonly volume: VolumeIO,
    private readonly control: SharedControl,
    readonly pool: BufferPool,
    private readonly writer: Worker,
    private readonly readers: readonly Worker[],
    options: EngineOptions,
  ) {
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.maxQueuedPerSession = options.maxQueuedPerSession ?? 64;
    this.maxSessions = options.maxSessions ?? 1024;
    this.gate = new WriteGate(this.maxSessions);
    this.lastMtrLsn = options.lsnState.vdl;
    this.lastAckLsn = options.lsnState.vdl;
    this.log = options.log ?? silentLogger;
    this.closeSignal = new Promise<never>((_, reject) => {
      this.signalClose = reject;
    });
    this.closeSignal.catch(() => undefined);
  }

  static async start(options: EngineOptions): Promise<Engine> {
    const volume = options.volume;
    const s = options.lsnState;
    const pageSize = volume.pageSize;
    assert(volume.vdl() === s.vdl, 8, `the engine starts at the volume's VDL (${volume.vdl()} vs ${s.vdl})`);
    const nReaders = options.readers ?? Math.min(2, Math.max(1, availableParallelism() - 2));
    const maxConns = options.maxConnectionsPerWorker ?? 64;
    assert(nReaders >= 1 && maxConns >= 2, "at least one reader and two connections per worker");
    const control = SharedControl.create((nReaders + 1) * maxConns, s.vdl);
    const pool = BufferPool.create((options.cacheMb ?? 256) * 1024 * 1024, pageSize, control);
    const lal = options.lal ?? Math.max(16, Math.floor(pool.nSlots / 4));
    pool.assertFitsLal(lal);

    let engine: Engine | null = null;
    const events = {
      onMtr: (mtr: MiniTransaction) => engine!.onMtr(mtr),
      onFatal: (e: Error) => engine!.fail(e),
      onCommit: (commitLsn: number) => engine!.ackCommit(commitLsn),
      onLog: (event: string, fields: Record<string, unknown>) => (engine?.log ?? options.log ?? silentLogger).warn(event, fields),
      readPage: async (pageNo: number, readPoint: number) => {
        // The writer may read at its own snapshot above VDL; every page it wrote above VDL is in the
        // pool, so a page it misses is the same at VDL, where storage can serve it.
        const at = Math.min(readPoint, volume.vdl());
        const r = await volume.readPage(PageNo(pageNo), Lsn(at));
        return { bytes: r.bytes, pageLsn: r.pageLsn };
      },
    };
    const common = {
      controlSab: control.sab,
      poolSab: pool.sab,
      pageSize,
      pgPages: options.pgPages,
      maxConnections: maxConns,
      bridgeSpin: options.bridgeSpin ?? 5000,
      bridgeTimeoutMs: options.bridgeTimeoutMs ?? 30_000,
      maxResultRows: options.maxResultRows ?? 100_000,
      maxResultBytes: options.maxResultBytes ?? 64 << 20,
      lal,
      lalWaitMs: options.lalWaitMs ?? 5000,
      directoryCapacity: options.directoryCapacity ?? 1 << 20,
      shipPageImages: options.shipPageImages ?? false,
      connectionSql: options.foreignKeys === true ? "PRAGMA foreign_keys=ON" : "",
      groupCommit: options.groupCommit ?? true,
    };
    const maxInFlight = (options.maxSessions ?? 1024) + 16;
    const inits: WorkerInit[] = [];
    inits.push({ ...common, role: "writer", workerIndex: 0, bridgeSab: createPageBridge(pageSize), readSlotBase: 0,
      cacheKib: (options.writerCacheMb ?? 256) * 1024, lsnState: s });
    for (let i = 0; i < nReaders; i++) {
      inits.push({ ...common, role: "reader", workerIndex: i, bridgeSab: createPageBridge(pageSize), readSlotBase: (i + 1) * maxConns,
        cacheKib: (options.readerCacheMb ?? 16) * 1024, lsnState: null });
    }
    const settled = await Promise.allSettled(inits.map((init) => WorkerHost.start(init, events, maxInFlight)));
    const failed = settled.find((r) => r.status === "rejected");
    if (failed !== undefined) {
      for (const r of settled) if (r.status === "fulfilled") await r.value.close();
      throw (failed as PromiseRejectedResult).reason;
    }
    const hosts = settled.map((r) => (r as PromiseFulfilledResult<WorkerHost>).value);
    const workers = hosts.map((host) => ({ host, conns: new ConnPool(maxConns) }));
    engine = new Engine(volume, control, pool, workers[0]!, workers.slice(1), options);
    volume.onVdl((vdl) => engine!.publishVdl(vdl));
    engine.freshenVdl(); // VDL may have moved while the workers started
    return engine;
  }

  openSession(): SqlSession {
    if (this.closed) throw new BorealisError("SHUTTING_DOWN", "the SQL engine is closed");
    if (this.sessions.size >= this.maxSessions) {
      throw new BorealisError("TOO_MANY_IN_FLIGHT", `${this.sessions.size} sessions open (limit ${this.maxSessions})`);
    }
    const s = new EngineSession(this);
    this.sessions.add(s);
    return s;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.signalClose(new BorealisError("SHUTTING_DOWN", "the SQL engine closed while waiting for durability"));
    this.gate.rejectAll(new BorealisError("SHUTTING_DOWN", "the SQL engine is closing"));
    await Promise.allSettled([...this.sessions].map((s) => s.close()));
    await Promise.allSettled([this.writer, ...this.readers].map((w) => w.host.close()));
  }

  async stats(): Promise<EngineStats> {
    const get = async (w: Worker): Promise<WorkerStats> => ((await w.host.request({ op: "stats" })).reply as { stats: WorkerStats }).stats;
    return {
      writer: await get(this.writer),
      readers: await Promise.all(this.readers.map(get)),
      mtrs: this.mtrCount,
      commitLsn: this.lastMtrLsn,
      sessions: this.sessions.size,
    };
  }

  // ------------------------------------------------------------------------- volume side

  private lastVdlHeard = 0;

  /** From `VolumeIO.onVdl`: monotonic (invariant 4); may lag what `freshenVdl` already published. */
  private publishVdl(vdl: number): void {
    assert(vdl >= this.lastVdlHeard, 4, `VDL reported by the volume is monotonic (${this.lastVdlHeard} → ${vdl})`);
    this.lastVdlHeard = vdl;
    if (vdl > this.control.vdl()) this.control.publishVdl(vdl);
  }

  private onMtr(mtr: MiniTransaction): void {
    assert(mtr.firstLsn > this.lastMtrLsn && mtr.commitLsn >= mtr.firstLsn, 1, `MTRs arrive in LSN order (${mtr.firstLsn} after ${this.lastMtrLsn})`);
    this.lastMtrLsn = mtr.commitLsn;
    this.mtrCount++;
    if (this.failure !== null) return; // commits are stopping; this one's acknowledgement fails below
    try {
      this.volume.submit(mtr);
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Why commits stopped for good, or null while the engine commits (the writer's /health). */
  commitsStoppedBy(): string | null {
    return this.failure === null ? null : this.failure.message;
  }

  /** Stops commits for good: the volume refused us or durability could not be established. */
  fail(e: Error): void {
    if (this.failure !== null) return;
    this.failure = e;
    this.control.stopCommits();
    this.log.error("sql-engine-commits-stopped", { error: e.message });
  }

  /** Resolves when `lsn` is durable, after every earlier acknowledgement (invariant 5). */
  ackCommit(lsn: number): Promise<void> {
    // The statements of one group commit share its LSN and its acknowledgement.
    if (lsn === this.lastAckLsn && this.lastAck !== null) {
      if (this.lastAckGroup.acked) this.acknowledged++;
      else this.lastAckGroup.statements++;
      return this.lastAck;
    }
    assert(lsn > this.lastAckLsn, 5, `acknowledgements in LSN order (${lsn} after ${this.lastAckLsn})`);
    this.lastAckLsn = lsn;
    const durable = this.failure !== null && lsn > this.volume.vdl()
      ? Promise.reject(this.failure)
      : Promise.race([this.volume.whenDurable(Lsn(lsn)), this.closeSignal]);
    const group = { statements: 1, acked: false };
    this.lastAckGroup = group;
    const mine = this.ackTail.then(() => durable).then(
      () => {
        assert(this.volume.vdl() >= lsn, 5, `commit ${lsn} acknowledged at VDL ${this.volume.vdl()}`);
        group.acked = true;
        this.acknowledged += group.statements;
      },
      (e: unknown) => {
        // A wait that only timed out leaves the records with the volume, still being shipped: this
        // commit's outcome is unknown, but commits go on (none is acknowledged before this one is
        // durable: VDL passes LSNs in order), so writes resume when storage does. Else stop for good.
        if (!isDurabilityWaitTimeout(e)) this.fail(e instanceof Error ? e : new Error(String(e)));
        throw new BorealisError("COMMIT_OUTCOME_UNKNOWN", `commit at LSN ${lsn}: durability could not be established`, { lsn }, { cause: e });
      },
    );
    this.ackTail = mine.catch(() => undefined);
    this.lastAck = mine;
    return mine;
  }

  vdl(): number {
    return this.volume.vdl();
  }

  /** Commits acknowledged to clients so far (every statement of a group commit counts). */
  commitsAcknowledged(): number {
    return this.acknowledged;
  }

  /** A read on the writer at a snapshot above VDL waits until that snapshot is durable. */
  async snapshotDurable(readLsn: number): Promise<void> {
    if (readLsn <= this.volume.vdl()) return;
    await Promise.race([this.volume.whenDurable(Lsn(readLsn)), this.closeSignal]);
  }

  /** Makes sure workers see at least the volume's current VDL before a read is dispatched. */
  freshenVdl(): void {
    const v = this.volume.vdl();
    if (v > this.control.vdl()) this.control.publishVdl(v);
  }

  // ------------------------------------------------------------------------ for sessions

  get writerWorker(): Worker {
    return this.writer;
  }

  get writeGate(): WriteGate {
    return this.gate;
  }

  leastLoadedReader(): Worker {
    let best = this.readers[0]!;
    for (const r of this.readers) if (r.host.inFlight < best.host.inFlight) best = r;
    return best;
  }

  isReadonly(sql: string): boolean | undefined {
    return this.classified.get(sql);
  }

  classify(sql: string, readonly: boolean): void {
    if (this.classified.size >= CLASSIFY_CACHE) this.classified.delete(this.classified.keys().next().value!);
    this.classified.set(sql, readonly);
  }

  sessionClosed(s: EngineSession): void {
    this.sessions.delete(s);
  }

  /** The error a worker reply carries, as the session's caller should see it. */
  errorOf(reply: Extract<WorkerReply, { ok: false }>): Error {
    const e = reply.error;
    switch (e.kind) {
      case "sqlite":
        return new SqliteError(e.message, e.code, e.extendedCode, e.rawCode);
      case "internal":
        return new BorealisError("INTERNAL", e.message);
      case "veto":
        switch (e.reason) {
          case "STALE_SNAPSHOT":
            return new SqliteError(e.message, "SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", SQLITE_BUSY | (2 << 8));
          case "NO_WRITE_LOCK":
          case "WRITER_BUSY":
            return new SqliteError(`database is locked: ${e.message}`, "SQLITE_BUSY", "SQLITE_BUSY", SQLITE_BUSY);
          case "TOO_LARGE":
            return new SqliteError(e.message, "SQLITE_FULL", "SQLITE_FULL", SQLITE_FULL);
          case "BACKPRESSURE":
            return new BorealisError("BACKPRESSURE", e.message);
          case "PAGE_LOOKUP_FAILED":
            return new BorealisError("NO_QUORUM", e.message);
          default:
            return new BorealisError("WRITER_FENCED", `this writer stopped committing${this.failure !== null ? ` after: ${this.failure.message}` : ""}`,
              {}, { cause: this.failure ?? undefined });
        }
    }
  }
}

// ------------------------------------------------------------------------------ values

function toRaw(v: SqlValue): RawValue {
  switch (v.type) {
    case "null": return null;
    case "integer": return v.value;
    case "float": return v.value;
    case "text": return v.value;
    case "blob": return v.value;
  }
}

function fromRaw(v: RawValue): SqlValue {
  if (v === null) return { type: "null" };
  if (typeof v === "bigint") return { type: "integer", value: v };
  if (typeof v === "number") return { type: "float", value: v };
  if (typeof v === "string") return { type: "text", value: v };
  return { type: "blob", value: v };
}

function toResult(r: RawResult | null): StatementResult {
  if (r === null) return { columns: [], rows: [], affectedRowCount: 0, lastInsertRowid: null };
  const columns: ColumnInfo[] = r.columns.map((c) => ({ name: c.name, decltype: c.decltype }));
  const rows = r.rows.map((row) => row.map(fromRaw));
  return { columns, rows, affectedRowCount: r.affectedRowCount, lastInsertRowid: r.lastInsertRowid };
}

// ------------------------------------------------------------------------------ session

class EngineSession implements SqlSession {
  private pin: Pin | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private closed = false;

  constructor(private readonly e: Engine) {}

  execute(statement: SqlStatement): Promise<StatementResult> {
    return this.enqueue(() => this.executeNow(statement));
  }

  executeScript(sql: string): Promise<void> {
    return this.enqueue(() => this.scriptNow(sql));
  }

  describe(sql: string): Promise<DescribeResult> {
    return this.enqueue(async () => {
      const target = this.pin === null
        ? { worker: this.e.leastLoadedReader(), conn: 0 }
        : this.pin.kind === "reader" ? { worker: this.pin.worker, conn: this.pin.conn } : { worker: this.e.writerWorker, conn: this.pin.conn };
      const { reply } = await target.worker.host.request({ op: "describe", conn: target.conn, sql });
      if (!reply.ok) throw this.e.errorOf(reply);
      const d = reply.describe!;
      return {
        params: d.params.map((name) => ({ name })),
        columns: d.columns.map((c) => ({ name: c.name, decltype: c.decltype })),
        isExplain: d.isExplain,
        isReadonly: d.isReadonly,
      };
    });
  }

  isAutocommit(): boolean {
    return this.pin === null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail.catch(() => undefined);
    const pin = this.pin;
    if (pin !== null) {
      const worker = pin.kind === "reader" ? pin.worker : this.e.writerWorker;
      try {
        const { reply } = await worker.host.request({ op: "reset", conn: pin.conn });
        this.afterReply(reply);
      } catch {
        // The worker is gone; the engine is failing anyway.
      }
      if (this.pin !== null) this.unpin(); // reset failed: free the connection and the lock regardless
    }
    this.e.sessionClosed(this);
  }

  // ---------------------------------------------------------------------------- internals

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) {
      return Promise.reject(new SqliteError("session is closed", "SQLITE_MISUSE", "SQLITE_MISUSE", 21));
    }
    if (this.queued >= this.e.maxQueuedPerSession) {
      return Promise.reject(new BorealisError("TOO_MANY_IN_FLIGHT", `${this.queued} statements queued on this session`));
    }
    this.queued++;
    const run = this.tail.then(fn, fn);
    this.tail = run.then(() => undefined, () => undefined).finally(() => this.queued--);
    return run;
  }

  private async executeNow(st: SqlStatement): Promise<StatementResult> {
    const args = (st.args ?? []).map(toRaw);
    const named = (st.namedArgs ?? []).map((a) => [a.name, toRaw(a.value)] as const);
    const wantRows = st.wantRows ?? true;
    const body = (conn: number, sql: string, allowWrite: boolean, classify = false): RequestBody =>
      ({ op: "exec", conn, sql, args, named, wantRows, allowWrite, classify });

    if (this.pin === null) {
      switch (txKind(st.sql)) {
        case "begin-readonly": {
          this.e.freshenVdl();
          const worker = this.e.leastLoadedReader();
          const conn = worker.conns.take();
          this.pin = { kind: "reader", worker, conn };
          return this.finish(await this.send(worker, body(conn, READONLY_BEGIN_SQL, false)), false);
        }
        case "begin-immediate":
        case "begin-exclusive": {
          const conn = this.e.writerWorker.conns.take();
          try {
            await this.e.writeGate.acquire("exclusive", this, this.e.busyTimeoutMs);
          } catch (err) {
            this.e.writerWorker.conns.give(conn);
            throw err;
          }
          this.pin = { kind: "writer", conn, holdsLock: true };
          return this.finish(await this.send(this.e.writerWorker, body(conn, st.sql, true)), true);
        }
        case "begin-deferred":
        case "savepoint": {
          const conn = this.e.writerWorker.conns.take();
          this.pin = { kind: "writer", conn, holdsLock: false };
          return this.finish(await this.send(this.e.writerWorker, body(conn, st.sql, false)), true);
        }
        case "other":
          return this.autocommit(st.sql, body);
      }
    }
    const pin = this.pin;
    if (pin.kind === "reader") {
      this.e.freshenVdl();
      const sql = txKind(st.sql) === "begin-readonly" ? READONLY_BEGIN_SQL : st.sql;
      return this.finish(await this.send(pin.worker, body(pin.conn, sql, false)), false);
    }
    let answer = await this.send(this.e.writerWorker, body(pin.conn, st.sql, pin.holdsLock));
    if (answer.reply.ok && answer.reply.needWriteLock) {
      await this.e.writeGate.acquire("exclusive", this, this.e.busyTimeoutMs);
      pin.holdsLock = true;
      answer = await this.send(this.e.writerWorker, body(pin.conn, st.sql, true));
    }
    return this.finish(answer, true);
  }

  private async autocommit(sql: string, body: (conn: number, sql: string, allowWrite: boolean, classify?: boolean) => RequestBody): Promise<StatementResult> {
    const known = this.e.isReadonly(sql);
    if (known !== false) {
      this.e.freshenVdl();
      const answer = await this.send(this.e.leastLoadedReader(), body(0, sql, false, known === undefined));
      const reply = answer.reply;
      if (!(reply.ok && reply.notReadonly)) {
        if (reply.ok) this.e.classify(sql, true);
        return this.finish(answer, false);
      }
      this.e.classify(sql, false);
    }
    const gate = this.e.writeGate;
    await gate.acquire("shared", this, this.e.busyTimeoutMs);
    let answer: Answer;
    try {
      answer = await this.send(this.e.writerWorker, body(0, sql, true));
    } finally {
      gate.release("shared", this);
    }
    if (!answer.reply.autocommit) {
      // Only transaction-opening statements leave a transaction open, and those were routed above.
      await this.send(this.e.writerWorker, { op: "reset", conn: 0 });
      throw new SqliteError("statement left a transaction open on the shared connection; use BEGIN", "SQLITE_MISUSE", "SQLITE_MISUSE", 21);
    }
    return this.finish(answer, true);
  }

  private async scriptNow(sql: string): Promise<void> {
    const pin = this.pin;
    if (pin !== null && pin.kind === "reader") {
      await this.finish(await this.send(pin.worker, { op: "script", conn: pin.conn, sql, allowWrite: false }), false);
      return;
    }
    // A script may write and may leave a transaction open: it runs on a pinned writer connection
    // under the exclusive lock.
    const writer = this.e.writerWorker;
    if (pin === null) {
      const conn = writer.conns.take();
      try {
        await this.e.writeGate.acquire("exclusive", this, this.e.busyTimeoutMs);
      } catch (err) {
        writer.conns.give(conn);
        throw err;
      }
      this.pin = { kind: "writer", conn, holdsLock: true };
    } else if (!pin.holdsLock) {
      await this.e.writeGate.acquire("exclusive", this, this.e.busyTimeoutMs);
      pin.holdsLock = true;
    }
    const conn = (this.pin as Extract<Pin, { kind: "writer" }>).conn;
    await this.finish(await this.send(writer, { op: "script", conn, sql, allowWrite: true }), true);
  }

  private send(worker: Worker, body: RequestBody): Promise<Answer> {
    return worker.host.request(body);
  }

  /**
   * Brings the session in line with its connection's state, waits for durability of what the
   * statement committed (or read above VDL), then returns its result or throws its error.
   */
  private async finish(answer: Answer, onWriter: boolean): Promise<StatementResult> {
    const reply = answer.reply;
    this.afterReply(reply);
    // A script may have committed before it failed: its commits are acknowledged (or their outcome
    // reported unknown) before its error is. The acknowledgement was chained in LSN order when the
    // reply arrived (WorkerHostEvents.onCommit).
    if (answer.ack !== null) await answer.ack;
    if (!reply.ok) throw this.e.errorOf(reply);
    if (answer.ack === null && onWriter && reply.readLsn > this.e.vdl()) await this.e.snapshotDurable(reply.readLsn);
    return toResult(reply.result);
  }

  private afterReply(reply: WorkerReply): void {
    const pin = this.pin;
    if (pin === null) return;
    if (pin.kind === "writer" && pin.holdsLock && reply.txn < SQLITE_TXN_WRITE) {
      this.e.writeGate.release("exclusive", this);
      pin.holdsLock = false;
    }
    if (reply.autocommit) this.unpin();
  }

  private unpin(): void {
    const pin = this.pin!;
    if (pin.kind === "writer") {
      if (pin.holdsLock) this.e.writeGate.release("exclusive", this);
      this.e.writerWorker.conns.give(pin.conn);
    } else pin.worker.conns.give(pin.conn);
    this.pin = null;
  }
}

