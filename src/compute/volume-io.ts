/**
 * The seam between the SQL engine (compute) and the volume (storage): what the engine's main thread
 * asks of the replicated log, and what it hands to it.
 *
 * The engine speaks only `VolumeIO`. Two implementations: `MemoryVolume` (tests, benchmarks; it
 * materializes pages from the shipped records only, so every engine test is also a redo test) and,
 * later, the real one over the storage cluster (shipper + quorum tracker + GetPage client).
 *
 * A commit of SQLite becomes one `MiniTransaction`: its records carry consecutive LSNs allocated by
 * the writer (invariant 1), are sorted per protection group, and the last one is the CPL (invariant 4
 * lets VDL land only there). `submit` must not block: the writer's commit path has no blocking hop;
 * the client's acknowledgement waits on `whenDurable(commitLsn)` instead (invariant 5).
 */
import { BorealisError } from "../core/errors.js";
import type { Epoch, Lsn, PageNo, PgId } from "../core/types.js";
import type { RedoRecord } from "../wire/record.js";

/** One record of a mini-transaction, filed under its protection group, ready for the shipper. */
export interface MtrRecord {
  readonly pgId: PgId;
  readonly record: RedoRecord;
}

/**
 * The records of one SQLite commit.
 *
 * - `records` are in LSN order and their LSNs are consecutive (`firstLsn` … `commitLsn`);
 * - they are sorted by (pgId, pageNo), one record per page changed by the commit;
 * - only the last one carries `RecordFlag.CPL`, and its LSN is `commitLsn`;
 * - backlinks: `prevLsnInSegment` is the previous record of the same PG (0 for a PG's first record),
 *   `prevLsnOfPage` the previous record of the same page (0 for a page never written), and
 *   `prevLsnInVolume` the previous record of the volume (the previous commit's CPL, or the recovered
 *   VDL for the first record after recovery).
 */
export interface MiniTransaction {
  readonly epoch: Epoch;
  readonly firstLsn: Lsn;
  readonly commitLsn: Lsn;
  readonly records: readonly MtrRecord[];
  /**
   * TEST ONLY (engine option `shipPageImages`): the page images the records must materialize to,
   * parallel to `records`; `MemoryVolume` checks them. Never set in production.
   */
  readonly images?: readonly Uint8Array[];
}

/**
 * Where LSN allocation resumes when an engine starts on a volume: for a fresh volume the zero state,
 * after recovery the result of invariant 8's procedure (everything above `vdl` annulled).
 */
export interface LsnState {
  /** The volume epoch of this writer (bumped by recovery); every record carries it. */
  readonly epoch: Epoch;
  /** The recovered VDL: the writer's first snapshot and every reader's first read point. */
  readonly vdl: Lsn;
  /** The first LSN to allocate, > vdl (recovery may skip a range). */
  readonly nextLsn: Lsn;
  /** Last record at or below `vdl` per protection group: the segment backlinks resume from here. */
  readonly lastLsnByPg: ReadonlyMap<PgId, Lsn>;
  /**
   * Highest page number that has any record at or below `vdl` (0 for an empty volume). Pages above it
   * were never written: their previous version is zeros and their page backlink is 0, so the writer
   * needs no storage lookup for them.
   */
  readonly maxPageNo: PageNo;
}

export interface VolumeIO {
  readonly pageSize: number;
  /** Page bytes as of readPoint (zeros + pageLsn 0 if never written). Async: the real one goes over the network. */
  readPage(pageNo: PageNo, readPoint: Lsn): Promise<{ bytes: Uint8Array; pageLsn: Lsn }>;
  /** Takes one committed mini-transaction (records with LSNs already assigned, CPL last). Must not block. */
  submit(mtr: MiniTransaction): void;
  /**
   * Resolves when VDL ≥ lsn (the client's acknowledgement waits on this, invariant 5). Rejects with a
   * BorealisError if durability can't be established — or, made by `durabilityWaitTimedOut`, when only
   * the wait gave up while the records are still on their way (no write quorum for now): then the
   * commit's outcome is unknown but later commits may go on, since VDL passes LSNs in order.
   */
  whenDurable(lsn: Lsn): Promise<void>;
  /** Current VDL; readers start their snapshots here (invariant 7). */
  vdl(): Lsn;
  onVdl(listener: (vdl: Lsn) => void): void;
}

/**
 * `whenDurable`'s rejection when the wait timed out but the volume still holds the records and keeps
 * shipping them: COMMIT_OUTCOME_UNKNOWN for this commit, not a reason to stop committing.
 */
export function durabilityWaitTimedOut(lsn: Lsn, why: string): BorealisError {
  return new BorealisError("COMMIT_OUTCOME_UNKNOWN", `commit at LSN ${lsn} may or may not be durable: ${why}`, { lsn, stillShipping: true });
}

export function isDurabilityWaitTimeout(e: unknown): boolean {
  return e instanceof BorealisError && e.code === "COMMIT_OUTCOME_UNKNOWN" && e.details["stillShipping"] === true;
}

/** The protection group holding a page: PGs are contiguous ranges of `pgPages` pages, from page 1. */
export function pgOfPage(pageNo: number, pgPages: number): PgId {
  return Math.floor((pageNo - 1) / pgPages) as PgId;
}

/** The state of a volume nobody has written yet. */
export function freshLsnState(epoch: Epoch = 1 as Epoch): LsnState {
  return { epoch, vdl: 0 as Lsn, nextLsn: 1 as Lsn, lastLsnByPg: new Map(), maxPageNo: 0 as PageNo };
}
