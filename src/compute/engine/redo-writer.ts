/**
 * The commit pipeline of the writer worker: turns one SQLite commit's dirty pages into one
 * mini-transaction of redo records with LSNs, publishes the new page versions to the buffer pool,
 * and hands the MTR to the main thread — without a blocking hop.
 *
 * It owns LSN allocation (invariant 1: only this object, in the one writer worker of the current
 * epoch, allocates; consecutively, strictly increasing) and the writer's backlink state:
 * - per PG, the last record (segment backlink, from `LsnState.lastLsnByPg` after recovery);
 * - per page, the last record (page backlink): the buffer pool's newest version carries it; when the
 *   pool has evicted the page, a bounded directory remembers it; pages above `maxPageNo` were
 *   never written (backlink 0, previous version zeros); anything else is looked up through the page
 *   bridge (one hop, batched; rare: a page neither cached nor seen since this writer started, e.g. a
 *   freelist page SQLite reuses without reading it);
 * - the volume backlink: the previous commit's CPL.
 *
 * Payloads are byte-range diffs against the previous version when the writer holds it, the full
 * image otherwise (`diffOrImage`, computed by page-diff.ts); unchanged pages produce no record. Records are sorted by page
 * number, which sorts them per PG too (PGs are contiguous page ranges); the last is the CPL.
 *
 * Back-pressure (invariant 6): before allocating, the writer waits (bounded) until the MTR's last LSN
 * is ≤ VDL + LAL; a commit that cannot wait out is vetoed with SQLITE_BUSY and reason BACKPRESSURE.
 * A commit larger than LAL can never fit and is refused with SQLITE_FULL.
 */
import { assert } from "../../core/assert.js";
import { Epoch, Lsn, PageNo, PgId } from "../../core/types.js";
import { RecordFlag, type RedoRecord } from "../../wire/record.js";
import { pgOfPage, type LsnState, type MiniTransaction, type MtrRecord } from "../volume-io.js";
import type { BufferPool, PageVersionIn } from "./buffer-pool.js";
import { pageDiffOrImage } from "./page-diff.js";
import type { PageBridgeClient } from "./page-bridge.js";
import type { SharedControl } from "./shared-control.js";
import { SQLITE_BUSY, SQLITE_FULL, SQLITE_OK } from "./sqlite-abi.js";

/** Why a commit was refused; the worker turns it into the statement's error. */
export type VetoReason = "BACKPRESSURE" | "COMMITS_STOPPED" | "TOO_LARGE" | "PAGE_LOOKUP_FAILED";

export interface Veto {
  readonly rc: number;
  readonly reason: VetoReason;
  readonly message: string;
}

export interface RedoWriterOptions {
  readonly state: LsnState;
  readonly pgPages: number;
  readonly pageSize: number;
  readonly lal: number;
  readonly lalWaitMs: number;
  readonly directoryCapacity: number;
  readonly pool: BufferPool;
  readonly control: SharedControl;
  readonly bridge: PageBridgeClient;
  /** Hands a finished MTR to the main thread (postMessage), with the buffers to transfer. */
  readonly ship: (mtr: MiniTransaction, transfer: ArrayBuffer[]) => void;
  /** TEST ONLY: attach the page images to each MTR so the volume can check its materialization. */
  readonly shipPageImages: boolean;
  readonly nowMs: () => number;
}

export interface CommitStats {
  commits: number;
  records: number;
  fullImages: number;
  payloadBytes: number;
  pageLookups: number;
  lalWaits: number;
}

interface Pending {
  readonly pageNo: number;
  readonly after: Uint8Array;
  flags: number;
  payload: Uint8Array | null;
  prevLsnOfPage: number;
}

export class RedoWriter {
  private readonly epoch: Epoch;
  private nextLsn: number;
  private lastLsnInVolume: number;
  /** The LSN before the first this writer allocates (invariant 6 counts from it until VDL passes it). */
  private readonly lalBase: number;
  private readonly lastLsnByPg: Map<number, number>;
  private maxPageNo: number;
  /** The writer's newest snapshot: the CPL of its last commit (or the recovered VDL). */
  latestLsn: number;
  /** page → LSN of its last record (bounded; oldest entries dropped first). */
  private readonly directory = new Map<number, number>();
  private readonly zeros: Uint8Array;
  private readonly scratch: Uint8Array;
  lastVeto: Veto | null = null;
  readonly stats: CommitStats = { commits: 0, records: 0, fullImages: 0, payloadBytes: 0, pageLookups: 0, lalWaits: 0 };

  constructor(private readonly o: RedoWriterOptions) {
    const s = o.state;
    assert(s.nextLsn > s.vdl, 1, `allocation resumes above VDL (next ${s.nextLsn}, VDL ${s.vdl})`);
    assert(o.lal >= 1 && o.pgPages >= 1 && o.directoryCapacity >= 1, "writer limits are positive");
    this.epoch = s.epoch;
    this.nextLsn = s.nextLsn;
    this.lalBase = s.nextLsn - 1;
    this.lastLsnInVolume = s.vdl;
    this.latestLsn = s.vdl;
    this.lastLsnByPg = new Map([...s.lastLsnByPg].map(([pg, lsn]) => [pg as number, lsn as number]));
    this.maxPageNo = s.maxPageNo;
    this.zeros = new Uint8Array(o.pageSize);
    this.scratch = new Uint8Array(o.pageSize);
  }

  /** The VFS saw the newest version of `pageNo` (read at the writer's latest snapshot). */
  noteNewest(pageNo: number, pageLsn: number): void {
    this.remember(pageNo, pageLsn);
  }

  /**
   * Commits the dirty pages of a write transaction whose snapshot is `baseLsn` (must be the writer's
   * latest). Returns SQLITE_OK, or a veto rc with `lastVeto` set. `pages` holds full page images.
   */
  commit(baseLsn: number, pages: ReadonlyMap<number, Uint8Array>, nPages: number): number {
    assert(baseLsn === this.latestLsn, `a write transaction commits on the latest snapshot (${baseLsn} vs ${this.latestLsn})`);
    this.lastVeto = null;
    const { pool, pageSize } = this.o;

    // 1. Previous versions and page backlinks.
    const pending: Pending[] = [];
    const unknown: Pending[] = [];
    const sorted = [...pages.keys()].filter((p) => p <= nPages).sort((a, b) => a - b);
    for (const pageNo of sorted) {
      const after = pages.get(pageNo)!;
      assert(after.byteLength === pageSize, "dirty pages are whole pages");
      const p: Pending = { pageNo, after, flags: 0, payload: null, prevLsnOfPage: 0 };
      const cached = pool.read(pageNo, baseLsn, this.scratch, 0);
      if (cached >= 0) {
        p.prevLsnOfPage = cached;
        this.setPayload(p, this.scratch);
      } else if (this.directory.has(pageNo)) {
        p.prevLsnOfPage = this.directory.get(pageNo)!;
        this.setPayload(p, null);
      } else if (pageNo > this.maxPageNo) {
        this.setPayload(p, this.zeros);
      } else {
        unknown.push(p);
      }
      pending.push(p);
    }
    if (unknown.length > 0) {
      const rc = this.lookUp(unknown, baseLsn);
      if (rc !== SQLITE_OK) return rc;
    }
    const changed = pending.filter((p) => p.payload !== null);
    const n = changed.length;
    if (n === 0) return SQLITE_OK; // e.g. a journal rollback rewrote the originals: nothing to ship
    if (this.o.control.commitsStopped()) {
      return this.veto(SQLITE_BUSY, "COMMITS_STOPPED", "commits are stopped: the volume fenced this writer or durability failed");
    }

    // 2. Back-pressure (invariant 6).
    if (n > this.o.lal) {
      return this.veto(SQLITE_FULL, "TOO_LARGE", `a commit of ${n} pages exceeds the LSN allocation limit (${this.o.lal}); raise LAL and the buffer pool`);
    }
    const lastLsn = this.nextLsn + n - 1;
    // After recovery, allocation resumes above the truncation range, far above VDL: what LAL bounds is
    // the LSNs allocated and not yet durable, counted from max(VDL, where allocation resumed).
    const durableBase = (): number => Math.max(this.o.control.vdl(), this.lalBase);
    if (lastLsn > durableBase() + this.o.lal) {
      this.stats.lalWaits++;
      if (!this.o.control.waitForVdl(lastLsn - this.o.lal, this.o.lalWaitMs, this.o.nowMs)) {
        return this.veto(SQLITE_BUSY, "BACKPRESSURE", `storage is behind: LSN ${lastLsn} would exceed VDL ${this.o.control.vdl()} + LAL ${this.o.lal} after ${this.o.lalWaitMs} ms`);
      }
    }
    assert(lastLsn <= durableBase() + this.o.lal, 6, `LSN ${lastLsn} within max(VDL, ${this.lalBase}) + LAL`);

    // 3. Allocate LSNs and build the records, payloads packed into one transferable buffer.
    let total = 0;
    for (const p of changed) total += p.payload!.byteLength;
    const pack = new Uint8Array(total);
    const records: MtrRecord[] = [];
    const versions: PageVersionIn[] = [];
    const images: Uint8Array[] | undefined = this.o.shipPageImages ? [] : undefined;
    const firstLsn = this.nextLsn;
    let off = 0;
    for (let i = 0; i < n; i++) {
      const p = changed[i]!;
      const lsn = firstLsn + i;
      const pg = pgOfPage(p.pageNo, this.o.pgPages);
      const payload = pack.subarray(off, off + p.payload!.byteLength);
      payload.set(p.payload!);
      off += payload.byteLength;
      const record: RedoRecord = {
        lsn: Lsn(lsn),
        epoch: this.epoch,
        pageNo: PageNo(p.pageNo),
        prevLsnInSegment: Lsn(this.lastLsnByPg.get(pg) ?? 0),
        prevLsnOfPage: Lsn(p.prevLsnOfPage),
        prevLsnInVolume: Lsn(i === 0 ? this.lastLsnInVolume : lsn - 1),
        flags: p.flags | (i === n - 1 ? RecordFlag.CPL : 0),
        payload,
      };
      assert(record.prevLsnOfPage < lsn && record.prevLsnInSegment < lsn, 1, "backlinks point backwards");
      records.push({ pgId: PgId(pg), record });
      versions.push({ pageNo: p.pageNo, lsn, bytes: p.after });
      images?.push(p.after.slice());
      this.lastLsnByPg.set(pg, lsn);
      this.stats.payloadBytes += payload.byteLength;
      if ((p.flags & RecordFlag.FULL_IMAGE) !== 0) this.stats.fullImages++;
    }
    const commitLsn = firstLsn + n - 1;
    assert(commitLsn > this.latestLsn, 1, `LSNs strictly increase (${commitLsn} after ${this.latestLsn})`);

    // 4. Publish the versions before the records leave: no read point can see the MTR half-applied.
    pool.publish(versions);
    for (let i = 0; i < n; i++) {
      const pageNo = changed[i]!.pageNo;
      this.remember(pageNo, firstLsn + i);
      if (pageNo > this.maxPageNo) this.maxPageNo = pageNo;
    }
    this.nextLsn = commitLsn + 1;
    this.lastLsnInVolume = commitLsn;
    this.latestLsn = commitLsn;
    this.stats.commits++;
    this.stats.records += n;

    const mtr: MiniTransaction = images === undefined
      ? { epoch: this.epoch, firstLsn: Lsn(firstLsn), commitLsn: Lsn(commitLsn), records }
      : { epoch: this.epoch, firstLsn: Lsn(firstLsn), commitLsn: Lsn(commitLsn), records, images };
    // Not transferred: for buffers this small, detaching costs more than the copy (measured ~2x).
    this.o.ship(mtr, []);
    return SQLITE_OK;
  }

  private setPayload(p: Pending, before: Uint8Array | null): void {
    const r = pageDiffOrImage(before, p.after, RecordFlag.FULL_IMAGE);
    if (r === null) return;
    p.flags = r.flags;
    p.payload = r.payload;
  }

  /** Previous versions of pages neither cached nor known: one bridge hop per batch. */
  private lookUp(unknown: Pending[], baseLsn: number): number {
    const bridge = this.o.bridge;
    for (let start = 0; start < unknown.length; start += bridge.maxBatch) {
      const batch = unknown.slice(start, start + bridge.maxBatch);
      try {
        bridge.readPages(batch.map((p) => p.pageNo), batch.map(() => baseLsn));
      } catch (e) {
        return this.veto(SQLITE_BUSY, "PAGE_LOOKUP_FAILED", `reading the previous version of a page failed: ${(e as Error).message}`);
      }
      this.stats.pageLookups += batch.length;
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i]!;
        p.prevLsnOfPage = bridge.lsnAt(i);
        assert(p.prevLsnOfPage <= baseLsn, 7, `page ${p.pageNo} read at ${baseLsn} has LSN ${p.prevLsnOfPage}`);
        this.setPayload(p, p.prevLsnOfPage === 0 ? this.zeros : bridge.bytesAt(i));
      }
    }
    return SQLITE_OK;
  }

  /** Bounded in first-seen order (an update keeps the entry's place: cheaper than LRU on every commit). */
  private remember(pageNo: number, lsn: number): void {
    const d = this.directory;
    d.set(pageNo, lsn);
    if (d.size > this.o.directoryCapacity) d.delete(d.keys().next().value!);
  }

  private veto(rc: number, reason: VetoReason, message: string): number {
    this.lastVeto = { rc, reason, message };
    return rc;
  }
}
