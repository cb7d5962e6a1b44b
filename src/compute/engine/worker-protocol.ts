/**
 * Messages between the engine's main thread and its SQL workers (postMessage; structured clone).
 *
 * Requests carry an id and are answered in order, one at a time (a worker runs SQLite
 * synchronously). The writer worker also sends `mtr` messages: each commit's mini-transaction, posted
 * before the reply of the request that committed it, so the main thread has submitted the MTR to the
 * volume by the time it sees the commit LSN in the reply.
 */
import type { LsnState, MiniTransaction } from "../volume-io.js";
import type { PoolStats } from "./buffer-pool.js";
import type { RawDescribe, RawResult, RawValue } from "./connection.js";
import type { CommitStats } from "./redo-writer.js";
import type { VfsRole, VfsStats } from "./vfs.js";

export interface WorkerInit {
  readonly role: VfsRole;
  readonly workerIndex: number;
  readonly controlSab: SharedArrayBuffer;
  readonly poolSab: SharedArrayBuffer;
  readonly bridgeSab: SharedArrayBuffer;
  readonly pageSize: number;
  readonly pgPages: number;
  /** First slot of this worker's connections in the shared read point table. */
  readonly readSlotBase: number;
  readonly maxConnections: number;
  /** SQLite page cache per connection, KiB (large on the writer so commits stay batch-atomic). */
  readonly cacheKib: number;
  readonly bridgeSpin: number;
  readonly bridgeTimeoutMs: number;
  readonly maxResultRows: number;
  readonly maxResultBytes: number;
  /** Writer only. */
  readonly lsnState: LsnState | null;
  readonly lal: number;
  readonly lalWaitMs: number;
  readonly directoryCapacity: number;
  readonly shipPageImages: boolean;
  /** Run autocommit writes that arrive together as one transaction (sql-worker.ts, group commit). */
  readonly groupCommit: boolean;
  /** SQL run on every new connection (e.g. "PRAGMA foreign_keys=ON"); connections are pooled. */
  readonly connectionSql: string;
}

export type WorkerRequest =
  | {
    readonly op: "exec";
    readonly id: number;
    readonly conn: number;
    readonly sql: string;
    readonly args: readonly RawValue[];
    readonly named: readonly (readonly [string, RawValue])[];
    readonly wantRows: boolean;
    /** The engine's write lock covers this statement (writer only). */
    readonly allowWrite: boolean;
    /** Reader: run only if the statement is read-only, else answer `notReadonly`. */
    readonly classify: boolean;
  }
  | { readonly op: "script"; readonly id: number; readonly conn: number; readonly sql: string; readonly allowWrite: boolean }
  | { readonly op: "describe"; readonly id: number; readonly conn: number; readonly sql: string }
  /** Ends any transaction left open on the connection (a session closed). */
  | { readonly op: "reset"; readonly id: number; readonly conn: number }
  | { readonly op: "stats"; readonly id: number };

export type WireError =
  | { readonly kind: "sqlite"; readonly message: string; readonly code: string; readonly extendedCode: string; readonly rawCode: number }
  /** A commit or lock refused by the VFS; `reason` says why (redo-writer.ts VetoReason or the VFS's). */
  | { readonly kind: "veto"; readonly reason: string; readonly message: string; readonly rawCode: number }
  | { readonly kind: "internal"; readonly message: string };

export interface ConnState {
  /** sqlite3_txn_state of main: 0 none, 1 read, 2 write. */
  readonly txn: number;
  readonly autocommit: boolean;
  /** Read point of the connection's current or last snapshot. */
  readonly readLsn: number;
  /** CPL of the last commit this request made, 0 if none. */
  readonly commitLsn: number;
}

export interface WorkerStats {
  readonly vfs: VfsStats;
  readonly pool: PoolStats;
  readonly commit: CommitStats | null;
  readonly bridgeHops: number;
  /** Requests handled and the time spent handling them (SQLite + VFS + redo), ms. */
  readonly requests: number;
  readonly busyMs: number;
  readonly batches: number;
  /** Group commit (writer): groups committed, statements in them, groups run again one by one. */
  readonly groups: number;
  readonly grouped: number;
  readonly fallbacks: number;
}

export type WorkerReply =
  | ({ readonly id: number; readonly ok: true; readonly result: RawResult | null; readonly describe?: RawDescribe;
    readonly notReadonly?: boolean; readonly needWriteLock?: boolean; readonly stats?: WorkerStats } & ConnState)
  | ({ readonly id: number; readonly ok: false; readonly error: WireError } & ConnState);

/** Replies and MTRs in the order they happened (an MTR before the reply of the request that made it). */
export type BatchItem =
  | { readonly type: "reply"; readonly reply: WorkerReply }
  | { readonly type: "mtr"; readonly mtr: MiniTransaction }
  /** A warning from the worker, for the engine's logger. */
  | { readonly type: "log"; readonly event: string; readonly fields: Record<string, unknown> };

/**
 * Worker → main. Replies and MTRs travel in batches: a worker drains every request already queued
 * (receiveMessageOnPort) before it answers, so one postMessage — one thread wake-up, the dominant cost
 * on small VMs — carries many. The main thread likewise sends the requests of one tick as one array.
 */
export type WorkerMessage =
  | { readonly type: "ready" }
  | { readonly type: "batch"; readonly items: readonly BatchItem[] }
  | { readonly type: "fatal"; readonly message: string; readonly stack?: string };
