/**
 * The simulated writer's workload: synthetic mini-transactions in place of SQLite's commits (SQLite
 * runs in worker threads and is not part of the simulation), built the way the engine's RedoWriter
 * builds them (src/compute/engine/redo-writer.ts) — consecutive LSNs, records sorted by (PG, page),
 * the CPL last, segment backlinks from the PG's last record, volume backlinks through the previous
 * commit, byte-range diffs against the page version the writer holds or a full image when it holds
 * none, and no LSN above max(VDL, where allocation resumed) + LAL (invariant 6).
 *
 * A commit is recorded as acknowledged only when `whenDurable` resolves; the writer also reads pages
 * at its VDL (as a reader would, invariant 7) and hands every answer to the checker.
 */
import { Lsn, PageNo, PgId } from "../core/types.js";
import { isBorealisError } from "../core/errors.js";
import type { Clock, Timer } from "../env/env.js";
import type { LsnState, MiniTransaction, MtrRecord } from "../compute/volume-io.js";
import { pgOfPage } from "../compute/volume-io.js";
import type { VolumeWriter } from "../compute/volume/volume-writer.js";
import { RecordFlag } from "../wire/record.js";
import { encodePageDiff } from "../wire/redo-payload.js";
import type { History, ModelMtr, ModelRecord } from "./model.js";
import type { SeededRandom } from "./random.js";

export interface WorkloadHooks {
  onSubmit(writer: string, m: ModelMtr): void;
  onAck(writer: string, m: ModelMtr): void;
  onUnknown(writer: string, m: ModelMtr, e: unknown): void;
  onRead(writer: string, pageNo: number, readPoint: number, result: { bytes: Uint8Array; pageLsn: number }): void;
  onReadFailed(writer: string, pageNo: number, readPoint: number, e: unknown): void;
}

export interface WorkloadOptions {
  readonly name: string;
  readonly vw: VolumeWriter;
  readonly clock: Clock;
  readonly random: SeededRandom;
  readonly history: History;
  readonly lsnState: LsnState;
  /** Where allocation resumed after recovery, minus one (the tracker's truncatedThrough). */
  readonly truncateThrough: Lsn;
  readonly lal: number;
  readonly hooks: WorkloadHooks;
  /** Milliseconds between ticks, uniform in [1, tickMs]. */
  readonly tickMs: number;
  /** Probability per tick of a commit and of a read. */
  readonly commitRate: number;
  readonly readRate: number;
  /** Commits submitted and not yet answered, at most (a client pool's size). */
  readonly maxPending: number;
}

export class SyntheticWorkload {
  private nextLsn: number;
  private lastInVolume: number;
  private readonly lastByPg = new Map<number, number>();
  /** Pages whose current version this writer knows (it wrote them, or read them before writing). */
  private readonly cache = new Map<number, { bytes: Uint8Array; lsn: number }>();
  /** Pages being read before their first write: no commit touches them meanwhile. */
  private readonly loading = new Set<number>();
  private pending = 0;
  private timer: Timer | undefined;
  private stopped = false;
  submitted = 0;
  acked = 0;
  lalWaits = 0;

  constructor(private readonly o: WorkloadOptions) {
    this.nextLsn = o.lsnState.nextLsn;
    this.lastInVolume = o.lsnState.vdl;
    for (const [pg, lsn] of o.lsnState.lastLsnByPg) this.lastByPg.set(pg, lsn);
  }

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimer(1 + this.o.random.int(this.o.tickMs), () => {
      this.timer = undefined;
      if (this.stopped) return;
      try {
        if (this.o.random.chance(this.o.commitRate)) this.commit();
        if (this.o.random.chance(this.o.readRate)) this.read();
      } catch (e) {
        // The writer learned it was fenced or is closing: a client would see the error and give up.
        if (isBorealisError(e, "WRITER_FENCED") || isBorealisError(e, "SHUTTING_DOWN")) {
          this.stop();
          return;
        }
        throw e;
      }
      this.schedule();
    });
  }

  /** Builds and submits one MTR, unless back-pressure or the pending bound says wait. */
  private commit(): void {
    const o = this.o;
    if (this.pending >= o.maxPending) return;
    const h = o.history;
    const want = 1 + o.random.int(4);
    const pages = new Set<number>();
    for (let i = 0; i < want * 3 && pages.size < want; i++) {
      const p = 1 + o.random.int(h.pageCount);
      if (this.loading.has(p)) continue;
      if (!this.cache.has(p) && o.random.chance(0.5)) {
        this.load(p);
        continue;
      }
      pages.add(p);
    }
    if (pages.size === 0) return;
    const sorted = [...pages].sort((a, b) => pgOfPage(a, h.pgPages) - pgOfPage(b, h.pgPages) || a - b);
    const n = sorted.length;
    const firstLsn = this.nextLsn;
    const commitLsn = firstLsn + n - 1;
    // Invariant 6: what LAL bounds is the LSNs allocated and not yet durable.
    if (commitLsn > Math.max(o.vw.vdl(), o.truncateThrough) + o.lal) {
      this.lalWaits++;
      return;
    }
    const epoch = o.lsnState.epoch;
    const mtrRecords: MtrRecord[] = [];
    // The segment backlinks as this MTR extends each PG's chain (committed to `lastByPg` on submit).
    const lastInPg = new Map(this.lastByPg);
    const model: ModelMtr = { writer: o.name, epoch, firstLsn: Lsn(firstLsn), commitLsn: Lsn(commitLsn), records: [], status: "pending" };
    for (let i = 0; i < n; i++) {
      const pageNo = sorted[i]!;
      const lsn = firstLsn + i;
      const pgId = pgOfPage(pageNo, h.pgPages);
      const known = this.cache.get(pageNo);
      const after = (known?.bytes ?? new Uint8Array(h.pageSize)).slice();
      const edits = 1 + o.random.int(3);
      for (let k = 0; k < edits; k++) {
        const at = o.random.int(h.pageSize);
        const len = 1 + o.random.int(Math.min(24, h.pageSize - at));
        for (let j = 0; j < len; j++) after[at + j] = o.random.int(256);
      }
      let flags = i === n - 1 ? RecordFlag.CPL : 0;
      let payload: Uint8Array;
      const diff = known === undefined || o.random.chance(0.1) ? null : encodePageDiff(known.bytes, after);
      if (diff === null || diff.byteLength >= h.pageSize) {
        flags |= RecordFlag.FULL_IMAGE;
        payload = after;
      } else {
        payload = diff;
      }
      const record = {
        lsn: Lsn(lsn), epoch, pageNo: PageNo(pageNo), flags, payload,
        prevLsnInSegment: Lsn(lastInPg.get(pgId) ?? 0),
        // Storage does not use it; the engine sets it from the page version it holds.
        prevLsnOfPage: Lsn(known?.lsn ?? 0),
        prevLsnInVolume: Lsn(i === 0 ? this.lastInVolume : lsn - 1),
      };
      mtrRecords.push({ pgId: PgId(pgId), record });
      lastInPg.set(pgId, lsn);
      const mr: ModelRecord = {
        pgId: PgId(pgId), pageNo: PageNo(pageNo), lsn: Lsn(lsn), epoch, after, payload, flags,
        prevLsnInSegment: record.prevLsnInSegment, prevLsnInVolume: record.prevLsnInVolume, mtr: model,
      };
      model.records.push(mr);
    }
    const mtr: MiniTransaction = { epoch, firstLsn: Lsn(firstLsn), commitLsn: Lsn(commitLsn), records: mtrRecords };
    o.vw.submit(mtr); // throws WRITER_FENCED / SHUTTING_DOWN before tracking anything
    // Only now is the MTR the writer's: advance the allocation state and the page versions.
    this.nextLsn = commitLsn + 1;
    this.lastInVolume = commitLsn;
    for (const r of model.records) {
      this.lastByPg.set(r.pgId, r.lsn);
      this.cache.set(r.pageNo, { bytes: r.after, lsn: r.lsn });
    }
    this.submitted++;
    this.pending++;
    o.hooks.onSubmit(o.name, model);
    o.vw.whenDurable(Lsn(commitLsn)).then(
      () => {
        this.pending--;
        this.acked++;
        model.status = "acked";
        o.hooks.onAck(o.name, model);
      },
      (e: unknown) => {
        this.pending--;
        model.status = "unknown";
        o.hooks.onUnknown(o.name, model, e);
      },
    );
  }

  /** Reads a page at the writer's VDL before its first write in this epoch (a diff needs the base). */
  private load(pageNo: number): void {
    const readPoint = this.o.vw.vdl();
    this.loading.add(pageNo);
    this.o.vw.readPage(PageNo(pageNo), readPoint).then(
      (r) => {
        this.loading.delete(pageNo);
        this.o.hooks.onRead(this.o.name, pageNo, readPoint, r);
        if (!this.cache.has(pageNo)) this.cache.set(pageNo, { bytes: r.bytes.slice(), lsn: r.pageLsn });
      },
      (e: unknown) => {
        this.loading.delete(pageNo);
        this.o.hooks.onReadFailed(this.o.name, pageNo, readPoint, e);
      },
    );
  }

  /** A read as a reader would issue it: at the VDL, or at an older read point still retained. */
  private read(): void {
    const o = this.o;
    const pageNo = 1 + o.random.int(o.history.pageCount);
    const vdl = o.vw.vdl();
    const readPoint = o.random.chance(0.7) || vdl <= o.lsnState.vdl ? vdl : o.lsnState.vdl + o.random.int(vdl - o.lsnState.vdl + 1);
    o.vw.readPage(PageNo(pageNo), Lsn(readPoint)).then(
      (r) => o.hooks.onRead(o.name, pageNo, readPoint, r),
      (e: unknown) => o.hooks.onReadFailed(o.name, pageNo, readPoint, e),
    );
  }
}

