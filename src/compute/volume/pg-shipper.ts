/**
 * Ships one protection group's records to its six segments and turns their acknowledgements into
 * SCLs for the durable-point tracker (DESIGN.md component 2; Aurora P18 §2.2).
 *
 * The outbox holds the PG's records in LSN order — a contiguous stretch of the PG's segment chain —
 * until every segment has acknowledged them, or, when it outgrows its bound, until a write quorum has
 * (PGCL): a segment left behind then catches up from a peer (catch-up.ts). Each segment has its own
 * cursor into the outbox and a window of write batches in flight; records that arrive while the window
 * is full go out together in the next batch, so batches grow with load and there is no boxcar timer.
 *
 * Per segment, a small state machine:
 *
 *     probing ──state known──▶ ready ──error──▶ backoff ──timer──▶ probing
 *        │  ▲                    │
 *        │  └──── caught up ── catchingUp ◀── behind the outbox
 *        └─ SEGMENT_NOT_FOUND → open; epochs behind this writer's, or a write refused with
 *           EPOCH_NOT_ADOPTED → annul (with every recovery's annulment)
 *
 * A segment that was down during this writer's recovery comes back at an older epoch (or with the
 * new epoch's fence but not its annulment, ARCHITECTURE D7). `getSegmentState` answers it at any
 * newer epoch, so the probe itself must notice and make it adopt this writer's epoch; otherwise the
 * segment never takes a write again and the PG runs on fewer copies for good.
 *
 * A segment that answers STALE_VOLUME_EPOCH has seen a newer writer: this writer is fenced
 * (invariant 8) and stops.
 */
import type { Env, Logger, Timer } from "../../env/env.js";
import { assert } from "../../core/assert.js";
import { BorealisError, isBorealisError } from "../../core/errors.js";
import { NO_LSN, type Epochs, type Lsn, type NodeId, type PgId, type SegmentKey } from "../../core/types.js";
import type { SegmentGeometry } from "../../wire/messages.js";
import type { EncodedRecord } from "../../wire/record.js";
import type { StorageClient } from "../../wire/storage-client.js";
import type { Annulment } from "../../wire/messages.js";
import { catchUpSegment } from "./catch-up.js";

export interface ShipperHost {
  readonly env: Env;
  readonly log: Logger;
  epochs(pgId: PgId): Epochs;
  writerVdl(): Lsn;
  /** Every recovery's annulment, this writer's last (a segment adopting the epoch applies them all). */
  annulments(): readonly Annulment[];
  /** A segment's SCL went up. */
  onAck(pgId: PgId, member: NodeId, scl: Lsn): void;
  /** PGCL of this PG (records at or below it may leave the outbox once it is over its bound). */
  pgcl(pgId: PgId): Lsn;
  /** The last record handed to this PG. */
  lastLsnInPg(pgId: PgId): Lsn;
  /** A segment told us a newer writer exists. */
  onFenced(error: BorealisError): void;
}

export interface ShipperMember {
  readonly nodeId: NodeId;
  readonly client: StorageClient;
}

export interface PgShipperOptions {
  /**
   * Write batches in flight per segment. Default 2: enough to keep a segment busy (one batch on the
   * wire while the node fsyncs the other), few enough that under load MTRs queue behind them and
   * leave together — a storage node's cost is mostly per batch (frame, hot-log append, ack), so
   * fewer, fuller batches cut its CPU per commit (docs/ARCHITECTURE.md D10, measured there).
   */
  readonly window?: number;
  /** Bytes of records per write batch at most. Default 256 KiB. */
  readonly maxBatchBytes?: number;
  /** Bytes the outbox keeps for segments that lag behind a write quorum. Default 32 MiB. */
  readonly maxOutboxBytes?: number;
  /** Retry delay after an error, doubling up to the max. Defaults 20 ms and 1 s. */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
}

type MemberState = "probing" | "ready" | "backoff" | "catchingUp" | "stopped";

class Member {
  /** Highest SCL the segment reported (acks, state probes). */
  scl: Lsn = NO_LSN;
  /** Highest LSN sent on the current attempt; reset to `scl` after an error. */
  sentThrough: Lsn = NO_LSN;
  inFlight = 0;
  state: MemberState = "probing";
  failures = 0;
  timer: Timer | undefined;
  lastError: string | undefined;
  /**
   * A write was refused with EPOCH_NOT_ADOPTED: the next probe sends `annul` whatever the segment's
   * state says (its fence may already be at this epoch while the annulment is missing). Cleared by
   * the next acknowledged write.
   */
  mustAdopt = false;

  constructor(readonly nodeId: NodeId, readonly client: StorageClient) {}
}

export interface MemberStatus {
  readonly nodeId: NodeId;
  readonly state: MemberState;
  readonly scl: Lsn;
  readonly inFlight: number;
  readonly lastError: string | undefined;
}

export class PgShipper {
  readonly key: SegmentKey;
  private readonly members: Member[];
  private outbox: EncodedRecord[] = [];
  private head = 0;
  private outboxBytes = 0;
  private pumpScheduled = false;
  private stopped = false;
  private readonly window: number;
  private readonly maxBatchBytes: number;
  private readonly maxOutboxBytes: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;

  constructor(
    private readonly host: ShipperHost,
    readonly geometry: SegmentGeometry,
    members: readonly ShipperMember[],
    options: PgShipperOptions = {},
  ) {
    assert(members.length === 6 && new Set(members.map((m) => m.nodeId)).size === 6, `PG ${geometry.pgId} has six distinct segments`);
    this.key = { volumeId: geometry.volumeId, pgId: geometry.pgId };
    this.members = members.map((m) => new Member(m.nodeId, m.client));
    this.window = options.window ?? 2;
    this.maxBatchBytes = options.maxBatchBytes ?? 256 * 1024;
    this.maxOutboxBytes = options.maxOutboxBytes ?? 32 * 1024 * 1024;
    this.retryInitialMs = options.retryInitialMs ?? 20;
    this.retryMaxMs = options.retryMaxMs ?? 1000;
    for (const m of this.members) this.probe(m);
  }

  get pgId(): PgId {
    return this.geometry.pgId;
  }

  /** SCL last reported by each segment: the page reader routes by it. */
  sclOf(nodeId: NodeId): Lsn {
    return this.members.find((m) => m.nodeId === nodeId)?.scl ?? NO_LSN;
  }

  /** A segment answered a read with its SCL: remember it (never lowers). */
  noteScl(nodeId: NodeId, scl: Lsn): void {
    const m = this.members.find((x) => x.nodeId === nodeId);
    if (m !== undefined && scl > m.scl) m.scl = scl;
  }

  memberClients(): readonly ShipperMember[] {
    return this.members;
  }

  status(): MemberStatus[] {
    return this.members.map((m) => ({ nodeId: m.nodeId, state: m.state, scl: m.scl, inFlight: m.inFlight, lastError: m.lastError }));
  }

  get outboxRecords(): number {
    return this.outbox.length - this.head;
  }

  /** Something is wrong with a segment (a read found it behind its epoch): probe it again. */
  reprobe(nodeId: NodeId, epochNotAdopted = false): void {
    const m = this.members.find((x) => x.nodeId === nodeId);
    if (m === undefined) return;
    if (epochNotAdopted) m.mustAdopt = true;
    if (m.state === "ready") this.probe(m);
  }

  /** Appends records of this PG, in LSN order, continuing its chain. */
  push(records: readonly EncodedRecord[]): void {
    assert(!this.stopped, "push after stop");
    for (const r of records) {
      const last = this.outbox.length > this.head ? this.outbox[this.outbox.length - 1]! : undefined;
      assert(last === undefined || r.prevLsnInSegment === last.lsn, 3, `PG ${this.pgId}: record ${r.lsn} links to ${r.prevLsnInSegment}, the outbox ends at ${last?.lsn}`);
      this.outbox.push(r);
      this.outboxBytes += r.bytes.byteLength;
    }
    this.schedulePump();
  }

  stop(): void {
    this.stopped = true;
    for (const m of this.members) {
      m.state = "stopped";
      m.timer?.cancel();
    }
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // Records submitted in the same turn of the event loop leave in one batch per segment.
    queueMicrotask(() => {
      this.pumpScheduled = false;
      for (const m of this.members) this.pump(m);
    });
  }

  private pump(m: Member): void {
    while (!this.stopped && m.state === "ready" && m.inFlight < this.window) {
      const from = m.sentThrough > m.scl ? m.sentThrough : m.scl;
      if (this.head === this.outbox.length) {
        // Nothing buffered; a segment still short of the PG's last record needs a peer's copy.
        if (from < this.host.lastLsnInPg(this.pgId) && m.inFlight === 0) this.catchUp(m, this.host.lastLsnInPg(this.pgId));
        return;
      }
      const first = this.outbox[this.head]!;
      if (from < first.prevLsnInSegment) {
        if (m.inFlight === 0) this.catchUp(m, first.prevLsnInSegment);
        return;
      }
      let i = this.indexAfter(from);
      if (i === this.outbox.length) return;
      const batch: EncodedRecord[] = [];
      let bytes = 0;
      while (i < this.outbox.length && (batch.length === 0 || bytes + this.outbox[i]!.bytes.byteLength <= this.maxBatchBytes)) {
        const r = this.outbox[i++]!;
        batch.push(r);
        bytes += r.bytes.byteLength;
      }
      this.send(m, batch);
    }
  }

  /** Index of the first outbox record with LSN > lsn (binary search: the outbox is in LSN order). */
  private indexAfter(lsn: Lsn): number {
    let lo = this.head;
    let hi = this.outbox.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.outbox[mid]!.lsn <= lsn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private send(m: Member, records: EncodedRecord[]): void {
    m.inFlight++;
    m.sentThrough = records[records.length - 1]!.lsn;
    m.client.request({
      type: "writeBatch", key: this.key, epochs: this.host.epochs(this.pgId), writerVdl: this.host.writerVdl(), records,
    }).then(
      (ack) => {
        m.inFlight--;
        m.failures = 0;
        m.mustAdopt = false;
        this.onScl(m, ack.scl);
        this.pump(m);
      },
      (e: unknown) => {
        m.inFlight--;
        this.onError(m, e, "write");
      },
    );
  }

  private onScl(m: Member, scl: Lsn): void {
    if (scl > m.scl) {
      m.scl = scl;
      this.host.onAck(this.pgId, m.nodeId, scl);
    }
    this.trim();
  }

  /** Drops records every segment holds, or, past the bound, records a write quorum holds. */
  private trim(): void {
    let minScl = Infinity;
    for (const m of this.members) if (m.scl < minScl) minScl = m.scl;
    const pgcl = this.host.pgcl(this.pgId);
    while (this.head < this.outbox.length) {
      const r = this.outbox[this.head]!;
      if (r.lsn > minScl && !(this.outboxBytes > this.maxOutboxBytes && r.lsn <= pgcl)) break;
      this.outboxBytes -= r.bytes.byteLength;
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.outbox.length) {
      this.outbox = this.outbox.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Reacts to a failed request. Only the request belonging to the segment's current state counts:
   * a write batch that fails while the segment is already being probed again says nothing new.
   */
  private onError(m: Member, e: unknown, what: "write" | "probe" | "catch-up"): void {
    if (this.stopped || m.state === "stopped") return;
    const current = what === "write" ? "ready" : what === "probe" ? "probing" : "catchingUp";
    if (m.state !== current) return;
    const error = e instanceof BorealisError ? e : new BorealisError("INTERNAL", e instanceof Error ? e.message : String(e));
    m.lastError = `${what}: ${error.code}: ${error.message}`;
    if (error.code === "STALE_VOLUME_EPOCH") {
      this.host.onFenced(error);
      return;
    }
    if (error.code === "EPOCH_NOT_ADOPTED") {
      // Annul first; if an annulment already failed to cure it (a conflict it does not cover), back
      // off rather than spin between probe and refused write.
      const again = m.mustAdopt;
      m.mustAdopt = true;
      if (again || what === "probe") this.backoff(m);
      else this.probe(m);
      return;
    }
    if (what === "write" && error.code === "SEGMENT_NOT_FOUND") {
      this.probe(m);
      return;
    }
    this.backoff(m);
  }

  private backoff(m: Member): void {
    if (m.state === "backoff" || m.state === "stopped") return;
    m.state = "backoff";
    m.failures++;
    const delay = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** Math.min(m.failures - 1, 16));
    const jittered = delay / 2 + this.host.env.random.float() * delay / 2;
    if (m.failures === 1 || m.failures % 20 === 0) {
      this.host.log.warn("segment-unreachable", { pg: this.pgId, node: m.nodeId, failures: m.failures, error: m.lastError });
    }
    m.timer = this.host.env.clock.setTimer(jittered, () => {
      m.timer = undefined;
      if (m.state === "backoff") this.probe(m);
    });
  }

  /**
   * Learns where a segment stands before sending it anything: opens it if the node lost it, makes it
   * adopt this writer's epoch with every annulment (invariant 8), and resumes sending from its SCL.
   */
  private probe(m: Member): void {
    if (this.stopped) return;
    m.state = "probing";
    const epochs = this.host.epochs(this.pgId);
    const run = async (): Promise<void> => {
      let state;
      try {
        state = (await m.client.request({ type: "getSegmentState", key: this.key, epochs })).state;
        // The segment answers state requests at any newer epoch; writes at this one it refuses until
        // it has adopted it, annulments included (a segment that was down during the recovery).
        if (m.mustAdopt || state.epochs.volumeEpoch < epochs.volumeEpoch || state.epochs.membershipEpoch < epochs.membershipEpoch) {
          state = await this.adopt(m, epochs);
        }
      } catch (e) {
        if (isBorealisError(e, "SEGMENT_NOT_FOUND")) {
          await m.client.request({ type: "openSegment", geometry: this.geometry, epochs });
          state = await this.adopt(m, epochs);
        } else if (isBorealisError(e, "EPOCH_NOT_ADOPTED")) {
          state = await this.adopt(m, epochs);
        } else {
          throw e;
        }
      }
      if (m.state !== "probing") return;
      if (state.scl < m.scl) {
        // The node holds less than it once acknowledged (a lost or repaired disk): ship from what it
        // has. The tracker keeps the old SCL; this is one of the failures the quorum absorbs.
        this.host.log.warn("segment-scl-went-back", { pg: this.pgId, node: m.nodeId, was: m.scl, now: state.scl });
        m.scl = state.scl;
      }
      m.sentThrough = state.scl;
      // After a refusal the adoption is only proven by an acknowledged write: keep the backoff growing.
      if (!m.mustAdopt) m.failures = 0;
      m.state = "ready";
      this.onScl(m, state.scl);
      this.pump(m);
    };
    run().catch((e: unknown) => this.onError(m, e, "probe"));
  }

  private async adopt(m: Member, epochs: Epochs) {
    const r = await m.client.request({ type: "annul", key: this.key, epochs, annulments: this.host.annulments() });
    return r.state;
  }

  /** Copies what the segment lacks up to `target` from a peer that has it, then resumes shipping. */
  private catchUp(m: Member, target: Lsn): void {
    const donor = this.members
      .filter((d) => d !== m && d.state === "ready" && d.scl >= target)
      .sort((a, b) => a.inFlight - b.inFlight)[0];
    if (donor === undefined) {
      this.backoff(m);
      return;
    }
    m.state = "catchingUp";
    this.host.log.info("segment-catch-up", { pg: this.pgId, node: m.nodeId, from: m.scl, to: target, donor: donor.nodeId });
    catchUpSegment(this.key, this.host.epochs(this.pgId), donor.client, m.client, m.scl, target, { writerVdl: () => this.host.writerVdl() })
      .then((scl) => {
        if (m.state !== "catchingUp") return;
        m.state = "ready";
        m.sentThrough = scl;
        this.onScl(m, scl);
        this.pump(m);
      }, (e: unknown) => this.onError(m, e, "catch-up"));
  }
}
