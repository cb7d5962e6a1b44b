/**
 * Recovery's durable-point computation (invariant 8, step 2): from a read quorum of every PG, find
 * the VDL the new writer starts from, what must be re-replicated before it serves, and where its
 * LSNs start. Pure: the writer gathers the responses (after bumping the volume epoch on a write
 * quorum of every PG) and applies the result (annul above VDL, re-replicate, start the tracker).
 *
 * Why a read quorum suffices. A record the old writer counted as durable is on a write quorum
 * (4 of 6, by SCL) of its PG, and any read quorum (3 of 6) meets any write quorum: every durable
 * record is held by at least one of any 3 responders. In particular the VDL the old writer last
 * reached — and so every acknowledged commit (invariant 12) — is visible.
 *
 * Algorithm:
 *   1. floor = the highest `knownVdl` any responder reports (and the latest recovery's VDL): a
 *      point some writer already knew durable. Everything at or below it is settled.
 *   2. Take the union, across all PGs and responders, of the descriptors of records above the floor.
 *      Records an earlier recovery annulled are ignored even if a segment that missed that
 *      annulment still holds one: above that recovery's VDL and of an older epoch, or inside its
 *      truncation range (its writer allocated above it).
 *   3. Walk that union in LSN order, following the volume backlink chain forward from the floor:
 *      record r is complete if r.prevLsnInVolume ≤ floor (it is the first record after the floor)
 *      or its volume predecessor is complete. VCL = the end of that unbroken chain (or the floor).
 *      If a record of a newer epoch branches off below the chain's end, the older-epoch records
 *      above its branch point were annulled by the recovery that started that epoch: they are
 *      dropped from the chain. Two records of one epoch following the same record cannot happen
 *      (one writer, one chain) and are reported as CORRUPT_DATA.
 *   4. VDL = the highest CPL on the chain, or the floor if there is none.
 *   5. Per PG: the PG's last record ≤ VDL (the segment backlink of its next record); the chain's
 *      records ≤ VDL that fewer than a write quorum of the responders hold; and the responders whose
 *      own chain reaches that last record. Before serving, the caller makes a write quorum of each
 *      PG complete through its last record (copying from holders), so that the next recovery's read
 *      quorum is sure to see every record ≤ VDL and the tracker may start with PGCL = last record.
 *   6. New LSNs start above truncateThrough = max(highest LSN seen anywhere, max(VDL, previous
 *      truncation end) + LAL): the old writer may have sent records up to its own VDL + LAL that no
 *      responder holds, and an LSN must never name two records (Aurora's truncation range).
 *
 * Why the chain and not per-PG PGCLs: a responder's SCL only says what it holds of its own PG; the
 * volume chain joins the PGs, so a record is complete exactly when every earlier record of the
 * volume (above the floor) is present somewhere in the read quorums.
 */
import { assert, isSafeUint } from "../core/assert.js";
import { BorealisError } from "../core/errors.js";
import { Lsn, NO_LSN, type Epoch, type NodeId, type PgId } from "../core/types.js";
import type { TrackerStart } from "./durable-point.js";
import { allMembers, isReadQuorum, isWriteQuorum, type QuorumSet } from "./quorum-set.js";

/** What recovery needs to know about one record; never its payload. */
export interface RecordDescriptor {
  readonly lsn: Lsn;
  readonly prevLsnInSegment: Lsn;
  readonly prevLsnInVolume: Lsn;
  readonly isCpl: boolean;
  /** Volume epoch of the writer that allocated the LSN. */
  readonly epoch: Epoch;
}

/** One segment's answer to recovery. */
export interface SegmentRecoveryResponse {
  readonly member: NodeId;
  readonly scl: Lsn;
  readonly knownVdl: Lsn;
  /**
   * The response lists every record the segment holds with LSN above this. It must be ≤ the floor;
   * use the segment's own knownVdl (or lower): a segment that missed an annulment holds the annulled
   * records above its knownVdl, so listing from there lets recovery recognise them and its SCL.
   */
  readonly recordsAfter: Lsn;
  readonly records: readonly RecordDescriptor[];
}

export interface PgRecoveryInput {
  readonly pgId: PgId;
  readonly quorumSet: QuorumSet;
  /** At least a read quorum of the PG's segments, each member at most once. */
  readonly responses: readonly SegmentRecoveryResponse[];
}

/** The last completed recovery, as recorded with its epoch (control plane). */
export interface PreviousRecovery {
  readonly epoch: Epoch;
  readonly vdl: Lsn;
  readonly truncateThrough: Lsn;
}

export interface RecoveryInput {
  /** Every PG of the volume. */
  readonly pgs: readonly PgRecoveryInput[];
  /** The LSN allocation limit distance the crashed writer used (invariant 6). */
  readonly lal: number;
  /**
   * Every completed recovery of this volume, as recorded with its epoch (control plane), in any
   * order; empty for a volume that never crashed. One entry per writer crash: small. An entry may be
   * dropped once every segment has applied its annulment.
   */
  readonly previousRecoveries?: readonly PreviousRecovery[];
}

export interface UnderReplicatedRecord {
  readonly lsn: Lsn;
  /** Responders that hold it: copy from one of these to the PG's other segments. */
  readonly holders: readonly NodeId[];
}

export interface PgRecoveryResult {
  readonly pgId: PgId;
  /** The PG's last record ≤ VDL: the segment backlink of its next record (0 if it has none). */
  readonly lastLsn: Lsn;
  /** Records ≤ VDL (above the floor) that the responders hold on fewer than a write quorum, in LSN order. */
  readonly underReplicated: readonly UnderReplicatedRecord[];
  /**
   * Responders whose segment chain reaches lastLsn, so that their SCL is ≥ lastLsn once everything
   * above VDL is annulled. Before serving, the writer must make a write quorum of the PG's segments
   * complete through lastLsn (copy the missing records); the tracker then starts with PGCL = lastLsn.
   */
  readonly completeResponders: readonly NodeId[];
}

export interface RecoveryResult {
  /** The highest durable point any responder knew (or the latest previous recovery's VDL). */
  readonly floor: Lsn;
  /** End of the complete volume chain. Records in (vdl, vcl] are annulled nonetheless (not a CPL). */
  readonly vcl: Lsn;
  /** The recovered volume durable LSN: a CPL, ≥ every VDL the crashed writer reached. */
  readonly vdl: Lsn;
  /** Annul every record above this on every segment (invariant 8). Equal to vdl. */
  readonly truncateAbove: Lsn;
  /** Highest LSN in any response: descriptors, SCLs and known VDLs. */
  readonly highestLsnSeen: Lsn;
  /**
   * End of the truncation range: max(highestLsnSeen, max(vdl, previous truncateThrough) + lal).
   * The new writer's LSNs must start above it (`firstNewLsn`), and it must be recorded with the
   * new epoch (an entry of the next recovery's `previousRecoveries`).
   */
  readonly truncateThrough: Lsn;
  readonly firstNewLsn: Lsn;
  readonly pgs: readonly PgRecoveryResult[];
}

function invalid(message: string): BorealisError {
  return new BorealisError("INVALID_ARGUMENT", `recovery input: ${message}`);
}

interface UnionEntry {
  readonly d: RecordDescriptor;
  readonly pgId: PgId;
  readonly holders: NodeId[];
}

/** Computes recovery's durable point; throws NO_QUORUM if some PG lacks a read quorum of responses. */
export function computeRecovery(input: RecoveryInput): RecoveryResult {
  const { lal } = input;
  const history = input.previousRecoveries ?? [];
  let prev: PreviousRecovery | undefined; // the latest recovery
  for (const r of history) {
    if (!isSafeUint(r.epoch) || !isSafeUint(r.vdl) || !isSafeUint(r.truncateThrough) || r.truncateThrough < r.vdl) {
      throw invalid(`previous recovery ${JSON.stringify(r)} is malformed`);
    }
    if (prev === undefined || r.epoch > prev.epoch) prev = r;
  }
  if (!isSafeUint(lal) || lal < 1) throw invalid(`LAL ${lal} is not a positive integer`);
  if (input.pgs.length === 0) throw invalid("no protection groups");
  checkQuorums(input.pgs);

  // 1. The floor: a durable point some writer (or the last recovery) already established.
  let floor: number = prev?.vdl ?? NO_LSN;
  let highest: number = NO_LSN;
  for (const pg of input.pgs) {
    for (const r of pg.responses) {
      floor = Math.max(floor, r.knownVdl);
      highest = Math.max(highest, r.scl, r.knownVdl);
    }
  }
  // Records an earlier recovery annulled, still held by a segment that missed that annulment: above
  // that recovery's VDL, of an older epoch or inside its truncation range (its writer allocated
  // above it). Any recovery may be the one missed, hence the whole list.
  const isStale = (lsn: number, epoch: number): boolean =>
    history.some((r) => lsn > r.vdl && (epoch < r.epoch || lsn <= r.truncateThrough));

  // 2. The union of descriptors above the floor, deduplicated by LSN.
  const union = new Map<number, UnionEntry>();
  for (const pg of input.pgs) {
    for (const r of pg.responses) {
      if (r.recordsAfter > floor) {
        throw invalid(`segment ${r.member} of PG ${pg.pgId} lists records only above ${r.recordsAfter}, above the floor ${floor}`);
      }
      if (r.scl > r.recordsAfter && !r.records.some((d) => d.lsn === r.scl)) {
        throw invalid(`segment ${r.member} of PG ${pg.pgId} reports SCL ${r.scl} but does not list that record`);
      }
      for (const d of r.records) {
        checkDescriptor(d, pg.pgId, r.member);
        highest = Math.max(highest, d.lsn);
        if (d.lsn <= floor || isStale(d.lsn, d.epoch)) continue;
        const seen = union.get(d.lsn);
        if (seen === undefined) {
          union.set(d.lsn, { d, pgId: pg.pgId, holders: [r.member] });
          continue;
        }
        if (seen.pgId !== pg.pgId) throw corrupt(`LSN ${d.lsn} is held by PG ${seen.pgId} and PG ${pg.pgId}`);
        if (!sameDescriptor(seen.d, d)) throw corrupt(`segments of PG ${pg.pgId} disagree about record ${d.lsn}`);
        if (!seen.holders.includes(r.member)) seen.holders.push(r.member);
      }
    }
  }

  // 3. Walk the volume chain forward from the floor.
  const entries = [...union.values()].sort((a, b) => a.d.lsn - b.d.lsn);
  const chain: UnionEntry[] = [];
  for (const e of entries) {
    const p = e.d.prevLsnInVolume;
    let top = chain[chain.length - 1];
    if (top !== undefined && p < top.d.lsn) {
      // A fork: e and the chain both continue from below the chain's end.
      if (e.d.epoch < top.d.epoch) continue; // e is an older epoch's record, annulled by a newer recovery
      if (e.d.epoch === top.d.epoch) throw corrupt(`records ${top.d.lsn} and ${e.d.lsn} of epoch ${e.d.epoch} branch from one chain`);
      while (top !== undefined && top.d.lsn > p) {
        if (top.d.epoch >= e.d.epoch) throw corrupt(`record ${e.d.lsn} (epoch ${e.d.epoch}) branches below record ${top.d.lsn} of epoch ${top.d.epoch}`);
        chain.pop();
        top = chain[chain.length - 1];
      }
    }
    const attaches = top === undefined ? p <= floor : p === top.d.lsn;
    if (!attaches) continue; // its predecessor is missing from every responder: not complete
    if (top !== undefined && e.d.epoch < top.d.epoch) throw corrupt(`record ${e.d.lsn} of epoch ${e.d.epoch} follows record ${top.d.lsn} of newer epoch ${top.d.epoch}`);
    chain.push(e);
  }

  // 4. VCL and VDL.
  const vcl = chain.length > 0 ? chain[chain.length - 1]!.d.lsn : floor;
  let vdl = floor;
  for (let i = chain.length - 1; i >= 0; i--) {
    if (chain[i]!.d.isCpl) { vdl = chain[i]!.d.lsn; break; }
  }
  assert(floor <= vdl && vdl <= vcl, 4, `recovered floor ${floor} ≤ VDL ${vdl} ≤ VCL ${vcl}`);
  for (let i = 1; i < chain.length; i++) {
    assert(chain[i]!.d.prevLsnInVolume === chain[i - 1]!.d.lsn, 8, `recovered chain is linked at ${chain[i]!.d.lsn}`);
  }

  // 5. Per PG: what to re-replicate, and the segment backlink of the next record.
  // An SCL that counts an annulled record says nothing about the segment's valid records. When the
  // SCL's record is listed its epoch tells; an unlisted SCL is at or below the segment's recordsAfter,
  // and a segment that missed an annulment holds its annulled records above its own knownVdl, so with
  // recordsAfter ≤ knownVdl (see SegmentRecoveryResponse) it is not annulled; the range check is a
  // second guard.
  const sclTrusted = (r: SegmentRecoveryResponse): boolean => {
    if (r.scl <= r.recordsAfter) return !isStale(r.scl, Number.MAX_SAFE_INTEGER);
    const own = r.records.find((d) => d.lsn === r.scl)!;
    return !isStale(own.lsn, own.epoch);
  };
  const pgs = input.pgs.map((pg) => pgResult(pg, chain, floor, vdl, isStale, sclTrusted));

  // 6. Where new LSNs start.
  const truncateThrough = Math.max(highest, Math.max(vdl, prev?.truncateThrough ?? NO_LSN) + lal);
  assert(truncateThrough >= highest && truncateThrough >= vdl + lal, 6, "the truncation range covers every LSN the old writer may have used");
  return {
    floor: Lsn(floor),
    vcl: Lsn(vcl),
    vdl: Lsn(vdl),
    truncateAbove: Lsn(vdl),
    highestLsnSeen: Lsn(highest),
    truncateThrough: Lsn(truncateThrough),
    firstNewLsn: Lsn(truncateThrough + 1),
    pgs,
  };
}

/**
 * The tracker's start after a recovery whose annulment and re-replication are done: VCL = VDL
 * (records above VDL are annulled), the next record's volume backlink is VDL, LSNs continue above
 * the truncation range.
 */
export function trackerStartAfterRecovery(result: RecoveryResult, quorumSets: ReadonlyMap<PgId, QuorumSet>, lal: number): TrackerStart {
  assert(result.truncateThrough >= result.vdl + lal, 6, "the truncation range must be computed with the same LAL");
  const pgs = result.pgs.map((pg) => {
    const quorumSet = quorumSets.get(pg.pgId);
    if (quorumSet === undefined) throw invalid(`no quorum set for PG ${pg.pgId}`);
    assert(pg.lastLsn <= result.vdl, 8, `PG ${pg.pgId}'s last record ${pg.lastLsn} is at or below VDL ${result.vdl}`);
    return { pgId: pg.pgId, quorumSet, lastLsn: pg.lastLsn };
  });
  return { vdl: result.vdl, vcl: result.vdl, truncatedThrough: result.truncateThrough, pgs, lal };
}

function corrupt(message: string): BorealisError {
  return new BorealisError("CORRUPT_DATA", `recovery: ${message}`);
}

function checkQuorums(pgs: readonly PgRecoveryInput[]): void {
  const pgIds = new Set<PgId>();
  for (const pg of pgs) {
    if (pgIds.has(pg.pgId)) throw invalid(`PG ${pg.pgId} is listed twice`);
    pgIds.add(pg.pgId);
    const members = new Set(allMembers(pg.quorumSet));
    const responders = new Set<NodeId>();
    for (const r of pg.responses) {
      if (!members.has(r.member)) throw invalid(`${r.member} answered for PG ${pg.pgId} but is not one of its segments`);
      if (responders.has(r.member)) throw invalid(`${r.member} answered twice for PG ${pg.pgId}`);
      if (!isSafeUint(r.scl) || !isSafeUint(r.knownVdl) || !isSafeUint(r.recordsAfter)) {
        throw invalid(`${r.member} of PG ${pg.pgId} reports a non-LSN SCL, known VDL or records floor`);
      }
      responders.add(r.member);
    }
    if (!isReadQuorum(pg.quorumSet, responders)) {
      throw new BorealisError("NO_QUORUM", `recovery needs a read quorum of PG ${pg.pgId}; only ${[...responders].join(", ") || "nobody"} answered`, { pgId: pg.pgId, responders: responders.size });
    }
  }
}

function checkDescriptor(d: RecordDescriptor, pgId: PgId, member: NodeId): void {
  const ok =
    isSafeUint(d.lsn) && d.lsn >= 1 && isSafeUint(d.prevLsnInSegment) && d.prevLsnInSegment < d.lsn &&
    isSafeUint(d.prevLsnInVolume) && d.prevLsnInVolume < d.lsn && isSafeUint(d.epoch);
  if (!ok) throw invalid(`${member} of PG ${pgId} sent an impossible record descriptor ${JSON.stringify(d)}`);
}

function sameDescriptor(a: RecordDescriptor, b: RecordDescriptor): boolean {
  return a.lsn === b.lsn && a.prevLsnInSegment === b.prevLsnInSegment && a.prevLsnInVolume === b.prevLsnInVolume &&
    a.isCpl === b.isCpl && a.epoch === b.epoch;
}

function pgResult(
  pg: PgRecoveryInput, chain: readonly UnionEntry[], floor: number, vdl: number,
  isStale: (lsn: number, epoch: number) => boolean, sclTrusted: (r: SegmentRecoveryResponse) => boolean,
): PgRecoveryResult {
  const underReplicated: UnderReplicatedRecord[] = [];
  const mine: UnionEntry[] = []; // this PG's chain records ≤ VDL, in LSN order
  let lowestOnChain: UnionEntry | undefined;
  for (const e of chain) {
    if (e.pgId !== pg.pgId) continue;
    lowestOnChain ??= e;
    if (e.d.lsn > vdl) break;
    mine.push(e);
    if (!isWriteQuorum(pg.quorumSet, e.holders)) underReplicated.push({ lsn: e.d.lsn, holders: [...e.holders] });
  }
  let lastLsn: number;
  if (mine.length > 0) {
    lastLsn = mine[mine.length - 1]!.d.lsn;
  } else if (lowestOnChain !== undefined) {
    // The chain holds every record of the volume in (floor, vcl], so the PG's first record above the
    // floor links to its last one at or below it.
    lastLsn = lowestOnChain.d.prevLsnInSegment;
    assert(lastLsn <= floor, 3, `PG ${pg.pgId}'s record before ${lowestOnChain.d.lsn} is at or below the floor`);
  } else {
    // No record of this PG above the floor on the chain. Records ≤ floor are on a write quorum by SCL,
    // so some responder's SCL or segment chain reaches the PG's last record ≤ floor, and none passes
    // it. An SCL inside an annulled range says nothing about the segment's valid records: skipped.
    lastLsn = NO_LSN;
    for (const r of pg.responses) {
      if (r.scl <= floor && sclTrusted(r)) lastLsn = Math.max(lastLsn, r.scl);
      for (const d of r.records) {
        if (d.lsn > floor && !isStale(d.lsn, d.epoch) && d.prevLsnInSegment <= floor) lastLsn = Math.max(lastLsn, d.prevLsnInSegment);
      }
    }
  }
  assert(lastLsn >= 0 && lastLsn <= vdl, 8, `PG ${pg.pgId}'s last record ${lastLsn} is at or below VDL ${vdl}`);

  // A responder is complete if, once everything above VDL is annulled, its SCL will be ≥ lastLsn: its
  // own chain reaches lastLsn through records it holds.
  const completeResponders: NodeId[] = [];
  for (const r of pg.responses) {
    if (!sclTrusted(r)) continue; // its SCL counts annulled records
    let s: number = r.scl;
    for (const e of mine) {
      if (s >= lastLsn) break;
      if (e.d.lsn <= s) continue;
      if (e.d.prevLsnInSegment !== s || !e.holders.includes(r.member)) break;
      s = e.d.lsn;
    }
    if (s >= lastLsn) completeResponders.push(r.member);
  }
  assert(completeResponders.length <= pg.responses.length, "complete responders are responders");
  return { pgId: pg.pgId, lastLsn: Lsn(lastLsn), underReplicated, completeResponders };
}
