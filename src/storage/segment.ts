/**
 * One segment's state: a pure state machine, no I/O (STYLE.md, rule 1). The storage node feeds it
 * durable records, epochs and annulments and asks it what to sort; it answers with data.
 *
 * What it owns:
 * - the SCL chain (invariant 3): SCL advances while the next record's segment backlink equals the
 *   current SCL; records past a gap are held, keyed by their backlink, until the gap fills;
 * - which records are held in memory (every durable record above the sorted point, `materializedLsn`)
 *   and, per page, the chain records a read needs;
 * - epochs and annulments (invariant 8, 11; ARCHITECTURE D7): stale requests are refused; a request
 *   carrying an epoch the segment has not adopted is refused too (EPOCH_NOT_ADOPTED), because only
 *   `setEpoch` and `annul` raise epochs, durably; an annulment {epoch, aboveLsn} drops every record
 *   with lsn > aboveLsn written under an older epoch, whenever it arrives;
 * - validation of incoming records: page inside the PG, epoch not above the batch's, payload shape.
 *
 * Memory layout, all bounded by what the node lets in (its unsorted-bytes limit):
 *
 *     store (page store) ≤ materializedLsn < chain (in LSN order, ≤ SCL) < pending (past a gap)
 *
 * `materializedLsn` is always a chain tip, so a restart resumes the chain from it.
 */
import { assert } from "../core/assert.js";
import { BorealisError } from "../core/errors.js";
import { Epoch, Lsn, NO_LSN, PageNo, type Epochs, type SegmentKey } from "../core/types.js";
import { ByteReader } from "../wire/bytes.js";
import type { SegmentGeometry, SegmentState, Annulment } from "../wire/messages.js";
import { isFullImage, type EncodedRecord } from "../wire/record.js";

/** Drop every record with lsn > aboveLsn and epoch < epoch (recovery's truncation, invariant 8). */
/** One recovery's annulment; the wire's type (messages.ts), kept durably in segment metadata. */
export type { Annulment };

/** What a segment keeps durably in the page store; everything else is rebuilt from the hot log. */
export interface SegmentMeta {
  readonly geometry: SegmentGeometry;
  readonly epochs: Epochs;
  readonly knownVdl: Lsn;
  /** The sorted point: every chain record ≤ it is in the page store. Always a chain tip. */
  readonly materializedLsn: Lsn;
  readonly retentionLsn: Lsn;
  readonly annulments: readonly Annulment[];
  /** Highest page number among the records sorted into the page store (0: none). */
  readonly highestPageNo: number;
  /**
   * The volume epoch at which the segment takes writes and serves pages: the epoch it was created at
   * (it can hold nothing older), or the epoch of the last annulment it applied. `setEpoch` raises the
   * fence without raising this, so a segment that learned of a recovery but missed its annulment
   * cannot accept the new writer's records beside the old writer's (invariant 8).
   */
  readonly writableEpoch: Epoch;
}

/** A durable record held in memory, with the hot-log file it was read from (its reference). */
export interface HeldRecord {
  readonly record: EncodedRecord;
  readonly fileSeq: number;
}

/** What joining durable records did. */
export interface JoinResult {
  /** Records now held (each is a reference on the batch's hot-log file). */
  readonly kept: number;
  /**
   * Records that collided with a record of an older epoch at the same place in the chain: the
   * segment missed an annulment. The batch must not be acknowledged (EPOCH_NOT_ADOPTED).
   */
  readonly conflicts: number;
  /** Held records displaced from the pending set (their references must be dropped). */
  readonly evicted: readonly HeldRecord[];
}

/** Annulments are few (one per recovery); more than this is a runaway caller, not a volume. */
export const MAX_ANNULMENTS = 10_000;

export class Segment {
  readonly geometry: SegmentGeometry;
  readonly key: SegmentKey;
  private epochsNow: Epochs;
  private sclNow: Lsn;
  /** Epoch of the record at SCL, when it is in memory (undefined after a restart until one joins). */
  private sclEpoch: Epoch | undefined;
  private highest: Lsn;
  private vdl: Lsn;
  private sorted: Lsn;
  private retention: Lsn;
  private annuls: Annulment[];
  /** Highest page among sorted records (durable in the meta), and among all records held or sorted. */
  private sortedMaxPage: number;
  private maxPage: number;
  private writable: Epoch;

  /** Chain records in (sorted, SCL], in LSN order; `chainHead` skips the ones already sorted. */
  private chain: HeldRecord[] = [];
  private chainHead = 0;
  /** Every record held in memory (chain and pending), by LSN: duplicate and collision checks. */
  private readonly held = new Map<number, HeldRecord>();
  /** Records past a gap, by their segment backlink: the chain's next link is `succ.get(scl)`. */
  private readonly succ = new Map<number, HeldRecord>();
  /** Chain records per page, in LSN order: what a read applies on top of the page store. */
  private readonly byPage = new Map<number, HeldRecord[]>();
  private bytesHeld = 0;

  private constructor(meta: SegmentMeta) {
    this.geometry = meta.geometry;
    this.key = { volumeId: meta.geometry.volumeId, pgId: meta.geometry.pgId };
    this.epochsNow = meta.epochs;
    this.sorted = meta.materializedLsn;
    this.sclNow = meta.materializedLsn;
    this.highest = meta.materializedLsn;
    this.vdl = meta.knownVdl;
    this.retention = meta.retentionLsn;
    this.annuls = [...meta.annulments];
    this.sortedMaxPage = meta.highestPageNo;
    this.maxPage = meta.highestPageNo;
    this.writable = meta.writableEpoch;
    assert(this.writable <= this.epochsNow.volumeEpoch, 8, `writable epoch ${this.writable} above the fence ${this.epochsNow.volumeEpoch}`);
    assert(this.retention <= this.sorted, `retention ${this.retention} above the sorted point ${this.sorted}`);
  }

  static create(geometry: SegmentGeometry, epochs: Epochs): Segment {
    checkGeometry(geometry);
    return new Segment({ geometry, epochs, knownVdl: NO_LSN, materializedLsn: NO_LSN, retentionLsn: NO_LSN, annulments: [], highestPageNo: 0, writableEpoch: epochs.volumeEpoch });
  }

  static fromMeta(meta: SegmentMeta): Segment {
    checkGeometry(meta.geometry);
    return new Segment(meta);
  }

  get epochs(): Epochs { return this.epochsNow; }
  get scl(): Lsn { return this.sclNow; }
  get highestLsn(): Lsn { return this.highest; }
  get knownVdl(): Lsn { return this.vdl; }
  get materializedLsn(): Lsn { return this.sorted; }
  get retentionLsn(): Lsn { return this.retention; }
  get annulments(): readonly Annulment[] { return this.annuls; }
  get writableEpoch(): Epoch { return this.writable; }
  /**
   * Highest page any record held or sorted here writes (0: none): recovery takes the maximum over
   * segments as the end of the database file (pages above it were never written).
   */
  get highestPageNo(): number { return this.maxPage; }
  get sortedHighestPageNo(): number { return this.sortedMaxPage; }
  /** Bytes of records held in memory (the node bounds the sum over its segments). */
  get heldBytes(): number { return this.bytesHeld; }
  get heldCount(): number { return this.held.size; }
  /** Records joined to the chain but not yet sorted into the page store. */
  get unsortedChainCount(): number { return this.chain.length - this.chainHead; }

  /** The wire state, plus `highestPageNo` (which the wire encodes once messages.ts carries it). */
  get state(): SegmentState & { readonly highestPageNo: PageNo } {
    return {
      geometry: this.geometry, epochs: this.epochsNow, scl: this.sclNow, highestLsn: this.highest,
      knownVdl: this.vdl, materializedLsn: this.sorted, retentionLsn: this.retention, highestPageNo: PageNo(this.maxPage),
    };
  }

  /** The durable metadata, with the fields a pending store commit is about to change. */
  meta(overrides: Partial<SegmentMeta> = {}): SegmentMeta {
    return {
      geometry: this.geometry, epochs: this.epochsNow, knownVdl: this.vdl, materializedLsn: this.sorted,
      retentionLsn: this.retention, annulments: this.annuls, highestPageNo: this.sortedMaxPage, writableEpoch: this.writable, ...overrides,
    };
  }

  containsPage(pageNo: PageNo): boolean {
    return pageNo >= this.geometry.firstPage && pageNo < this.geometry.firstPage + this.geometry.pageCount;
  }

  // ------------------------------------------------------------------------------------------ epochs

  /**
   * Refuses a request from an older epoch (STALE_*); with `allowNewer` false, also one carrying an
   * epoch this segment has not adopted (EPOCH_NOT_ADOPTED): writes and reads of a segment that may
   * have missed a recovery's annulment must wait until it is told.
   */
  checkEpochs(e: Epochs, allowNewer: boolean): void {
    const cur = this.epochsNow;
    if (e.volumeEpoch < cur.volumeEpoch) {
      throw new BorealisError("STALE_VOLUME_EPOCH", `request volume epoch ${e.volumeEpoch} < segment's ${cur.volumeEpoch}`, { epoch: cur.volumeEpoch });
    }
    if (e.membershipEpoch < cur.membershipEpoch) {
      throw new BorealisError("STALE_MEMBERSHIP_EPOCH", `request membership epoch ${e.membershipEpoch} < segment's ${cur.membershipEpoch}`, { epoch: cur.membershipEpoch });
    }
    if (!allowNewer && (e.volumeEpoch > cur.volumeEpoch || e.membershipEpoch > cur.membershipEpoch)) {
      throw new BorealisError("EPOCH_NOT_ADOPTED",
        `request epochs ${e.volumeEpoch}/${e.membershipEpoch} are newer than the segment's ${cur.volumeEpoch}/${cur.membershipEpoch}; setEpoch or annul first`,
        { epoch: cur.volumeEpoch, membershipEpoch: cur.membershipEpoch });
    }
  }

  /**
   * For writes and page reads: the request's epochs are the segment's own (checkEpochs) and the
   * segment has applied the annulment of that volume epoch (or was created at it).
   */
  checkWritable(e: Epochs): void {
    this.checkEpochs(e, false);
    if (e.volumeEpoch !== this.writable) {
      throw new BorealisError("EPOCH_NOT_ADOPTED",
        `segment knows volume epoch ${e.volumeEpoch} but has not applied its annulment; annul first`,
        { epoch: this.epochsNow.volumeEpoch, writableEpoch: this.writable });
    }
  }

  /** The annulment of the segment's current volume epoch is applied (durably, by the caller). */
  markWritable(epoch: Epoch): void {
    assert(epoch === this.epochsNow.volumeEpoch && this.annuls.some((a) => a.epoch === epoch), 8, `writable at epoch ${epoch} only with its annulment`);
    this.writable = epoch;
  }

  /** Raises the epochs (never lowers them); the caller has made the new value durable first. */
  adoptEpochs(e: Epochs): void {
    this.checkEpochs(e, true);
    this.epochsNow = { volumeEpoch: e.volumeEpoch, membershipEpoch: e.membershipEpoch };
  }

  isAnnulled(record: { readonly lsn: Lsn; readonly epoch: Epoch }): boolean {
    for (const a of this.annuls) if (record.lsn > a.aboveLsn && record.epoch < a.epoch) return true;
    return false;
  }

  // -------------------------------------------------------------------------------------- write path

  /**
   * Validates a write batch against this segment (before anything is made durable) and returns the
   * records worth appending: not duplicates, not annulled. Throws for a record the segment must refuse.
   */
  planWrite(records: readonly EncodedRecord[], batchEpochs: Epochs): EncodedRecord[] {
    this.checkWritable(batchEpochs);
    const fresh: EncodedRecord[] = [];
    const seen = new Set<number>();
    for (const r of records) {
      if (!this.containsPage(r.pageNo)) {
        throw new BorealisError("PAGE_OUT_OF_RANGE",
          `record at LSN ${r.lsn} is for page ${r.pageNo}, outside pages ${this.geometry.firstPage}..${this.geometry.firstPage + this.geometry.pageCount - 1}`,
          { lsn: r.lsn, pageNo: r.pageNo });
      }
      if (r.epoch > batchEpochs.volumeEpoch) {
        throw new BorealisError("INVALID_ARGUMENT", `record at LSN ${r.lsn} has epoch ${r.epoch}, above its batch's volume epoch ${batchEpochs.volumeEpoch}`, { lsn: r.lsn });
      }
      checkPayload(r, this.geometry.pageSize);
      if (seen.has(r.lsn)) continue;
      seen.add(r.lsn);
      const verdict = this.classify(r);
      if (verdict === "conflict") {
        throw new BorealisError("EPOCH_NOT_ADOPTED",
          `segment holds records of an older epoch where LSN ${r.lsn} (epoch ${r.epoch}) belongs; annul first`,
          { epoch: this.epochsNow.volumeEpoch, membershipEpoch: this.epochsNow.membershipEpoch, lsn: r.lsn });
      }
      if (verdict === "contradiction") {
        throw new BorealisError("INVALID_ARGUMENT",
          `record at LSN ${r.lsn} links to ${r.prevLsnInSegment}, which contradicts the segment chain (SCL ${this.sclNow})`, { lsn: r.lsn });
      }
      if (verdict === "new") fresh.push(r);
    }
    return fresh;
  }

  /**
   * Joins durable records (just appended to the hot log, or replayed from it). Re-checks everything
   * `planWrite` checked, because annulments and other batches may have landed meanwhile. Records are
   * copied: the caller's buffers (frames, replay reads) are not retained.
   */
  join(records: readonly EncodedRecord[], writerVdl: Lsn, fileSeq: number): JoinResult {
    let kept = 0;
    let conflicts = 0;
    const evicted: HeldRecord[] = [];
    for (const r of records) {
      const verdict = this.classify(r);
      if (verdict === "conflict") conflicts++;
      if (verdict !== "new") continue;
      const h: HeldRecord = { record: ownRecord(r), fileSeq };
      const rival = this.succ.get(r.prevLsnInSegment);
      if (rival !== undefined) {
        // Two pending records claim the same predecessor; `classify` let this one through only
        // because it is from a newer epoch than the rival, which is then a leftover of an old writer.
        assert(rival.record.epoch < r.epoch, "only a newer epoch displaces a pending record");
        this.forget(rival);
        evicted.push(rival);
      }
      this.held.set(r.lsn, h);
      this.bytesHeld += h.record.bytes.byteLength;
      this.succ.set(r.prevLsnInSegment, h);
      if (r.lsn > this.highest) this.highest = r.lsn;
      if (r.pageNo > this.maxPage) this.maxPage = r.pageNo;
      kept++;
    }
    this.advance();
    if (writerVdl > this.vdl) this.vdl = writerVdl;
    return { kept, conflicts, evicted };
  }

  /**
   * new: hold it; duplicate: already held (or sorted); annulled: dropped by an annulment; stale: an
   * older epoch's record where a newer one is held; conflict: the segment holds an older epoch's
   * record where this one belongs (it missed an annulment); contradiction: same epoch, different chain.
   */
  private classify(r: EncodedRecord): "new" | "duplicate" | "annulled" | "stale" | "conflict" | "contradiction" {
    if (this.isAnnulled(r)) return "annulled";
    const same = this.held.get(r.lsn);
    if (same !== undefined) {
      if (r.epoch > same.record.epoch) return "conflict";
      return "duplicate";
    }
    // The chain is complete up to SCL: a record at or below it that is not held is one that was
    // sorted (or garbage-collected) already.
    if (r.lsn <= this.sclNow) return "duplicate";
    if (r.prevLsnInSegment < this.sclNow) {
      // The chain already continues past this record's predecessor with some other record.
      if (this.sclEpoch !== undefined && r.epoch > this.sclEpoch) return "conflict";
      return this.sclEpoch !== undefined && r.epoch < this.sclEpoch ? "stale" : "contradiction";
    }
    const rival = this.succ.get(r.prevLsnInSegment);
    if (rival !== undefined) {
      if (r.epoch > rival.record.epoch) return "new";
      if (r.epoch < rival.record.epoch) return "stale";
      return "contradiction";
    }
    return "new";
  }

  /** Follows the chain from SCL through pending records (invariant 3). */
  private advance(): void {
    for (;;) {
      const next = this.succ.get(this.sclNow);
      if (next === undefined) return;
      assert(next.record.prevLsnInSegment === this.sclNow && next.record.lsn > this.sclNow, 3, `record ${next.record.lsn} links to ${next.record.prevLsnInSegment}, not SCL ${this.sclNow}`);
      assert(this.held.get(next.record.lsn) === next, 3, `SCL would count record ${next.record.lsn}, which is not held`);
      this.succ.delete(this.sclNow);
      this.chain.push(next);
      let list = this.byPage.get(next.record.pageNo);
      if (list === undefined) this.byPage.set(next.record.pageNo, (list = []));
      list.push(next);
      this.sclNow = next.record.lsn;
      this.sclEpoch = next.record.epoch;
    }
  }

  /** Removes a pending (not chain) record from memory. */
  private forget(h: HeldRecord): void {
    if (this.succ.get(h.record.prevLsnInSegment) === h) this.succ.delete(h.record.prevLsnInSegment);
    this.held.delete(h.record.lsn);
    this.bytesHeld -= h.record.bytes.byteLength;
  }

  // ------------------------------------------------------------------------------------------- reads

  /** Chain records of `pageNo` held in memory with LSN in (afterLsn, upToLsn], in LSN order. */
  pageRecords(pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn): EncodedRecord[] {
    const list = this.byPage.get(pageNo);
    if (list === undefined || upToLsn <= afterLsn) return [];
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.record.lsn <= afterLsn) lo = mid + 1;
      else hi = mid;
    }
    const out: EncodedRecord[] = [];
    for (let i = lo; i < list.length && list[i]!.record.lsn <= upToLsn; i++) out.push(list[i]!.record);
    return out;
  }

  /** Every record held in memory (chain and past the gap) with LSN in (afterLsn, upToLsn], in LSN order. */
  memoryRecords(afterLsn: Lsn, upToLsn: Lsn): EncodedRecord[] {
    const out: EncodedRecord[] = [];
    for (const h of this.held.values()) if (h.record.lsn > afterLsn && h.record.lsn <= upToLsn) out.push(h.record);
    return out.sort((a, b) => a.lsn - b.lsn);
  }

  // ---------------------------------------------------------------------------------------- sorting

  /**
   * How far sorting may go: the SCL, but not past the VDL the writer has told. Records above the VDL
   * may still be annulled by a recovery (whose VDL is never below a VDL a writer announced), and
   * annulment then never has to touch the page store.
   */
  get sortBound(): Lsn {
    return Lsn(Math.min(this.sclNow, this.vdl));
  }

  /** The next chain records to sort, lowest LSN first, at most about `maxBytes`. Nothing is removed. */
  takeSortable(maxBytes: number): HeldRecord[] {
    const bound = this.sortBound;
    const out: HeldRecord[] = [];
    let bytes = 0;
    for (let i = this.chainHead; i < this.chain.length; i++) {
      const h = this.chain[i]!;
      if (h.record.lsn > bound || (out.length > 0 && bytes + h.record.bytes.byteLength > maxBytes)) break;
      out.push(h);
      bytes += h.record.bytes.byteLength;
    }
    return out;
  }

  /** The page store now durably holds every chain record ≤ `tip`: drop them from memory. */
  markSorted(tip: Lsn): HeldRecord[] {
    assert(tip > this.sorted && tip <= this.sclNow, `sorted point ${tip} outside (${this.sorted}, ${this.sclNow}]`);
    const removed: HeldRecord[] = [];
    while (this.chainHead < this.chain.length && this.chain[this.chainHead]!.record.lsn <= tip) {
      const h = this.chain[this.chainHead++]!;
      const list = this.byPage.get(h.record.pageNo)!;
      assert(list[0] === h, "a page's oldest memory record is the chain's oldest for that page");
      list.shift();
      if (list.length === 0) this.byPage.delete(h.record.pageNo);
      this.held.delete(h.record.lsn);
      this.bytesHeld -= h.record.bytes.byteLength;
      if (h.record.pageNo > this.sortedMaxPage) this.sortedMaxPage = h.record.pageNo;
      removed.push(h);
    }
    assert(removed.length > 0 && removed[removed.length - 1]!.record.lsn === tip, 3, `sorted point ${tip} is not a chain tip`);
    this.sorted = tip;
    if (this.chainHead > 1024 && this.chainHead * 2 > this.chain.length) {
      this.chain = this.chain.slice(this.chainHead);
      this.chainHead = 0;
    }
    return removed;
  }

  /** Raises the retention point (reads below it are refused; the page store may drop history). */
  setRetention(lsn: Lsn): void {
    assert(lsn >= this.retention && lsn <= this.sorted, `retention ${lsn} outside [${this.retention}, ${this.sorted}]`);
    this.retention = lsn;
  }

  // ----------------------------------------------------------------------------------- annulment

  /** False when an annulment at least as strong is already in force (a retried recovery step). */
  annulIsNew(a: Annulment): boolean {
    return !this.annuls.some((b) => b.epoch >= a.epoch && b.aboveLsn <= a.aboveLsn);
  }

  /** The annulments of `list` not yet in force here. */
  newAnnulments(list: readonly Annulment[]): Annulment[] {
    return list.filter((a) => this.annulIsNew(a));
  }

  /** The annulment list after adding `added`, without the ones they subsume. */
  annulmentsWith(added: readonly Annulment[]): Annulment[] {
    let next = [...this.annuls];
    for (const a of added) {
      if (!next.every((b) => !(b.epoch >= a.epoch && b.aboveLsn <= a.aboveLsn))) continue;
      next = next.filter((b) => !(a.epoch >= b.epoch && a.aboveLsn <= b.aboveLsn));
      next.push({ epoch: a.epoch, aboveLsn: a.aboveLsn });
    }
    return next.sort((a, b) => a.epoch - b.epoch || a.aboveLsn - b.aboveLsn);
  }

  /**
   * Applies annulments the caller has made durable (with `epochs`): adopts the epochs, drops every
   * held record they cover and pulls SCL back to the last chain record that survives. `sortedTip` is
   * given only when the page store itself had to be cut back (an annulment below the sorted point).
   */
  applyAnnul(epochs: Epochs, annulments: readonly Annulment[], sortedTip?: Lsn): HeldRecord[] {
    for (const a of annulments) {
      assert(a.epoch <= epochs.volumeEpoch, 8, `annulment of epoch ${a.epoch} arrives with volume epoch ${epochs.volumeEpoch}`);
    }
    this.adoptEpochs(epochs);
    const added = this.newAnnulments(annulments);
    if (added.length === 0) return [];
    const next = this.annulmentsWith(added);
    if (next.length > MAX_ANNULMENTS) {
      throw new BorealisError("INVALID_ARGUMENT", `segment would hold ${next.length} annulments`);
    }
    this.annuls = next;
    // The known VDL stays: an annulment point is not durable on a write quorum until recovery has
    // re-replicated below it (src/compute/volume/recovery.ts).
    if (next.some((a) => a.epoch === epochs.volumeEpoch)) this.writable = epochs.volumeEpoch;
    const removed: HeldRecord[] = [];
    let cut = this.chain.length;
    if (sortedTip !== undefined) {
      assert(sortedTip <= this.sorted, "the sorted point only moves back when annulled");
      this.sorted = sortedTip;
      if (this.retention > sortedTip) this.retention = sortedTip;
      cut = this.chainHead;
    } else {
      for (let i = this.chainHead; i < this.chain.length; i++) {
        if (this.isAnnulled(this.chain[i]!.record)) { cut = i; break; }
      }
    }
    // Chain records from the cut on leave the chain: annulled ones are dropped, the rest wait as
    // pending records for the chain to reach them again.
    for (let i = this.chain.length - 1; i >= cut; i--) {
      const h = this.chain[i]!;
      const list = this.byPage.get(h.record.pageNo)!;
      assert(list[list.length - 1] === h, "a page's newest memory record is the chain's newest for that page");
      list.pop();
      if (list.length === 0) this.byPage.delete(h.record.pageNo);
      if (this.isAnnulled(h.record)) {
        this.held.delete(h.record.lsn);
        this.bytesHeld -= h.record.bytes.byteLength;
        removed.push(h);
      }
    }
    const backToPending = this.chain.slice(cut).filter((h) => !this.isAnnulled(h.record));
    this.chain.length = cut;
    this.sclNow = cut > this.chainHead ? this.chain[cut - 1]!.record.lsn : this.sorted;
    this.sclEpoch = cut > this.chainHead ? this.chain[cut - 1]!.record.epoch : undefined;
    // Rebuild the pending set: drop annulled records, and where two records claim one predecessor
    // keep the newer epoch's.
    const pending = [...this.succ.values(), ...backToPending];
    this.succ.clear();
    for (const h of pending) {
      if (this.isAnnulled(h.record) || h.record.lsn <= this.sclNow) {
        this.held.delete(h.record.lsn);
        this.bytesHeld -= h.record.bytes.byteLength;
        removed.push(h);
        continue;
      }
      const rival = this.succ.get(h.record.prevLsnInSegment);
      if (rival !== undefined && rival.record.epoch >= h.record.epoch) {
        this.held.delete(h.record.lsn);
        this.bytesHeld -= h.record.bytes.byteLength;
        removed.push(h);
        continue;
      }
      if (rival !== undefined) {
        this.held.delete(rival.record.lsn);
        this.bytesHeld -= rival.record.bytes.byteLength;
        removed.push(rival);
      }
      this.succ.set(h.record.prevLsnInSegment, h);
    }
    this.advance();
    let highest = Math.max(this.sclNow, this.sorted);
    let maxPage = this.sortedMaxPage;
    for (const h of this.held.values()) {
      highest = Math.max(highest, h.record.lsn);
      maxPage = Math.max(maxPage, h.record.pageNo);
    }
    this.highest = Lsn(highest);
    this.maxPage = maxPage;
    return removed;
  }
}

// ------------------------------------------------------------------------------------------ helpers

function checkGeometry(g: SegmentGeometry): void {
  const ok = g.firstPage >= 1 && g.pageCount >= 1 && Number.isSafeInteger(g.firstPage + g.pageCount) &&
    g.pageSize >= 512 && g.pageSize <= 65536 && (g.pageSize & (g.pageSize - 1)) === 0 &&
    new TextEncoder().encode(g.volumeId).byteLength <= 255 && g.volumeId.length > 0;
  if (!ok) {
    throw new BorealisError("INVALID_ARGUMENT",
      `bad segment geometry: volume "${g.volumeId}" (1..255 bytes), first page ${g.firstPage} (≥ 1), ${g.pageCount} pages (≥ 1), page size ${g.pageSize} (a power of two in 512..65536)`);
  }
}

/**
 * Refuses a payload that could not be applied to a page of `pageSize` bytes, before it is made
 * durable: a bad record must never be accepted and then fail every read of its page.
 */
export function checkPayload(r: EncodedRecord, pageSize: number): void {
  if (isFullImage(r)) {
    if (r.payload.byteLength !== pageSize) {
      throw new BorealisError("INVALID_ARGUMENT", `full image at LSN ${r.lsn} has ${r.payload.byteLength} bytes, page size is ${pageSize}`, { lsn: r.lsn });
    }
    return;
  }
  try {
    const rd = new ByteReader(r.payload);
    const count = rd.varint("diff range count");
    let lastEnd = 0;
    for (let k = 0; k < count; k++) {
      const offset = rd.varint("diff offset");
      const length = rd.varint("diff length");
      if (offset < lastEnd || length === 0 || offset + length > pageSize) throw new Error(`bad range ${offset}+${length}`);
      rd.bytes(length, "diff bytes");
      lastEnd = offset + length;
    }
    rd.end_("diff");
  } catch (e) {
    throw new BorealisError("INVALID_ARGUMENT", `diff at LSN ${r.lsn} cannot apply to a ${pageSize}-byte page: ${e instanceof Error ? e.message : String(e)}`, { lsn: r.lsn });
  }
}

/** A copy of the record that owns its bytes (the payload is always the tail of the encoding). */
export function ownRecord(r: EncodedRecord): EncodedRecord {
  const bytes = r.bytes.slice();
  return { ...r, bytes, payload: bytes.subarray(bytes.byteLength - r.payload.byteLength) };
}
