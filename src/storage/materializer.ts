/**
 * The storage node's background work (Aurora's steps 3, 5 and 7; ARCHITECTURE D6), in small steps
 * the node runs in time-bounded slices so foreground requests are never starved:
 *
 * - sort: move chain records ≤ min(SCL, knownVdl) from memory into the page store in large batches,
 *   advance the segment's sorted point (`materializedLsn`, always a chain tip) durably in the same
 *   commit, then let go of the records, which releases hot-log files nothing needs any more;
 * - materialize: when a page's record chain since its last image grows past a threshold, store a new
 *   image at the chain's tip, so a read applies at most about `threshold` records;
 * - retention: the retention point trails knownVdl by `retainLsns` allocated LSNs (recoveries'
 *   truncation ranges do not count); a sweep over each segment's pages
 *   keeps, per page, the newest image ≤ the retention point and what follows it, and deletes the rest.
 *
 * Every step is at most one page-store commit, made under the node's store lock, so steps interleave
 * safely with setEpoch, annul and openSegment. The segment state machine decides what may be sorted;
 * this module only moves bytes.
 */
import { AssertionError, assert } from "../core/assert.js";
import { Lsn, NO_LSN, segmentKeyString, type PageNo } from "../core/types.js";
import type { Clock, Logger } from "../env/env.js";
import { RecordFlag } from "../wire/record.js";
import { applyRedo } from "../wire/redo-payload.js";
import type { PageStore, PageStoreOp } from "./page-store.js";
import type { HeldRecord, Segment } from "./segment.js";

export interface MaterializerOptions {
  /** Records in a page's chain since its last image before a new image is stored. Default 32. */
  readonly materializeThreshold?: number;
  /** The retention point trails knownVdl by this many LSNs. Default 1,000,000. */
  readonly retainLsns?: number;
  /** Bytes of records sorted per commit at most. Default 4 MiB. */
  readonly sortBatchBytes?: number;
  /**
   * Sorting waits until a segment has this many sortable bytes, or its oldest sortable record has
   * waited `sortMaxDelayMs`: each sort is a page-store commit with its own fsync, and small ones
   * compete with the hot log's fsyncs for the disk. Defaults 256 KiB and 200 ms.
   */
  readonly sortMinBytes?: number;
  readonly sortMaxDelayMs?: number;
  /** Pages materialized per commit at most. Default 64. */
  readonly materializePagesPerStep?: number;
  /** Pages examined per garbage-collection step, and deletions per commit. Defaults 64 and 4096. */
  readonly gcPagesPerStep?: number;
  readonly gcOpsPerStep?: number;
  /** Pages per segment whose chain length is tracked in memory; beyond it the counts are re-derived. */
  readonly maxTrackedPages?: number;
}

/** What the materializer needs from the node that drives it. */
export interface MaterializerHost {
  readonly store: PageStore;
  readonly clock: Clock;
  readonly log: Logger;
  segments(): Iterable<Segment>;
  /** Runs `fn` holding the node's store lock (one segment-state commit at a time). */
  withStoreLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Commits durably; a failure fences the node and is rethrown. */
  commit(ops: readonly PageStoreOp[]): Promise<void>;
  /** Runs a mutation of the segment's held records and settles the node's accounting for them. */
  mutate<T>(segment: Segment, fn: () => T): T;
  /** Drops the hot-log references of records the segment no longer holds. */
  release(records: readonly HeldRecord[]): void;
  /** False once the node is closing: stop between steps. */
  readonly running: boolean;
}

export interface MaterializerStats {
  readonly sortedRecords: number;
  readonly sortCommits: number;
  readonly imagesWritten: number;
  readonly gcRecordsDeleted: number;
  readonly gcImagesDeleted: number;
  readonly errors: number;
}

/** Per-segment background bookkeeping; all of it can be rebuilt, none of it is durable. */
interface SegmentWork {
  /** Records per page in the page store since the page's newest image (lazily counted). */
  readonly chainLength: Map<number, number>;
  /** Pages whose chain reached the threshold, waiting for an image. */
  readonly candidates: Set<number>;
  /** Garbage collection: the retention point the current sweep works at, and its page cursor. */
  sweepRetention: Lsn;
  sweptRetention: Lsn;
  cursor: number;
}

export class Materializer {
  private readonly threshold: number;
  private readonly retainLsns: number;
  private readonly sortBatchBytes: number;
  private readonly sortMinBytes: number;
  private readonly sortMaxDelayMs: number;
  /** Per segment: when it was first seen with sortable records that it has not sorted yet. */
  private readonly waitingSince = new Map<string, number>();
  /** Set while `runUntilIdle` drains everything regardless of batch sizes. */
  private forced = false;
  private readonly materializePagesPerStep: number;
  private readonly gcPagesPerStep: number;
  private readonly gcOpsPerStep: number;
  private readonly maxTrackedPages: number;
  private readonly gcMinAdvanceLsns: number;
  private readonly work = new Map<string, SegmentWork>();
  /** Round-robin position, so that one busy segment does not starve the others. */
  private turn = 0;
  private stats_ = { sortedRecords: 0, sortCommits: 0, imagesWritten: 0, gcRecordsDeleted: 0, gcImagesDeleted: 0, errors: 0 };

  constructor(private readonly host: MaterializerHost, options: MaterializerOptions = {}) {
    this.threshold = options.materializeThreshold ?? 32;
    this.retainLsns = options.retainLsns ?? 1_000_000;
    this.sortBatchBytes = options.sortBatchBytes ?? 4 * 1024 * 1024;
    this.sortMinBytes = Math.min(options.sortMinBytes ?? 256 * 1024, this.sortBatchBytes);
    this.sortMaxDelayMs = options.sortMaxDelayMs ?? 200;
    this.materializePagesPerStep = options.materializePagesPerStep ?? 64;
    this.gcPagesPerStep = options.gcPagesPerStep ?? 64;
    this.gcOpsPerStep = options.gcOpsPerStep ?? 4096;
    this.maxTrackedPages = options.maxTrackedPages ?? 100_000;
    this.gcMinAdvanceLsns = Math.max(1, Math.floor(this.retainLsns / 8));
    assert(this.threshold >= 1 && this.retainLsns >= 0 && this.sortBatchBytes > 0, "materializer options out of range");
  }

  stats(): MaterializerStats {
    return { ...this.stats_ };
  }

  /** Forgets what it counted for a segment (after an annulment moved its sorted point back). */
  forget(segment: Segment): void {
    this.work.delete(segmentKeyString(segment.key));
  }

  /**
   * Runs steps until there is nothing to do or `budgetMs` has passed. Returns true when work remains.
   * A failed step is logged and ends the slice (a store failure has fenced the node already).
   */
  /**
   * Milliseconds until a deferred sort becomes due (the node sets a timer for it), or undefined
   * when no segment is waiting.
   */
  nextDeferredMs(): number | undefined {
    if (this.waitingSince.size === 0) return undefined;
    const now = this.host.clock.nowMs();
    let due = Infinity;
    for (const since of this.waitingSince.values()) due = Math.min(due, since + this.sortMaxDelayMs - now);
    return Math.max(0, due);
  }

  /** Runs every step there is, small sorts included, until nothing is left (tests, benchmarks, shutdown). */
  async runUntilIdle(): Promise<void> {
    this.forced = true;
    try {
      while (this.host.running && (await this.runSlice(1_000))) { /* more */ }
    } finally {
      this.forced = false;
    }
  }

  async runSlice(budgetMs: number): Promise<boolean> {
    const deadline = this.host.clock.nowMs() + budgetMs;
    for (;;) {
      if (!this.host.running) return false;
      let progressed: boolean;
      try {
        progressed = await this.step();
      } catch (e) {
        // A broken invariant stops the process (assert.ts); anything else is logged and retried later.
        if (e instanceof AssertionError) throw e;
        this.stats_.errors++;
        this.host.log.error("background-step-failed", { error: e });
        return false;
      }
      if (!progressed) return false;
      if (this.host.clock.nowMs() >= deadline) return true;
    }
  }

  /** One unit of work (at most one commit): sorting first, then images, then garbage collection. */
  async step(): Promise<boolean> {
    const segments = [...this.host.segments()];
    if (segments.length === 0) return false;
    const n = segments.length;
    for (const kind of ["sort", "materialize", "gc"] as const) {
      for (let i = 0; i < n; i++) {
        const segment = segments[(this.turn + i) % n]!;
        const did = await this.host.withStoreLock(async () => {
          if (kind === "sort") return this.sort(segment);
          if (kind === "materialize") return this.materialize(segment);
          return this.collect(segment);
        });
        if (did) {
          this.turn = (this.turn + i + 1) % n;
          return true;
        }
      }
    }
    return false;
  }

  private workOf(segment: Segment): SegmentWork {
    const k = segmentKeyString(segment.key);
    let w = this.work.get(k);
    if (w === undefined) {
      w = { chainLength: new Map(), candidates: new Set(), sweepRetention: NO_LSN, sweptRetention: NO_LSN, cursor: 0 };
      this.work.set(k, w);
    }
    return w;
  }

  /**
   * The retention point: `retainLsns` LSNs that a writer allocated, counted back from knownVdl, never
   * above the sorted tip. A recovery's truncation range — from its VDL (the annulment's `aboveLsn`) to
   * the new writer's first record, LAL = 10,000,000 LSNs — holds no records and does not count.
   * Counting it (plain knownVdl − retainLsns) moved retention past all history at every recovery, so a
   * segment that missed one could never be caught up from its peers: `readRecords` refuses below
   * retention (found by `npm run faults`; regression: test/faults/scenarios.test.ts).
   */
  private retentionTarget(segment: Segment, sortedTip: Lsn): Lsn {
    let budget = this.retainLsns;
    let point: number = segment.knownVdl;
    const recoveries = [...segment.annulments].sort((a, b) => b.aboveLsn - a.aboveLsn);
    for (const a of recoveries) {
      if (a.aboveLsn >= point) continue;
      // LSNs in (a.aboveLsn, first record above it) were never allocated to this PG. Without a stored
      // record above it (not sorted yet, or unreadable), the whole range counts as a gap: that only
      // keeps more history.
      let first: Lsn | undefined;
      try {
        first = this.host.store.recordsByLsn(segment.key, a.aboveLsn, Lsn(point), 1).records[0]?.lsn;
      } catch {
        first = undefined;
      }
      const allocatedFrom = first === undefined ? point : first - 1;
      const span = point - allocatedFrom;
      if (span >= budget) break;
      budget -= span;
      point = a.aboveLsn;
    }
    const target = Math.min(Math.max(0, point - budget), sortedTip);
    return Lsn(Math.max(segment.retentionLsn, target));
  }

  // --------------------------------------------------------------------------------------------- sort

  private async sort(segment: Segment): Promise<boolean> {
    const batch = segment.takeSortable(this.sortBatchBytes);
    const k = segmentKeyString(segment.key);
    if (batch.length === 0) {
      this.waitingSince.delete(k);
      return false;
    }
    if (!this.forced) {
      let bytes = 0;
      for (const h of batch) bytes += h.record.bytes.byteLength;
      const now = this.host.clock.nowMs();
      const since = this.waitingSince.get(k);
      if (since === undefined) this.waitingSince.set(k, now);
      if (bytes < this.sortMinBytes && (since === undefined || now - since < this.sortMaxDelayMs)) return false;
    }
    this.waitingSince.delete(k);
    const key = segment.key;
    const tip = batch[batch.length - 1]!.record.lsn;
    const retentionLsn = this.retentionTarget(segment, tip);
    const ops: PageStoreOp[] = batch.map((h) => ({ op: "putRecord", key, record: h.record }));
    let highestPageNo = segment.sortedHighestPageNo;
    for (const h of batch) highestPageNo = Math.max(highestPageNo, h.record.pageNo);
    ops.push({ op: "putSegment", meta: segment.meta({ materializedLsn: tip, retentionLsn, highestPageNo }) });
    await this.host.commit(ops);
    // The store lock kept annulments out while the commit was in flight, so the chain still holds
    // exactly these records at its head.
    const removed = this.host.mutate(segment, () => segment.markSorted(tip));
    assert(removed.length === batch.length, "sorted exactly the records taken");
    this.host.release(removed);
    if (retentionLsn > segment.retentionLsn) segment.setRetention(retentionLsn);
    this.stats_.sortedRecords += batch.length;
    this.stats_.sortCommits++;

    const w = this.workOf(segment);
    const perPage = new Map<number, number>();
    for (const h of batch) perPage.set(h.record.pageNo, (perPage.get(h.record.pageNo) ?? 0) + 1);
    if (w.chainLength.size + perPage.size > this.maxTrackedPages) w.chainLength.clear();
    for (const [page, added] of perPage) {
      let length = w.chainLength.get(page);
      if (length === undefined) {
        // First time this page is seen since start: count what the store holds after its image
        // (which includes the records just committed).
        const since = this.host.store.newestImageLsn(key, page as PageNo, tip) ?? NO_LSN;
        length = this.host.store.countPageRecords(key, page as PageNo, since, tip);
      } else {
        length += added;
      }
      w.chainLength.set(page, length);
      if (length >= this.threshold && w.candidates.size < this.maxTrackedPages) w.candidates.add(page);
    }
    return true;
  }

  // -------------------------------------------------------------------------------------- materialize

  private async materialize(segment: Segment): Promise<boolean> {
    const w = this.work.get(segmentKeyString(segment.key));
    if (w === undefined || w.candidates.size === 0) return false;
    const key = segment.key;
    const upTo = segment.materializedLsn;
    const pages = [...w.candidates].slice(0, this.materializePagesPerStep);
    const ops: PageStoreOp[] = [];
    for (const page of pages) {
      w.candidates.delete(page);
      const image = this.buildImage(segment, page as PageNo, upTo);
      if (image !== undefined) ops.push({ op: "putImage", key, pageNo: page as PageNo, lsn: image.lsn, bytes: image.bytes });
    }
    if (ops.length > 0) await this.host.commit(ops);
    for (const page of pages) w.chainLength.set(page, 0);
    this.stats_.imagesWritten += ops.length;
    return true;
  }

  /** The page as of `upTo` from the store alone, unless it has no records since its newest image. */
  private buildImage(segment: Segment, pageNo: PageNo, upTo: Lsn): { lsn: Lsn; bytes: Uint8Array } | undefined {
    const key = segment.key;
    const base = this.host.store.newestImage(key, pageNo, upTo);
    const records = this.host.store.pageRecords(key, pageNo, base?.lsn ?? NO_LSN, upTo);
    if (records.length === 0) return undefined;
    const bytes = base?.bytes ?? new Uint8Array(segment.geometry.pageSize);
    try {
      let pageLsn: Lsn = base?.lsn ?? NO_LSN;
      for (const r of records) {
        // A diff applies only to the version it was made against (see StorageNode.readPage): a broken
        // chain means a lost or hidden record, and an image built over it would seal wrong bytes.
        if ((r.flags & RecordFlag.FULL_IMAGE) === 0 && r.prevLsnOfPage !== pageLsn) {
          throw new Error(`record ${r.lsn} is a diff against version ${r.prevLsnOfPage}, the stored chain gives ${pageLsn}`);
        }
        applyRedo(bytes, r);
        pageLsn = r.lsn;
      }
    } catch (e) {
      // Payloads are checked before they are accepted; a failure here is damage, and the records
      // stay the page's truth.
      this.stats_.errors++;
      this.host.log.error("materialize-failed", { segment: segmentKeyString(key), page: pageNo, error: e });
      return undefined;
    }
    return { lsn: records[records.length - 1]!.lsn, bytes };
  }

  // ------------------------------------------------------------------------------------------- retain

  private async collect(segment: Segment): Promise<boolean> {
    const key = segment.key;
    const w = this.workOf(segment);
    // Retention may have room to move even when nothing was sorted (knownVdl grew).
    const target = this.retentionTarget(segment, segment.materializedLsn);
    if (target > segment.retentionLsn) {
      await this.host.commit([{ op: "putSegment", meta: segment.meta({ retentionLsn: target }) }]);
      segment.setRetention(target);
      return true;
    }
    if (w.sweepRetention === NO_LSN) {
      // A sweep visits every page of the segment: start one only when retention moved far enough.
      if (segment.retentionLsn < w.sweptRetention + this.gcMinAdvanceLsns || segment.retentionLsn === NO_LSN) return false;
      w.sweepRetention = segment.retentionLsn;
      w.cursor = 0;
    }
    const retention = w.sweepRetention;
    const ops: PageStoreOp[] = [];
    let pages = 0;
    while (pages < this.gcPagesPerStep && ops.length < this.gcOpsPerStep) {
      const page = this.host.store.nextPage(key, w.cursor);
      if (page === undefined) {
        w.sweptRetention = retention;
        w.sweepRetention = NO_LSN;
        break;
      }
      pages++;
      const budget = this.gcOpsPerStep - ops.length;
      const finished = this.collectPage(segment, page, retention, budget, ops);
      // A page with more history than one commit's budget is revisited by the next step.
      if (finished) w.cursor = page;
      else break;
    }
    if (ops.length > 0) await this.host.commit(ops);
    return pages > 0 || ops.length > 0;
  }

  /**
   * Adds the deletions for one page to `ops`: everything older than the newest image ≤ retention.
   * A page with a long record history but no such image first gets one. Returns false when the
   * budget ran out before the page was done.
   */
  private collectPage(segment: Segment, pageNo: PageNo, retention: Lsn, budget: number, ops: PageStoreOp[]): boolean {
    const key = segment.key;
    let imageLsn = this.host.store.newestImageLsn(key, pageNo, retention);
    if (imageLsn === undefined) {
      const count = this.host.store.countPageRecords(key, pageNo, NO_LSN, retention);
      if (count < this.threshold) return true;
      const image = this.buildImage(segment, pageNo, retention);
      if (image === undefined) return true;
      ops.push({ op: "putImage", key, pageNo, lsn: image.lsn, bytes: image.bytes });
      this.stats_.imagesWritten++;
      imageLsn = image.lsn;
    }
    const oldImages = this.host.store.imageLsns(key, pageNo, NO_LSN, Lsn(imageLsn - 1), budget);
    for (const lsn of oldImages) ops.push({ op: "deleteImage", key, pageNo, lsn });
    const oldRecords = this.host.store.pageRecordLsns(key, pageNo, NO_LSN, imageLsn, Math.max(0, budget - oldImages.length));
    for (const lsn of oldRecords) ops.push({ op: "deleteRecord", key, pageNo, lsn });
    this.stats_.gcImagesDeleted += oldImages.length;
    this.stats_.gcRecordsDeleted += oldRecords.length;
    return oldImages.length + oldRecords.length < budget;
  }
}
