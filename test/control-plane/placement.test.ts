import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Az, NodeId } from "../../src/core/types.js";
import { isBorealisError } from "../../src/core/errors.js";
import { placeGrowingProtectionGroup, placeProtectionGroups, type GrowthCandidate, type PlacementCandidate } from "../../src/control-plane/placement.js";

/** The naive statement of the rule: is placement possible at all for these nodes? */
function possible(nodes: readonly PlacementCandidate[]): boolean {
  const perAz = new Map<string, number>();
  for (const n of nodes) perAz.set(n.az, (perAz.get(n.az) ?? 0) + 1);
  return [...perAz.values()].filter((c) => c >= 2).length >= 3;
}

const nodesArb = fc
  .array(fc.record({ az: fc.constantFrom("a", "b", "c", "d", "e"), load: fc.nat(20) }), { maxLength: 16 })
  .map((rows) => rows.map((r, i) => ({ nodeId: NodeId(`n${i}`), az: Az(r.az), load: r.load })));

test("property: every PG gets 6 distinct nodes, exactly 2 in each of 3 AZs, or PLACEMENT_IMPOSSIBLE", () => {
  fc.assert(
    fc.property(nodesArb, fc.integer({ min: 1, max: 8 }), (nodes, pgCount) => {
      const azOf = new Map(nodes.map((n) => [n.nodeId, n.az]));
      let placed;
      try {
        placed = placeProtectionGroups(nodes, pgCount);
      } catch (e) {
        assert.ok(isBorealisError(e, "PLACEMENT_IMPOSSIBLE"), String(e));
        assert.equal(possible(nodes), false, "refused a placeable node set");
        assert.match(e.message, /2 live storage nodes in each of 3 AZs/);
        return;
      }
      assert.equal(possible(nodes), true);
      assert.equal(placed.length, pgCount);
      for (const pg of placed) {
        assert.equal(pg.length, 6);
        assert.equal(new Set(pg.map((s) => s.nodeId)).size, 6);
        const perAz = new Map<string, number>();
        for (const s of pg) {
          assert.equal(azOf.get(s.nodeId), s.az, "a segment's AZ is its node's AZ");
          perAz.set(s.az, (perAz.get(s.az) ?? 0) + 1);
        }
        assert.equal(perAz.size, 3);
        assert.ok([...perAz.values()].every((c) => c === 2));
      }
    }),
    { numRuns: 2000 },
  );
});

test("property: load spreads — from equal load, segment counts per node differ by at most one", () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 1, max: 30 }), (perAz, pgCount) => {
      const nodes: PlacementCandidate[] = [];
      for (const az of ["a", "b", "c"]) {
        for (let i = 0; i < perAz; i++) nodes.push({ nodeId: NodeId(`${az}${i}`), az: Az(az), load: 0 });
      }
      const counts = new Map<string, number>(nodes.map((n) => [n.nodeId, 0]));
      for (const pg of placeProtectionGroups(nodes, pgCount)) for (const s of pg) counts.set(s.nodeId, counts.get(s.nodeId)! + 1);
      const values = [...counts.values()];
      assert.ok(Math.max(...values) - Math.min(...values) <= 1, `uneven: ${JSON.stringify([...counts])}`);
    }),
  );
});

test("least-loaded nodes and AZs are chosen first", () => {
  const nodes: PlacementCandidate[] = [
    { nodeId: NodeId("a1"), az: Az("a"), load: 5 }, { nodeId: NodeId("a2"), az: Az("a"), load: 0 },
    { nodeId: NodeId("a3"), az: Az("a"), load: 1 },
    { nodeId: NodeId("b1"), az: Az("b"), load: 0 }, { nodeId: NodeId("b2"), az: Az("b"), load: 0 },
    { nodeId: NodeId("c1"), az: Az("c"), load: 0 }, { nodeId: NodeId("c2"), az: Az("c"), load: 0 },
    { nodeId: NodeId("d1"), az: Az("d"), load: 9 }, { nodeId: NodeId("d2"), az: Az("d"), load: 9 },
  ];
  const [pg] = placeProtectionGroups(nodes, 1);
  assert.deepEqual(pg!.map((s) => s.nodeId), ["a2", "a3", "b1", "b2", "c1", "c2"]);
});

test("the PLACEMENT_IMPOSSIBLE message lists what is live", () => {
  const nodes: PlacementCandidate[] = [
    { nodeId: NodeId("n1"), az: Az("a"), load: 0 }, { nodeId: NodeId("n2"), az: Az("a"), load: 0 },
    { nodeId: NodeId("n3"), az: Az("b"), load: 0 },
  ];
  assert.throws(() => placeProtectionGroups(nodes, 1), (e) =>
    isBorealisError(e, "PLACEMENT_IMPOSSIBLE") && e.message.includes("AZ a: n1, n2; AZ b: n3"));
  assert.throws(() => placeProtectionGroups([], 1), (e) => isBorealisError(e, "PLACEMENT_IMPOSSIBLE") && e.message.includes("none"));
});

const growthArb = fc
  .array(fc.record({ az: fc.constantFrom("a", "b", "c", "d"), load: fc.nat(20), alive: fc.boolean() }), { maxLength: 12 })
  .map((rows) => rows.map((r, i) => ({ nodeId: NodeId(`n${i}`), az: Az(r.az), load: r.load, alive: r.alive })));

test("property: growth uses live nodes when it can, else dead ones too with at least 4 of 6 live, else PLACEMENT_IMPOSSIBLE", () => {
  fc.assert(
    fc.property(growthArb, (nodes) => {
      const live = nodes.filter((n) => n.alive);
      const aliveIds = new Set(live.map((n) => n.nodeId));
      let pg;
      try {
        pg = placeGrowingProtectionGroup(nodes);
      } catch (e) {
        assert.ok(isBorealisError(e, "PLACEMENT_IMPOSSIBLE"), String(e));
        assert.equal(possible(live), false, "refused although the live nodes alone were placeable");
        return;
      }
      assert.equal(pg.length, 6);
      assert.equal(new Set(pg.map((s) => s.nodeId)).size, 6);
      const perAz = new Map<string, number>();
      for (const s of pg) perAz.set(s.az, (perAz.get(s.az) ?? 0) + 1);
      assert.ok(perAz.size === 3 && [...perAz.values()].every((c) => c === 2));
      const liveChosen = pg.filter((s) => aliveIds.has(s.nodeId)).length;
      assert.ok(liveChosen >= 4, `only ${liveChosen} live segments`);
      if (possible(live)) assert.equal(liveChosen, 6, "all live when the live nodes suffice");
    }),
    { numRuns: 2000 },
  );
});

test("growth with a dead node in a six-node cluster places on all six; the least dead AZs win otherwise", () => {
  const six: GrowthCandidate[] = ["a", "a", "b", "b", "c", "c"].map((az, i) => ({ nodeId: NodeId(`n${i + 1}`), az: Az(az), load: 3, alive: i !== 3 }));
  assert.deepEqual(placeGrowingProtectionGroup(six).map((s) => s.nodeId), ["n1", "n2", "n3", "n4", "n5", "n6"]);
  const withSpare: GrowthCandidate[] = [...six.slice(0, 4), { nodeId: NodeId("n5"), az: Az("c"), load: 0, alive: false },
    { nodeId: NodeId("n6"), az: Az("c"), load: 0, alive: false }, { nodeId: NodeId("d1"), az: Az("d"), load: 9, alive: true },
    { nodeId: NodeId("d2"), az: Az("d"), load: 9, alive: false }];
  // AZ b has one dead node, AZ c two, AZ d one: b and d are chosen over c, dead ones only where needed.
  assert.deepEqual(placeGrowingProtectionGroup(withSpare).map((s) => s.nodeId), ["n1", "n2", "n3", "n4", "d1", "d2"]);
  const threeDead = six.map((n, i) => ({ ...n, alive: i < 3 }));
  assert.throws(() => placeGrowingProtectionGroup(threeDead), (e) => isBorealisError(e, "PLACEMENT_IMPOSSIBLE"));
});
