/**
 * Segment placement: which six storage nodes host a protection group's six segments.
 *
 * The rule (DESIGN.md, "segment"; Aurora §2.1): six segments on six distinct nodes, two in each of three
 * availability zones. With a 4/6 write quorum and a 3/6 read quorum, losing a whole AZ (2 segments)
 * plus one more node still leaves a read quorum, and losing an AZ alone still leaves a write quorum
 * (invariant 12). Placing two segments of one PG on one node, or three in one AZ, would silently break
 * that arithmetic, so the result is asserted, not just computed.
 *
 * Among the nodes that satisfy the rule, the least loaded (fewest segments) win, ties broken by AZ and
 * node id so the choice is deterministic and testable. A pure function: the caller supplies the live
 * nodes and their current load.
 */
import { assert } from "../core/assert.js";
import { BorealisError } from "../core/errors.js";
import type { Az, NodeId } from "../core/types.js";

export const SEGMENTS_PER_PG = 6;
export const AZS_PER_PG = 3;
export const SEGMENTS_PER_AZ = 2;

export interface PlacementCandidate {
  readonly nodeId: NodeId;
  readonly az: Az;
  /** Segments the node hosts already. */
  readonly load: number;
}

export interface SegmentPlacement {
  readonly nodeId: NodeId;
  readonly az: Az;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Places `pgCount` protection groups one after another, each seeing the load the previous ones added.
 * Throws PLACEMENT_IMPOSSIBLE when fewer than three AZs have two candidate nodes each.
 */
export function placeProtectionGroups(candidates: readonly PlacementCandidate[], pgCount: number): SegmentPlacement[][] {
  assert(Number.isSafeInteger(pgCount) && pgCount >= 0, "pgCount must be a non-negative integer");
  const load = new Map<NodeId, number>();
  const byAz = new Map<Az, NodeId[]>();
  for (const c of candidates) {
    assert(!load.has(c.nodeId), `placement: node ${c.nodeId} listed twice`);
    assert(Number.isSafeInteger(c.load) && c.load >= 0, `placement: node ${c.nodeId} has load ${c.load}`);
    load.set(c.nodeId, c.load);
    const list = byAz.get(c.az) ?? [];
    list.push(c.nodeId);
    byAz.set(c.az, list);
  }
  const eligible = [...byAz.entries()].filter(([, nodes]) => nodes.length >= SEGMENTS_PER_AZ);
  if (eligible.length < AZS_PER_PG) throw impossible(byAz);

  const result: SegmentPlacement[][] = [];
  for (let g = 0; g < pgCount; g++) {
    const ranked = eligible.map(([az, nodes]) => {
      const sorted = [...nodes].sort((a, b) => load.get(a)! - load.get(b)! || byText(a, b));
      const chosen = sorted.slice(0, SEGMENTS_PER_AZ);
      return { az, chosen, cost: chosen.reduce((sum, n) => sum + load.get(n)!, 0) };
    });
    ranked.sort((a, b) => a.cost - b.cost || byText(a.az, b.az));
    const pg: SegmentPlacement[] = [];
    for (const { az, chosen } of ranked.slice(0, AZS_PER_PG)) {
      for (const nodeId of chosen) {
        pg.push({ nodeId, az });
        load.set(nodeId, load.get(nodeId)! + 1);
      }
    }
    pg.sort((a, b) => byText(a.az, b.az) || byText(a.nodeId, b.nodeId));
    checkPlacement(pg);
    result.push(pg);
  }
  assert(result.length === pgCount, "placement: one placement per protection group");
  return result;
}

/** Asserts the placement rule (invariant 12 rests on it): 6 distinct nodes, 2 in each of 3 AZs. */
export function checkPlacement(pg: readonly SegmentPlacement[]): void {
  assert(pg.length === SEGMENTS_PER_PG, 12, `a protection group has ${SEGMENTS_PER_PG} segments, not ${pg.length}`);
  assert(new Set(pg.map((s) => s.nodeId)).size === SEGMENTS_PER_PG, 12, "a protection group's segments are on distinct nodes");
  const perAz = new Map<Az, number>();
  for (const s of pg) perAz.set(s.az, (perAz.get(s.az) ?? 0) + 1);
  assert(perAz.size === AZS_PER_PG, 12, `a protection group spans ${AZS_PER_PG} AZs, not ${perAz.size}`);
  for (const [az, n] of perAz) assert(n === SEGMENTS_PER_AZ, 12, `AZ ${az} holds ${n} segments of one protection group`);
}

function impossible(byAz: ReadonlyMap<Az, readonly NodeId[]>): BorealisError {
  const azs = [...byAz.entries()].sort(([a], [b]) => byText(a, b));
  const seen = azs.length === 0 ? "none" : azs.map(([az, nodes]) => `AZ ${az}: ${[...nodes].sort(byText).join(", ")}`).join("; ");
  return new BorealisError(
    "PLACEMENT_IMPOSSIBLE",
    `a protection group needs ${SEGMENTS_PER_AZ} live storage nodes in each of ${AZS_PER_PG} AZs; live nodes: ${seen}`,
  );
}
