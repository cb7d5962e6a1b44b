/**
 * Writer recovery (invariant 8): what a writer does before it serves anything. No redo is replayed on
 * compute; the storage nodes already hold the log, so recovery only decides where the log ends.
 *
 *   1. Bump the volume epoch in the control plane (compare-and-set: two writers starting at once
 *      cannot both win), then on a write quorum of every PG's segments (`setEpoch`, durable). From
 *      here on every segment of that quorum refuses the old writer (STALE_VOLUME_EPOCH).
 *      `setEpoch` carries every earlier recovery's annulment, so a segment that missed one applies
 *      it before it answers anything.
 *   2. From a read quorum of every PG, read the segment states and the records above each segment's
 *      known VDL; `computeRecovery` (src/quorum/recovery.ts, pure) finds VCL and VDL.
 *   3. Record the recovery (epoch, VDL, truncation end) in the control plane: the next recovery needs
 *      it for segments that miss this one.
 *   4. Annul everything above VDL written under an older epoch, on a write quorum of every PG.
 *   5. Make a write quorum of every PG complete through the PG's last record at or below VDL,
 *      copying from a complete segment (catch-up.ts): a record visible now must stay visible to the
 *      next recovery, whichever three segments answer it.
 *
 * Everything here is bounded by the number of records above the durable floor — the records in
 * flight when the old writer stopped (at most LAL) — not by the length of the volume's history:
 * restart time is flat in log length.
 */
import type { Env, Logger } from "../../env/env.js";
import { assert } from "../../core/assert.js";
import { BorealisError, isBorealisError } from "../../core/errors.js";
import { Lsn, PageNo, type Epoch, type Epochs, type NodeId, type PgId, type VolumeId } from "../../core/types.js";
import type { ControlPlaneApi, ProtectionGroup, Volume } from "../../control-plane/api.js";
import { DEFAULT_LAL, type TrackerStart } from "../../quorum/durable-point.js";
import { computeRecovery, trackerStartAfterRecovery, type RecoveryResult, type SegmentRecoveryResponse } from "../../quorum/recovery.js";
import { simpleQuorumSet, type QuorumSet } from "../../quorum/quorum-set.js";
import type { Annulment, SegmentState } from "../../wire/messages.js";
import { isCpl } from "../../wire/record.js";
import type { StorageClient } from "../../wire/storage-client.js";
import type { LsnState } from "../volume-io.js";
import { catchUpSegment } from "./catch-up.js";
import type { NodePool } from "./node-pool.js";

export interface RecoveryOptions {
  readonly env: Env;
  readonly controlPlane: ControlPlaneApi;
  readonly pool: NodePool;
  readonly volumeId: VolumeId;
  /** Truncation range above the recovered VDL (Aurora's LAL); ≥ any writer's allocation limit. */
  readonly lal?: number;
  /** Give up when a write quorum of some PG does not answer within this. Default 30 s. */
  readonly timeoutMs?: number;
  /** Bytes of record descriptors read per segment at most (they are the records in flight at the crash). */
  readonly maxRecordBytesPerSegment?: number;
}

export interface RecoveryReport {
  readonly epoch: Epoch;
  readonly floor: Lsn;
  readonly vcl: Lsn;
  readonly vdl: Lsn;
  readonly truncateThrough: Lsn;
  readonly recordsExamined: number;
  readonly segmentsCaughtUp: number;
  readonly ms: number;
}

export interface RecoveredVolume {
  readonly volume: Volume;
  readonly epoch: Epoch;
  /** Every recovery's annulment, this one last: segments adopting the epoch later apply them all. */
  readonly annulments: readonly Annulment[];
  readonly trackerStart: TrackerStart;
  readonly lsnState: LsnState;
  readonly report: RecoveryReport;
}

interface Contact {
  readonly nodeId: NodeId;
  readonly client: StorageClient;
  state: SegmentState;
}

export async function recoverVolume(options: RecoveryOptions): Promise<RecoveredVolume> {
  const { env, controlPlane, pool, volumeId } = options;
  const log = env.log.child({ component: "recovery", volume: volumeId });
  const started = env.clock.nowMs();
  const deadline = started + (options.timeoutMs ?? 30_000);
  const lal = options.lal ?? DEFAULT_LAL;

  // 1. The new epoch, first where writers meet (control plane), then where records live (storage).
  let volume = await controlPlane.getVolume(volumeId);
  let epoch: Epoch | undefined;
  for (let attempt = 0; epoch === undefined; attempt++) {
    try {
      epoch = await controlPlane.bumpVolumeEpoch(volumeId, volume.volumeEpoch);
    } catch (e) {
      if (!isBorealisError(e, "CONFLICT") || attempt >= 5) throw e;
      volume = await controlPlane.getVolume(volumeId);
    }
  }
  volume = await controlPlane.getVolume(volumeId);
  assert(volume.volumeEpoch === epoch, 8, `the control plane holds epoch ${volume.volumeEpoch} right after this writer set ${epoch}`);
  const previous = volume.recoveries;
  const previousAnnulments: Annulment[] = previous.map((r) => ({ epoch: r.epoch, aboveLsn: r.vdl }));
  log.info("recovery-started", { epoch, pgs: volume.pgs.length, previousRecoveries: previous.length });

  const contactsByPg = await Promise.all(volume.pgs.map((pg) => adoptEpoch(pg, epoch!, previousAnnulments)));

  // 2. Where the log ends, from a read quorum of every PG.
  const quorumSets = new Map<PgId, QuorumSet>();
  const inputs = await Promise.all(volume.pgs.map(async (pg, i) => {
    const set = simpleQuorumSet(pg.segments.map((s) => s.nodeId));
    quorumSets.set(pg.pgId, set);
    const responses = await Promise.all(contactsByPg[i]!.map((c) => describe(pg, c, epochsOf(pg, epoch!))));
    return { pgId: pg.pgId, quorumSet: set, responses: responses.filter((r): r is SegmentRecoveryResponse => r !== null) };
  }));
  const result: RecoveryResult = computeRecovery({ pgs: inputs, lal, previousRecoveries: previous });
  const recordsExamined = inputs.reduce((n, pg) => n + pg.responses.reduce((m, r) => m + r.records.length, 0), 0);

  // 3. Written down before any segment annuls: a later recovery must know this one happened.
  volume = await controlPlane.recordRecovery(volumeId, { epoch, vdl: result.vdl, truncateThrough: result.truncateThrough });
  const annulments: Annulment[] = [...previousAnnulments, { epoch, aboveLsn: result.vdl }];

  // 4 and 5, per PG: annul above VDL, then bring a write quorum up to the PG's last record.
  let segmentsCaughtUp = 0;
  await Promise.all(volume.pgs.map(async (pg, i) => {
    const pgResult = result.pgs.find((p) => p.pgId === pg.pgId);
    assert(pgResult !== undefined, `recovery has a result for PG ${pg.pgId}`);
    const epochs = epochsOf(pg, epoch!);
    const key = { volumeId, pgId: pg.pgId };
    const annulled = await atLeast(4, contactsByPg[i]!, async (c) => {
      c.state = (await c.client.request({ type: "annul", key, epochs, annulments })).state;
      return c;
    }, `annul PG ${pg.pgId} above ${result.vdl}`);
    const target = pgResult.lastLsn;
    const complete = annulled.filter((c) => c.state.scl >= target);
    const donor = complete[0];
    if (complete.length >= 4) return;
    if (donor === undefined) {
      throw new BorealisError("NO_QUORUM", `no segment of PG ${pg.pgId} holds its records through LSN ${target}`);
    }
    const behind = annulled.filter((c) => c.state.scl < target);
    await atLeast(4 - complete.length, behind, async (c) => {
      await catchUpSegment(key, epochs, donor.client, c.client, c.state.scl, target, { writerVdl: () => result.floor });
      segmentsCaughtUp++;
      return c;
    }, `re-replicate PG ${pg.pgId} through LSN ${target}`);
  }));

  // Where SQLite's file ends: pages above every segment's highest page were never written.
  let maxPageNo = 0;
  for (const contacts of contactsByPg) for (const c of contacts) maxPageNo = Math.max(maxPageNo, c.state.highestPageNo);

  const trackerStart = trackerStartAfterRecovery(result, quorumSets, lal);
  const lsnState: LsnState = {
    epoch,
    vdl: result.vdl,
    nextLsn: result.firstNewLsn,
    lastLsnByPg: new Map(result.pgs.map((p) => [p.pgId, p.lastLsn])),
    maxPageNo: PageNo(maxPageNo),
  };
  const report: RecoveryReport = {
    epoch, floor: result.floor, vcl: result.vcl, vdl: result.vdl, truncateThrough: result.truncateThrough,
    recordsExamined, segmentsCaughtUp, ms: Math.round(env.clock.nowMs() - started),
  };
  log.info("recovery-finished", { ...report });
  return { volume, epoch, annulments, trackerStart, lsnState, report };

  // ----------------------------------------------------------------------------------------------

  /** Step 1 for one PG: open (if new) and raise the epoch on as many segments as answer, at least 4. */
  async function adoptEpoch(pg: ProtectionGroup, e: Epoch, history: readonly Annulment[]): Promise<Contact[]> {
    const epochs = epochsOf(pg, e);
    const key = { volumeId, pgId: pg.pgId };
    return atLeast(4, pg.segments, async (s) => {
      const client = pool.client(s.nodeId, s.address);
      await client.request({ type: "openSegment", geometry: pg.geometry, epochs });
      const r = await client.request({ type: "setEpoch", key, epochs, annulments: history });
      return { nodeId: s.nodeId, client, state: r.state };
    }, `raise PG ${pg.pgId} to epoch ${e}`);
  }

  /** Step 2 for one segment: its state and every record it holds above its own known VDL. */
  async function describe(pg: ProtectionGroup, c: Contact, epochs: Epochs): Promise<SegmentRecoveryResponse | null> {
    const key = { volumeId, pgId: pg.pgId };
    try {
      const after = c.state.knownVdl;
      const records: SegmentRecoveryResponse["records"][number][] = [];
      let cursor = after;
      let bytes = 0;
      for (;;) {
        const chunk = await c.client.request({ type: "readRecords", key, epochs, afterLsn: cursor, upToLsn: Lsn(Number.MAX_SAFE_INTEGER), maxBytes: 1 << 20 });
        for (const r of chunk.records) {
          records.push({ lsn: r.lsn, prevLsnInSegment: r.prevLsnInSegment, prevLsnInVolume: r.prevLsnInVolume, isCpl: isCpl(r), epoch: r.epoch });
          bytes += r.bytes.byteLength;
          cursor = r.lsn;
        }
        if (!chunk.more || chunk.records.length === 0) break;
        if (bytes > (options.maxRecordBytesPerSegment ?? 512 << 20)) {
          throw new BorealisError("INTERNAL", `segment ${c.nodeId} holds more than ${bytes} bytes above its known VDL ${after}`);
        }
      }
      return { member: c.nodeId, scl: c.state.scl, knownVdl: c.state.knownVdl, recordsAfter: after, records };
    } catch (e) {
      log.warn("recovery-segment-unreadable", { pg: pg.pgId, node: c.nodeId, error: e });
      return null;
    }
  }

  /**
   * Runs `op` on every item in parallel, retrying failures until at least `need` succeeded (then it
   * waits briefly for stragglers, so recovery uses every segment that answers) or the deadline passes.
   */
  async function atLeast<T, R>(need: number, items: readonly T[], op: (item: T) => Promise<R>, what: string): Promise<R[]> {
    const done = new Map<T, R>();
    const errors = new Map<T, unknown>();
    for (let round = 0; ; round++) {
      const pending = items.filter((it) => !done.has(it));
      const roundDeadline = env.clock.nowMs() + (done.size >= need ? 200 : 2000);
      await Promise.all(pending.map(async (it) => {
        try {
          const r = await Promise.race([op(it), env.clock.sleep(Math.max(0, roundDeadline - env.clock.nowMs())).then(() => {
            throw new BorealisError("TIMEOUT", `${what}: no answer`);
          })]);
          done.set(it, r);
        } catch (e) {
          if (isBorealisError(e, "STALE_VOLUME_EPOCH")) throw new BorealisError("WRITER_FENCED", `${what}: a newer writer exists (${e.message})`);
          errors.set(it, e);
        }
      }));
      if (done.size >= need && (done.size === items.length || round >= 1)) return [...done.values()];
      if (env.clock.nowMs() >= deadline) {
        const why = [...errors.values()].map((e) => (e instanceof Error ? e.message : String(e))).slice(0, 3).join("; ");
        throw new BorealisError("NO_QUORUM", `${what}: ${done.size} of ${items.length} segments answered, ${need} needed (${why})`);
      }
      if (done.size < need) await env.clock.sleep(Math.min(500, 25 * 2 ** Math.min(round, 5)));
    }
  }
}

function epochsOf(pg: ProtectionGroup, volumeEpoch: Epoch): Epochs {
  return { volumeEpoch, membershipEpoch: pg.membershipEpoch };
}
