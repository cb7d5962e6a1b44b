/**
 * Entry point of an SQL worker thread: one wa-sqlite instance (THREADSAFE=0, so one per thread), one
 * Borealis VFS, and a bounded set of SQLite connections numbered by the main thread.
 *
 * Roles:
 * - writer (exactly one): read-write connections, the RedoWriter (LSN allocation, MTRs posted to the
 *   main thread), writes only while the engine's write lock covers the statement (`allowWrite`);
 * - reader (N): read-only connections whose snapshots are taken at VDL.
 *
 * Requests are handled synchronously, in arrival order, a drained batch at a time (autocommit writes
 * in a batch may share one commit: group commit, below); SQLite blocks inside the VFS
 * only on a buffer pool miss (page bridge) or on LAL back-pressure. An assertion failure is fatal:
 * the worker reports it and exits, and the engine stops (a broken invariant must not write on).
 */
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { AssertionError } from "../../core/assert.js";
import { SqliteError } from "../sql-engine.js";
import type { MiniTransaction } from "../volume-io.js";
import { BufferPool } from "./buffer-pool.js";
import { SqliteConnection, stripComments, type Prepared, type RawResult } from "./connection.js";
import { PageBridgeClient } from "./page-bridge.js";
import { RedoWriter } from "./redo-writer.js";
import { SharedControl } from "./shared-control.js";
import {
  loadSqliteModule, SQLITE_OPEN_CREATE, SQLITE_OPEN_EXRESCODE, SQLITE_OPEN_READONLY, SQLITE_OPEN_READWRITE,
} from "./sqlite-abi.js";
import { BorealisVfs, type ConnectionBinding } from "./vfs.js";
import type { BatchItem, ConnState, WireError, WorkerInit, WorkerMessage, WorkerReply, WorkerRequest } from "./worker-protocol.js";

const DB_NAME = "borealis.db";

const port = parentPort!;
const init = workerData as WorkerInit;
/** Requests drained and answered per postMessage at most (bounds a reply's delay behind its batch). */
const MAX_BATCH = 64;

/** What the current batch will carry back: replies and MTRs in order, and the buffers to transfer. */
let outbox: BatchItem[] = [];
const counters = { requests: 0, busyMs: 0, batches: 0 };
const groupCounters = { groups: 0, grouped: 0, fallbacks: 0 };
let transfers: ArrayBuffer[] = [];

function post(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function fatal(e: unknown): never {
  const err = e instanceof Error ? e : new Error(String(e));
  post(err.stack === undefined ? { type: "fatal", message: err.message } : { type: "fatal", message: err.message, stack: err.stack });
  process.exit(70);
}

const m = await loadSqliteModule();
const control = SharedControl.attach(init.controlSab);
const pool = BufferPool.attach(init.poolSab, control);
const bridge = new PageBridgeClient(init.bridgeSab, init.bridgeSpin, init.bridgeTimeoutMs);
const writer = init.role === "writer"
  ? new RedoWriter({
    state: init.lsnState!,
    pgPages: init.pgPages,
    pageSize: init.pageSize,
    lal: init.lal,
    lalWaitMs: init.lalWaitMs,
    directoryCapacity: init.directoryCapacity,
    pool,
    control,
    bridge,
    ship: (mtr: MiniTransaction, transfer: ArrayBuffer[]) => {
      outbox.push({ type: "mtr", mtr });
      transfers.push(...transfer);
    },
    shipPageImages: init.shipPageImages,
    nowMs: () => Date.now(),
  })
  : null;
const vfs = new BorealisVfs({
  role: init.role,
  module: m,
  pool,
  control,
  bridge,
  pageSize: init.pageSize,
  dbName: DB_NAME,
  writer,
  warn: (event, fields) => outbox.push({ type: "log", event, fields: { worker: `${init.role}-${init.workerIndex}`, ...fields } }),
});
vfs.register();

interface Conn {
  readonly sql: SqliteConnection;
  readonly binding: ConnectionBinding;
}

const conns = new Map<number, Conn>();

function connection(id: number): Conn {
  let c = conns.get(id);
  if (c !== undefined) return c;
  if (!(Number.isInteger(id) && id >= 0 && id < init.maxConnections)) throw new AssertionError(`connection ${id} out of range`);
  const binding: ConnectionBinding = { connId: id, readSlot: init.readSlotBase + id, allowWrite: false, lastReadLsn: -1, schemaCookie: 0 };
  vfs.bindNextOpen(binding);
  const flags = init.role === "writer" ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  const sql = SqliteConnection.open(m, DB_NAME, vfs.name, flags | SQLITE_OPEN_EXRESCODE);
  sql.schemaCookie = () => binding.schemaCookie;
  // A large page cache keeps commits batch-atomic (a spill forces a journaled commit); SQLite never
  // waits on a lock itself: the engine's write lock queue does the waiting.
  sql.exec(`PRAGMA cache_size=-${init.cacheKib}; PRAGMA busy_timeout=0`);
  if (init.role === "writer") sql.exec(`PRAGMA page_size=${init.pageSize}`);
  if (init.connectionSql !== "") sql.exec(init.connectionSql);
  c = { sql, binding };
  conns.set(id, c);
  return c;
}

function state(c: Conn | null, latestBefore: number): ConnState {
  const latest = writer?.latestLsn ?? 0;
  return {
    txn: c?.sql.txnState() ?? 0,
    autocommit: c?.sql.autocommit() ?? true,
    readLsn: c?.binding.lastReadLsn ?? -1,
    commitLsn: writer !== null && latest !== latestBefore ? latest : 0,
  };
}

/** An error of SQLite, refined with the VFS's reason when SQLite only says BUSY/FULL. */
function wireError(e: unknown): WireError {
  if (e instanceof AssertionError) fatal(e);
  if (e instanceof SqliteError) {
    const veto = vfs.lastVeto;
    if (veto !== null && (e.rawCode & 0xff) === (veto.rc & 0xff)) {
      return { kind: "veto", reason: veto.reason, message: veto.message, rawCode: e.rawCode };
    }
    return { kind: "sqlite", message: e.message, code: e.code, extendedCode: e.extendedCode, rawCode: e.rawCode };
  }
  return { kind: "internal", message: e instanceof Error ? e.message : String(e) };
}

function handle(req: WorkerRequest): WorkerReply {
  const latestBefore = writer?.latestLsn ?? 0;
  vfs.lastVeto = null;
  let c: Conn | null = null;
  try {
    switch (req.op) {
      case "exec": {
        c = connection(req.conn);
        c.binding.allowWrite = req.allowWrite && writer !== null;
        const p: Prepared = c.sql.prepare(req.sql);
        try {
          if (!p.readonly && req.classify) return { id: req.id, ok: true, result: null, notReadonly: true, ...state(c, latestBefore) };
          if (!p.readonly && writer !== null && !req.allowWrite) {
            return { id: req.id, ok: true, result: null, needWriteLock: true, ...state(c, latestBefore) };
          }
          c.sql.bind(p, req.args, req.named);
          const result = c.sql.run(p, req.wantRows, { maxRows: init.maxResultRows, maxBytes: init.maxResultBytes });
          return { id: req.id, ok: true, result, ...state(c, latestBefore) };
        } finally {
          c.sql.release(p);
          c.binding.allowWrite = false;
        }
      }
      case "script": {
        c = connection(req.conn);
        c.binding.allowWrite = req.allowWrite && writer !== null;
        try {
          c.sql.exec(req.sql);
        } finally {
          c.binding.allowWrite = false;
        }
        return { id: req.id, ok: true, result: null, ...state(c, latestBefore) };
      }
      case "describe": {
        c = connection(req.conn);
        const p = c.sql.prepare(req.sql, true);
        try {
          return { id: req.id, ok: true, result: null, describe: c.sql.describe(p), ...state(c, latestBefore) };
        } finally {
          c.sql.release(p);
        }
      }
      case "reset": {
        c = connection(req.conn);
        if (!c.sql.autocommit()) c.sql.exec("ROLLBACK");
        return { id: req.id, ok: true, result: null, ...state(c, latestBefore) };
      }
      case "stats":
        return {
          id: req.id, ok: true, result: null,
          stats: {
            vfs: { ...vfs.stats }, pool: pool.stats(), commit: writer === null ? null : { ...writer.stats }, bridgeHops: bridge.hops,
            ...counters, ...groupCounters,
          },
          ...state(null, latestBefore),
        };
    }
  } catch (e) {
    return { id: req.id, ok: false, error: wireError(e), ...state(c, latestBefore) };
  }
}

// --------------------------------------------------------------------------- group commit
//
// Autocommit writes from different sessions that arrive together (the engine pipelines them under
// the shared write lock) run as one SQLite transaction: one commit, one MTR, one durability wait,
// instead of one each — the commit (page 1, diffs, LSNs, pool, MTR) is most of an autocommit insert's
// cost. Semantics are those of running them one after another in autocommit mode:
// - a statement that fails with ABORT/FAIL conflict resolution affects only itself, inside a
//   transaction as in autocommit mode;
// - a statement that ends the transaction (ROLLBACK resolution, RAISE(ROLLBACK), an I/O error) undoes
//   the earlier ones: those are run again one by one (nothing else ran on the writer in between, so
//   they see the same database), and the rest go on;
// - if the group's COMMIT is refused for lack of durability (back-pressure, commits stopped) every
//   statement gets that refusal — nothing of the group committed; any other failure of the COMMIT
//   runs the statements again one by one.
// Only plain DML on the shared autocommit connection is grouped: no DDL, VACUUM or PRAGMA.

const GROUPABLE = /^(insert|update|delete|replace)\b/i;
const GROUP_FAILS_ALL = new Set(["BACKPRESSURE", "COMMITS_STOPPED", "PAGE_LOOKUP_FAILED"]);

function groupable(req: WorkerRequest): req is Extract<WorkerRequest, { op: "exec" }> {
  return init.groupCommit && writer !== null && req.op === "exec" && req.conn === 0 && req.allowWrite && !req.classify &&
    GROUPABLE.test(stripComments(req.sql));
}

function handleGroup(reqs: readonly Extract<WorkerRequest, { op: "exec" }>[]): WorkerReply[] {
  const c = connection(0);
  const latestBefore = writer!.latestLsn;
  vfs.lastVeto = null;
  const outcomes: ({ ok: true; result: RawResult } | { ok: false; error: WireError })[] = [];
  let endedAt = -1;
  c.binding.allowWrite = true;
  try {
    try {
      c.sql.exec("BEGIN IMMEDIATE");
    } catch {
      return reqs.map(handle);
    }
    for (let k = 0; k < reqs.length; k++) {
      const req = reqs[k]!;
      try {
        const p = c.sql.prepare(req.sql);
        try {
          c.sql.bind(p, req.args, req.named);
          outcomes.push({ ok: true, result: c.sql.run(p, req.wantRows, { maxRows: init.maxResultRows, maxBytes: init.maxResultBytes }) });
        } finally {
          c.sql.release(p);
        }
      } catch (e) {
        outcomes.push({ ok: false, error: wireError(e) });
      }
      if (c.sql.autocommit()) {
        endedAt = k;
        break;
      }
    }
    if (endedAt < 0) {
      vfs.lastVeto = null;
      try {
        c.sql.exec("COMMIT");
      } catch (e) {
        const error = wireError(e);
        if (!c.sql.autocommit()) c.sql.exec("ROLLBACK");
        if (error.kind === "veto" && GROUP_FAILS_ALL.has(error.reason)) {
          return reqs.map((req) => ({ id: req.id, ok: false as const, error, ...state(c, latestBefore) }));
        }
        endedAt = reqs.length;
      }
    }
  } finally {
    c.binding.allowWrite = false;
  }
  if (endedAt >= 0) {
    // The transaction ended early or did not commit: statements before `endedAt` were undone.
    groupCounters.fallbacks++;
    const replies = reqs.slice(0, endedAt).map(handle);
    if (endedAt < reqs.length) {
      const failed = outcomes[endedAt]!;
      const st = state(c, latestBefore);
      replies.push(failed.ok ? { id: reqs[endedAt]!.id, ok: true, result: failed.result, ...st } : { id: reqs[endedAt]!.id, ok: false, error: failed.error, ...st });
      replies.push(...run(reqs.slice(endedAt + 1)));
    }
    return replies;
  }
  groupCounters.groups++;
  groupCounters.grouped += reqs.length;
  const st = state(c, latestBefore);
  return reqs.map((req, k) => {
    const o = outcomes[k]!;
    return o.ok ? { id: req.id, ok: true as const, result: o.result, ...st } : { id: req.id, ok: false as const, error: o.error, ...st, commitLsn: 0 };
  });
}

/** Handles requests in order, grouping runs of autocommit writes. */
function run(reqs: readonly WorkerRequest[]): WorkerReply[] {
  const replies: WorkerReply[] = [];
  let i = 0;
  while (i < reqs.length) {
    let j = i;
    while (j < reqs.length && groupable(reqs[j]!)) j++;
    if (j - i >= 2) {
      replies.push(...handleGroup(reqs.slice(i, j) as Extract<WorkerRequest, { op: "exec" }>[]));
      i = j;
    } else {
      replies.push(handle(reqs[i]!));
      i++;
    }
  }
  return replies;
}

port.on("message", (first: readonly WorkerRequest[]) => {
  const started = performance.now();
  // Drain what is already queued: one reply message for all of it, and group commits across it.
  const reqs = [...first];
  while (reqs.length < MAX_BATCH) {
    const next = receiveMessageOnPort(port);
    if (next === undefined) break;
    reqs.push(...(next.message as readonly WorkerRequest[]));
  }
  let replies: WorkerReply[];
  try {
    replies = run(reqs);
  } catch (e) {
    fatal(e);
  }
  // MTRs went into the outbox as they were made; replies follow them.
  for (const reply of replies) outbox.push({ type: "reply", reply });
  counters.requests += reqs.length;
  counters.busyMs += performance.now() - started;
  counters.batches++;
  const items = outbox;
  const buffers = transfers;
  outbox = [];
  transfers = [];
  post({ type: "batch", items }, buffers);
});

post({ type: "ready" });
