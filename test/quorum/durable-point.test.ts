import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AssertionError } from "../../src/core/assert.js";
import { Lsn, NodeId, PgId } from "../../src/core/types.js";
import { DurablePointTracker } from "../../src/quorum/durable-point.js";
import { allMembers, beginReplacement, finishReplacement, simpleQuorumSet, type QuorumSet } from "../../src/quorum/quorum-set.js";
import { naiveCommittedPoint, naiveDurablePoint, type NaiveRecord } from "./naive.js";

const members = (prefix: string, n = 6): NodeId[] => Array.from({ length: n }, (_, i) => NodeId(`${prefix}${i}`));
const invariant = (n: number) => (e: unknown) => e instanceof AssertionError && e.message.startsWith(`invariant ${n} violated`);

test("Aurora [P18 Fig. 3]: PG1 odd, PG2 even → PGCL1=103 (105 lacks quorum), PGCL2=104, VCL=104", () => {
  const pg1 = simpleQuorumSet(members("p1-"));
  const pg2 = simpleQuorumSet(members("p2-"));
  const t = new DurablePointTracker({
    vdl: Lsn(100),
    pgs: [{ pgId: PgId(1), quorumSet: pg1, lastLsn: Lsn(99) }, { pgId: PgId(2), quorumSet: pg2, lastLsn: Lsn(100) }],
  });
  for (let lsn = 101; lsn <= 106; lsn++) t.recordSent(PgId(lsn % 2 === 1 ? 1 : 2), Lsn(lsn), lsn !== 101 && lsn !== 106);
  const ack = (pg: number, set: QuorumSet, scls: number[]) =>
    scls.forEach((scl, i) => t.onAck(PgId(pg), allMembers(set)[i]!, Lsn(scl)));
  ack(1, pg1, [105, 103, 103, 105, 103, 103]); // 105 on only two segments
  ack(2, pg2, [104, 104, 106, 104, 104, 102]);
  assert.equal(t.pgcl(PgId(1)), 103);
  assert.equal(t.pgcl(PgId(2)), 104);
  assert.equal(t.vcl, 104);
  assert.equal(t.vdl, 104);
  // A third segment of PG1 reaches 105: quorum is 4, still not enough; the fourth makes it.
  t.onAck(PgId(1), allMembers(pg1)[1]!, Lsn(105));
  assert.equal(t.pgcl(PgId(1)), 103);
  t.onAck(PgId(1), allMembers(pg1)[2]!, Lsn(105));
  assert.equal(t.pgcl(PgId(1)), 105);
  assert.equal(t.vcl, 105); // 106 (PG2) is not yet on a quorum
  assert.equal(t.vdl, 105);
});

test("Aurora [P17 §4.1]: complete to 1007 with CPLs 900/1000/1100 → VCL=1007, VDL=1000", () => {
  const set = simpleQuorumSet(members("s"));
  const t = new DurablePointTracker({ vdl: Lsn(0), pgs: [{ pgId: PgId(0), quorumSet: set, lastLsn: Lsn(0) }] });
  for (let lsn = 1; lsn <= 1200; lsn++) t.recordSent(PgId(0), Lsn(lsn), lsn === 900 || lsn === 1000 || lsn === 1100);
  assert.equal(t.outstandingRecords, 1200);
  for (const m of allMembers(set).slice(0, 3)) t.onAck(PgId(0), m, Lsn(1007));
  assert.equal(t.vdl, 0); // three segments are not a write quorum
  assert.equal(t.onAck(PgId(0), allMembers(set)[3]!, Lsn(1007)), true);
  assert.equal(t.vcl, 1007);
  assert.equal(t.vdl, 1000);
  assert.equal(t.outstandingRecords, 193);
  for (const m of allMembers(set).slice(0, 4)) t.onAck(PgId(0), m, Lsn(1200));
  assert.equal(t.vdl, 1100);
  assert.equal(t.vcl, 1200);
  assert.equal(t.outstandingRecords, 0);
});

test("stale and foreign acks are ignored; an SCL above what was sent is a broken invariant 3", () => {
  const set = simpleQuorumSet(members("s"));
  const t = new DurablePointTracker({ vdl: Lsn(0), pgs: [{ pgId: PgId(0), quorumSet: set, lastLsn: Lsn(0) }] });
  for (let lsn = 1; lsn <= 10; lsn++) t.recordSent(PgId(0), Lsn(lsn), true);
  const [a, b, c, d] = allMembers(set) as [NodeId, NodeId, NodeId, NodeId];
  for (const m of [a, b, c, d]) t.onAck(PgId(0), m, Lsn(8));
  assert.equal(t.vdl, 8);
  assert.equal(t.onAck(PgId(0), a, Lsn(3)), false); // reordered, older ack
  assert.equal(t.sclOf(PgId(0), a), 8);
  assert.equal(t.onAck(PgId(0), NodeId("stranger"), Lsn(10)), false);
  assert.throws(() => t.onAck(PgId(0), a, Lsn(11)), invariant(3));
});

test("LSNs strictly increase (invariant 1) and stay under VDL + LAL (invariant 6)", () => {
  const set = simpleQuorumSet(members("s"));
  const t = new DurablePointTracker({ vdl: Lsn(0), lal: 10, pgs: [{ pgId: PgId(0), quorumSet: set, lastLsn: Lsn(0) }] });
  assert.equal(t.allocationLimit(), 10);
  assert.equal(t.canAllocate(Lsn(1), 10), true);
  assert.equal(t.canAllocate(Lsn(1), 11), false);
  for (let lsn = 1; lsn <= 10; lsn++) t.recordSent(PgId(0), Lsn(lsn), lsn % 5 === 0);
  assert.throws(() => t.recordSent(PgId(0), Lsn(11), true), invariant(6));
  assert.throws(() => t.recordSent(PgId(0), Lsn(10), true), invariant(1));
  assert.throws(() => t.canAllocate(Lsn(5), 1), invariant(1));
  for (const m of allMembers(set).slice(0, 4)) t.onAck(PgId(0), m, Lsn(7));
  assert.equal(t.vcl, 7);
  assert.equal(t.vdl, 5);
  assert.equal(t.allocationLimit(), 15);
  assert.equal(t.canAllocate(Lsn(11), 5), true);
  assert.equal(t.canAllocate(Lsn(11), 6), false);
});

test("after a recovery: LSNs resume above the truncation range, backlinks point at VDL", () => {
  const set = simpleQuorumSet(members("s"));
  const t = new DurablePointTracker({
    vdl: Lsn(1000), truncatedThrough: Lsn(1_001_000), lal: 1_000_000,
    pgs: [{ pgId: PgId(0), quorumSet: set, lastLsn: Lsn(998) }, { pgId: PgId(1), quorumSet: set, lastLsn: Lsn(1000) }],
  });
  assert.equal(t.vcl, 1000);
  assert.equal(t.lastLsnInVolume, 1000);
  assert.equal(t.lastLsnInPg(PgId(0)), 998);
  assert.equal(t.allocationLimit(), 2_001_000); // the annulled range counts as resolved
  assert.throws(() => t.recordSent(PgId(0), Lsn(1001), true), invariant(1));
  t.recordSent(PgId(0), Lsn(1_001_001), false);
  assert.equal(t.lastLsnInVolume, 1_001_001);
  assert.equal(t.lastLsnInPg(PgId(0)), 1_001_001);
  t.recordSent(PgId(1), Lsn(1_001_002), true);
  for (const m of allMembers(set).slice(0, 4)) t.onAck(PgId(1), m, Lsn(1_001_002));
  // PG 1's record is durable but PG 0's earlier one is not: VCL stays at the last record before it.
  assert.equal(t.vcl, 1000);
  for (const m of allMembers(set).slice(2, 6)) t.onAck(PgId(0), m, Lsn(1_001_001));
  assert.equal(t.vcl, 1_001_002);
  assert.equal(t.vdl, 1_001_002);
});

test("membership change: the new member's acks count, PGCL never goes back (invariant 11)", () => {
  const old = simpleQuorumSet(members("s"));
  const [s0, s1, s2, s3, s4, s5] = allMembers(old) as NodeId[];
  const t = new DurablePointTracker({ vdl: Lsn(0), pgs: [{ pgId: PgId(0), quorumSet: old, lastLsn: Lsn(0) }] });
  for (let lsn = 1; lsn <= 20; lsn++) t.recordSent(PgId(0), Lsn(lsn), true);
  for (const m of [s0!, s1!, s2!, s5!]) t.onAck(PgId(0), m, Lsn(10));
  assert.equal(t.vdl, 10);
  const g = NodeId("g");
  const transition = beginReplacement(old, s5!, g);
  t.setQuorumSet(PgId(0), transition);
  assert.equal(t.pgcl(PgId(0)), 10); // the new config alone would say 0 (only three members at 10)
  for (const m of [s0!, s1!, s2!, s5!]) t.onAck(PgId(0), m, Lsn(15));
  assert.equal(t.vdl, 10); // the new config (without s5) has three at 15
  t.onAck(PgId(0), g, Lsn(15));
  assert.equal(t.vdl, 15);
  t.setQuorumSet(PgId(0), finishReplacement(transition, s5!, g, "commit"));
  assert.equal(t.onAck(PgId(0), s5!, Lsn(20)), false); // s5 left the set
  for (const m of [s0!, s1!, s2!]) t.onAck(PgId(0), m, Lsn(20));
  assert.equal(t.vdl, 15);
  t.onAck(PgId(0), s3!, Lsn(20));
  assert.equal(t.vdl, 20);
  void s4;
});

// --------------------------------------------------------------------------- property vs naive

type Op =
  | { readonly kind: "send"; readonly pg: number; readonly cpl: boolean; readonly gap: number }
  | { readonly kind: "ack"; readonly pg: number; readonly member: number; readonly pick: number };

const SET_KINDS = ["aurora", "small", "transition", "nested"] as const;

function makeSet(kind: (typeof SET_KINDS)[number], pg: number): QuorumSet {
  const m = members(`pg${pg}-`, 8);
  const aurora = simpleQuorumSet(m.slice(0, 6));
  switch (kind) {
    case "aurora": return aurora;
    case "small": return simpleQuorumSet(m.slice(0, 3), { memberCount: 3, writeQuorum: 2, readQuorum: 2 });
    case "transition": return beginReplacement(aurora, m[5]!, m[6]!);
    case "nested": return beginReplacement(beginReplacement(aurora, m[5]!, m[6]!), m[4]!, m[7]!);
  }
}

interface Case {
  readonly setKinds: readonly (typeof SET_KINDS)[number][];
  readonly startVdl: number;
  readonly vclExtra: number;
  readonly truncExtra: number;
  readonly lastLsnPicks: readonly number[];
  readonly lal: number;
  readonly ops: readonly Op[];
}

function caseArb(maxPgs: number, maxOps: number): fc.Arbitrary<Case> {
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("send" as const), pg: fc.nat(maxPgs - 1), cpl: fc.boolean(), gap: fc.oneof(fc.constant(0), fc.constant(0), fc.nat(3)) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("ack" as const), pg: fc.nat(maxPgs - 1), member: fc.nat(15), pick: fc.nat(1_000_000) }) },
  );
  return fc.record({
    setKinds: fc.array(fc.constantFrom(...SET_KINDS), { minLength: 1, maxLength: maxPgs, size: "max" }),
    startVdl: fc.oneof(fc.constant(0), fc.nat(50)),
    vclExtra: fc.oneof(fc.constant(0), fc.nat(5)),
    truncExtra: fc.oneof(fc.constant(0), fc.nat(20)),
    lastLsnPicks: fc.array(fc.nat(100), { minLength: maxPgs, maxLength: maxPgs }),
    lal: fc.oneof(fc.constant(1_000_000), fc.integer({ min: 1, max: 30 })),
    ops: fc.array(op, { maxLength: maxOps, size: "max" }),
  });
}

/** Replays a case on the tracker and checks PGCL/VCL/VDL against the naive version after every step. */
function runCase(c: Case): void {
  const pgCount = c.setKinds.length;
  const sets = c.setKinds.map((k, i) => makeSet(k, i));
  const vdl0 = c.startVdl;
  const vcl0 = vdl0 + c.vclExtra;
  const trunc0 = vcl0 + c.truncExtra;
  // Start: each PG's last record is at or below VCL; one of them may be exactly VCL.
  const lastLsn0 = sets.map((_, i) => (vcl0 === 0 ? 0 : c.lastLsnPicks[i]! % (vcl0 + 1)));
  const t = new DurablePointTracker({
    vdl: Lsn(vdl0), vcl: Lsn(vcl0), truncatedThrough: Lsn(trunc0), lal: c.lal,
    pgs: sets.map((quorumSet, i) => ({ pgId: PgId(i), quorumSet, lastLsn: Lsn(lastLsn0[i]!) })),
  });
  const records: NaiveRecord[] = [];
  const sentByPg: number[][] = sets.map((_, i) => [lastLsn0[i]!]);
  const scl: Map<NodeId, number>[] = sets.map(() => new Map());
  let next = trunc0 + 1;
  let lastVdl = vdl0;

  const check = (step: number) => {
    for (let pg = 0; pg < pgCount; pg++) {
      const want = Math.max(lastLsn0[pg]!, naiveCommittedPoint(sets[pg]!, scl[pg]!));
      assert.equal(t.pgcl(PgId(pg)), want, `step ${step}: PGCL of PG ${pg}`);
    }
    const naive = naiveDurablePoint(records, (pg) => sets[pg]!, (pg) => scl[pg]!, vcl0, vdl0);
    assert.equal(t.vcl, naive.vcl, `step ${step}: VCL`);
    assert.equal(t.vdl, naive.vdl, `step ${step}: VDL`);
    assert.ok(t.vdl >= lastVdl, `step ${step}: VDL is monotonic`);
    lastVdl = t.vdl;
    const outstanding = records.filter((r) => r.lsn > t.pgcl(PgId(r.pg))).length;
    assert.equal(t.outstandingRecords, outstanding, `step ${step}: outstanding records`);
    assert.equal(t.allocationLimit(), Math.max(naive.vdl, trunc0) + c.lal, `step ${step}: allocation limit`);
  };

  check(-1);
  c.ops.forEach((op, step) => {
    const pg = op.pg % pgCount;
    if (op.kind === "send") {
      const lsn = next + op.gap;
      if (!t.canAllocate(Lsn(next), op.gap + 1)) return; // back-pressure: the writer waits
      assert.equal(t.lastLsnInPg(PgId(pg)), sentByPg[pg]![sentByPg[pg]!.length - 1]);
      t.recordSent(PgId(pg), Lsn(lsn), op.cpl);
      records.push({ lsn, pg, isCpl: op.cpl });
      sentByPg[pg]!.push(lsn);
      next = lsn + 1;
    } else {
      const all = allMembers(sets[pg]!);
      const member = all[op.member % all.length]!;
      const candidates = sentByPg[pg]!;
      const value = candidates[op.pick % candidates.length]!;
      t.onAck(PgId(pg), member, Lsn(value));
      scl[pg]!.set(member, Math.max(scl[pg]!.get(member) ?? 0, value)); // SCLs only move up
    }
    check(step);
  });
}

test("tracker equals the naive O(n²) durable point after every step (property, 10,000 cases)", () => {
  fc.assert(fc.property(caseArb(4, 60), runCase), { numRuns: 10_000 });
});

test("tracker equals the naive durable point with many PGs and long histories (property)", () => {
  fc.assert(fc.property(caseArb(24, 400), runCase), { numRuns: 60 });
});
