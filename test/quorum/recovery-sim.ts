/**
 * A simulated volume for recovery's property test: writers of successive epochs send records to six
 * segments per PG over a lossy, reordering network, crash with records in flight, and a recovery
 * over random read quorums (including segments that missed an earlier annulment) is checked against
 * the definitions after every crash. One integer seed replays a whole history.
 */
import assert from "node:assert/strict";
import { Epoch, Lsn, NodeId, PgId } from "../../src/core/types.js";
import { DurablePointTracker, type TrackerStart } from "../../src/quorum/durable-point.js";
import { allMembers, isWriteQuorum, simpleQuorumSet, type QuorumSet } from "../../src/quorum/quorum-set.js";
import {
  computeRecovery, trackerStartAfterRecovery, type PreviousRecovery, type RecordDescriptor, type SegmentRecoveryResponse,
} from "../../src/quorum/recovery.js";

export const members = (prefix: string): NodeId[] => Array.from({ length: 6 }, (_, i) => NodeId(`${prefix}${i}`));
export const d = (lsn: number, prevSeg: number, prevVol: number, isCpl = false, epoch = 1): RecordDescriptor => ({
  lsn: Lsn(lsn), prevLsnInSegment: Lsn(prevSeg), prevLsnInVolume: Lsn(prevVol), isCpl, epoch: Epoch(epoch),
});
export const response = (member: NodeId, scl: number, knownVdl: number, records: RecordDescriptor[]): SegmentRecoveryResponse => ({
  member, scl: Lsn(scl), knownVdl: Lsn(knownVdl), recordsAfter: Lsn(knownVdl), records,
});

/** A tiny seeded PRNG so that one fast-check integer replays a whole multi-epoch history. */
function rng(seed: number): { int(n: number): number; chance(p: number): boolean } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return { int: (n) => Math.floor(next() * n), chance: (p) => next() < p };
}

interface Desc extends RecordDescriptor {
  readonly pg: number;
}

class Segment {
  readonly held = new Map<number, Desc>();
  scl = 0;
  knownVdl = 0;
  /** Epoch of the last recovery whose annulment this segment applied (0: none yet). */
  annulEpoch = 0;
  constructor(readonly member: NodeId, readonly pg: number) {}

  /** SCL by the segment chain from the start, as a storage node computes it (invariant 3). */
  recomputeScl(): void {
    let s = 0;
    for (const lsn of [...this.held.keys()].sort((x, y) => x - y)) if (this.held.get(lsn)!.prevLsnInSegment === s) s = lsn;
    this.scl = s;
  }

  /** Applies, in order, every recovery's annulment this segment has missed (storage replays them). */
  annul(recoveries: readonly PreviousRecovery[], setKnownVdl: boolean): void {
    for (const r of recoveries) {
      if (r.epoch <= this.annulEpoch) continue;
      for (const [lsn, rec] of this.held) if (lsn > r.vdl && rec.epoch < r.epoch) this.held.delete(lsn);
      this.annulEpoch = r.epoch;
      if (setKnownVdl) this.knownVdl = Math.max(this.knownVdl, r.vdl);
    }
    this.recomputeScl();
  }
}

/** Runs a volume through several writer epochs with crashes, checking every recovery. */
export function simulate(seed: number, epochs: number): number {
  const rand = rng(seed);
  const pgCount = 1 + rand.int(3);
  const lal = rand.chance(0.5) ? 1 + rand.int(40) : 1_000_000;
  const setKnownVdlOnAnnul = rand.chance(0.5);
  const sets: QuorumSet[] = Array.from({ length: pgCount }, (_, p) => simpleQuorumSet(members(`pg${p}-`)));
  const segments = sets.map((s, p) => allMembers(s).map((m) => new Segment(m, p)));
  const sent: Desc[] = []; // every record any writer ever sent
  const recoveries: PreviousRecovery[] = [];
  const isValid = (r: Desc) => !recoveries.some((rec) => r.epoch < rec.epoch && r.lsn > rec.vdl);
  let start: TrackerStart = { vdl: Lsn(0), lal, pgs: sets.map((quorumSet, p) => ({ pgId: PgId(p), quorumSet, lastLsn: Lsn(0) })) };
  let checks = 0;

  for (let epoch = 1; epoch <= epochs; epoch++) {
    // ---- the writer of this epoch runs until it crashes
    const t = new DurablePointTracker(start);
    const writable = (s: Segment) => s.annulEpoch === (epoch === 1 ? 0 : epoch);
    const inFlight: { seg: Segment; rec: Desc; vdl: number }[] = [];
    const steps = rand.int(150);
    for (let i = 0; i < steps; i++) {
      const roll = rand.int(100);
      if (roll < 35) {
        const next = Lsn(t.lastAllocatedLsn + 1);
        if (!t.canAllocate(next, 1)) continue; // back-pressure
        const pg = rand.int(pgCount);
        const rec: Desc = {
          lsn: next, prevLsnInSegment: t.lastLsnInPg(PgId(pg)), prevLsnInVolume: t.lastLsnInVolume,
          isCpl: rand.chance(0.4), epoch: Epoch(epoch), pg,
        };
        t.recordSent(PgId(pg), next, rec.isCpl);
        sent.push(rec);
        for (const seg of segments[pg]!) if (writable(seg) && !rand.chance(0.1)) inFlight.push({ seg, rec, vdl: t.vdl });
      } else if (roll < 75 && inFlight.length > 0) {
        const [{ seg, rec, vdl }] = inFlight.splice(rand.int(inFlight.length), 1) as [(typeof inFlight)[0]];
        seg.held.set(rec.lsn, rec);
        seg.knownVdl = Math.max(seg.knownVdl, vdl);
        seg.recomputeScl();
      } else {
        const seg = segments[rand.int(pgCount)]![rand.int(6)]!;
        if (writable(seg)) t.onAck(PgId(seg.pg), seg.member, Lsn(seg.scl));
      }
    }
    const writerVdl = t.vdl;
    // The ragged edge: some in-flight records still land after the crash.
    for (const { seg, rec } of inFlight) if (rand.chance(0.3)) { seg.held.set(rec.lsn, rec); seg.recomputeScl(); }

    // ---- recovery: any read quorum (3..6 segments, stale ones included) of every PG
    const prev = recoveries[recoveries.length - 1];
    const responders = segments.map((segs) => segs.filter(() => rand.chance(0.5)).concat(segs).filter((s, i, all) => all.indexOf(s) === i).slice(0, 3 + rand.int(4)));
    const result = computeRecovery({
      lal,
      previousRecoveries: recoveries,
      pgs: responders.map((segs, p) => ({
        pgId: PgId(p), quorumSet: sets[p]!,
        responses: segs.map((s) => {
          // List from the segment's knownVdl, or from lower (an implementation may read more).
          const after = rand.chance(0.8) ? s.knownVdl : rand.int(s.knownVdl + 1);
          return { ...response(s.member, s.scl, s.knownVdl, [...s.held.values()].filter((r) => r.lsn > after)), recordsAfter: Lsn(after) };
        }),
      })),
    });

    // No acknowledged commit is lost (invariant 12).
    assert.ok(result.vdl >= writerVdl, `seed ${seed} epoch ${epoch}: recovered VDL ${result.vdl} < writer's ${writerVdl}`);
    // VCL and VDL equal the naive definition over the valid history.
    const valid = sent.filter(isValid).sort((x, y) => x.lsn - y.lsn);
    const floor = Math.max(prev?.vdl ?? 0, ...responders.flat().map((s) => s.knownVdl));
    assert.equal(result.floor, floor);
    const heldBy = (r: Desc) => responders[r.pg]!.filter((s) => s.held.get(r.lsn) === r).map((s) => s.member);
    let vcl = floor, vdl = floor;
    for (const r of valid) {
      if (r.lsn <= floor) continue;
      if (heldBy(r).length === 0) break;
      vcl = r.lsn;
      if (r.isCpl) vdl = r.lsn;
    }
    assert.equal(result.vcl, vcl, `seed ${seed} epoch ${epoch}: VCL`);
    assert.equal(result.vdl, vdl, `seed ${seed} epoch ${epoch}: VDL`);
    assert.ok(vdl === floor || valid.some((r) => r.lsn === vdl && r.isCpl), "VDL is a CPL");
    const highest = Math.max(0, ...responders.flat().flatMap((s) => [s.scl, s.knownVdl, ...s.held.keys()]));
    assert.equal(result.highestLsnSeen, highest);
    assert.equal(result.truncateThrough, Math.max(highest, Math.max(vdl, prev?.truncateThrough ?? 0) + lal));
    for (let p = 0; p < pgCount; p++) {
      const got = result.pgs[p]!;
      const mine = valid.filter((r) => r.pg === p && r.lsn <= vdl);
      const lastLsn = mine.length > 0 ? mine[mine.length - 1]!.lsn : 0;
      const anyStale = responders[p]!.some((s) => s.annulEpoch < (prev?.epoch ?? 0));
      // Exact even with stale responders: the last recovery left a write quorum of annulled segments
      // complete through VDL, and this read quorum meets it.
      assert.equal(got.lastLsn, lastLsn, `seed ${seed} epoch ${epoch}: PG ${p} last LSN`);
      const under = mine.filter((r) => r.lsn > floor && !isWriteQuorum(sets[p]!, heldBy(r)))
        .map((r) => ({ lsn: r.lsn, holders: heldBy(r) }));
      assert.deepEqual(got.underReplicated.map((u) => ({ lsn: u.lsn, holders: [...u.holders].sort() })), under.map((u) => ({ lsn: u.lsn, holders: u.holders.sort() })));
      // Complete responders: after the annulment their SCL would be ≥ the PG's last record.
      for (const s of responders[p]!) {
        const copy = new Segment(s.member, p);
        for (const [k, v] of s.held) copy.held.set(k, v);
        copy.annulEpoch = s.annulEpoch;
        copy.annul([...recoveries, { epoch: Epoch(epoch + 1), vdl: Lsn(vdl), truncateThrough: result.truncateThrough }], false);
        const complete = copy.scl >= lastLsn;
        const listed = got.completeResponders.includes(s.member);
        if (listed) assert.ok(complete, `seed ${seed}: ${s.member} listed complete`);
        // A responder that missed an annulment is left out (its SCL may count annulled records): conservative.
        else if (!anyStale) assert.ok(!complete, `seed ${seed} epoch ${epoch}: ${s.member} complete but not listed`);
      }
      checks++;
    }

    // ---- apply: record the recovery, annul on the responders and some others, re-replicate, restart
    recoveries.push({ epoch: Epoch(epoch + 1), vdl: result.vdl, truncateThrough: result.truncateThrough });
    for (let p = 0; p < pgCount; p++) {
      // The annulment reaches the responders and some others — at least a write quorum, since the
      // writer waits for that before it serves (and makes them complete through VDL).
      const reached = segments[p]!.filter((s) => responders[p]!.includes(s) || rand.chance(0.5));
      for (const s of segments[p]!) if (reached.length < 4 && !reached.includes(s)) reached.push(s);
      const mine = sent.filter((r) => r.pg === p && isValid(r) && r.lsn <= result.vdl);
      for (const s of reached) {
        s.annul(recoveries, setKnownVdlOnAnnul);
        for (const r of mine) s.held.set(r.lsn, r); // repair (gossip) brings it complete through VDL
        s.recomputeScl();
      }
    }
    start = trackerStartAfterRecovery(result, new Map(sets.map((s, p) => [PgId(p), s])), lal);
  }
  return checks;
}

