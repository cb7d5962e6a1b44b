/**
 * The invariant checkers, fed by the cluster's hooks as things happen, polled after every step, and
 * run in full at the end (`finalCheck`). Each check names the DESIGN.md invariant it guards.
 *
 * As things happen:
 * - every acknowledgement: VDL ≥ the commit's LSN, acknowledgements in LSN order (5); the commit
 *   is not annulled by any recorded recovery (12: no acknowledged commit lost; and a stale-epoch
 *   writer never succeeds — everything it commits after a successor recovered lies above that
 *   recovery's VDL, so an acknowledgement of it is exactly an acknowledged-then-annulled commit);
 * - every VDL a writer reports: monotonic, a CPL of its own or its recovered VDL (4), and never above
 *   the VDL of a later epoch's recovery (8, 12);
 * - every recovery the control plane records: its VDL is at least every earlier recovery's (8);
 * - every page read: no byte above the read point (7) — the answer equals the naive model's page
 *   at that read point exactly, and its page LSN is the model's;
 * - every storage-node start: each segment's SCL is at least what it was when the node was killed
 *   (2: what a node counted durable survives a crash — torn and lost unsynced writes included).
 * After every step: VCL monotonic and VDL ≤ VCL per writer (4).
 * At the end: see `finalCheck`.
 */
import { isBorealisError } from "../core/errors.js";
import { Lsn, PageNo, PgId, type Epoch } from "../core/types.js";
import type { SegmentState } from "../wire/messages.js";
import { VOLUME_ID, nodeSegments, type SimCluster, type SimNode, type SimWriter } from "./cluster.js";
import type { History, ModelMtr } from "./model.js";
import type { SimWorld } from "./world.js";

export interface Failure {
  readonly kind: string;
  readonly message: string;
  readonly atMs: number;
}

export interface CheckStats {
  acked: number;
  unknown: number;
  reads: number;
  readFailures: number;
  readFailureCodes: Record<string, number>;
  staleAcksBelowSuccessor: number;
  durabilityChecks: number;
  finalReads: number;
  finalSegmentReads: number;
  finalRecordsChecked: number;
  corruptRefusals: number;
}

export class Checker {
  readonly failures: Failure[] = [];
  readonly stats: CheckStats = {
    acked: 0, unknown: 0, reads: 0, readFailures: 0, readFailureCodes: {}, staleAcksBelowSuccessor: 0,
    durabilityChecks: 0, finalReads: 0, finalSegmentReads: 0, finalRecordsChecked: 0, corruptRefusals: 0,
  };
  /** Per writer: its MTRs in submission (= LSN) order, and how many of them are settled from the front. */
  private readonly byWriter = new Map<string, ModelMtr[]>();
  private readonly cpls = new Map<string, Set<number>>();
  private readonly writers = new Map<string, SimWriter>();
  /** Writers' recovered starts, by name. */
  private readonly recoveredVdl = new Map<string, number>();
  /** Nodes whose page store the nemesis corrupted at rest: they may refuse (never serve) those bytes. */
  readonly corruptNodes = new Set<string>();
  /** Set while a beyond-tolerance outage holds: no VDL may advance past these marks. */
  frozen: { readonly sinceMs: number; readonly vdlByWriter: Map<string, number> } | undefined;

  constructor(private readonly world: SimWorld, private readonly history: History) {}

  get failed(): boolean {
    return this.failures.length > 0;
  }

  fail(kind: string, message: string): void {
    const f = { kind, message, atMs: this.world.scheduler.now() };
    this.failures.push(f);
    this.world.trace("CHECK-FAILED", { kind, message });
  }

  // ------------------------------------------------------------------------------------ commits

  onSubmit(writer: string, m: ModelMtr): void {
    try {
      this.history.addMtr(m);
    } catch (e) {
      this.fail("invariant-1", e instanceof Error ? e.message : String(e));
      return;
    }
    let list = this.byWriter.get(writer);
    if (list === undefined) this.byWriter.set(writer, (list = []));
    list.push(m);
    let cpls = this.cpls.get(writer);
    if (cpls === undefined) this.cpls.set(writer, (cpls = new Set()));
    cpls.add(m.commitLsn);
  }

  onAck(writer: string, m: ModelMtr): void {
    this.stats.acked++;
    m.ackedAtMs = this.world.scheduler.now();
    const w = this.writers.get(writer);
    const vdl = w?.vw?.vdl() ?? 0;
    if (vdl < m.commitLsn) this.fail("invariant-5", `${writer} acknowledged commit ${m.commitLsn} with VDL ${vdl}`);
    const list = this.byWriter.get(writer) ?? [];
    for (const earlier of list) {
      if (earlier.commitLsn >= m.commitLsn) break;
      if (earlier.status === "pending") {
        this.fail("invariant-5", `${writer} acknowledged commit ${m.commitLsn} before commit ${earlier.commitLsn} (acknowledgements out of LSN order)`);
        break;
      }
    }
    if (this.frozen !== undefined && (this.frozen.vdlByWriter.get(writer) ?? Infinity) < m.commitLsn) {
      this.fail("beyond-tolerance", `${writer} acknowledged commit ${m.commitLsn} while 3 segments of every PG were down (VDL was ${this.frozen.vdlByWriter.get(writer)})`);
    }
    const annulled = this.history.annulledBy(m);
    if (annulled !== undefined) {
      this.fail("stale-writer", `${writer} (epoch ${m.epoch}) acknowledged commit ${m.commitLsn} after recovery of epoch ${annulled.epoch} annulled everything above ${annulled.vdl}`);
    } else if (this.history.recoveries.some((r) => r.epoch > m.epoch)) {
      // Acknowledged by a writer already superseded, but durable before its successor recovered: fine.
      this.stats.staleAcksBelowSuccessor++;
    }
  }

  onUnknown(writer: string, m: ModelMtr, e: unknown): void {
    this.stats.unknown++;
    if (!isBorealisError(e, "COMMIT_OUTCOME_UNKNOWN")) {
      this.fail("commit-error", `${writer}: commit ${m.commitLsn} was answered ${String(e)}, not COMMIT_OUTCOME_UNKNOWN`);
    }
  }

  // ------------------------------------------------------------------------------------ durable point

  onRecovered(w: SimWriter, vdl: number): void {
    if (this.frozen !== undefined) this.fail("beyond-tolerance", `${w.name} finished recovery (epoch ${w.epoch}, VDL ${vdl}) while 3 of 6 segments were down`);
    this.writers.set(w.name, w);
    this.recoveredVdl.set(w.name, vdl);
  }

  onVdl(w: SimWriter, vdl: number): void {
    if (vdl < w.maxVdl) this.fail("invariant-4", `${w.name}: VDL went back from ${w.maxVdl} to ${vdl}`);
    if (vdl !== this.recoveredVdl.get(w.name) && !(this.cpls.get(w.name)?.has(vdl) ?? false)) {
      this.fail("invariant-4", `${w.name}: VDL ${vdl} is not a CPL of this writer`);
    }
    if (this.frozen !== undefined && vdl > (this.frozen.vdlByWriter.get(w.name) ?? Infinity)) {
      this.fail("beyond-tolerance", `${w.name}: VDL advanced to ${vdl} while 3 of 6 segments were down (was ${this.frozen.vdlByWriter.get(w.name)})`);
    }
    w.maxVdl = Math.max(w.maxVdl, vdl);
    this.crossEpoch();
  }

  onRecoveryRecorded(epoch: Epoch, vdl: Lsn, truncateThrough: Lsn): void {
    const earlier = this.history.recoveries;
    for (const r of earlier) {
      if (r.epoch < epoch && r.vdl > vdl) this.fail("invariant-8", `recovery of epoch ${epoch} recorded VDL ${vdl}, below epoch ${r.epoch}'s ${r.vdl}`);
    }
    this.history.addRecovery({ epoch, vdl, truncateThrough });
    this.world.trace("recovery-recorded", { epoch, vdl, truncateThrough });
    for (const m of this.history.mtrs) {
      if (m.status === "acked" && m.epoch < epoch && m.commitLsn > vdl) {
        this.fail("invariant-12", `acknowledged commit ${m.commitLsn} (epoch ${m.epoch}, ${m.writer}) lost: recovery of epoch ${epoch} recovered VDL ${vdl}`);
      }
    }
    this.crossEpoch();
  }

  /**
   * The control plane came back from a crash. Every recovery it answered was durable first, so it
   * must still hold each one (the store writes its file atomically before it answers); one it holds
   * that nobody heard of was recorded just before the crash, and the next writer will apply it.
   */
  onControlPlaneReopened(recoveries: readonly { epoch: Epoch; vdl: Lsn; truncateThrough: Lsn }[]): void {
    for (const r of this.history.recoveries) {
      const kept = recoveries.find((x) => x.epoch === r.epoch);
      if (kept === undefined || kept.vdl !== r.vdl) {
        const how = this.foundAfterCrash.has(r.epoch) ? "found on its disk after an earlier crash, and served since," : "answered";
        this.fail("control-plane", `the control plane ${how} the recovery of epoch ${r.epoch} (VDL ${r.vdl}) and lost it in a crash (now ${kept === undefined ? "absent" : `VDL ${kept.vdl}`})`);
      }
    }
    for (const r of recoveries) {
      if (this.history.recoveries.some((x) => x.epoch === r.epoch)) continue;
      this.world.trace("recovery-found-after-crash", { epoch: r.epoch, vdl: r.vdl });
      this.foundAfterCrash.add(r.epoch);
      this.onRecoveryRecorded(r.epoch, r.vdl, r.truncateThrough);
    }
  }

  /** Recoveries learned from the control plane's disk after a crash rather than from an answer. */
  private readonly foundAfterCrash = new Set<number>();

  /** No writer's VDL is above the VDL a later epoch's recovery recorded (durable data was annulled). */
  private crossEpoch(): void {
    for (const w of this.writers.values()) {
      if (w.epoch === undefined) continue;
      for (const r of this.history.recoveries) {
        if (r.epoch > w.epoch && w.maxVdl > r.vdl) {
          this.fail("invariant-8", `${w.name} (epoch ${w.epoch}) reached VDL ${w.maxVdl}, above the VDL ${r.vdl} recovered at epoch ${r.epoch}`);
          w.maxVdl = r.vdl; // report once
        }
      }
    }
  }

  /** After every step: VCL monotonic and never below VDL. */
  afterStep(cluster: SimCluster): void {
    for (const w of cluster.writers) {
      if (w.phase !== "serving" || w.vw === undefined || !w.process.alive) continue;
      const s = w.vw.status();
      if (s.vcl < w.maxVcl) this.fail("invariant-4", `${w.name}: VCL went back from ${w.maxVcl} to ${s.vcl}`);
      if (s.vdl > s.vcl) this.fail("invariant-4", `${w.name}: VDL ${s.vdl} above VCL ${s.vcl}`);
      w.maxVcl = Math.max(w.maxVcl, s.vcl);
    }
    this.crossEpoch();
  }

  // ---------------------------------------------------------------------------------------- reads

  onRead(writer: string, pageNo: number, readPoint: number, r: { bytes: Uint8Array; pageLsn: number }): void {
    this.stats.reads++;
    this.checkPage(`${writer} read`, pageNo, readPoint, r);
  }

  checkPage(who: string, pageNo: number, readPoint: number, r: { bytes: Uint8Array; pageLsn: number }): boolean {
    if (r.pageLsn > readPoint) {
      this.fail("invariant-7", `${who} of page ${pageNo} at read point ${readPoint} returned page LSN ${r.pageLsn}`);
      return false;
    }
    const want = this.history.pageAt(pageNo, readPoint);
    if (r.pageLsn !== want.lsn || !equalBytes(r.bytes, want.bytes)) {
      const diffAt = firstDiff(r.bytes, want.bytes);
      this.fail("page-bytes", `${who} of page ${pageNo} at read point ${readPoint}: page LSN ${r.pageLsn}, model ${want.lsn}; bytes ${diffAt < 0 ? "equal" : `differ from byte ${diffAt}`}`);
      return false;
    }
    return true;
  }

  onReadFailed(writer: string, pageNo: number, readPoint: number, e: unknown): void {
    this.stats.readFailures++;
    const code = isBorealisError(e) ? e.code : "non-borealis";
    this.stats.readFailureCodes[code] = (this.stats.readFailureCodes[code] ?? 0) + 1;
    if (code === "non-borealis" || code === "INTERNAL" || code === "PROTOCOL_ERROR" || code === "PAGE_OUT_OF_RANGE") {
      this.fail("read-error", `${writer} read of page ${pageNo} at ${readPoint} failed: ${String(e)}`);
    }
  }

  // ---------------------------------------------------------------------------------------- storage

  /** Invariant 2: a restarted node holds everything it counted in an SCL before it died. */
  onNodeStarted(n: SimNode, states: readonly SegmentState[]): void {
    const before = n.sclAtKill;
    const skip = n.skipDurabilityCheck;
    n.sclAtKill = undefined;
    n.skipDurabilityCheck = false;
    if (before === undefined || skip) return;
    this.stats.durabilityChecks++;
    for (const [pg, scl] of before) {
      const now = states.find((s) => s.geometry.pgId === pg);
      if (now === undefined) {
        this.fail("invariant-2", `${n.id} lost segment ${pg} across a restart (SCL was ${scl})`);
      } else if (now.scl < scl) {
        this.fail("invariant-2", `${n.id} segment ${pg}: SCL ${scl} before the crash, ${now.scl} after (an acknowledged record was not durable)`);
      }
    }
  }

  // ---------------------------------------------------------------------------------------- final

  /**
   * The end of a run, after healing and a fresh writer's recovery:
   * - every acknowledged commit survives (12) — checked against every recorded recovery;
   * - the fresh writer reads every page at several read points (the recovered VDL, every earlier
   *   recovery's VDL, a sample of acknowledged commits, its own latest VDL) and gets the model;
   * - every segment that is complete at such a read point (SCL ≥ the PG's last surviving record ≤ it)
   *   serves every page of its PG at it with the model's bytes: identical bytes on every segment
   *   complete at the same LSN; a corrupt copy must be refused, never served (9);
   * - every segment's chain up to its SCL is unbroken (3) and consists exactly of surviving records,
   *   byte for byte as the writer produced them;
   * - enough segments of every PG are complete that a write quorum exists (repair works).
   */
  async finalCheck(cluster: SimCluster, w: SimWriter, options: { readonly run: <T>(p: Promise<T>) => Promise<T> }): Promise<void> {
    const h = this.history;
    for (const m of h.mtrs) {
      if (m.status !== "acked") continue;
      const r = h.annulledBy(m);
      if (r !== undefined) this.fail("invariant-12", `acknowledged commit ${m.commitLsn} (${m.writer}) was annulled by the recovery of epoch ${r.epoch} (VDL ${r.vdl})`);
    }
    const vw = w.vw;
    if (vw === undefined || w.epoch === undefined) {
      this.fail("liveness", "no writer recovered at the end");
      return;
    }
    const vdl = vw.vdl();
    const points = new Set<number>([vdl, w.recovered!.report.vdl]);
    for (const r of h.recoveries) if (r.vdl > 0) points.add(r.vdl);
    const acked = h.mtrs.filter((m) => m.status === "acked").map((m) => m.commitLsn as number);
    const rnd = this.world.random.fork();
    for (let i = 0; i < 8 && acked.length > 0; i++) points.add(acked[rnd.int(acked.length)]!);
    const sorted = [...points].filter((p) => p <= vdl).sort((a, b) => a - b);
    this.world.trace("final-read-points", { points: sorted });

    // 1. Through the writer's page reader.
    for (const p of sorted) {
      const reads: Promise<void>[] = [];
      for (let page = 1; page <= h.pageCount; page++) {
        reads.push(vw.readPage(PageNo(page), Lsn(p)).then(
          (r) => { this.stats.finalReads++; this.checkPage("final read", page, p, r); },
          (e: unknown) => this.fail("liveness", `final read of page ${page} at ${p} failed: ${String(e)}`),
        ));
      }
      await options.run(Promise.all(reads));
      if (this.failed) return;
    }

    // 2. Every segment, directly, at every read point it is complete at.
    const epochs = { volumeEpoch: w.epoch, membershipEpoch: 1 as Epoch };
    const top = sorted[sorted.length - 1]!;
    const completeAtTop = new Map<number, string[]>();
    for (const n of cluster.nodes) {
      if (n.phase !== "up" || n.node === undefined) continue;
      const node = n.node;
      for (let pg = 0; pg < h.pgCount; pg++) {
        const key = { volumeId: VOLUME_ID, pgId: PgId(pg) };
        let adopted = true;
        let completeAt = -1;
        for (const p of sorted) {
          const minScl = h.lastOfPgAt(pg, p);
          let complete = true;
          for (let page = 1 + pg * h.pgPages; page <= (pg + 1) * h.pgPages; page++) {
            let answer;
            try {
              answer = await options.run(node.handle({ type: "getPage", key, epochs, pageNo: PageNo(page), readPoint: Lsn(p), minScl: Lsn(minScl) }));
            } catch (e) {
              const code = isBorealisError(e) ? e.code : "non-borealis";
              if (code === "READ_POINT_ABOVE_SCL" || code === "EPOCH_NOT_ADOPTED" || code === "SEGMENT_NOT_FOUND") {
                if (code !== "READ_POINT_ABOVE_SCL") adopted = false;
                complete = false;
                break;
              }
              // A corrupt copy is refused, never served (9): the segment is complete but cannot serve this page.
              if ((code === "CORRUPT_DATA" || code === "CHECKSUM_MISMATCH") && this.corruptNodes.has(n.id)) {
                this.stats.corruptRefusals++;
                continue;
              }
              this.fail("segment-read", `${n.id} PG ${pg} page ${page} at ${p}: ${String(e)}`);
              return;
            }
            if (answer.type !== "page") continue;
            this.stats.finalSegmentReads++;
            if (!this.checkPage(`${n.id} segment ${pg}`, page, p, answer)) return;
          }
          if (complete) completeAt = p;
        }
        if (completeAt === top) {
          let list = completeAtTop.get(pg);
          if (list === undefined) completeAtTop.set(pg, (list = []));
          list.push(n.id);
        }
        await this.checkChain(n, pg, adopted, options.run);
        if (this.failed) return;
      }
    }
    // After healing and settling, every segment catches up (all six copies, the reliability plan's
    // "6/6 after heal"): a segment left behind for good means repair is stuck, and the PG runs on
    // fewer copies than it should. Nodes corrupted for good (nothing repairs a page store yet) are spared.
    const spared = cluster.nodes.filter((n) => this.corruptNodes.has(n.id)).length;
    for (let pg = 0; pg < h.pgCount; pg++) {
      const complete = completeAtTop.get(pg) ?? [];
      if (complete.length < 6 - spared) {
        const missing = cluster.nodes.filter((n) => !complete.includes(n.id)).map((n) => n.id);
        this.fail("liveness", `PG ${pg}: segments ${missing.join(",")} not complete at ${top} after healing (${complete.length} of 6)`);
      }
    }
    this.world.trace("final-complete", Object.fromEntries([...completeAtTop].map(([pg, l]) => [pg, l.join(",")])));
  }

  /** Invariant 3 and 9 on one segment: its records up to SCL chain without a gap and are the writer's. */
  private async checkChain(n: SimNode, pg: number, adopted: boolean, run: <T>(p: Promise<T>) => Promise<T>): Promise<void> {
    const node = n.node!;
    const key = { volumeId: VOLUME_ID, pgId: PgId(pg) };
    const state = (await run(nodeSegments(node))).find((s) => s.geometry.pgId === pg);
    if (state === undefined) return;
    let cursor = state.retentionLsn as number;
    // The retention point need not be a chain tip; from 0, the first record links to 0.
    let prev = cursor === 0 ? 0 : -1;
    for (let round = 0; round < 10_000 && cursor < state.scl; round++) {
      let chunk;
      try {
        chunk = await run(node.handle({ type: "readRecords", key, epochs: state.epochs, afterLsn: Lsn(cursor), upToLsn: state.scl, maxBytes: 1 << 20 }));
      } catch (e) {
        if ((isBorealisError(e, "CORRUPT_DATA") || isBorealisError(e, "CHECKSUM_MISMATCH")) && this.corruptNodes.has(n.id)) {
          this.stats.corruptRefusals++;
          return;
        }
        this.fail("invariant-3", `${n.id} PG ${pg}: readRecords after ${cursor} failed: ${String(e)}`);
        return;
      }
      if (chunk.type !== "records" || chunk.records.length === 0) break;
      for (const r of chunk.records) {
        if (r.lsn > state.scl) break;
        this.stats.finalRecordsChecked++;
        if (prev >= 0 && r.prevLsnInSegment !== prev) {
          this.fail("invariant-3", `${n.id} PG ${pg}: record ${r.lsn} links to ${r.prevLsnInSegment}, the chain's previous record is ${prev} (SCL ${state.scl})`);
          return;
        }
        prev = r.lsn;
        const want = this.history.records.get(r.lsn);
        if (want === undefined || want.pgId !== pg || want.epoch !== r.epoch || want.pageNo !== r.pageNo || want.flags !== r.flags ||
          want.prevLsnInSegment !== r.prevLsnInSegment || want.prevLsnInVolume !== r.prevLsnInVolume || !equalBytes(want.payload, r.payload)) {
          this.fail("invariant-9", `${n.id} PG ${pg} holds a record at LSN ${r.lsn} (epoch ${r.epoch}, page ${r.pageNo}) that is not the one the writer produced`);
          return;
        }
        // A segment that applied the latest annulment (it serves pages at the latest epoch) chains
        // only surviving records; one that missed it may still hold annulled ones, unserved.
        if (adopted && !this.history.survives(want.mtr)) {
          this.fail("invariant-8", `${n.id} PG ${pg} at the latest epoch still chains annulled record ${r.lsn} (epoch ${r.epoch}) below its SCL ${state.scl}`);
          return;
        }
        cursor = r.lsn;
      }
      if (!chunk.more) break;
    }
    if (prev > 0 && prev !== state.scl) this.fail("invariant-3", `${n.id} PG ${pg}: the chain read ends at ${prev}, SCL is ${state.scl}`);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.byteLength === b.byteLength ? -1 : n;
}
