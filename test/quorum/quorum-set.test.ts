import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isBorealisError } from "../../src/core/errors.js";
import { Lsn, NodeId } from "../../src/core/types.js";
import {
  AURORA_QUORUM, allMembers, beginReplacement, committedPoint, finishReplacement, isReadQuorum, isWriteQuorum,
  simpleQuorumSet, transitionQuorumSet, type QuorumSet,
} from "../../src/quorum/quorum-set.js";
import { naiveCommittedPoint } from "./naive.js";

const ids = (...names: string[]): NodeId[] => names.map(NodeId);
// Two segments in each of three AZs, as placement puts them.
const azSet = simpleQuorumSet(ids("a1", "a2", "b1", "b2", "c1", "c2"));
const without = (set: QuorumSet, ...lost: string[]): NodeId[] => allMembers(set).filter((m) => !lost.includes(m));
const scls = (entries: Record<string, number>): Map<NodeId, Lsn> =>
  new Map(Object.entries(entries).map(([k, v]) => [NodeId(k), Lsn(v)]));

test("AZ+1: losing an AZ keeps writes; losing an AZ plus one keeps reads only", () => {
  assert.equal(isWriteQuorum(azSet, without(azSet)), true);
  assert.equal(isWriteQuorum(azSet, without(azSet, "c1")), true);
  // Lose 2 (all of AZ c): 4 left, writes continue.
  assert.equal(isWriteQuorum(azSet, without(azSet, "c1", "c2")), true);
  assert.equal(isReadQuorum(azSet, without(azSet, "c1", "c2")), true);
  // Lose 3 (AZ c and one more): no write quorum, but a read quorum, so recovery and repair work.
  assert.equal(isWriteQuorum(azSet, without(azSet, "c1", "c2", "a1")), false);
  assert.equal(isReadQuorum(azSet, without(azSet, "c1", "c2", "a1")), true);
  // Lose 4: nothing.
  assert.equal(isReadQuorum(azSet, without(azSet, "c1", "c2", "a1", "b2")), false);
  // Strangers never count.
  assert.equal(isWriteQuorum(azSet, ids("a1", "a2", "b1", "x", "y", "z")), false);
});

test("PGCL of a 4/6 set is the 4th highest SCL; missing members count as 0", () => {
  assert.equal(committedPoint(azSet, scls({ a1: 105, a2: 103, b1: 103, b2: 103, c1: 101, c2: 105 })), 103);
  assert.equal(committedPoint(azSet, scls({ a1: 10, a2: 20, b1: 30, b2: 40, c1: 50, c2: 60 })), 30);
  assert.equal(committedPoint(azSet, scls({ a1: 105, a2: 105, b1: 105 })), 0);
  assert.equal(committedPoint(azSet, scls({ a1: 7, a2: 7, b1: 7, b2: 7 })), 7);
  assert.equal(committedPoint(azSet, new Map()), 0);
  // SCLs of non-members are ignored.
  assert.equal(committedPoint(azSet, scls({ a1: 9, a2: 9, b1: 9, x: 9, y: 9 })), 0);
});

test("transition sets: writes need both 4/6, reads either 3/6 (invariant 11)", () => {
  const old = simpleQuorumSet(ids("A", "B", "C", "D", "E", "F"));
  const t = beginReplacement(old, NodeId("F"), NodeId("G"));
  assert.equal(t.kind, "transition");
  assert.deepEqual([...allMembers(t)].sort(), ["A", "B", "C", "D", "E", "F", "G"]);
  assert.equal(isWriteQuorum(t, ids("A", "B", "C", "D")), true);
  assert.equal(isWriteQuorum(t, ids("A", "B", "C", "F")), false); // only the old config
  assert.equal(isWriteQuorum(t, ids("A", "B", "C", "G")), false); // only the new config
  assert.equal(isWriteQuorum(t, ids("A", "B", "C", "F", "G")), true);
  assert.equal(isReadQuorum(t, ids("D", "E", "F")), true);
  assert.equal(isReadQuorum(t, ids("D", "E", "G")), true);
  assert.equal(isReadQuorum(t, ids("F", "G", "A")), false); // 2 of each config
  // PGCL is the minimum over the configs: G (new, empty) drags the new config down.
  const s = scls({ A: 50, B: 50, C: 50, D: 10, E: 10, F: 50, G: 0 });
  assert.equal(committedPoint(old, s), 50);
  assert.equal(committedPoint(t, s), 10);
  s.set(NodeId("G"), Lsn(50));
  assert.equal(committedPoint(t, s), 50);

  // A second failure nests: E→H while F→G is in progress. Writing ABCD satisfies all four configs.
  const nested = beginReplacement(t, NodeId("E"), NodeId("H"));
  assert.equal(nested.kind === "transition" && nested.configs.length, 4);
  assert.equal(isWriteQuorum(nested, ids("A", "B", "C", "D")), true);
  assert.equal(isWriteQuorum(nested, ids("A", "B", "C", "E", "F")), false);

  // Every step is reversible.
  const reverted = finishReplacement(t, NodeId("F"), NodeId("G"), "revert");
  assert.deepEqual(reverted, old);
  const committed = finishReplacement(t, NodeId("F"), NodeId("G"), "commit");
  assert.equal(committed.kind, "simple");
  assert.deepEqual([...allMembers(committed)], ["A", "B", "C", "D", "E", "G"]);
  const stillE = finishReplacement(nested, NodeId("F"), NodeId("G"), "commit");
  assert.equal(stillE.kind === "transition" && stillE.configs.length, 2);
  assert.ok(!allMembers(stillE).includes(NodeId("F")));
});

test("invalid sets are refused with INVALID_ARGUMENT", () => {
  const bad = (f: () => unknown, pattern: RegExp) =>
    assert.throws(f, (e) => isBorealisError(e, "INVALID_ARGUMENT") && pattern.test(e.message));
  bad(() => simpleQuorumSet(ids("a", "b", "c", "d", "e")), /expected 6 members/);
  bad(() => simpleQuorumSet(ids("a", "b", "c", "d", "e", "a")), /appears twice/);
  bad(() => simpleQuorumSet(ids("a", "b", "c", "d", "e", "")), /empty/);
  bad(() => simpleQuorumSet(ids("a", "b", "c", "d", "e", "f"), { memberCount: 6, writeQuorum: 3, readQuorum: 3 }), /need not overlap|could miss/);
  bad(() => simpleQuorumSet(ids("a", "b", "c", "d", "e", "f"), { memberCount: 6, writeQuorum: 4, readQuorum: 2 }), /could miss/);
  bad(() => simpleQuorumSet(ids("a", "b", "c", "d", "e", "f"), { memberCount: 6, writeQuorum: 7, readQuorum: 3 }), /write quorum/);
  bad(() => transitionQuorumSet([azSet, azSet]), /at least 2 distinct/);
  bad(() => beginReplacement(azSet, NodeId("zz"), NodeId("n")), /not a member/);
  bad(() => beginReplacement(azSet, NodeId("a1"), NodeId("a2")), /already a member/);
  bad(() => finishReplacement(azSet, NodeId("a1"), NodeId("n"), "commit"), /no replacement/);
  // Aurora's 3/4 mode during a long AZ loss is a valid simple set.
  assert.equal(simpleQuorumSet(ids("a", "b", "c", "d"), { memberCount: 4, writeQuorum: 3, readQuorum: 2 }).writeQuorum, 3);
  assert.deepEqual(AURORA_QUORUM, { memberCount: 6, writeQuorum: 4, readQuorum: 3 });
});

test("committedPoint equals the naive definition (property)", () => {
  const base = simpleQuorumSet(ids("m0", "m1", "m2", "m3", "m4", "m5"));
  const sets: QuorumSet[] = [
    base,
    simpleQuorumSet(ids("m0", "m1", "m2"), { memberCount: 3, writeQuorum: 2, readQuorum: 2 }),
    beginReplacement(base, NodeId("m5"), NodeId("m6")),
    beginReplacement(beginReplacement(base, NodeId("m5"), NodeId("m6")), NodeId("m4"), NodeId("m7")),
  ];
  fc.assert(fc.property(
    fc.nat(sets.length - 1),
    fc.array(fc.tuple(fc.nat(8), fc.nat(20)), { maxLength: 12 }),
    (which, entries) => {
      const set = sets[which]!;
      const m = new Map<NodeId, Lsn>(entries.map(([i, v]) => [NodeId(`m${i}`), Lsn(v)]));
      assert.equal(committedPoint(set, m), naiveCommittedPoint(set, m));
    }), { numRuns: 5_000 });
});
