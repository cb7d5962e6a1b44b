/**
 * An in-memory `VolumeIO` for tests and benchmarks: a stand-in for the storage cluster that keeps the
 * contract honest.
 *
 * It never receives page images: `submit` materializes each page by applying the shipped records
 * (`applyRedo`) to the page's previous version (zeros when never written), exactly as a storage node
 * does. Every engine test over it is therefore also a test that the writer's redo reproduces SQLite's
 * pages. It checks the writer's side of the contract as it goes — consecutive LSNs (invariant 1), CPL
 * last, every backlink — and throws an AssertionError on the first violation.
 *
 * Durability is simulated: immediate (VDL follows every submit), after a delay, or manual (the test
 * advances VDL, or makes durability fail). `recover()` plays invariant 8: everything above VDL is
 * annulled and the epoch bumped, returning the `LsnState` a new writer starts from.
 */
import { assert } from "../core/assert.js";
import { BorealisError } from "../core/errors.js";
import { Epoch, Lsn, PageNo, PgId, VolumeId } from "../core/types.js";
import { encodeRecord, isCpl, isFullImage } from "../wire/record.js";
import { applyRedo } from "../wire/redo-payload.js";
import { pgOfPage, type LsnState, type MiniTransaction, type VolumeIO } from "./volume-io.js";

export type Durability = "immediate" | "manual" | { readonly delayMs: number };

export interface MemoryVolumeOptions {
  readonly pageSize?: number;
  /** PG geometry: pages per protection group (must match the engine's `pgPages`). */
  readonly pgPages?: number;
  readonly durability?: Durability;
  /** Delay of every readPage, in ms (0: resolves on the next microtask). */
  readonly readDelayMs?: number;
  /** Page versions kept per page; a read below the oldest kept one fails (READ_POINT_BELOW_RETENTION). */
  readonly retainVersions?: number;
  /** Keep every shipped MTR (tests re-materialize from them); benchmarks turn it off. */
  readonly keepMtrs?: boolean;
  readonly epoch?: Epoch;
  readonly volumeId?: VolumeId;
}

interface PageVersion {
  readonly lsn: Lsn;
  readonly bytes: Uint8Array;
}

interface PageHistory {
  readonly versions: PageVersion[];
  /** Highest LSN of a version dropped to bound the history (0: nothing dropped). */
  droppedUpTo: number;
}

interface Waiter {
  readonly lsn: Lsn;
  resolve(): void;
  reject(e: unknown): void;
}

export interface MemoryVolumeStats {
  readonly mtrs: number;
  readonly records: number;
  readonly fullImages: number;
  /** Encoded record bytes (header + payload + CRC), what the shipper would send per segment. */
  readonly redoBytes: number;
  readonly pageReads: number;
}

export class MemoryVolume implements VolumeIO {
  readonly pageSize: number;
  readonly pgPages: number;
  readonly volumeId: VolumeId;
  private epoch: Epoch;
  private durability: Durability;
  private readonly readDelayMs: number;
  private readonly retainVersions: number;
  private readonly keepMtrs: boolean;

  private readonly pages = new Map<number, PageHistory>();
  private readonly shipped: MiniTransaction[] = [];
  /** CPLs submitted but not yet durable, in LSN order (durability advances VDL through them). */
  private readonly pendingCpls: Lsn[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly listeners: ((vdl: Lsn) => void)[] = [];
  private currentVdl: Lsn = Lsn(0);
  private lastLsn: Lsn = Lsn(0);
  private readonly lastLsnByPg = new Map<PgId, Lsn>();
  private readonly lastLsnByPage = new Map<number, Lsn>();
  private maxPageNo = 0;
  private durabilityError: BorealisError | null = null;
  private submitError: BorealisError | null = null;
  private readFailure: BorealisError | null = null;
  private counters = { mtrs: 0, records: 0, fullImages: 0, redoBytes: 0, pageReads: 0 };

  constructor(options: MemoryVolumeOptions = {}) {
    this.pageSize = options.pageSize ?? 4096;
    this.pgPages = options.pgPages ?? 16384;
    this.durability = options.durability ?? "immediate";
    this.readDelayMs = options.readDelayMs ?? 0;
    this.retainVersions = options.retainVersions ?? 256;
    this.keepMtrs = options.keepMtrs ?? true;
    this.epoch = options.epoch ?? Epoch(1);
    this.volumeId = options.volumeId ?? VolumeId("memory");
    assert(this.pageSize >= 512 && this.pageSize <= 65536 && (this.pageSize & (this.pageSize - 1)) === 0, "page size is a power of two in 512..65536");
    assert(this.pgPages >= 1, "a PG holds at least one page");
  }

  /** A volume holding exactly what `mtrs` say, with every one of them durable. */
  static fromMtrs(mtrs: readonly MiniTransaction[], options: MemoryVolumeOptions = {}): MemoryVolume {
    const first = mtrs[0];
    const v = new MemoryVolume({ ...options, durability: "immediate", epoch: first?.epoch ?? options.epoch });
    for (const mtr of mtrs) {
      if (mtr.epoch !== v.epoch) v.epoch = mtr.epoch;
      v.submit({ epoch: mtr.epoch, firstLsn: mtr.firstLsn, commitLsn: mtr.commitLsn, records: mtr.records });
    }
    v.durability = options.durability ?? "immediate";
    return v;
  }

  // ------------------------------------------------------------------------------------ VolumeIO

  async readPage(pageNo: PageNo, readPoint: Lsn): Promise<{ bytes: Uint8Array; pageLsn: Lsn }> {
    if (this.readDelayMs > 0) await new Promise((r) => setTimeout(r, this.readDelayMs));
    else await Promise.resolve();
    if (this.readFailure !== null) throw this.readFailure;
    assert(pageNo >= 1 && readPoint >= 0, `readPage(${pageNo}, ${readPoint}): bad arguments`);
    this.counters.pageReads++;
    const history = this.pages.get(pageNo);
    if (history === undefined) return { bytes: new Uint8Array(this.pageSize), pageLsn: Lsn(0) };
    const { versions } = history;
    for (let i = versions.length - 1; i >= 0; i--) {
      const v = versions[i]!;
      if (v.lsn <= readPoint) return { bytes: v.bytes.slice(), pageLsn: v.lsn };
    }
    if (history.droppedUpTo > 0) {
      throw new BorealisError("READ_POINT_BELOW_RETENTION", `page ${pageNo} at ${readPoint}: oldest kept version is ${versions[0]!.lsn}`);
    }
    return { bytes: new Uint8Array(this.pageSize), pageLsn: Lsn(0) };
  }

  submit(mtr: MiniTransaction): void {
    if (this.submitError !== null) throw this.submitError;
    if (mtr.epoch !== this.epoch) {
      throw new BorealisError("WRITER_FENCED", `MTR of epoch ${mtr.epoch} at volume epoch ${this.epoch}`);
    }
    const n = mtr.records.length;
    assert(n >= 1, "an MTR has at least one record");
    assert(mtr.firstLsn === mtr.records[0]!.record.lsn && mtr.commitLsn === mtr.records[n - 1]!.record.lsn, "MTR bounds match its records");
    assert(mtr.firstLsn > this.lastLsn, 1, `LSNs strictly increase: MTR starts at ${mtr.firstLsn} after ${this.lastLsn}`);
    // Check the whole MTR before applying any of it: a refused MTR leaves the volume untouched.
    let prevPg = -1;
    let prevPage = 0;
    let lastLsn = this.lastLsn;
    const segLast = new Map<PgId, Lsn>();
    for (let i = 0; i < n; i++) {
      const { pgId, record: r } = mtr.records[i]!;
      assert(r.lsn === mtr.firstLsn + i, 1, `LSNs within an MTR are consecutive (record ${i} has ${r.lsn})`);
      assert(r.epoch === mtr.epoch, "records carry their MTR's epoch");
      assert(isCpl(r) === (i === n - 1), 4, `only the last record of an MTR is a CPL (record ${i} at ${r.lsn})`);
      assert(pgId === pgOfPage(r.pageNo, this.pgPages), `page ${r.pageNo} filed under PG ${pgId}`);
      assert(pgId > prevPg || (pgId === prevPg && r.pageNo > prevPage), "records are sorted per PG, one per page");
      prevPg = pgId;
      prevPage = r.pageNo;
      assert(r.prevLsnInVolume === lastLsn, `volume backlink of ${r.lsn} is ${r.prevLsnInVolume}, expected ${lastLsn}`);
      const segPrev = segLast.get(pgId) ?? this.lastLsnByPg.get(pgId) ?? Lsn(0);
      assert(r.prevLsnInSegment === segPrev, 3, `segment backlink of ${r.lsn} (PG ${pgId}) is ${r.prevLsnInSegment}, expected ${segPrev}`);
      const pagePrev = this.lastLsnByPage.get(r.pageNo) ?? Lsn(0);
      assert(r.prevLsnOfPage === pagePrev, `page backlink of ${r.lsn} (page ${r.pageNo}) is ${r.prevLsnOfPage}, expected ${pagePrev}`);
      lastLsn = r.lsn;
      segLast.set(pgId, r.lsn);
    }
    const pages: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const r = mtr.records[i]!.record;
      const versions = this.pages.get(r.pageNo)?.versions;
      const page = versions !== undefined ? versions[versions.length - 1]!.bytes.slice() : new Uint8Array(this.pageSize);
      applyRedo(page, r);
      const image = mtr.images?.[i];
      if (image !== undefined) {
        assert(equalBytes(page, image), `page ${r.pageNo} materialized from LSN ${r.lsn} differs from the writer's image`);
      }
      pages.push(page);
    }
    for (let i = 0; i < n; i++) {
      const { pgId, record: r } = mtr.records[i]!;
      this.addVersion(r.pageNo, { lsn: r.lsn, bytes: pages[i]! });
      this.lastLsn = r.lsn;
      this.lastLsnByPg.set(pgId, r.lsn);
      this.lastLsnByPage.set(r.pageNo, r.lsn);
      if (r.pageNo > this.maxPageNo) this.maxPageNo = r.pageNo;
      this.counters.records++;
      if (isFullImage(r)) this.counters.fullImages++;
      this.counters.redoBytes += encodeRecord(r, { volumeId: this.volumeId, pgId }).bytes.byteLength;
    }
    this.counters.mtrs++;
    if (this.keepMtrs) this.shipped.push({ epoch: mtr.epoch, firstLsn: mtr.firstLsn, commitLsn: mtr.commitLsn, records: mtr.records });
    this.pendingCpls.push(mtr.commitLsn);
    const d = this.durability;
    if (d === "immediate") this.advanceVdl(mtr.commitLsn);
    else if (d !== "manual") {
      const lsn = mtr.commitLsn;
      setTimeout(() => {
        if (this.durabilityError === null && lsn > this.currentVdl) this.advanceVdl(lsn);
      }, d.delayMs);
    }
  }

  whenDurable(lsn: Lsn): Promise<void> {
    if (lsn <= this.currentVdl) return Promise.resolve();
    if (this.durabilityError !== null) return Promise.reject(this.durabilityError);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ lsn, resolve, reject });
    });
  }

  vdl(): Lsn {
    return this.currentVdl;
  }

  onVdl(listener: (vdl: Lsn) => void): void {
    this.listeners.push(listener);
  }

  // ------------------------------------------------------------------------------- test controls

  /** Makes everything up to `lsn` durable (default: every submitted MTR). VDL lands on a CPL (invariant 4). */
  advanceVdl(lsn?: Lsn): void {
    const target = lsn ?? this.pendingCpls[this.pendingCpls.length - 1] ?? this.currentVdl;
    if (target <= this.currentVdl) return;
    let next = this.currentVdl;
    while (this.pendingCpls.length > 0 && this.pendingCpls[0]! <= target) next = this.pendingCpls.shift()!;
    assert(next === target, 4, `VDL ${target} is not a submitted CPL`);
    assert(next > this.currentVdl, 4, "VDL is monotonic");
    this.currentVdl = next;
    for (const l of this.listeners) l(next);
    // Resolve in LSN order; waiters are few, a sort per advance is fine.
    this.waiters.sort((a, b) => a.lsn - b.lsn);
    while (this.waiters.length > 0 && this.waiters[0]!.lsn <= next) this.waiters.shift()!.resolve();
  }

  setDurability(d: Durability): void {
    this.durability = d;
    if (d === "immediate") this.advanceVdl();
  }

  /** From now on durability cannot be established: every waiter above VDL is rejected. */
  failDurability(error = new BorealisError("NO_QUORUM", "simulated loss of write quorum")): void {
    this.durabilityError = error;
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  failSubmits(error: BorealisError | null = new BorealisError("WRITER_FENCED", "simulated fencing")): void {
    this.submitError = error;
  }

  failReads(error: BorealisError | null = new BorealisError("NO_QUORUM", "simulated read failure")): void {
    this.readFailure = error;
  }

  /**
   * Invariant 8, in miniature: annul every record above VDL, bump the epoch and return where a new
   * writer resumes. Pending durability waiters are rejected (their commits are gone).
   */
  recover(): LsnState {
    const vdl = this.currentVdl;
    for (const [pageNo, history] of this.pages) {
      const kept = history.versions.filter((v) => v.lsn <= vdl);
      if (kept.length === 0) this.pages.delete(pageNo);
      else this.pages.set(pageNo, { versions: kept, droppedUpTo: history.droppedUpTo });
    }
    while (this.shipped.length > 0 && this.shipped[this.shipped.length - 1]!.commitLsn > vdl) this.shipped.pop();
    this.pendingCpls.length = 0;
    for (const w of this.waiters.splice(0)) w.reject(new BorealisError("COMMIT_OUTCOME_UNKNOWN", "annulled by recovery"));
    this.durabilityError = null;
    this.submitError = null;
    this.readFailure = null;
    this.epoch = Epoch(this.epoch + 1);
    this.rebuildBacklinks(vdl);
    return this.lsnState();
  }

  /** Where a writer resumes on this volume as it is (no annulment). */
  lsnState(): LsnState {
    return {
      epoch: this.epoch,
      vdl: this.currentVdl,
      nextLsn: Lsn(this.lastLsn + 1),
      lastLsnByPg: new Map(this.lastLsnByPg),
      maxPageNo: PageNo(this.maxPageNo),
    };
  }

  /** Every MTR shipped so far (when `keepMtrs`), in LSN order. */
  mtrs(): readonly MiniTransaction[] {
    return this.shipped;
  }

  stats(): MemoryVolumeStats {
    return { ...this.counters };
  }

  /** The newest version of a page at or below `readPoint`, synchronously (test inspection). */
  pageAt(pageNo: number, readPoint: number = Number.MAX_SAFE_INTEGER): Uint8Array {
    const versions = this.pages.get(pageNo)?.versions ?? [];
    for (let i = versions.length - 1; i >= 0; i--) if (versions[i]!.lsn <= readPoint) return versions[i]!.bytes;
    return new Uint8Array(this.pageSize);
  }

  // ------------------------------------------------------------------------------------ internals

  private addVersion(pageNo: number, v: PageVersion): void {
    let history = this.pages.get(pageNo);
    if (history === undefined) {
      history = { versions: [], droppedUpTo: 0 };
      this.pages.set(pageNo, history);
    }
    const { versions } = history;
    versions.push(v);
    // Keep a bounded history: drop the oldest version once the next one is durable, so a reader at
    // or above VDL never needs it.
    if (versions.length > this.retainVersions && versions[1]!.lsn <= this.currentVdl) {
      history.droppedUpTo = versions.shift()!.lsn;
    }
  }

  private rebuildBacklinks(vdl: Lsn): void {
    this.lastLsnByPg.clear();
    this.lastLsnByPage.clear();
    this.maxPageNo = 0;
    for (const [pageNo, { versions }] of this.pages) {
      const last = versions[versions.length - 1]!.lsn;
      this.lastLsnByPage.set(pageNo, last);
      const pg = pgOfPage(pageNo, this.pgPages);
      if (last > (this.lastLsnByPg.get(pg) ?? 0)) this.lastLsnByPg.set(pg, last);
      if (pageNo > this.maxPageNo) this.maxPageNo = pageNo;
    }
    this.lastLsn = vdl;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
