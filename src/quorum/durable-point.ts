/**
 * The writer's durable-point tracker: SCL acks → PGCL → VCL → VDL, and the LSN allocation limit.
 * A class fed events (`recordSent`, `onAck`) that answers with data; it does no I/O, reads no clock
 * and is shared by the writer's commit path, the storage test client and the simulator.
 *
 * The math (DESIGN.md vocabulary; docs/quorum.md has the worked Aurora example):
 *   - PGCL(pg) = committedPoint(quorum set, SCL by member): the highest LSN a write quorum holds.
 *     Kept monotonic: a membership change may add a member with SCL 0, but a record that reached a
 *     write quorum stays on those segments.
 *   - VCL = the highest sent LSN L such that every record ≤ L is covered by its PG's PGCL. Each PG
 *     keeps a FIFO of its records above its PGCL; the volume's first uncovered record is the smallest
 *     head among those FIFOs (a min-heap over PGs), and VCL is that record's volume predecessor, or the
 *     last record sent when nothing is outstanding. So VCL is always an LSN that was sent (or the start
 *     point), even when LSNs have gaps (after a recovery they restart above the truncation range).
 *   - VDL = the highest CPL ≤ VCL: a FIFO of CPLs above VDL is popped as VCL passes them.
 * Cost: O(1) amortized per record sent, O(log #PGs) per ack that moves a PGCL, O(1) per other ack;
 * memory is proportional to outstanding records (not yet covered) plus the number of PGs.
 *
 * LAL (invariant 6): no LSN above allocationLimit() = max(VDL, truncatedThrough) + LAL. The
 * truncation range a recovery annulled counts as resolved — otherwise the first LSN after a recovery,
 * which must lie above VDL + LAL (see recovery.ts), could never be allocated. The next recovery must
 * therefore know this writer's truncatedThrough (`RecoveryInput.previousRecoveries`).
 */
import { assert, isSafeUint } from "../core/assert.js";
import { Lsn, NO_LSN, type NodeId, type PgId } from "../core/types.js";
import { LsnQueue } from "./lsn-queue.js";
import { allMembers, committedPoint, type QuorumSet } from "./quorum-set.js";

/** Aurora's LSN allocation limit: 10 million LSNs ahead of VDL [P17 §4.2.1]. */
export const DEFAULT_LAL = 10_000_000;

export interface TrackedPg {
  readonly pgId: PgId;
  readonly quorumSet: QuorumSet;
  /** The PG's last record (≤ the start VCL): the segment backlink of its next record. 0 if none. */
  readonly lastLsn: Lsn;
}

/** Where a tracker starts: a new volume (all zero), or the result of a recovery. */
export interface TrackerStart {
  /** Volume durable LSN at start: a CPL (or 0). */
  readonly vdl: Lsn;
  /** Volume complete LSN at start, ≥ vdl; the volume backlink of the next record. Default: vdl. */
  readonly vcl?: Lsn;
  /** Every LSN ≤ this is used or annulled; the next record's LSN must exceed it. Default: vcl. */
  readonly truncatedThrough?: Lsn;
  readonly pgs: readonly TrackedPg[];
  /** LSN allocation limit distance (invariant 6). Default DEFAULT_LAL. */
  readonly lal?: number;
}

/** One protection group's view: SCLs of its members, PGCL, and its records not yet covered. */
class PgState {
  readonly sclByMember = new Map<NodeId, Lsn>();
  memberSet: ReadonlySet<NodeId>;
  pgcl: Lsn;
  /** (lsn, prevLsnInVolume) of records sent to this PG with lsn > pgcl, in LSN order. */
  readonly pending = new LsnQueue(2);
  /** Position in the tracker's min-heap, or -1 while nothing is pending. */
  heapIndex = -1;

  constructor(readonly pgId: PgId, public quorumSet: QuorumSet, public lastLsn: Lsn) {
    this.memberSet = new Set(allMembers(quorumSet));
    // Everything up to the start point is durable (a new volume, or a recovery re-replicated it).
    this.pgcl = lastLsn;
  }
}

export class DurablePointTracker {
  readonly lal: number;
  private readonly pgs = new Map<PgId, PgState>();
  /** Min-heap of PGs with pending records, keyed by their oldest pending LSN. */
  private readonly heap: PgState[] = [];
  /** CPLs sent with lsn > vdl, in LSN order. */
  private readonly cpls = new LsnQueue(1);
  private vclValue: Lsn;
  private vdlValue: Lsn;
  /** The last record sent (or the start VCL): the volume backlink of the next record. */
  private lastRecordLsn: Lsn;
  /** Highest LSN allocated, sent or annulled: invariant 1 says the next one is above it. */
  private allocatedThrough: Lsn;
  /** LAL counts from max(vdl, this): the start's truncation end. */
  private readonly allocationBase: Lsn;
  private pendingCount = 0;

  constructor(start: TrackerStart) {
    const vdl = start.vdl;
    const vcl = start.vcl ?? vdl;
    const truncatedThrough = start.truncatedThrough ?? vcl;
    const lal = start.lal ?? DEFAULT_LAL;
    assert(isSafeUint(vdl) && isSafeUint(vcl) && isSafeUint(truncatedThrough), "tracker start points are LSNs");
    assert(vdl <= vcl && vcl <= truncatedThrough, 4, `tracker start needs vdl ${vdl} ≤ vcl ${vcl} ≤ truncatedThrough ${truncatedThrough}`);
    assert(isSafeUint(lal) && lal >= 1, 6, `LAL ${lal} is a positive integer`);
    this.lal = lal;
    this.vdlValue = vdl;
    this.vclValue = vcl;
    this.lastRecordLsn = vcl;
    this.allocatedThrough = truncatedThrough;
    this.allocationBase = truncatedThrough;
    for (const pg of start.pgs) this.addProtectionGroup(pg.pgId, pg.quorumSet, pg.lastLsn);
  }

  // ---------------------------------------------------------------------------------------- queries

  /** Volume complete LSN: every record ≤ it is on a write quorum of its PG. */
  get vcl(): Lsn {
    return this.vclValue;
  }

  /** Volume durable LSN: the highest CPL ≤ VCL. Commits ≤ it may be acknowledged (invariant 5). */
  get vdl(): Lsn {
    return this.vdlValue;
  }

  /** Records sent but not yet covered by their PG's PGCL. */
  get outstandingRecords(): number {
    return this.pendingCount;
  }

  /** The last record sent (or the start VCL): what the next record's `prevLsnInVolume` must be. */
  get lastLsnInVolume(): Lsn {
    return this.lastRecordLsn;
  }

  /** Highest LSN allocated or annulled: the next record's LSN must be above it (invariant 1). */
  get lastAllocatedLsn(): Lsn {
    return this.allocatedThrough;
  }

  pgcl(pgId: PgId): Lsn {
    return this.pg(pgId).pgcl;
  }

  /** The PG's last record sent: what its next record's `prevLsnInSegment` must be. */
  lastLsnInPg(pgId: PgId): Lsn {
    return this.pg(pgId).lastLsn;
  }

  /** The highest SCL `member` has acknowledged for `pgId` (0 if none). */
  sclOf(pgId: PgId, member: NodeId): Lsn {
    return this.pg(pgId).sclByMember.get(member) ?? NO_LSN;
  }

  quorumSetOf(pgId: PgId): QuorumSet {
    return this.pg(pgId).quorumSet;
  }

  hasProtectionGroup(pgId: PgId): boolean {
    return this.pgs.has(pgId);
  }

  /** Highest LSN that may be allocated now (invariant 6). */
  allocationLimit(): Lsn {
    return Lsn(Math.max(this.vdlValue, this.allocationBase) + this.lal);
  }

  /** Whether `count` LSNs starting at `nextLsn` fit under the allocation limit; false means back-pressure. */
  canAllocate(nextLsn: Lsn, count: number): boolean {
    assert(isSafeUint(count) && count >= 1, `allocate a positive count, got ${count}`);
    assert(isSafeUint(nextLsn) && nextLsn > this.allocatedThrough, 1, `next LSN ${nextLsn} must be above the last allocated ${this.allocatedThrough}`);
    return nextLsn + count - 1 <= this.allocationLimit();
  }

  // ----------------------------------------------------------------------------------------- events

  /** A PG joins (volume growth). Its first record will have segment backlink `lastLsn`. */
  addProtectionGroup(pgId: PgId, quorumSet: QuorumSet, lastLsn: Lsn = NO_LSN): void {
    assert(!this.pgs.has(pgId), `PG ${pgId} is tracked already`);
    assert(isSafeUint(lastLsn) && lastLsn <= this.lastRecordLsn, `PG ${pgId}'s last LSN ${lastLsn} is at or below the volume's ${this.lastRecordLsn}`);
    this.pgs.set(pgId, new PgState(pgId, quorumSet, lastLsn));
  }

  /**
   * The writer hands record `lsn` to `pgId`'s segments. Call in LSN order, volume-wide, before the
   * record can possibly be acknowledged. Read `lastLsnInVolume` / `lastLsnInPg` first for backlinks.
   */
  recordSent(pgId: PgId, lsn: Lsn, isCpl: boolean): void {
    const pg = this.pg(pgId);
    assert(isSafeUint(lsn) && lsn > this.allocatedThrough, 1, `LSN ${lsn} sent after ${this.allocatedThrough}: LSNs strictly increase`);
    assert(lsn <= this.allocationLimit(), 6, `LSN ${lsn} is above the allocation limit ${this.allocationLimit()} (VDL ${this.vdlValue} + LAL ${this.lal})`);
    assert(pg.lastLsn < lsn && pg.pgcl < lsn, 3, `record ${lsn} of PG ${pgId} is above everything the PG had`);
    const wasIdle = pg.pending.size === 0;
    pg.pending.push(lsn, this.lastRecordLsn);
    this.pendingCount++;
    if (wasIdle) this.heapInsert(pg);
    if (isCpl) this.cpls.push(lsn);
    pg.lastLsn = lsn;
    this.lastRecordLsn = lsn;
    this.allocatedThrough = lsn;
  }

  /**
   * Segment `member` of `pgId` reports SCL `scl`. Acks from a member outside the PG's quorum set
   * (one replaced meanwhile) and acks that do not raise the member's SCL (stale, reordered) are
   * ignored. Returns true if VDL advanced (then release commit waiters and tell replicas).
   */
  onAck(pgId: PgId, member: NodeId, scl: Lsn): boolean {
    const pg = this.pg(pgId);
    if (!pg.memberSet.has(member)) return false;
    const known = pg.sclByMember.get(member) ?? NO_LSN;
    if (scl <= known) return false;
    assert(isSafeUint(scl) && scl <= pg.lastLsn, 3, `segment ${member} of PG ${pgId} reports SCL ${scl} above the PG's last record ${pg.lastLsn}`);
    pg.sclByMember.set(member, scl);
    // PGCL is the w-th highest SCL: it can only rise if this member's SCL passed it.
    if (scl <= pg.pgcl) return false;
    return this.raisePgcl(pg, committedPoint(pg.quorumSet, pg.sclByMember));
  }

  /**
   * The PG's quorum set changes (invariant 11: a transition set, or its commit/revert). SCLs of
   * members that left are forgotten; PGCL does not go back. Returns true if VDL advanced.
   */
  setQuorumSet(pgId: PgId, quorumSet: QuorumSet): boolean {
    const pg = this.pg(pgId);
    pg.quorumSet = quorumSet;
    pg.memberSet = new Set(allMembers(quorumSet));
    for (const m of [...pg.sclByMember.keys()]) if (!pg.memberSet.has(m)) pg.sclByMember.delete(m);
    assert(pg.sclByMember.size <= pg.memberSet.size, 11, "only members' SCLs are kept");
    return this.raisePgcl(pg, committedPoint(quorumSet, pg.sclByMember));
  }

  // -------------------------------------------------------------------------------------- internals

  private pg(pgId: PgId): PgState {
    const pg = this.pgs.get(pgId);
    assert(pg !== undefined, `PG ${pgId} is not tracked`);
    return pg;
  }

  private raisePgcl(pg: PgState, point: Lsn): boolean {
    if (point <= pg.pgcl) return false;
    assert(point <= pg.lastLsn, 3, `PGCL ${point} of PG ${pg.pgId} above its last record ${pg.lastLsn}`);
    pg.pgcl = point;
    let covered = 0;
    while (pg.pending.size > 0 && pg.pending.peek(0) <= point) {
      pg.pending.shift();
      covered++;
    }
    if (covered === 0) return false; // the head is still uncovered: VCL cannot move
    this.pendingCount -= covered;
    if (pg.pending.size === 0) this.heapRemove(pg);
    else this.heapSiftDown(pg.heapIndex); // its key only grew
    return this.advance();
  }

  /** Recomputes VCL and VDL after some record got covered. Returns true if VDL advanced. */
  private advance(): boolean {
    const first = this.heap[0];
    const vcl = first === undefined ? this.lastRecordLsn : Lsn(first.pending.peek(1));
    assert(vcl >= this.vclValue, 4, `VCL went back from ${this.vclValue} to ${vcl}`);
    assert(vcl <= this.lastRecordLsn, 4, `VCL ${vcl} above the last record sent ${this.lastRecordLsn}`);
    this.vclValue = vcl;
    let vdl = this.vdlValue;
    while (this.cpls.size > 0 && this.cpls.peek() <= vcl) {
      vdl = Lsn(this.cpls.peek());
      this.cpls.shift();
    }
    if (vdl === this.vdlValue) return false;
    assert(vdl > this.vdlValue && vdl <= vcl, 4, `VDL ${vdl} must rise from ${this.vdlValue} and stay ≤ VCL ${vcl}`);
    this.vdlValue = vdl;
    return true;
  }

  private key(i: number): number {
    return this.heap[i]!.pending.peek(0);
  }

  private heapInsert(pg: PgState): void {
    assert(pg.heapIndex === -1 && pg.pending.size > 0, "a PG enters the heap once, with pending records");
    this.heap.push(pg);
    pg.heapIndex = this.heap.length - 1;
    this.heapSiftUp(pg.heapIndex);
  }

  private heapRemove(pg: PgState): void {
    const i = pg.heapIndex;
    assert(i >= 0 && this.heap[i] === pg, "a PG leaves the heap from where it is");
    const last = this.heap.pop()!;
    pg.heapIndex = -1;
    if (last === pg) return;
    this.heap[i] = last;
    last.heapIndex = i;
    this.heapSiftDown(i);
    this.heapSiftUp(last.heapIndex);
  }

  private heapSiftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.key(parent) <= this.key(i)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private heapSiftDown(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const child = r < n && this.key(r) < this.key(l) ? r : l;
      if (this.key(i) <= this.key(child)) return;
      this.swap(i, child);
      i = child;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    this.heap[i] = b;
    this.heap[j] = a;
    a.heapIndex = j;
    b.heapIndex = i;
  }
}
