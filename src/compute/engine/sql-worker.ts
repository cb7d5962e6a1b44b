/**
 * Entry point of an SQL worker thread: one wa-sqlite instance (THREADSAFE=0, so one per thread), one
 * Borealis VFS, and a bounded set of SQLite connections numbered by the main thread.
 *
 * Roles:
 * - writer (exactly one): read-write connections, the RedoWriter (LSN allocation, MTRs posted to the
 *   main thread), writes only while the engine's write lock covers the statement (`allowWrite`);
 * - reader (N): read-only connections whose snapshots are taken at VDL.
 *
 * Requests are handled one at a time, synchronously, in arrival order; SQLite blocks inside the VFS
 * only on a buffer pool miss (page bridge) or on LAL back-pressure. An assertion failure is fatal:
 * the worker reports it and exits, and the engine stops (a broken invariant must not write on).
 */
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { AssertionError } from "../../core/assert.js";
import { SqliteError } from "../sql-engine.js";
import type { MiniTransaction } from "../volume-io.js";
import { BufferPool } from "./buffer-pool.js";
import { SqliteConnection, type Prepared } from "./connection.js";
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
/** Requests answered per postMessage at most (bounds a reply's delay behind its batch). */
const MAX_BATCH = 64;

/** What the current batch will carry back: replies and MTRs in order, and the buffers to transfer. */
let outbox: BatchItem[] = [];
const counters = { requests: 0, busyMs: 0, batches: 0 };
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
            ...counters,
          },
          ...state(null, latestBefore),
        };
    }
  } catch (e) {
    return { id: req.id, ok: false, error: wireError(e), ...state(c, latestBefore) };
  }
}

port.on("message", (first: readonly WorkerRequest[]) => {
  let queue = first;
  let handled = 0;
  const started = performance.now();
  for (;;) {
    for (const req of queue) {
      let reply: WorkerReply;
      try {
        reply = handle(req);
      } catch (e) {
        fatal(e);
      }
      outbox.push({ type: "reply", reply });
      handled++;
    }
    if (handled >= MAX_BATCH) break;
    const next = receiveMessageOnPort(port);
    if (next === undefined) break;
    queue = next.message as readonly WorkerRequest[];
  }
  counters.requests += handled;
  counters.busyMs += performance.now() - started;
  counters.batches++;
  const items = outbox;
  const buffers = transfers;
  outbox = [];
  transfers = [];
  post({ type: "batch", items }, buffers);
});

post({ type: "ready" });
