import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isBorealisError } from "../../src/core/errors.js";
import { Epoch, Lsn, NodeId, PgId } from "../../src/core/types.js";
import { DurablePointTracker } from "../../src/quorum/durable-point.js";
import { allMembers, simpleQuorumSet } from "../../src/quorum/quorum-set.js";
import {
  computeRecovery, trackerStartAfterRecovery, type PreviousRecovery, type RecordDescriptor, type RecoveryResult,
} from "../../src/quorum/recovery.js";
import { d, members, response, simulate } from "./recovery-sim.js";

/** A consecutive single-PG history 1..n with the given CPLs. */
const history = (n: number, cpls: number[]): RecordDescriptor[] =>
  Array.from({ length: n }, (_, i) => d(i + 1, i, i, cpls.includes(i + 1)));

test("Aurora [P17 §4.1]: complete to 1007 with CPLs 900/1000/1100 → VDL 1000, annul above it", () => {
  const set = simpleQuorumSet(members("s"));
  const [a, b, c] = allMembers(set) as [NodeId, NodeId, NodeId];
  const all = history(1200, [900, 1000, 1100]);
  const result = computeRecovery({
    lal: 10_000,
    pgs: [{
      pgId: PgId(0), quorumSet: set, responses: [
        response(a, 1007, 0, all.slice(0, 1007)),
        response(b, 990, 0, all.slice(0, 990)),
        response(c, 1003, 0, [...all.slice(0, 1003), all[1100]!]), // 1101 arrived past a gap
      ],
    }],
  });
  assert.equal(result.floor, 0);
  assert.equal(result.vcl, 1007);
  assert.equal(result.vdl, 1000);
  assert.equal(result.truncateAbove, 1000);
  assert.equal(result.highestLsnSeen, 1101);
  assert.equal(result.truncateThrough, 11_000);
  assert.equal(result.firstNewLsn, 11_001);
  const pg = result.pgs[0]!;
  assert.equal(pg.lastLsn, 1000);
  // 991..1000 are held by a and c only (two of six): re-replicate before serving.
  assert.deepEqual(pg.underReplicated.map((r) => r.lsn), Array.from({ length: 1000 }, (_, i) => i + 1));
  assert.deepEqual(pg.underReplicated[995]!.holders, [a, c]);
  assert.deepEqual(pg.completeResponders, [a, c]);
});

test("Aurora [P18 Fig. 3] after a crash: recovery finds 105 on one responder, VDL ≥ the writer's 104", () => {
  const pg1 = simpleQuorumSet(members("p1-"));
  const pg2 = simpleQuorumSet(members("p2-"));
  // PG1 holds odd LSNs, PG2 even; knownVdl 100 is where everyone starts.
  const r101 = d(101, 99, 100), r102 = d(102, 100, 101, true), r103 = d(103, 101, 102, true);
  const r104 = d(104, 102, 103, true), r105 = d(105, 103, 104, true), r106 = d(106, 104, 105);
  const [p1a, p1b, p1c] = allMembers(pg1) as NodeId[];
  const [p2a, p2b, p2c] = allMembers(pg2) as NodeId[];
  const result = computeRecovery({
    lal: 1000,
    pgs: [
      { pgId: PgId(1), quorumSet: pg1, responses: [response(p1a!, 105, 100, [r101, r103, r105]), response(p1b!, 103, 100, [r101, r103]), response(p1c!, 103, 100, [r101, r103])] },
      { pgId: PgId(2), quorumSet: pg2, responses: [response(p2a!, 104, 100, [r102, r104]), response(p2b!, 104, 100, [r102, r104]), response(p2c!, 106, 100, [r102, r104, r106])] },
    ],
  });
  assert.equal(result.floor, 100);
  assert.equal(result.vcl, 106);
  assert.equal(result.vdl, 105);
  const [res1, res2] = result.pgs as [RecoveryResult["pgs"][0], RecoveryResult["pgs"][0]];
  assert.equal(res1.lastLsn, 105);
  assert.equal(res2.lastLsn, 104);
  // Three of six hold 101..104: that is no write quorum, so they are listed too (the writer knew a fourth).
  assert.deepEqual(res1.underReplicated.map((r) => [r.lsn, r.holders.length]), [[101, 3], [103, 3], [105, 1]]);
  assert.deepEqual(res2.underReplicated.map((r) => r.lsn), [102, 104]);
  assert.deepEqual(res1.completeResponders, [p1a]);
  assert.deepEqual(res2.completeResponders, [p2a, p2b, p2c]);
});

test("fewer than a read quorum of a PG is NO_QUORUM; malformed input is refused", () => {
  const set = simpleQuorumSet(members("s"));
  const [a, b, c] = allMembers(set) as [NodeId, NodeId, NodeId];
  const rs = [response(a, 0, 0, []), response(b, 0, 0, [])];
  assert.throws(() => computeRecovery({ lal: 10, pgs: [{ pgId: PgId(0), quorumSet: set, responses: rs }] }),
    (e) => isBorealisError(e, "NO_QUORUM") && e.details["pgId"] === 0);
  assert.throws(() => computeRecovery({ lal: 10, pgs: [{ pgId: PgId(0), quorumSet: set, responses: [...rs, response(NodeId("x"), 0, 0, [])] }] }),
    (e) => isBorealisError(e, "INVALID_ARGUMENT") && /not one of its segments/.test(e.message));
  assert.throws(() => computeRecovery({ lal: 10, pgs: [{ pgId: PgId(0), quorumSet: set, responses: [...rs, response(a, 0, 0, [])] }] }),
    (e) => isBorealisError(e, "INVALID_ARGUMENT") && /twice/.test(e.message));
  // A responder that lists records only above 50 while the floor is 40 would hide records 41..50.
  assert.throws(() => computeRecovery({ lal: 10, pgs: [{ pgId: PgId(0), quorumSet: set, responses: [response(a, 0, 40, []), response(b, 0, 0, []), { ...response(c, 0, 0, []), recordsAfter: Lsn(50) }] }] }),
    (e) => isBorealisError(e, "INVALID_ARGUMENT") && /above the floor/.test(e.message));
  // Two segments disagreeing about one record, or two records of one epoch after the same one.
  assert.throws(() => computeRecovery({ lal: 10, pgs: [{ pgId: PgId(0), quorumSet: set, responses: [response(a, 1, 0, [d(1, 0, 0, true)]), response(b, 1, 0, [d(1, 0, 0, false)]), response(c, 0, 0, [])] }] }),
    (e) => isBorealisError(e, "CORRUPT_DATA") && /disagree/.test(e.message));
  assert.throws(() => computeRecovery({ lal: 10, pgs: [{ pgId: PgId(0), quorumSet: set, responses: [response(a, 2, 0, [d(1, 0, 0), d(2, 1, 1)]), response(b, 1, 0, [d(1, 0, 0), d(3, 1, 1)]), response(c, 0, 0, [])] }] }),
    (e) => isBorealisError(e, "CORRUPT_DATA") && /branch/.test(e.message));
});

test("records annulled by the previous recovery stay annulled on a segment that missed it", () => {
  const set = simpleQuorumSet(members("s"));
  const [a, b, c, dd] = allMembers(set) as [NodeId, NodeId, NodeId, NodeId];
  const epoch1 = history(10, [5, 10]);
  const prev: PreviousRecovery = { epoch: Epoch(2), vdl: Lsn(10), truncateThrough: Lsn(110) };
  // Segment a missed recovery 2's annulment: it still holds 11 and 12 of epoch 1 (11 is a CPL).
  const stale = [d(11, 10, 10, true, 1), d(12, 11, 11, false, 1)];
  const e2 = [d(111, 10, 10, false, 2), d(112, 111, 111, true, 2)];
  // With epoch-2 records visible, the newer branch from 10 supersedes 11–12 even without `previous`.
  const withE2 = [response(a, 12, 5, [...epoch1.slice(5), ...stale]), response(b, 112, 10, e2), response(c, 10, 10, [])];
  for (const previousRecoveries of [[prev], []]) {
    const r = computeRecovery({ lal: 100, previousRecoveries, pgs: [{ pgId: PgId(0), quorumSet: set, responses: withE2 }] });
    assert.equal(r.vcl, 112);
    assert.equal(r.vdl, 112);
    assert.equal(r.pgs[0]!.lastLsn, 112);
    assert.equal(r.truncateThrough, 212);
  }
  // Without any epoch-2 record in sight only `previousRecoveries` tells that 11 was annulled.
  const noE2 = [response(a, 12, 5, [...epoch1.slice(5), ...stale]), response(c, 10, 10, []), response(dd, 10, 10, [])];
  const r = computeRecovery({ lal: 100, previousRecoveries: [prev], pgs: [{ pgId: PgId(0), quorumSet: set, responses: noE2 }] });
  assert.equal(r.vdl, 10);
  assert.equal(r.pgs[0]!.lastLsn, 10);
  assert.equal(r.truncateThrough, 210); // LAL counts from the previous truncation end
  assert.deepEqual(r.pgs[0]!.completeResponders, [c, dd]); // a's SCL 12 counts annulled records
  const blind = computeRecovery({ lal: 100, pgs: [{ pgId: PgId(0), quorumSet: set, responses: noE2 }] });
  assert.equal(blind.vdl, 11); // why the control plane must keep the last recovery's result
});

test("a PG with no record above the floor gets its last record from SCLs and segment backlinks", () => {
  const pg0 = simpleQuorumSet(members("a"));
  const pg1 = simpleQuorumSet(members("b"));
  const m0 = allMembers(pg0), m1 = allMembers(pg1);
  // PG 1's last record is 40 (≤ floor 50); one responder lags at 30, one knows 40, one ran ahead to 60
  // (a record above VCL, whose segment backlink still names 40).
  const r = computeRecovery({
    lal: 100,
    pgs: [
      { pgId: PgId(0), quorumSet: pg0, responses: [0, 1, 2].map((i) => response(m0[i]!, 55, 50, [d(51, 49, 50, true), d(55, 51, 52, true)])) },
      { pgId: PgId(1), quorumSet: pg1, responses: [response(m1[0]!, 30, 50, []), response(m1[1]!, 40, 50, []), response(m1[2]!, 60, 50, [d(60, 40, 59)])] },
    ],
  });
  assert.equal(r.vcl, 51); // 52 (another PG) is missing
  assert.equal(r.vdl, 51);
  assert.equal(r.pgs[0]!.lastLsn, 51);
  assert.equal(r.pgs[1]!.lastLsn, 40);
  assert.deepEqual(r.pgs[1]!.completeResponders, [m1[1], m1[2]]);
  const start = trackerStartAfterRecovery(r, new Map([[PgId(0), pg0], [PgId(1), pg1]]), 100);
  assert.deepEqual(start.pgs.map((p) => p.lastLsn), [51, 40]);
  const t = new DurablePointTracker(start);
  assert.equal(t.lastLsnInVolume, 51);
  t.recordSent(PgId(1), r.firstNewLsn, true);
  assert.equal(t.lastLsnInPg(PgId(1)), r.firstNewLsn);
});

test("recovery never loses an acknowledged commit and matches the naive chain (property, multi-epoch)", () => {
  let checks = 0;
  fc.assert(fc.property(fc.integer(), (seed) => { checks += simulate(seed, 4); }), { numRuns: 2_000 });
  assert.ok(checks > 2_000 * 4, `ran ${checks} PG checks`);
});
