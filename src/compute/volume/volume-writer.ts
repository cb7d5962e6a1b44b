/**
 * The writer's volume over the storage cluster: the production `VolumeIO` (volume-io.ts).
 *
 * - `submit` files each record of a mini-transaction under its PG, tells the durable-point tracker
 *   (`src/quorum/`) and hands it to that PG's shipper — synchronously, never waiting: the commit path
 *   has no blocking hop (DESIGN.md, "Compute on SQLite").
 * - Acknowledgements raise SCLs; the tracker turns them into PGCL → VCL → VDL; commit waiters are
 *   released in LSN order once VDL covers them (invariant 5), and the new VDL goes to the engine.
 * - `readPage` reads from one segment known to be complete at the read point, not from a quorum
 *   (Aurora P17 §4.2.3), trying the others on refusal or error.
 * - The volume grows by protection groups as SQLite's file grows (control plane `addProtectionGroup`).
 *
 * Completeness at a read point. A segment's SCL counts only its own PG's records, so a PG untouched
 * for a while has a low SCL and is still complete at a much later read point. The reader therefore
 * asks for `minScl` = the PG's last record at or below the read point (or the read point itself when
 * it cannot know exactly): for a read point at or below VDL that is min(readPoint, PGCL), because
 * every record at or below VCL is at or below its PG's PGCL; for the writer's own newer snapshot it is
 * min(readPoint, last record sent to the PG).
 */
import type { Env, Logger, Timer } from "../../env/env.js";
import { assert } from "../../core/assert.js";
import { BorealisError, isBorealisError } from "../../core/errors.js";
import { NO_LSN, NodeId, PgId, type Epoch, type Epochs, type Lsn, type PageNo } from "../../core/types.js";
import type { ControlPlaneApi, ProtectionGroup, Volume } from "../../control-plane/api.js";
import { DurablePointTracker, type TrackerStart } from "../../quorum/durable-point.js";
import { CommitWaiters } from "../../quorum/commit-waiters.js";
import { simpleQuorumSet } from "../../quorum/quorum-set.js";
import type { Annulment, SegmentState } from "../../wire/messages.js";
import { encodeRecord, isCpl, type EncodedRecord } from "../../wire/record.js";
import { durabilityWaitTimedOut, pgOfPage, type MiniTransaction, type VolumeIO } from "../volume-io.js";
import type { NodePool } from "./node-pool.js";
import { PgShipper, type MemberStatus, type PgShipperOptions, type ShipperHost } from "./pg-shipper.js";

export interface VolumeWriterOptions {
  readonly env: Env;
  readonly pool: NodePool;
  readonly controlPlane: ControlPlaneApi;
  /** The volume as the control plane had it when recovery finished. */
  readonly volume: Volume;
  /** This writer's volume epoch (recovery bumped it). */
  readonly epoch: Epoch;
  /** Every recovery's annulment, this writer's own last. */
  readonly annulments: readonly Annulment[];
  readonly trackerStart: TrackerStart;
  /** A commit not durable after this long is answered COMMIT_OUTCOME_UNKNOWN. Default 30 s. */
  readonly commitTimeoutMs?: number;
  /** A page read that finds no segment able to answer gives up after this long. Default 10 s. */
  readonly readTimeoutMs?: number;
  readonly shipper?: PgShipperOptions;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  timer: Timer | undefined;
  done: boolean;
}

export interface VolumeWriterStatus {
  readonly epoch: Epoch;
  readonly vcl: Lsn;
  readonly vdl: Lsn;
  readonly fenced: string | undefined;
  readonly waitingCommits: number;
  readonly pgs: readonly { readonly pgId: PgId; readonly pgcl: Lsn; readonly lastLsn: Lsn; readonly outbox: number; readonly segments: readonly MemberStatus[] }[];
}

export interface VolumeWriterStats {
  readonly mtrs: number;
  readonly records: number;
  /** Bytes of encoded redo handed to the shippers (each sent to six segments). */
  readonly redoBytes: number;
  readonly pageReads: number;
  readonly pageReadRetries: number;
}

/** One PG as its segments describe themselves now (`VolumeWriter.segmentStates`). */
export interface PgSegmentStates {
  readonly pgId: PgId;
  /** The last record this writer handed the PG (or recovery found in it). */
  readonly lastLsn: Lsn;
  /** Each segment's state, null where it did not answer in time. */
  readonly states: readonly (SegmentState | null)[];
}

export class VolumeWriter implements VolumeIO {
  readonly pageSize: number;
  private readonly env: Env;
  private readonly log: Logger;
  private readonly tracker: DurablePointTracker;
  private readonly waiters = new CommitWaiters<Waiter>();
  private readonly shippers = new Map<PgId, PgShipper>();
  private readonly vdlListeners: ((vdl: Lsn) => void)[] = [];
  private volume: Volume;
  private fencedBy: BorealisError | undefined;
  private closed = false;
  /** Records of PGs being added to the volume, waiting for their segments to be placed. */
  private readonly growing = new Map<PgId, EncodedRecord[]>();
  private growth: Promise<void> | undefined;
  private readonly commitTimeoutMs: number;
  private readonly readTimeoutMs: number;
  private readonly host: ShipperHost;
  private counters = { mtrs: 0, records: 0, redoBytes: 0, pageReads: 0, pageReadRetries: 0 };

  constructor(private readonly options: VolumeWriterOptions) {
    this.env = options.env;
    this.log = options.env.log.child({ component: "volume-writer", volume: options.volume.volumeId });
    this.volume = options.volume;
    this.pageSize = options.volume.pageSize;
    this.commitTimeoutMs = options.commitTimeoutMs ?? 30_000;
    this.readTimeoutMs = options.readTimeoutMs ?? 10_000;
    this.tracker = new DurablePointTracker(options.trackerStart);
    this.waiters = new CommitWaiters<Waiter>(this.tracker.vdl);
    const self = this;
    this.host = {
      env: options.env,
      log: this.log,
      epochs: (pgId) => this.epochsOf(pgId),
      writerVdl: () => this.tracker.vdl,
      annulments: () => options.annulments,
      onAck: (pgId, member, scl) => this.onAck(pgId, member, scl),
      pgcl: (pgId) => this.tracker.pgcl(pgId),
      lastLsnInPg: (pgId) => this.tracker.lastLsnInPg(pgId),
      onFenced: (e) => self.fence(e),
    };
    for (const pg of options.volume.pgs) this.startShipper(pg);
  }

  // ------------------------------------------------------------------------------------- VolumeIO

  vdl(): Lsn {
    return this.tracker.vdl;
  }

  onVdl(listener: (vdl: Lsn) => void): void {
    this.vdlListeners.push(listener);
  }

  submit(mtr: MiniTransaction): void {
    if (this.fencedBy !== undefined) throw new BorealisError("WRITER_FENCED", `this writer was fenced: ${this.fencedBy.message}`);
    if (this.closed) throw new BorealisError("SHUTTING_DOWN", "the writer is shutting down");
    assert(mtr.epoch === this.options.epoch, 1, `MTR of epoch ${mtr.epoch} submitted to the writer of epoch ${this.options.epoch}`);
    assert(mtr.records.length > 0 && mtr.records[mtr.records.length - 1]!.record.lsn === mtr.commitLsn, 4, "an MTR ends with its CPL");
    const byPg = new Map<PgId, EncodedRecord[]>();
    for (const { pgId, record } of mtr.records) {
      assert(pgId === pgOfPage(record.pageNo, this.volume.pgPages), `record of page ${record.pageNo} filed under PG ${pgId}`);
      this.ensureTracked(pgId);
      assert(record.prevLsnInSegment === this.tracker.lastLsnInPg(pgId), 3, `record ${record.lsn} of PG ${pgId} links to ${record.prevLsnInSegment}, the PG's last record is ${this.tracker.lastLsnInPg(pgId)}`);
      this.tracker.recordSent(pgId, record.lsn, isCpl(record));
      const encoded = encodeRecord(record, { volumeId: this.volume.volumeId, pgId });
      this.counters.records++;
      this.counters.redoBytes += encoded.bytes.byteLength;
      let list = byPg.get(pgId);
      if (list === undefined) byPg.set(pgId, (list = []));
      list.push(encoded);
    }
    this.counters.mtrs++;
    for (const [pgId, records] of byPg) {
      const shipper = this.shippers.get(pgId);
      if (shipper !== undefined) shipper.push(records);
      else this.growing.get(pgId)!.push(...records);
    }
  }

  whenDurable(lsn: Lsn): Promise<void> {
    if (lsn <= this.tracker.vdl) return Promise.resolve();
    if (this.fencedBy !== undefined) return Promise.reject(this.outcomeUnknown(lsn, this.fencedBy.message));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined, done: false };
      w.timer = this.env.clock.setTimer(this.commitTimeoutMs, () => {
        if (w.done) return;
        w.done = true;
        // The records stay in the shippers' outboxes and go out when segments return.
        reject(durabilityWaitTimedOut(lsn, `not durable after ${this.commitTimeoutMs} ms (VDL ${this.tracker.vdl}): storage has no write quorum`));
      });
      const pending = this.waiters.add(lsn, w);
      if (!pending) {
        w.timer.cancel();
        w.done = true;
        resolve();
      }
    });
  }

  async readPage(pageNo: PageNo, readPoint: Lsn): Promise<{ bytes: Uint8Array; pageLsn: Lsn }> {
    const pgId = pgOfPage(pageNo, this.volume.pgPages);
    const shipper = this.shippers.get(pgId);
    if (shipper === undefined) {
      // A PG that does not exist yet (or whose segments are being placed) holds no durable page.
      if (this.growing.has(pgId) || pgId >= this.volume.pgs.length) return { bytes: new Uint8Array(this.pageSize), pageLsn: NO_LSN };
      throw new BorealisError("INTERNAL", `no shipper for PG ${pgId}`);
    }
    this.counters.pageReads++;
    const deadline = this.env.clock.nowMs() + this.readTimeoutMs;
    const epochs = this.epochsOf(pgId);
    const key = shipper.key;
    let lastError: unknown;
    for (let round = 0; ; round++) {
      const minScl = this.minSclFor(pgId, readPoint);
      const members = shipper.memberClients();
      // Segments known complete first, least recently refused first; the rest after.
      const order = this.env.random.int(members.length);
      const candidates = members
        .map((m, i) => members[(i + order) % members.length]!)
        .sort((a, b) => Number(shipper.sclOf(b.nodeId) >= minScl) - Number(shipper.sclOf(a.nodeId) >= minScl));
      for (const m of candidates) {
        if (round === 0 && shipper.sclOf(m.nodeId) < minScl) continue;
        if (m.client.state === "down" && round === 0) continue;
        try {
          const page = await m.client.request({ type: "getPage", key, epochs, pageNo, readPoint, minScl });
          if (page.bytes.byteLength !== this.pageSize) {
            throw new BorealisError("PROTOCOL_ERROR", `segment returned ${page.bytes.byteLength} bytes for a ${this.pageSize}-byte page`);
          }
          return { bytes: page.bytes, pageLsn: page.pageLsn };
        } catch (e) {
          lastError = e;
          this.counters.pageReadRetries++;
          if (isBorealisError(e, "READ_POINT_ABOVE_SCL") && typeof e.details.scl === "number") {
            shipper.noteScl(m.nodeId, e.details.scl as Lsn);
          } else if (isBorealisError(e, "EPOCH_NOT_ADOPTED") || isBorealisError(e, "SEGMENT_NOT_FOUND")) {
            shipper.reprobe(m.nodeId, isBorealisError(e, "EPOCH_NOT_ADOPTED"));
          } else if (isBorealisError(e, "STALE_VOLUME_EPOCH")) {
            this.fence(e);
            throw e;
          } else if (isBorealisError(e, "READ_POINT_BELOW_RETENTION") || isBorealisError(e, "PAGE_OUT_OF_RANGE")) {
            throw e;
          }
        }
      }
      if (this.env.clock.nowMs() >= deadline || this.closed) {
        throw new BorealisError("NO_QUORUM", `no segment of PG ${pgId} could serve page ${pageNo} at read point ${readPoint}`, { cause: String(lastError) });
      }
      await this.env.clock.sleep(Math.min(200, 5 * 2 ** Math.min(round, 6)));
    }
  }

  // --------------------------------------------------------------------------------------- status

  status(): VolumeWriterStatus {
    return {
      epoch: this.options.epoch,
      vcl: this.tracker.vcl,
      vdl: this.tracker.vdl,
      fenced: this.fencedBy?.message,
      waitingCommits: this.waiters.size,
      pgs: [...this.shippers.values()].map((s) => ({
        pgId: s.pgId, pgcl: this.tracker.pgcl(s.pgId), lastLsn: this.tracker.lastLsnInPg(s.pgId), outbox: s.outboxRecords, segments: s.status(),
      })),
    };
  }

  stats(): VolumeWriterStats {
    return { ...this.counters };
  }

  /**
   * Asks every segment of every PG for its state (one `getSegmentState` each, answered or not within
   * `timeoutMs`). For the writer's `GET /metrics`; nothing on the commit path waits for it.
   */
  async segmentStates(timeoutMs: number): Promise<PgSegmentStates[]> {
    return Promise.all([...this.shippers.values()].map(async (s): Promise<PgSegmentStates> => {
      const epochs = this.epochsOf(s.pgId);
      const states = await Promise.all(s.memberClients().map((m) =>
        m.client.request({ type: "getSegmentState", key: s.key, epochs }, { timeoutMs }).then((r) => r.state, () => null)));
      return { pgId: s.pgId, lastLsn: this.tracker.lastLsnInPg(s.pgId), states };
    }));
  }

  /** Stops shipping; commits still waiting are answered COMMIT_OUTCOME_UNKNOWN. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.shippers.values()) s.stop();
    for (const w of this.waiters.drain()) this.settle(w, this.outcomeUnknown(NO_LSN, "the writer is shutting down"));
  }

  // ------------------------------------------------------------------------------------- internals

  private epochsOf(pgId: PgId): Epochs {
    const pg = this.volume.pgs[pgId];
    return { volumeEpoch: this.options.epoch, membershipEpoch: pg?.membershipEpoch ?? (1 as Epoch) };
  }

  private minSclFor(pgId: PgId, readPoint: Lsn): Lsn {
    const bound = readPoint <= this.tracker.vdl ? this.tracker.pgcl(pgId) : this.tracker.lastLsnInPg(pgId);
    return (bound < readPoint ? bound : readPoint) as Lsn;
  }

  private startShipper(pg: ProtectionGroup): void {
    const members = pg.segments.map((s) => ({ nodeId: s.nodeId, client: this.options.pool.client(s.nodeId, s.address) }));
    const shipper = new PgShipper(this.host, pg.geometry, members, this.options.shipper);
    this.shippers.set(pg.pgId, shipper);
    if (!this.tracker.hasProtectionGroup(pg.pgId)) {
      this.tracker.addProtectionGroup(pg.pgId, simpleQuorumSet(members.map((m) => m.nodeId)));
    }
  }

  private onAck(pgId: PgId, member: NodeId, scl: Lsn): void {
    if (!this.tracker.onAck(pgId, member, scl)) return;
    const vdl = this.tracker.vdl;
    for (const w of this.waiters.onVdlAdvanced(vdl)) this.settle(w);
    for (const l of this.vdlListeners) l(vdl);
  }

  private settle(w: Waiter, error?: Error): void {
    if (w.done) return;
    w.done = true;
    w.timer?.cancel();
    if (error === undefined) w.resolve();
    else w.reject(error);
  }

  private outcomeUnknown(lsn: Lsn, why: string): BorealisError {
    return new BorealisError("COMMIT_OUTCOME_UNKNOWN", `commit at LSN ${lsn} may or may not be durable: ${why}`, { lsn });
  }

  private fence(e: BorealisError): void {
    if (this.fencedBy !== undefined) return;
    this.fencedBy = e;
    this.log.error("writer-fenced", { error: e.message });
    for (const s of this.shippers.values()) s.stop();
    for (const w of this.waiters.drain()) this.settle(w, this.outcomeUnknown(NO_LSN, `a newer writer took over (${e.message})`));
  }

  /**
   * A record for a PG beyond the volume's end: track it now (LSN order must be kept) under a
   * placeholder quorum set nobody can meet, and grow the volume in the background; the records wait
   * in `growing` until the PG's six segments are placed, then ship.
   */
  private ensureTracked(pgId: PgId): void {
    if (this.tracker.hasProtectionGroup(pgId)) return;
    const placeholder = simpleQuorumSet([1, 2, 3, 4, 5, 6].map((i) => NodeId(`unplaced-${pgId}-${i}`)));
    this.tracker.addProtectionGroup(pgId, placeholder);
    this.growing.set(pgId, []);
    this.growth ??= this.grow().finally(() => { this.growth = undefined; });
  }

  private async grow(): Promise<void> {
    for (let attempt = 0; this.growing.size > 0 && !this.closed; attempt++) {
      try {
        const wanted = Math.max(...this.growing.keys());
        while (this.volume.pgs.length <= wanted) {
          this.volume = await this.options.controlPlane.addProtectionGroup(this.volume.volumeId);
          this.log.info("volume-grew", { pgs: this.volume.pgs.length });
        }
        for (const [pgId, records] of [...this.growing]) {
          const pg = this.volume.pgs[pgId];
          if (pg === undefined) continue;
          this.growing.delete(pgId);
          this.startShipper(pg);
          this.tracker.setQuorumSet(pgId, simpleQuorumSet(pg.segments.map((s) => s.nodeId)));
          if (records.length > 0) this.shippers.get(pgId)!.push(records);
        }
      } catch (e) {
        this.log.warn("volume-growth-failed", { error: e, attempt });
        await this.env.clock.sleep(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)));
      }
    }
  }
}
